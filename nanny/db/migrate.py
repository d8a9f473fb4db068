"""Schema migrations with yoyo, then the database's functions (synchronous: run at start-up or in
a worker thread).

The PL/pgSQL functions that hold rules live each in one file of migrations/functions/, named
after the function and written as `CREATE OR REPLACE FUNCTION`. After the migrations, every
migrate re-creates a function whose file changed since it was last applied (the file's hash is
kept as the function's comment), so a rule change is a diff of that one file."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from yoyo import get_backend, read_migrations

from nanny import PROJECT_ROOT
from nanny.config import StartupError

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
FUNCTIONS_DIR = MIGRATIONS_DIR / "functions"

log = logging.getLogger("nanny.migrate")

_FUNCTIONS_NAMED = """
    SELECT oid::regprocedure::text, obj_description(oid, 'pg_proc'),
           prorettype = 'trigger'::regtype
    FROM pg_proc WHERE proname = %s AND pg_function_is_visible(oid)
"""


class MigrationRefused(StartupError):
    """A migration found data it cannot convert; the message says what to fix first."""


def connect_backend(dsn: str):
    # yoyo knows the scheme "postgresql"; libpq-style "postgres://" means the same.
    if dsn.startswith("postgres://"):
        dsn = "postgresql://" + dsn.removeprefix("postgres://")
    return get_backend(dsn)


def apply_migrations(dsn: str) -> int:
    """Apply pending migrations, then re-create the functions whose file changed; returns how
    many migrations were applied."""
    backend = connect_backend(dsn)
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
            apply_functions(backend, FUNCTIONS_DIR)
        return len(pending)
    finally:
        backend.connection.close()


def apply_functions(backend, directory: Path) -> list[str]:
    """Re-create, in one transaction, each function of `directory` whose file is not the one it
    was made from; returns their names. Every earlier version of a function is dropped first, so
    a file may change the function's parameters or result too; a trigger function (which its
    file may follow with the triggers that run it) is replaced in place."""
    changed = []
    with backend.transaction():
        cursor = backend.cursor()
        for path in sorted(directory.glob("*.sql")):
            name, text = path.stem, path.read_text()
            tag = "nanny:sha256:" + hashlib.sha256(text.encode()).hexdigest()
            cursor.execute(_FUNCTIONS_NAMED, (name,))
            existing = cursor.fetchall()
            if [comment for _, comment, _ in existing] == [tag]:
                continue
            # A trigger function is replaced in place: its triggers depend on it, and its
            # signature is always (). Any other is dropped first.
            for signature, _, is_trigger in existing:
                if not is_trigger:
                    cursor.execute(f"DROP FUNCTION {signature}")
            cursor.execute(text)
            cursor.execute(_FUNCTIONS_NAMED, (name,))
            made = [signature for signature, _, _ in cursor.fetchall()]
            if len(made) != 1:
                raise ValueError(f"{path} must create exactly one function named {name}")
            cursor.execute(f"COMMENT ON FUNCTION {made[0]} IS %s", (tag,))
            changed.append(name)
    if changed:
        log.info("functions re-created: %s", ", ".join(changed))
    return changed


def rollback_migrations(dsn: str) -> int:
    """Roll back every applied migration; returns how many were rolled back."""
    backend = connect_backend(dsn)
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            applied = backend.to_rollback(migrations)
            backend.rollback_migrations(applied)
        return len(applied)
    finally:
        backend.connection.close()
