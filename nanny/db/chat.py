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
    """Who may use a booking's chat (nanny/access.py says how), and how far it has got."""

    booking_id: int
    owner_id: int
    sitter_id: int
    status: str
    chat_id: int
    last_seq: int


_MESSAGE_COLUMNS = (
    "m.message_id, c.booking_id, m.chat_id, m.seq, m.sender_id, m.content, m.client_id, m.sent_at"
)


def _message(row: asyncpg.Record) -> Message:
    return Message(*row.values())


async def get_chat_access(conn: asyncpg.Connection, booking_id: int) -> ChatAccess | None:
    """None when the booking does not exist (a booking gets its chat when it is created)."""
    row = await conn.fetchrow(
        """
        SELECT b.booking_id, b.owner_id, b.sitter_id, b.status, c.chat_id, c.last_seq
        FROM bookings b JOIN chats c ON c.booking_id = b.booking_id
        WHERE b.booking_id = $1
        """,
        booking_id,
    )
    return ChatAccess(**row) if row else None


@dataclass(frozen=True, slots=True)
class NewMessage:
    booking_id: int
    sender_id: int
    content: str
    client_id: str | None


async def store_messages(
    conn: asyncpg.Connection, batch: list[NewMessage]
) -> list[tuple[Message, bool] | None]:
    """Store a batch in one call of the database function nanny_store_messages
    (migrations/functions/), which holds the rules of a send: for each message, in the batch's
    order, the message and True when stored now; the original and False for a client_id its
    sender used before; None when the booking has no chat the sender takes part in (or the
    sender was deleted). Raises asyncpg.UniqueViolationError when a concurrent twin of a
    client_id committed first; nothing of the batch is stored then."""
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


async def store_message(
    conn: asyncpg.Connection,
    *,
    booking_id: int,
    sender_id: int,
    content: str,
    client_id: str | None,
) -> tuple[Message, bool] | None:
    """Store one message, as `store_messages` does a batch, and return it with True; for a
    client_id the sender used before, the original message with False and nothing stored. None
    when the booking has no chat the sender takes part in (or the sender was deleted)."""
    try:
        [result] = await store_messages(
            conn, [NewMessage(booking_id, sender_id, content, client_id)]
        )
    except asyncpg.UniqueViolationError:
        # The same client_id committed concurrently: that one is the original.
        original = await get_message_by_client_id(conn, sender_id, client_id or "")
        if original is None:  # pragma: no cover - unique rows are only removed by cascade
            raise
        return original, False
    return result


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
