"""The schema comes only from migrations/: apply all, roll all back, apply again."""

from __future__ import annotations

import asyncpg
import orjson
import pytest
from yoyo import read_migrations

from nanny.db.migrate import (
    FUNCTIONS_DIR,
    MIGRATIONS_DIR,
    MigrationRefused,
    apply_functions,
    apply_migrations,
    connect_backend,
    rollback_migrations,
)
from tests.rows import insert_booking
from tests.test_search_table import EXPECTED, KEPT

TABLES = {
    "users",
    "pets",
    "sitters",
    "services",
    "bookings",
    "reviews",
    "revoked_tokens",
    "payments",
    "chats",
    "messages",
    "chat_reads",
    "task_runs",
    "media_files",
    "images",
    "sitter_schedule",
    "time_off",
    "notifications",
    "chat_digests",
    "service_search",
    "search_zones",
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


def _apply_before(dsn: str, migration_id: str) -> None:
    """The schema as it was before `migration_id`: every earlier migration applied."""
    backend = connect_backend(dsn)
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            earlier = [m for m in backend.to_apply(migrations) if m.id < migration_id]
            backend.apply_migrations(migrations.replace(earlier))
    finally:
        backend.connection.close()


async def _insert_users(dsn: str, emails: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO users (email, full_name, password_hash, role) "
            "VALUES ($1, 'N', 'h', 'owner')",
            [(e,) for e in emails],
        )
    finally:
        await conn.close()


async def test_stored_emails_are_normalised(empty_database_url):
    _apply_before(empty_database_url, "0007.email_normal_form")
    await _insert_users(empty_database_url, ["Ann@Example.KZ", "\uff42ob@example.kz", "c@x.kz"])
    apply_migrations(empty_database_url)
    conn = await asyncpg.connect(empty_database_url)
    try:
        rows = await conn.fetch("SELECT email FROM users ORDER BY user_id")
        assert [r["email"] for r in rows] == ["ann@example.kz", "bob@example.kz", "c@x.kz"]
    finally:
        await conn.close()
    rollback_migrations(empty_database_url)


async def test_addresses_equal_once_normalised_stop_the_migration(empty_database_url):
    # The old index on lower() let these two in (PostgreSQL's lower() keeps "ẞ").
    _apply_before(empty_database_url, "0007.email_normal_form")
    await _insert_users(empty_database_url, ["strasse@example.de", "STRA\u1e9eE@example.de"])
    with pytest.raises(MigrationRefused, match="users 1 and 2 have e-mail addresses"):
        apply_migrations(empty_database_url)


async def test_a_changed_trigger_function_is_replaced_in_place(empty_database_url, tmp_path):
    """Its triggers depend on it, so it cannot be dropped first: CREATE OR REPLACE keeps them."""
    apply_migrations(empty_database_url)
    [(signature, oid, _)] = await _functions(empty_database_url, "nanny_notify")
    text = (FUNCTIONS_DIR / "nanny_notify.sql").read_text()
    (tmp_path / "nanny_notify.sql").write_text(text.replace("RETURN NULL;", "RETURN NULL; ", 1))
    backend = connect_backend(empty_database_url)
    try:
        assert apply_functions(backend, tmp_path) == ["nanny_notify"]
    finally:
        backend.connection.close()
    [(new_signature, new_oid, comment)] = await _functions(empty_database_url, "nanny_notify")
    assert (new_signature, new_oid) == (signature, oid) and comment.startswith("nanny:sha256:")
    conn = await asyncpg.connect(empty_database_url)
    try:
        triggers = await conn.fetch(
            "SELECT tgname FROM pg_trigger WHERE tgfoid = $1::int::oid ORDER BY 1", oid
        )
    finally:
        await conn.close()
    assert [t["tgname"] for t in triggers] == [
        "bookings_notify_insert", "bookings_notify_status", "reviews_notify_insert",
        "sitters_notify_status",
    ]  # fmt: skip


async def test_the_search_table_is_filled_from_the_rows_already_there(empty_database_url):
    """Migration 0014 on a database with sitters in every state: the table holds exactly the
    services of the approved, live ones."""
    _apply_before(empty_database_url, "0014.search_table")
    conn = await asyncpg.connect(empty_database_url)
    try:
        for name, status, deleted in [
            ("Aru", "approved", False),
            ("Bek", "pending", False),
            ("Dana", "approved", True),
            ("Erlan", "rejected", False),
        ]:
            user_id = await conn.fetchval(
                "INSERT INTO users (email, full_name, password_hash, role, deleted_at) "
                "VALUES ($1, $2, 'h', 'sitter', CASE WHEN $3 THEN now() END) RETURNING user_id",
                f"{name.lower()}@example.kz",
                name,
                deleted,
            )
            await conn.execute(
                "INSERT INTO sitters (user_id, status, location, rating_count, rating_sum, "
                "timezone) VALUES ($1, $2, 'Almaty', 3, 13, 'Asia/Aqtobe')",
                user_id,
                status,
            )
            await conn.executemany(
                "INSERT INTO services (sitter_id, type, price_per_hour) VALUES ($1, $2, 1500)",
                [(user_id, "walking"), (user_id, "boarding")],
            )
    finally:
        await conn.close()
    apply_migrations(empty_database_url)
    conn = await asyncpg.connect(empty_database_url)
    try:
        kept = await conn.fetch(KEPT)
        assert [dict(r) for r in kept] == [dict(r) for r in await conn.fetch(EXPECTED)]
        assert {(r["sitter_name"], str(r["rating"])) for r in kept} == {("Aru", "4.33")}
        assert len(kept) == 2
        assert await conn.fetchval("SELECT array_agg(timezone) FROM search_zones") == [
            "Asia/Aqtobe"
        ]
    finally:
        await conn.close()


async def test_reviews_already_there_get_their_json(empty_database_url):
    """Migration 0015 writes the kept JSON of the reviews it finds, times and all."""
    _apply_before(empty_database_url, "0015.review_documents")
    pool = await asyncpg.create_pool(empty_database_url, min_size=1, max_size=1)
    try:
        owner, sitter = [
            await pool.fetchval(
                "INSERT INTO users (email, full_name, password_hash, role) "
                "VALUES ($1, $2, 'h', $3) RETURNING user_id",
                f"{role}@example.kz",
                name,
                role,
            )
            for name, role in (("Aru \\ Ö", "owner"), ("Bek", "sitter"))
        ]
        await pool.execute(
            "INSERT INTO sitters (user_id, status, location) VALUES ($1, 'approved', 'Almaty')",
            sitter,
        )
        booking = await insert_booking(pool, owner, sitter, status="completed")
        await pool.execute(
            "INSERT INTO reviews (booking_id, owner_id, sitter_id, rating, comment, created_at, "
            "updated_at) VALUES ($1, $2, $3, 4, 'fine\n\"dog\"', '2026-03-01 10:00:00+05', "
            "'2026-03-02 11:12:13.000450+00')",
            booking,
            owner,
            sitter,
        )
    finally:
        await pool.close()
    apply_migrations(empty_database_url)
    conn = await asyncpg.connect(empty_database_url)
    try:
        review_id, doc = await conn.fetchrow("SELECT review_id, doc FROM reviews")
    finally:
        await conn.close()
    assert orjson.loads(doc) == {
        "review_id": review_id,
        "booking_id": booking,
        "owner_id": owner,
        "sitter_id": sitter,
        "owner_name": "Aru \\ Ö",
        "rating": 4,
        "comment": 'fine\n"dog"',
        "created_at": "2026-03-01T05:00:00Z",
        "updated_at": "2026-03-02T11:12:13.000450Z",
    }
