"""The embedded PostgreSQL used when no DATABASE_URL is given (the `pgserver` package)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger("nanny.embedded")

DATABASE = "nanny"


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse, when another process already runs it) PostgreSQL in data_dir/pg and
    return a DSN for its `nanny` database. It stops when the last process using it exits."""
    with warnings.catch_warnings():
        # platformdirs warns about a missing XDG_RUNTIME_DIR on servers; harmless here.
        warnings.simplefilter("ignore")
        import pgserver  # only the embedded mode needs it

        pgdata = (data_dir / "pg").resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
    log.info("embedded PostgreSQL in %s", pgdata)
    return server.get_uri(database=DATABASE)
