"""The platform overview an admin needs: sitter approval, user lists, soft deletion, totals.

Deleted users (deleted_at set) are left out of every list and count here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from nanny.db import bookings as db_bookings
from nanny.db import media as db_media
from nanny.db.users import User, _user


@dataclass(frozen=True, slots=True)
class SitterRow:
    user_id: int
    full_name: str
    email: str | None
    phone: str | None
    experience_years: int
    certificates: str
    preferences: str
    location: str
    status: str
    rating_count: int
    rating_sum: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SitterDetails:
    sitter: SitterRow
    total_services: int
    total_bookings: int
    completed_bookings: int


@dataclass(frozen=True, slots=True)
class Stats:
    users: dict[str, int]
    sitters: dict[str, int]
    bookings: dict[str, int]
    messages_today: int
    revenue_paid: Decimal


_SITTER_COLUMNS = """
    u.user_id, u.full_name, u.email, u.phone, s.experience_years, s.certificates,
    s.preferences, s.location, s.status, s.rating_count, s.rating_sum, s.created_at
"""


async def list_pending_sitters(
    conn: asyncpg.Connection, *, limit: int, offset: int
) -> tuple[list[SitterRow], int]:
    """Sitters waiting for approval, the longest waiting first."""
    rows = await conn.fetch(
        f"""
        SELECT {_SITTER_COLUMNS}, count(*) OVER () AS total
        FROM sitters s JOIN users u ON u.user_id = s.user_id
        WHERE s.status = 'pending' AND u.deleted_at IS NULL
        ORDER BY s.created_at, s.user_id
        LIMIT $1 OFFSET $2
        """,
        limit,
        offset,
    )
    total = rows[0]["total"] if rows else await _count_pending(conn)
    return [_sitter(r) for r in rows], total


async def _count_pending(conn: asyncpg.Connection) -> int:
    # Only reached when the page is empty (offset past the end): the window count is missing.
    return await conn.fetchval(
        """
        SELECT count(*) FROM sitters s JOIN users u ON u.user_id = s.user_id
        WHERE s.status = 'pending' AND u.deleted_at IS NULL
        """
    )


def _sitter(row: asyncpg.Record) -> SitterRow:
    return SitterRow(**{k: row[k] for k in SitterRow.__slots__})


async def get_sitter(conn: asyncpg.Connection, sitter_id: int) -> SitterRow | None:
    row = await conn.fetchrow(
        f"""
        SELECT {_SITTER_COLUMNS} FROM sitters s JOIN users u ON u.user_id = s.user_id
        WHERE s.user_id = $1 AND u.deleted_at IS NULL
        """,
        sitter_id,
    )
    return _sitter(row) if row else None


async def set_sitter_status(
    conn: asyncpg.Connection, sitter_id: int, status: str
) -> SitterRow | None:
    """Approve or reject a (live) sitter; None when there is none."""
    async with conn.transaction():
        updated = await conn.fetchval(
            """
            UPDATE sitters s SET status = $2, updated_at = now()
            FROM users u
            WHERE s.user_id = $1 AND u.user_id = s.user_id AND u.deleted_at IS NULL
            RETURNING s.user_id
            """,
            sitter_id,
            status,
        )
        return None if updated is None else await get_sitter(conn, sitter_id)


async def get_sitter_details(conn: asyncpg.Connection, sitter_id: int) -> SitterDetails | None:
    sitter = await get_sitter(conn, sitter_id)
    if sitter is None:
        return None
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM services WHERE sitter_id = $1) AS total_services,
               count(*) AS total_bookings,
               count(*) FILTER (WHERE status = 'completed') AS completed_bookings
        FROM bookings WHERE sitter_id = $1
        """,
        sitter_id,
    )
    return SitterDetails(sitter=sitter, **dict(row))


