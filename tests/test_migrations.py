"""The schema comes only from migrations/: apply all, roll all back, apply again."""

from __future__ import annotations

import asyncpg

from nanny.db.migrate import (
    FUNCTIONS_DIR,
    apply_functions,
    apply_migrations,
    connect_backend,
    rollback_migrations,
)

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
    "media_files",
    "images",
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


async def _functions(dsn: str, name: str) -> list[tuple[str, int, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT oid::regprocedure::text AS signature, oid::int AS oid, "
            "obj_description(oid, 'pg_proc') AS comment FROM pg_proc WHERE proname = $1",
            name,
        )
    finally:
        await conn.close()
    return [(r["signature"], r["oid"], r["comment"]) for r in rows]


async def test_rule_functions_come_from_their_files(empty_database_url):
    apply_migrations(empty_database_url)
    for path in FUNCTIONS_DIR.glob("*.sql"):
        [(_, _, comment)] = await _functions(empty_database_url, path.stem)
        assert comment.startswith("nanny:sha256:")
    before = await _functions(empty_database_url, "nanny_store_messages")
    apply_migrations(empty_database_url)
    assert await _functions(empty_database_url, "nanny_store_messages") == before  # untouched


async def test_a_changed_function_file_is_applied_on_the_next_migrate(empty_database_url, tmp_path):
    apply_migrations(empty_database_url)
    [(signature, oid, _)] = await _functions(empty_database_url, "nanny_store_messages")
    # The same function with one more parameter: the old signature must not linger beside it.
    text = (FUNCTIONS_DIR / "nanny_store_messages.sql").read_text()
    changed = text.replace(
        "p_attachment_ids integer[]\n", "p_attachment_ids integer[],\n    p_unused integer\n"
    )
    assert changed != text
    (tmp_path / "nanny_store_messages.sql").write_text(changed)
    backend = connect_backend(empty_database_url)
    try:
        assert apply_functions(backend, tmp_path) == ["nanny_store_messages"]
        assert apply_functions(backend, tmp_path) == []  # unchanged file, nothing re-created
    finally:
        backend.connection.close()
    [(new_signature, new_oid, _)] = await _functions(empty_database_url, "nanny_store_messages")
    assert new_signature == signature.replace("integer[])", "integer[],integer)")
    assert new_oid != oid
