"""Schema migrations with yoyo (synchronous: run at start-up or in a worker thread)."""

from __future__ import annotations

from yoyo import get_backend, read_migrations

from nanny import PROJECT_ROOT
from nanny.startup import StartupError

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


class MigrationRefused(StartupError):
    """A migration found data it cannot convert; the message says what to fix first."""


def _backend(dsn: str):
    # yoyo knows the scheme "postgresql"; libpq-style "postgres://" means the same.
    if dsn.startswith("postgres://"):
        dsn = "postgresql://" + dsn.removeprefix("postgres://")
    return get_backend(dsn)


def apply_migrations(dsn: str) -> int:
    """Apply pending migrations; returns how many were applied."""
    backend = _backend(dsn)
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return len(pending)
    finally:
        backend.connection.close()


def rollback_migrations(dsn: str) -> int:
    """Roll back every applied migration; returns how many were rolled back."""
    backend = _backend(dsn)
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            applied = backend.to_rollback(migrations)
            backend.rollback_migrations(applied)
        return len(applied)
    finally:
        backend.connection.close()
