"""Reviews and the sitter rating aggregates they drive.

Every write here changes `sitters.rating_count` / `rating_sum` in the same transaction as the
review row, so the aggregates always equal what the reviews say and search never has to
aggregate reviews. Callers pass a connection; the functions open their own transaction (a
savepoint when the caller already has one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class Review:
    review_id: int
    booking_id: int
    owner_id: int
    sitter_id: int
    rating: int
    comment: str
    created_at: datetime
    updated_at: datetime
    owner_name: str


@dataclass(frozen=True, slots=True)
class ReviewTarget:
    """What a new review needs to know about its booking."""

    booking_id: int
    owner_id: int
    sitter_id: int
    status: str
    reviewed: bool


@dataclass(frozen=True, slots=True)
class Rating:
    sitter_id: int
    rating_count: int
    rating_sum: int


_COLUMNS = """
    r.review_id, r.booking_id, r.owner_id, r.sitter_id, r.rating, r.comment,
    r.created_at, r.updated_at, u.full_name AS owner_name
"""


def _review(row: asyncpg.Record) -> Review:
    return Review(**dict(row))


async def get_review_target(conn: asyncpg.Connection, booking_id: int) -> ReviewTarget | None:
    row = await conn.fetchrow(
        """
        SELECT b.booking_id, b.owner_id, b.sitter_id, b.status,
               EXISTS (SELECT 1 FROM reviews r WHERE r.booking_id = b.booking_id) AS reviewed
        FROM bookings b WHERE b.booking_id = $1
        """,
        booking_id,
    )
    return ReviewTarget(**dict(row)) if row else None


async def create_review(
    conn: asyncpg.Connection, *, booking_id: int, owner_id: int, rating: int, comment: str
) -> Review | None:
    """Insert the review of a completed booking owned by `owner_id` and count it on the sitter.
    None when the booking is not that owner's, not completed, or already reviewed (a
    concurrent duplicate loses on the unique booking_id)."""
    async with conn.transaction():
        review_id = await conn.fetchval(
            """
            INSERT INTO reviews (booking_id, owner_id, sitter_id, rating, comment)
            SELECT b.booking_id, b.owner_id, b.sitter_id, $3, $4
            FROM bookings b
            WHERE b.booking_id = $1 AND b.owner_id = $2 AND b.status = 'completed'
            ON CONFLICT (booking_id) DO NOTHING
            RETURNING review_id
            """,
            booking_id,
            owner_id,
            rating,
            comment,
        )
        if review_id is None:
            return None
        await conn.execute(
            """
            UPDATE sitters SET rating_count = rating_count + 1, rating_sum = rating_sum + $2,
                               updated_at = now()
            WHERE user_id = (SELECT sitter_id FROM reviews WHERE review_id = $1)
            """,
            review_id,
            rating,
        )
        return await get_review(conn, review_id)


async def get_review(conn: asyncpg.Connection, review_id: int) -> Review | None:
    row = await conn.fetchrow(
        f"""
        SELECT {_COLUMNS} FROM reviews r JOIN users u ON u.user_id = r.owner_id
        WHERE r.review_id = $1
        """,
        review_id,
    )
    return _review(row) if row else None


async def get_booking_review(conn: asyncpg.Connection, booking_id: int) -> Review | None:
    row = await conn.fetchrow(
        f"""
        SELECT {_COLUMNS} FROM reviews r JOIN users u ON u.user_id = r.owner_id
        WHERE r.booking_id = $1
        """,
        booking_id,
    )
    return _review(row) if row else None


async def update_review(
    conn: asyncpg.Connection,
    review_id: int,
    *,
    rating: int | None,
    comment: str | None,
) -> Review | None:
    """Change a review (None fields stay) and move the sitter's rating_sum by the difference.
    The row lock makes two concurrent edits apply their differences one after the other."""
    async with conn.transaction():
        old = await conn.fetchrow(
            "SELECT sitter_id, rating FROM reviews WHERE review_id = $1 FOR UPDATE", review_id
        )
        if old is None:
            return None
        new_rating = old["rating"] if rating is None else rating
        await conn.execute(
            """
            UPDATE reviews SET rating = $2, comment = coalesce($3, comment), updated_at = now()
            WHERE review_id = $1
            """,
            review_id,
            new_rating,
            comment,
        )
        if new_rating != old["rating"]:
            await conn.execute(
                """
                UPDATE sitters SET rating_sum = rating_sum + $2, updated_at = now()
                WHERE user_id = $1
                """,
                old["sitter_id"],
                new_rating - old["rating"],
            )
        return await get_review(conn, review_id)


async def delete_review(conn: asyncpg.Connection, review_id: int) -> bool:
    """Delete a review and take it out of the sitter's aggregates; False when it is gone."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "DELETE FROM reviews WHERE review_id = $1 RETURNING sitter_id, rating", review_id
        )
        if row is None:
            return False
        await conn.execute(
            """
            UPDATE sitters SET rating_count = rating_count - 1, rating_sum = rating_sum - $2,
                               updated_at = now()
            WHERE user_id = $1
            """,
            row["sitter_id"],
            row["rating"],
        )
        return True


async def sitter_reviews_page(
    conn: asyncpg.Connection, sitter_id: int, *, limit: int, offset: int
) -> tuple[bytes, int] | None:
    """A sitter's reviews, newest first, as the JSON array the API answers, and their total;
    None when there is no such sitter. One statement: each review carries its JSON (doc, kept by
    migration 0015's triggers), joined here and sent as bytes, and the sitter's row carries the
    total (its aggregate equals count(*) of its reviews, kept in the same transactions)."""
    row = await conn.fetchrow(
        """
        SELECT s.rating_count, convert_to('[' || array_to_string(ARRAY(
            SELECT r.doc FROM reviews r
            WHERE r.sitter_id = s.user_id
            ORDER BY r.created_at DESC, r.review_id DESC
            LIMIT $2 OFFSET $3
        ), ',') || ']', 'UTF8') AS page
        FROM sitters s
        WHERE s.user_id = $1
        """,
        sitter_id,
        limit,
        offset,
    )
    return None if row is None else (row["page"], row["rating_count"])


async def get_rating(conn: asyncpg.Connection, sitter_id: int) -> Rating | None:
    row = await conn.fetchrow(
        "SELECT user_id AS sitter_id, rating_count, rating_sum FROM sitters WHERE user_id = $1",
        sitter_id,
    )
    return Rating(**dict(row)) if row else None
