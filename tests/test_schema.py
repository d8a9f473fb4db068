"""Constraints the database keeps on its own, whatever the handlers do."""

from __future__ import annotations

import asyncpg
import pytest


@pytest.fixture
async def conn(database_url):
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def _user(conn, email: str, role: str = "owner") -> int:
    return await conn.fetchval(
        "INSERT INTO users (email, full_name, password_hash, role) VALUES ($1, 'N', 'h', $2) "
        "RETURNING user_id",
        email,
        role,
    )


async def _booking(conn, owner, sitter, start, end, status="pending"):
    return await conn.fetchval(
        "INSERT INTO bookings (owner_id, sitter_id, start_time, end_time, status, total_price) "
        "VALUES ($1, $2, $3::text::timestamptz, $4::text::timestamptz, $5, 10) "
        "RETURNING booking_id",
        owner,
        sitter,
        start,
        end,
        status,
    )


async def test_email_unique_as_stored(conn):
    # Addresses are stored in one normal form (nanny.emails), so the column is unique as it is.
    await _user(conn, "same@example.kz")
    with pytest.raises(asyncpg.UniqueViolationError):
        await _user(conn, "same@example.kz")


async def test_enum_and_range_checks(conn):
    with pytest.raises(asyncpg.CheckViolationError):
        await _user(conn, "x@example.kz", role="superuser")
    owner = await _user(conn, "o@example.kz")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO pets (owner_id, name, type) VALUES ($1, 'Rex', 'dragon')", owner
        )


async def test_sitter_bookings_cannot_overlap_but_may_touch(conn):
    owner = await _user(conn, "o@example.kz")
    sitter = await _user(conn, "s@example.kz", "sitter")
    other = await _user(conn, "s2@example.kz", "sitter")
    await _booking(conn, owner, sitter, "2030-01-01 10:00Z", "2030-01-01 12:00Z")
    await _booking(conn, owner, sitter, "2030-01-01 12:00Z", "2030-01-01 13:00Z")  # adjacent
    await _booking(conn, owner, other, "2030-01-01 10:00Z", "2030-01-01 12:00Z")  # other sitter
    await _booking(conn, owner, sitter, "2030-01-01 11:00Z", "2030-01-01 11:30Z", "cancelled")
    with pytest.raises(asyncpg.ExclusionViolationError):
        await _booking(conn, owner, sitter, "2030-01-01 11:59Z", "2030-01-01 12:30Z")


async def test_booking_length_limits(conn):
    owner = await _user(conn, "o@example.kz")
    sitter = await _user(conn, "s@example.kz", "sitter")
    await _booking(conn, owner, sitter, "2030-02-01 00:00Z", "2030-03-03 00:00Z")  # 30 days
    with pytest.raises(asyncpg.CheckViolationError):
        await _booking(conn, owner, sitter, "2030-04-01 00:00Z", "2030-05-02 00:00Z")
    with pytest.raises(asyncpg.CheckViolationError):
        await _booking(conn, owner, sitter, "2030-06-01 10:00Z", "2030-06-01 10:00Z")


async def test_users_with_history_cannot_be_hard_deleted(conn):
    owner = await _user(conn, "o@example.kz")
    sitter = await _user(conn, "s@example.kz", "sitter")
    await _booking(conn, owner, sitter, "2030-01-01 10:00Z", "2030-01-01 12:00Z")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("DELETE FROM users WHERE user_id = $1", owner)


async def test_message_seq_and_client_id_unique(conn):
    owner = await _user(conn, "o@example.kz")
    sitter = await _user(conn, "s@example.kz", "sitter")
    booking = await _booking(conn, owner, sitter, "2030-01-01 10:00Z", "2030-01-01 12:00Z")
    chat = await conn.fetchval(
        "INSERT INTO chats (booking_id) VALUES ($1) RETURNING chat_id", booking
    )
    insert = (
        "INSERT INTO messages (chat_id, seq, sender_id, content, client_id) "
        "VALUES ($1, $2, $3, 'hi', $4)"
    )
    await conn.execute(insert, chat, 1, owner, "c1")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert, chat, 1, sitter, "c2")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert, chat, 2, owner, "c1")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute("INSERT INTO chats (booking_id) VALUES ($1)", booking)


async def test_pool_release_keeps_no_session_state_but_rolls_back(settings):
    from nanny.db.pool import create_pool

    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await conn.execute(
                "INSERT INTO users (email, full_name, password_hash, role) "
                "VALUES ('tx@example.kz', 'T', 'h', 'owner')"
            )
        # Released mid-transaction: asyncpg rolled it back, so the row is gone.
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM users") == 0
            assert not conn.is_in_transaction()
    finally:
        await pool.close()
