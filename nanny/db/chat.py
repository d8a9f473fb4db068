"""Chats, messages and read marks.

A message's `seq` comes from `chats.last_seq`, bumped under the chat row's lock in the same
transaction that inserts the message: two senders in one booking queue on that lock, so seqs
are gapless and follow commit order (seq N is committed before N + 1 can be taken)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class Message:
    message_id: int
    booking_id: int
    chat_id: int
    seq: int
    sender_id: int
    content: str
    client_id: str | None
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class ChatAccess:
    """Who may use a booking's chat, and how far it has got."""

    booking_id: int
    owner_id: int
    sitter_id: int
    status: str
    chat_id: int | None
    last_seq: int

    def is_participant(self, user_id: int) -> bool:
        return user_id in (self.owner_id, self.sitter_id)


_MESSAGE_COLUMNS = (
    "m.message_id, c.booking_id, m.chat_id, m.seq, m.sender_id, m.content, m.client_id, m.sent_at"
)


def _message(row: asyncpg.Record) -> Message:
    return Message(*row.values())


async def get_chat_access(conn: asyncpg.Connection, booking_id: int) -> ChatAccess | None:
    row = await conn.fetchrow(
        """
        SELECT b.booking_id, b.owner_id, b.sitter_id, b.status, c.chat_id,
               coalesce(c.last_seq, 0) AS last_seq
        FROM bookings b LEFT JOIN chats c ON c.booking_id = b.booking_id
        WHERE b.booking_id = $1
        """,
        booking_id,
    )
    return ChatAccess(**row) if row else None


async def ensure_chat(conn: asyncpg.Connection, booking_id: int) -> None:
    """Create the booking's chat if it is missing (bookings normally get it at creation)."""
    await conn.execute(
        "INSERT INTO chats (booking_id) VALUES ($1) ON CONFLICT (booking_id) DO NOTHING",
        booking_id,
    )


async def store_message(
    conn: asyncpg.Connection,
    *,
    booking_id: int,
    sender_id: int,
    content: str,
    client_id: str | None,
) -> tuple[Message, bool] | None:
    """Store a message and return it with True; for a client_id the sender used before, the
    original message with False and nothing stored. None when the booking has no chat the
    sender takes part in.

    One statement, so one transaction and one round trip: the UPDATE takes the next seq under
    the chat row's lock and the INSERT stores the message with it. A retry is answered from
    `earlier` without bumping; a concurrent twin of the same client_id loses on the unique
    constraint, which rolls the whole statement (and its bump) back, so seqs stay gapless."""
    try:
        row = await conn.fetchrow(
            f"""
            WITH earlier AS (
                SELECT {_MESSAGE_COLUMNS}
                FROM messages m JOIN chats c ON c.chat_id = m.chat_id
                WHERE $4::text IS NOT NULL AND m.sender_id = $2 AND m.client_id = $4
            ), bumped AS (
                UPDATE chats c SET last_seq = c.last_seq + 1
                FROM bookings b
                WHERE c.booking_id = $1 AND b.booking_id = c.booking_id
                  AND $2 IN (b.owner_id, b.sitter_id)
                  AND NOT EXISTS (SELECT 1 FROM earlier)
                  -- a deleted account's socket on another process cannot post any more
                  AND EXISTS (
                      SELECT 1 FROM users u WHERE u.user_id = $2 AND u.deleted_at IS NULL
                  )
                RETURNING c.chat_id, c.last_seq
            ), stored AS (
                INSERT INTO messages (chat_id, seq, sender_id, content, client_id)
                SELECT chat_id, last_seq, $2, $3, $4 FROM bumped
                RETURNING message_id, chat_id, seq, sent_at
            )
            SELECT s.message_id, $1::int AS booking_id, s.chat_id, s.seq, $2::int AS sender_id,
                   $3::text AS content, $4::text AS client_id, s.sent_at, true AS created
            FROM stored s
            UNION ALL
            SELECT e.*, false FROM earlier e
            """,
            booking_id,
            sender_id,
            content,
            client_id,
        )
    except asyncpg.UniqueViolationError:
        # The same client_id committed concurrently: that one is the original.
        original = await get_message_by_client_id(conn, sender_id, client_id or "")
        if original is None:  # pragma: no cover - unique rows are only removed by cascade
            raise
        return original, False
    if row is None:
        return None
    return Message(*list(row.values())[:8]), row["created"]


@dataclass(frozen=True, slots=True)
class NewMessage:
    booking_id: int
    sender_id: int
    content: str
    client_id: str | None


