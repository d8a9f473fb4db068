"""Photos: what an upload may be and how it is re-encoded (images.py), where the files are kept
(storage.py), the signed URLs that show them (urls.py), and the use cases that tie uploads, rows
and files together (library.py)."""
