"""Bookings and their status transitions.

Every transition is one `UPDATE … WHERE status IN (…) RETURNING …`: of two racing requests
the second finds the row no longer in the required status and changes nothing. Overlaps are
refused by the exclusion constraint `bookings_sitter_no_overlap`, not by a read-then-write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

import asyncpg

from nanny.db import page_total


@dataclass(frozen=True, slots=True)
class Party:
    user_id: int
    full_name: str
    email: str | None
    phone: str | None


@dataclass(frozen=True, slots=True)
class Booking:
    booking_id: int
    owner_id: int
    sitter_id: int
    pet_id: int | None
    service_id: int | None
    start_time: datetime
    end_time: datetime
    status: str
    cancel_reason: str | None
    total_price: Decimal
    created_at: datetime
    updated_at: datetime
    owner: Party
    sitter: Party


@dataclass(frozen=True, slots=True)
class Clash:
    start_time: datetime
    end_time: datetime


BOOKING_COLUMNS = (
    "booking_id",
    "owner_id",
    "sitter_id",
    "pet_id",
    "service_id",
    "start_time",
    "end_time",
    "status",
    "cancel_reason",
    "total_price",
    "created_at",
    "updated_at",
)

_N_COLUMNS = len(BOOKING_COLUMNS)

# Appended to a `b` row source: both parties' names and contacts (the handler decides who
# may see the contacts).
_WITH_PARTIES = """
    SELECT b.booking_id, b.owner_id, b.sitter_id, b.pet_id, b.service_id, b.start_time,
           b.end_time, b.status, b.cancel_reason, b.total_price, b.created_at, b.updated_at,
           o.full_name AS owner_name, o.email AS owner_email, o.phone AS owner_phone,
           s.full_name AS sitter_name, s.email AS sitter_email, s.phone AS sitter_phone
    FROM b
    JOIN users o ON o.user_id = b.owner_id
    JOIN users s ON s.user_id = b.sitter_id
"""


def _booking(row: asyncpg.Record | None) -> Booking | None:
    if row is None:
        return None
    # The first columns of every booking query are BOOKING_COLUMNS, in order (_WITH_PARTIES).
    return Booking(
        *row[:_N_COLUMNS],
        Party(row["owner_id"], row["owner_name"], row["owner_email"], row["owner_phone"]),
        Party(row["sitter_id"], row["sitter_name"], row["sitter_email"], row["sitter_phone"]),
    )


class CreationOutcome(StrEnum):
    """What nanny_create_booking answers in `outcome` (migrations/functions/): created, or the
    first rule the request broke, in the order the function checks them."""

    CREATED = "created"
    NO_OWNER = "no_owner"
    NO_PET = "no_pet"
    NO_SERVICE = "no_service"
    WRONG_SITTER = "wrong_sitter"
    TOO_MANY = "too_many"
    TOO_MANY_FOR_SITTER = "too_many_for_sitter"
    TIME_OFF = "time_off"  # the sitter has time off then
    OUTSIDE_SCHEDULE = "outside_schedule"  # outside the sitter's weekly schedule


class CancelReason(StrEnum):
    """Why a booking was cancelled (bookings.cancel_reason, checked by the database)."""

    OWNER = "owner"  # its owner cancelled it
    SITTER = "sitter"  # its sitter cancelled it
    EXPIRED = "expired"  # the expiry task: unanswered too long, or pending past its start
    USER_DELETED = "user_deleted"  # an admin deleted its owner or its sitter
    SITTER_UNAVAILABLE = "sitter_unavailable"  # pending when its sitter took the time off


@dataclass(frozen=True, slots=True)
class Creation:
    """What `create_booking` did: the booking when `outcome` is CREATED; `pending` counts the
    owner's pending bookings for TOO_MANY."""

    outcome: CreationOutcome
    pending: int | None
    booking: Booking | None


# Namespace of the per-sitter advisory lock (two-int form: namespace, sitter_id).
SITTER_CALENDAR_LOCK = 0x6E6E7962


