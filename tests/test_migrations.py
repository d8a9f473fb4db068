"""The schema comes only from migrations/: apply all, roll all back, apply again."""

from __future__ import annotations

import asyncpg

from nanny.db.migrate import apply_migrations, rollback_migrations

TABLES = {
    "users",
    "pets",
    "sitters",
    "services",
    "bookings",
    "reviews",
    "payments",
    "chats",
    "messages",
    "chat_reads",
    "task_runs",
}


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT LIKE '\\_yoyo%' AND tablename NOT LIKE 'yoyo%'"
        )
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_apply_rollback_apply(empty_database_url):
    assert apply_migrations(empty_database_url) >= 1
    assert await _tables(empty_database_url) == TABLES
    assert apply_migrations(empty_database_url) == 0  # idempotent
    assert rollback_migrations(empty_database_url) >= 1
    assert await _tables(empty_database_url) == set()
    assert apply_migrations(empty_database_url) >= 1
    assert await _tables(empty_database_url) == TABLES