async def list_users(
    conn: asyncpg.Connection,
    *,
    role: str | None,
    search: str | None,
    limit: int,
    offset: int,
) -> tuple[list[User], int]:
    """Live users, newest first, optionally of one role and matching `search` in the name or
    e-mail (case-insensitive substring)."""
    pattern = None
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
    where = """
        u.deleted_at IS NULL
        AND ($1::text IS NULL OR u.role = $1)
        AND ($2::text IS NULL OR u.full_name ILIKE $2 OR u.email ILIKE $2)
    """
    rows = await conn.fetch(
        f"""
        SELECT u.user_id, u.email, u.phone, u.full_name, u.role, u.created_at, u.deleted_at,
               u.locale, u.time_zone,
               s.experience_years, s.certificates, s.preferences, s.location, s.status
        FROM users u LEFT JOIN sitters s ON s.user_id = u.user_id
        WHERE {where}
        ORDER BY u.created_at DESC, u.user_id DESC
        LIMIT $3 OFFSET $4
        """,
        role,
        pattern,
        limit,
        offset,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM users u WHERE {where}", role, pattern)
    return [_user(r) for r in rows], total


async def soft_delete_user(conn: asyncpg.Connection, user_id: int) -> list[int] | None:
    """Delete a user the way the history survives it: scrub personal data and credentials, mark
    deleted_at, cancel the user's open bookings (either side; paid ones refunded), delete their
    photos, drop pets that no booking mentions, and take a sitter out of search. Bookings,
    reviews and messages stay, shown with 'Deleted user'. Returns the ids of the cancelled
    bookings, None when no live user."""
    async with conn.transaction():
        # A booking being created with this user as its sitter commits first, so the
        # cancellation below sees it; later ones see the user deleted.
        await db_bookings.lock_sitter_calendar(conn, user_id)
        deleted = await conn.fetchval(
            """
            UPDATE users SET email = NULL, phone = NULL, password_hash = NULL,
                             full_name = 'Deleted user', deleted_at = now(), updated_at = now()
            WHERE user_id = $1 AND deleted_at IS NULL
            RETURNING user_id
            """,
            user_id,
        )
        if deleted is None:
            return None
        cancelled = await db_bookings.cancel_open_bookings(conn, user_id)
        # Photos are personal data: every image they uploaded and their pets' photos go (their
        # files with them, once nanny.media.library collects what no image uses).
        await db_media.delete_user_images(conn, user_id)
        await conn.execute(
            """
            DELETE FROM pets p WHERE p.owner_id = $1
            AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.pet_id = p.pet_id)
            """,
            user_id,
        )
        # 'rejected' keeps the sitter's services out of every public listing, which only shows
        # approved sitters; the profile text is personal data and goes.
        await conn.execute(
            """
            UPDATE sitters SET status = 'rejected', certificates = '', preferences = '',
                               updated_at = now()
            WHERE user_id = $1
            """,
            user_id,
        )
    return cancelled


async def get_stats(conn: asyncpg.Connection) -> Stats:
    row = await conn.fetchrow(
        """
        SELECT
          (SELECT coalesce(jsonb_object_agg(role, n), '{}') FROM
             (SELECT role, count(*) AS n FROM users WHERE deleted_at IS NULL GROUP BY role) r)
             AS users,
          (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
             (SELECT s.status, count(*) AS n FROM sitters s JOIN users u USING (user_id)
              WHERE u.deleted_at IS NULL GROUP BY s.status) s) AS sitters,
          (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
             (SELECT status, count(*) AS n FROM bookings GROUP BY status) b) AS bookings,
          (SELECT count(*) FROM messages
             WHERE sent_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
             AS messages_today,
          (SELECT coalesce(sum(amount), 0) FROM payments WHERE status = 'paid') AS revenue_paid
        """
    )

    def counts(raw: str, keys: tuple[str, ...]) -> dict[str, int]:
        found = json.loads(raw)
        return {k: int(found.get(k, 0)) for k in keys}

    return Stats(
        users=counts(row["users"], ("owner", "sitter", "admin")),
        sitters=counts(row["sitters"], ("pending", "approved", "rejected")),
        bookings=counts(row["bookings"], ("pending", "confirmed", "completed", "cancelled")),
        messages_today=row["messages_today"],
        revenue_paid=row["revenue_paid"],
    )
