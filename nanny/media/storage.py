"""Where image files are kept: a small interface (put, get, delete by key) and its filesystem
implementation. Keys are the SHA-256 of the file's bytes, so a file never changes once written
and the same bytes are kept once. Which keys are still wanted is the database's business
(nanny/db/media.py); this layer only keeps bytes.

Another implementation (an object store) needs only these three coroutines."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[0-9a-f]{64}$")


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class MediaStorage(Protocol):
    async def put(self, key: str, data: bytes) -> bool:
        """Keep `data` under `key` (its content_key): True when written now, False when it was
        there already. Never leaves a partial file under `key`."""

    async def get(self, key: str) -> bytes | None:
        """The file's bytes, or None when there is none."""

    async def delete(self, key: str) -> None:
        """Remove the file; no error when it is not there."""


class FileStorage:
    """Files under `root`, two hex digits of fan-out (`root/ab/abcdef…`), written to a temporary
    file in the same directory and renamed into place, so a reader or a crash never sees half a
    file. Every call runs in a thread: file I/O never blocks the event loop."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a media key: {key!r}")
        return self.root / key[:2] / key

    async def put(self, key: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self._get, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    def _put(self, key: str, data: bytes) -> bool:
        target = self.path(key)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        return True

    def _get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def _delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()
