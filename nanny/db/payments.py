"""Payments of bookings. A booking is paid at most once: the unique partial index
payments_one_paid_per_booking keeps that rule, whatever races."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from nanny.db import page_total


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: int
    booking_id: int
    amount: Decimal
    method: str
    status: str
    created_at: datetime


_COLUMNS = "payment_id, booking_id, amount, method, status, created_at"


async def insert_payment(
    conn: asyncpg.Connection, booking_id: int, *, amount: Decimal, method: str
) -> Payment:
    """Store a paid payment. Raises asyncpg.UniqueViolationError when the booking is already
    paid."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO payments (booking_id, amount, method, status) VALUES ($1, $2, $3, 'paid')
        RETURNING {_COLUMNS}
        """,
        booking_id,
        amount,
        method,
    )
    return Payment(**row)


async def list_payments(
    conn: asyncpg.Connection, booking_id: int, *, limit: int, offset: int
) -> tuple[list[Payment], int]:
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, count(*) OVER () AS total FROM payments
        WHERE booking_id = $1 ORDER BY payment_id LIMIT $2 OFFSET $3
        """,
        booking_id,
        limit,
        offset,
    )
    total = await page_total(
        conn, rows, offset, "SELECT count(*) FROM payments WHERE booking_id = $1", booking_id
    )
    return [Payment(**{k: r[k] for k in Payment.__slots__}) for r in rows], total
