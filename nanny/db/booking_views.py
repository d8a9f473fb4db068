"""Read models of bookings for the pages and the admin chart: joined names and daily counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import asyncpg


@dataclass(frozen=True, slots=True)
class BookingHeader:
    """What the chat page shows above the conversation."""

    booking_id: int
    owner_id: int
    sitter_id: int
    owner_name: str
    sitter_name: str
    pet_name: str | None
    service_type: str | None
    start_time: datetime
    end_time: datetime
    status: str
    total_price: Decimal


async def get_booking_header(conn: asyncpg.Connection, booking_id: int) -> BookingHeader | None:
    row = await conn.fetchrow(
        """
        SELECT b.booking_id, b.owner_id, b.sitter_id, o.full_name AS owner_name,
               s.full_name AS sitter_name, p.name AS pet_name, sv.type AS service_type,
               b.start_time, b.end_time, b.status, b.total_price
        FROM bookings b
        JOIN users o ON o.user_id = b.owner_id
        JOIN users s ON s.user_id = b.sitter_id
        LEFT JOIN pets p ON p.pet_id = b.pet_id
        LEFT JOIN services sv ON sv.service_id = b.service_id
        WHERE b.booking_id = $1
        """,
        booking_id,
    )
    return BookingHeader(**row) if row else None


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    count: int


async def bookings_per_day(conn: asyncpg.Connection, days: int) -> list[DayCount]:
    """Bookings created on each of the last `days` UTC days (today included), zero days kept,
    so a chart can draw the series without filling gaps itself."""
    rows = await conn.fetch(
        """
        SELECT d::date AS day, count(b.booking_id) AS count
        FROM generate_series(
                 (now() AT TIME ZONE 'UTC')::date - ($1::int - 1),
                 (now() AT TIME ZONE 'UTC')::date,
                 interval '1 day'
             ) AS d
        LEFT JOIN bookings b
               ON b.created_at >= d AT TIME ZONE 'UTC'
              AND b.created_at < (d + interval '1 day') AT TIME ZONE 'UTC'
        GROUP BY d
        ORDER BY d
        """,
        days,
    )
    return [DayCount(day=row["day"], count=row["count"]) for row in rows]
