"""SQL, one module per table group: plain async functions taking a connection."""