async def lock_sitter_calendar(conn: asyncpg.Connection, sitter_id: int) -> None:
    """Wait for the sitter's bookings being created to commit, and hold off new ones until this
    transaction ends (the lock nanny_create_booking takes before it reads the sitter)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", SITTER_CALENDAR_LOCK, sitter_id)


async def create_booking(
    conn: asyncpg.Connection,
    *,
    owner_id: int,
    sitter_id: int,
    pet_id: int,
    service_id: int,
    start_time: datetime,
    end_time: datetime,
    max_pending: int,
    max_pending_per_sitter: int,
) -> Creation:
    """Check every rule of a new booking and insert it, priced by the database from the
    service's current price, together with its chat: one statement (the function
    nanny_create_booking, migrations/functions/, holds the rules and their locks), so one round
    trip.
    Raises asyncpg.ExclusionViolationError when it overlaps the sitter's open bookings."""
    row = await conn.fetchrow(
        f"""
        SELECT {", ".join(BOOKING_COLUMNS)}, owner_name, owner_email, owner_phone, sitter_name,
               sitter_email, sitter_phone, outcome, pending
        FROM nanny_create_booking($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        owner_id,
        sitter_id,
        pet_id,
        service_id,
        start_time,
        end_time,
        max_pending,
        SITTER_CALENDAR_LOCK,
        max_pending_per_sitter,
    )
    outcome = CreationOutcome(row["outcome"])
    created = outcome is CreationOutcome.CREATED
    return Creation(outcome, row["pending"], _booking(row) if created else None)


async def find_clash(
    conn: asyncpg.Connection, sitter_id: int, start_time: datetime, end_time: datetime
) -> Clash | None:
    """An open booking of the sitter overlapping [start_time, end_time), for the 409 message."""
    row = await conn.fetchrow(
        """
        SELECT start_time, end_time FROM bookings
        WHERE sitter_id = $1 AND status IN ('pending', 'confirmed')
          AND tstzrange(start_time, end_time, '[)') && tstzrange($2, $3, '[)')
        ORDER BY start_time LIMIT 1
        """,
        sitter_id,
        start_time,
        end_time,
    )
    return Clash(**row) if row else None


async def get_booking(conn: asyncpg.Connection, booking_id: int) -> Booking | None:
    row = await conn.fetchrow(
        f"WITH b AS (SELECT * FROM bookings WHERE booking_id = $1) {_WITH_PARTIES}", booking_id
    )
    return _booking(row)


async def get_bookings(conn: asyncpg.Connection, booking_ids: list[int]) -> list[Booking]:
    """Several bookings in one round trip, in booking_id order (missing ones left out)."""
    rows = await conn.fetch(
        f"""
        WITH b AS (SELECT * FROM bookings WHERE booking_id = ANY($1::int[])) {_WITH_PARTIES}
        ORDER BY b.booking_id
        """,
        booking_ids,
    )
    return [_booking(r) for r in rows]


async def confirm_booking(
    conn: asyncpg.Connection, booking_id: int, sitter_id: int
) -> Booking | None:
    """pending -> confirmed by the booking's sitter; None when that is not possible."""
    row = await conn.fetchrow(
        f"""
        WITH b AS (
            UPDATE bookings SET status = 'confirmed', updated_at = now()
            WHERE booking_id = $1 AND sitter_id = $2 AND status = 'pending'
            RETURNING *
        ) {_WITH_PARTIES}
        """,
        booking_id,
        sitter_id,
    )
    return _booking(row)


async def refund_payments(conn: asyncpg.Connection, booking_ids: list[int]) -> None:
    """Refund the paid payments of bookings just cancelled. A statement of its own on purpose:
    the cancelling one waits for a payment being stored (it share-locks the booking), and only
    a statement started after that wait sees the new payment."""
    if booking_ids:
        await conn.execute(
            """
            UPDATE payments SET status = 'refunded', updated_at = now()
            WHERE booking_id = ANY($1::int[]) AND status = 'paid'
            """,
            booking_ids,
        )


async def cancel_booking(
    conn: asyncpg.Connection, booking_id: int, participant_id: int
) -> Booking | None:
    """pending|confirmed -> cancelled by either participant (the reason says which), refunding a
    paid payment; None when that is not possible. Run inside a transaction."""
    row = await conn.fetchrow(
        f"""
        WITH b AS (
            UPDATE bookings SET status = 'cancelled', updated_at = now(),
                cancel_reason = CASE WHEN owner_id = $2 THEN $3 ELSE $4 END
            WHERE booking_id = $1 AND $2 IN (owner_id, sitter_id)
              AND status IN ('pending', 'confirmed')
            RETURNING *
        ) {_WITH_PARTIES}
        """,
        booking_id,
        participant_id,
        CancelReason.OWNER,
        CancelReason.SITTER,
    )
    if row is None:
        return None
    await refund_payments(conn, [booking_id])
    return _booking(row)


async def cancel_open_bookings(conn: asyncpg.Connection, user_id: int) -> list[int]:
    """Cancel every pending or confirmed booking of `user_id` (either side), refunding paid
    payments; the ids cancelled. Run inside a transaction."""
    rows = await conn.fetch(
        """
        UPDATE bookings SET status = 'cancelled', cancel_reason = $2, updated_at = now()
        WHERE (owner_id = $1 OR sitter_id = $1) AND status IN ('pending', 'confirmed')
        RETURNING booking_id
        """,
        user_id,
        CancelReason.USER_DELETED,
    )
    cancelled = [r["booking_id"] for r in rows]
    await refund_payments(conn, cancelled)
    return cancelled


async def complete_booking(
    conn: asyncpg.Connection, booking_id: int, sitter_id: int, *, now: datetime | None = None
) -> Booking | None:
    """confirmed -> completed by the booking's sitter once `now` (the database clock unless
    given) has reached end_time; None when that is not possible."""
    row = await conn.fetchrow(
        f"""
        WITH b AS (
            UPDATE bookings SET status = 'completed', updated_at = now()
            WHERE booking_id = $1 AND sitter_id = $2 AND status = 'confirmed'
              AND end_time <= coalesce($3::timestamptz, now())
            RETURNING *
        ) {_WITH_PARTIES}
        """,
        booking_id,
        sitter_id,
        now,
    )
    return _booking(row)


async def expire_stale_bookings(
    conn: asyncpg.Connection, *, stale_after: timedelta, unanswered_after: timedelta
) -> list[Booking]:
    """Cancel, as expired, every booking still pending `stale_after` past its start or
    `unanswered_after` after it was requested, in one statement."""
    rows = await conn.fetch(
        f"""
        WITH b AS (
            UPDATE bookings SET status = 'cancelled', cancel_reason = $3, updated_at = now()
            WHERE status = 'pending'
              AND (start_time < now() - $1::interval OR created_at < now() - $2::interval)
            RETURNING *
        ) {_WITH_PARTIES}
        ORDER BY b.booking_id
        """,
        stale_after,
        unanswered_after,
        CancelReason.EXPIRED,
    )
    return [_booking(r) for r in rows]


async def list_bookings(
    conn: asyncpg.Connection,
    *,
    owner_id: int | None = None,
    sitter_id: int | None = None,
    status: str | None = None,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    """One user's bookings (as owner or as sitter), newest first, and how many in all. The rows
    as they come (BOOKING_COLUMNS first, then the parties' owner_/sitter_ name, email, phone):
    a page is encoded straight from them, without an object per row."""
    column = "owner_id" if owner_id is not None else "sitter_id"
    user_id = owner_id if owner_id is not None else sitter_id
    # Two statement texts instead of `$2 IS NULL OR status = $2`, so each keeps an index plan.
    status_filter = "AND status = $2" if status is not None else "AND $2::text IS NULL"
    rows = await conn.fetch(
        f"""
        WITH b AS (
            SELECT *, count(*) OVER () AS total FROM bookings
            WHERE {column} = $1 {status_filter}
            ORDER BY created_at DESC, booking_id DESC
            LIMIT $3 OFFSET $4
        ) {_WITH_PARTIES.replace("b.updated_at,", "b.updated_at, b.total AS total_count,")}
        ORDER BY b.created_at DESC, b.booking_id DESC
        """,
        user_id,
        status,
        limit,
        offset,
    )
    total = await page_total(
        conn,
        rows,
        offset,
        f"SELECT count(*) FROM bookings WHERE {column} = $1 {status_filter}",
        user_id,
        status,
        column="total_count",
    )
    return rows, total


async def lock_booking(conn: asyncpg.Connection, booking_id: int) -> Booking | None:
    """The booking, share-locked until the transaction ends: a concurrent cancel waits, so a
    payment is either stored before the cancel (which then refunds it) or sees the cancel."""
    row = await conn.fetchrow(
        f"WITH b AS (SELECT * FROM bookings WHERE booking_id = $1 FOR SHARE) {_WITH_PARTIES}",
        booking_id,
    )
    return _booking(row)
