"""Direct inserts of marketplace rows (pets, services, bookings, payments, messages) through the
app's pool (or a pool given), for tests of modules that only read or react to them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
from aiohttp.test_utils import TestClient

from nanny.keys import POOL


def _pool(where: TestClient | asyncpg.Pool) -> asyncpg.Pool:
    """The pool of a test client's app, or the pool itself."""
    return where.app[POOL] if isinstance(where, TestClient) else where


async def insert_pet(client, owner_id: int, name: str = "Barsik", type: str = "cat") -> int:
    return await _pool(client).fetchval(
        "INSERT INTO pets (owner_id, name, type, age) VALUES ($1, $2, $3, 3) RETURNING pet_id",
        owner_id,
        name,
        type,
    )


async def insert_service(
    client, sitter_id: int, type: str = "walking", price: str = "2500.00"
) -> int:
    return await _pool(client).fetchval(
        """
        INSERT INTO services (sitter_id, type, price_per_hour, description)
        VALUES ($1, $2, $3, 'Walks in the park') RETURNING service_id
        """,
        sitter_id,
        type,
        Decimal(price),
    )


_slot = itertools.count(1)


async def insert_booking(
    where: TestClient | asyncpg.Pool,
    owner_id: int,
    sitter_id: int,
    *,
    status: str = "pending",
    pet_id: int | None = None,
    service_id: int | None = None,
    pet_name: str = "Barsik",
    start: datetime | None = None,
    end: datetime | None = None,
    hours: int = 2,
    total_price: Decimal | int | None = None,
    created_at: datetime | None = None,
) -> int:
    """A booking in any status with its chat, straight into the database (for times and states
    the API refuses, or where a test needs one regardless of the booking endpoints). A pet
    (named `pet_name`) and a walking service are made when not given; each call gets its own
    time slot, in the past for finished bookings and ahead for open ones, so the no-overlap
    constraint never trips unless `start` is given."""
    if pet_id is None:
        pet_id = await insert_pet(where, owner_id, pet_name)
    if service_id is None:
        service_id = await insert_service(where, sitter_id)
    if start is None:
        base = datetime(2025, 1, 1, tzinfo=UTC)
        if status in ("pending", "confirmed"):
            base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        start = base + timedelta(hours=3 * next(_slot))
    end = end or start + timedelta(hours=hours)
    if total_price is None:
        total_price = Decimal("2500.00") * hours
    async with _pool(where).acquire() as conn, conn.transaction():
        booking_id = await conn.fetchval(
            """
            INSERT INTO bookings (owner_id, sitter_id, pet_id, service_id, start_time, end_time,
                                  status, total_price, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()))
            RETURNING booking_id
            """,
            owner_id,
            sitter_id,
            pet_id,
            service_id,
            start,
            end,
            status,
            total_price,
            created_at,
        )
        await conn.execute("INSERT INTO chats (booking_id) VALUES ($1)", booking_id)
    return booking_id


async def insert_payment(client, booking_id: int, status: str = "paid", amount="5000.00") -> int:
    return await _pool(client).fetchval(
        """
        INSERT INTO payments (booking_id, amount, method, status)
        VALUES ($1, $2, 'card', $3) RETURNING payment_id
        """,
        booking_id,
        Decimal(amount),
        status,
    )


async def insert_message(client, booking_id: int, sender_id: int, content: str = "Salem!") -> int:
    async with _pool(client).acquire() as conn, conn.transaction():
        chat_id, seq = await conn.fetchrow(
            """
            UPDATE chats SET last_seq = last_seq + 1 WHERE booking_id = $1
            RETURNING chat_id, last_seq
            """,
            booking_id,
        )
        return await conn.fetchval(
            """
            INSERT INTO messages (chat_id, seq, sender_id, content) VALUES ($1, $2, $3, $4)
            RETURNING message_id
            """,
            chat_id,
            seq,
            sender_id,
            content,
        )
