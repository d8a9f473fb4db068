"""Helpers for the page tests: signing in through the real forms, and bookings written with SQL
where a test needs one regardless of the booking endpoints."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.factories import PASSWORD

_slot = itertools.count(1)

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def hidden_csrf(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


async def form_csrf(client, path: str = "/login") -> str:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return hidden_csrf(await resp.text())


async def sign_in(client, email: str, password: str = PASSWORD):
    """Sign in through the login form; the client's cookie jar then holds the session."""
    token = await form_csrf(client)
    resp = await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    return resp


async def make_booking(
    pool: asyncpg.Pool,
    owner_id: int,
    sitter_id: int,
    *,
    status: str = "pending",
    created_at: datetime | None = None,
    pet_name: str = "Rex",
) -> int:
    """A booking with its pet, service and chat, written directly (each in its own time slot)."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2, hours=3 * next(_slot))
    async with pool.acquire() as conn, conn.transaction():
        pet_id = await conn.fetchval(
            "INSERT INTO pets (owner_id, name, type, age) VALUES ($1, $2, 'dog', 3)"
            " RETURNING pet_id",
            owner_id,
            pet_name,
        )
        service_id = await conn.fetchval(
            "INSERT INTO services (sitter_id, type, price_per_hour, description)"
            " VALUES ($1, 'walking', 2500, 'Long walks') RETURNING service_id",
            sitter_id,
        )
        booking_id = await conn.fetchval(
            """
            INSERT INTO bookings (owner_id, sitter_id, pet_id, service_id, start_time, end_time,
                                  status, total_price, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, 5000, coalesce($8, now()))
            RETURNING booking_id
            """,
            owner_id,
            sitter_id,
            pet_id,
            service_id,
            start,
            start + timedelta(hours=2),
            status,
            created_at,
        )
        await conn.execute("INSERT INTO chats (booking_id) VALUES ($1)", booking_id)
    return booking_id