async def store_messages(
    conn: asyncpg.Connection, batch: list[NewMessage]
) -> list[tuple[Message, bool] | None]:
    """Store a batch in one call (the function nanny_store_messages of migrations/functions/): for
    each message, in the batch's order, what `store_message` would have answered for it alone.
    Raises asyncpg.UniqueViolationError when a concurrent twin of a client_id committed first;
    nothing of the batch is stored then."""
    rows = await conn.fetch(
        "SELECT * FROM nanny_store_messages($1::int[], $2::int[], $3::text[], $4::text[])",
        [m.booking_id for m in batch],
        [m.sender_id for m in batch],
        [m.content for m in batch],
        [m.client_id for m in batch],
    )
    results: list[tuple[Message, bool] | None] = [None] * len(batch)
    for row in rows:
        if row["created"] is not None:
            results[row["ord"] - 1] = (Message(*list(row.values())[2:]), row["created"])
    return results


async def get_message_by_client_id(
    conn: asyncpg.Connection, sender_id: int, client_id: str
) -> Message | None:
    row = await conn.fetchrow(
        f"""
        SELECT {_MESSAGE_COLUMNS}
        FROM messages m JOIN chats c ON c.chat_id = m.chat_id
        WHERE m.sender_id = $1 AND m.client_id = $2
        """,
        sender_id,
        client_id,
    )
    return _message(row) if row else None


async def list_messages(
    conn: asyncpg.Connection,
    chat_id: int,
    *,
    after_seq: int | None = None,
    before_seq: int | None = None,
    limit: int = 50,
    offset: int = 0,
    newest_first: bool = False,
) -> tuple[list[Message], int]:
    """A page of a chat's messages in ascending seq, and how many match the seq bounds.
    `newest_first` takes the page from the newest end (still returned ascending)."""
    bounds = "m.chat_id = $1 AND m.seq > $2 AND m.seq < $3"
    args = (chat_id, after_seq or 0, before_seq if before_seq is not None else 2**62)
    order = "DESC" if newest_first else "ASC"
    rows = await conn.fetch(
        f"""
        SELECT {_MESSAGE_COLUMNS}
        FROM messages m JOIN chats c ON c.chat_id = m.chat_id
        WHERE {bounds}
        ORDER BY m.seq {order} LIMIT $4 OFFSET $5
        """,
        *args,
        limit,
        offset,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM messages m WHERE {bounds}", *args)
    messages = [_message(r) for r in rows]
    if newest_first:
        messages.reverse()
    return messages, total


async def messages_after(
    conn: asyncpg.Connection, booking_id: int, after_seq: int, *, limit: int | None = None
) -> list[Message]:
    rows = await conn.fetch(
        f"""
        SELECT {_MESSAGE_COLUMNS}
        FROM chats c JOIN messages m ON m.chat_id = c.chat_id
        WHERE c.booking_id = $1 AND m.seq > $2
        ORDER BY m.seq LIMIT $3
        """,
        booking_id,
        after_seq,
        limit,
    )
    return [_message(r) for r in rows]


async def messages_after_many(
    conn: asyncpg.Connection, cursors: Iterable[tuple[int, int]]
) -> list[Message]:
    """Every message after each (booking_id, seq) cursor, in one round trip, ordered by
    booking then seq. Used to catch many rooms up after the broker was away."""
    bookings, seqs = [], []
    for booking_id, seq in cursors:
        bookings.append(booking_id)
        seqs.append(seq)
    rows = await conn.fetch(
        f"""
        SELECT {_MESSAGE_COLUMNS}
        FROM unnest($1::int[], $2::bigint[]) AS cur (booking_id, seq)
        JOIN chats c ON c.booking_id = cur.booking_id
        JOIN messages m ON m.chat_id = c.chat_id AND m.seq > cur.seq
        ORDER BY c.booking_id, m.seq
        """,
        bookings,
        seqs,
    )
    return [_message(r) for r in rows]


async def get_last_seq(conn: asyncpg.Connection, booking_id: int) -> int:
    value = await conn.fetchval("SELECT last_seq FROM chats WHERE booking_id = $1", booking_id)
    return value or 0


async def mark_read(conn: asyncpg.Connection, chat_id: int, user_id: int, seq: int) -> int | None:
    """Move the user's read mark forward to `seq`; the new mark, or None when it was already
    there or beyond (marks never move back)."""
    return await conn.fetchval(
        """
        INSERT INTO chat_reads AS r (chat_id, user_id, last_read_seq)
        VALUES ($1, $2, $3)
        ON CONFLICT (chat_id, user_id) DO UPDATE
            SET last_read_seq = EXCLUDED.last_read_seq, updated_at = now()
            WHERE r.last_read_seq < EXCLUDED.last_read_seq
        RETURNING last_read_seq
        """,
        chat_id,
        user_id,
        seq,
    )


async def read_marks(conn: asyncpg.Connection, chat_id: int) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT user_id, last_read_seq FROM chat_reads WHERE chat_id = $1", chat_id
    )
    return {r["user_id"]: r["last_read_seq"] for r in rows}
