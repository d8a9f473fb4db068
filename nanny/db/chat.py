"""Chats, messages and read marks.

A message's `seq` comes from `chats.last_seq`, bumped under the chat row's lock in the same
transaction that inserts the message: two senders in one booking queue on that lock, so seqs
are gapless and follow commit order (seq N is committed before N + 1 can be taken)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg
import orjson


@dataclass(frozen=True, slots=True)
class AttachedImage:
    """A photo of a message: the image's id and its display size."""

    image_id: int
    width: int
    height: int


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
    attachments: tuple[AttachedImage, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatAccess:
    """Who may use a booking's chat (nanny/access.py says how), and how far it has got."""

    booking_id: int
    owner_id: int
    sitter_id: int
    status: str
    chat_id: int
    last_seq: int


# A message's photos come with it, in its order, as one JSON array of [image_id, width, height]
# (most messages have none: one index probe each).
_MESSAGE_COLUMNS = """
    m.message_id, c.booking_id, m.chat_id, m.seq, m.sender_id, m.content, m.client_id, m.sent_at,
    (SELECT jsonb_agg(jsonb_build_array(im.image_id, im.width, im.height) ORDER BY im.position)
     FROM images im WHERE im.message_id = m.message_id) AS attachments
"""


def attached_images(raw: str | None) -> tuple[AttachedImage, ...]:
    if not raw or raw == "[]":
        return ()
    return tuple(AttachedImage(*item) for item in orjson.loads(raw))


def _message(row: asyncpg.Record) -> Message:
    *fields, attachments = row.values()
    return Message(*fields, attached_images(attachments))


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
    attachment_ids: tuple[int, ...] = ()


class Refusal(StrEnum):
    """Why nanny_store_messages did not store a message."""

    NOT_PARTICIPANT = "not_participant"  # no such chat, not a participant, or a deleted sender
    ATTACHMENTS = "attachments"  # a photo not of this booking, not the sender's, or used
    EMPTY = "empty"  # neither text nor photos


Stored = tuple[Message, bool] | Refusal


async def store_messages(conn: asyncpg.Connection, batch: list[NewMessage]) -> list[Stored]:
    """Store a batch in one call of the database function nanny_store_messages
    (migrations/functions/), which holds the rules of a send: for each message, in the batch's
    order, the message and True when stored now; the original and False for a client_id its
    sender used before; the Refusal when it was not stored. Raises
    asyncpg.UniqueViolationError when a concurrent twin of a client_id committed first;
    nothing of the batch is stored then."""
    ords, ids = [], []
    for n, m in enumerate(batch, start=1):
        ords.extend([n] * len(m.attachment_ids))
        ids.extend(m.attachment_ids)
    rows = await conn.fetch(
        """
        SELECT * FROM nanny_store_messages(
            $1::int[], $2::int[], $3::text[], $4::text[], $5::int[], $6::int[])
        """,
        [m.booking_id for m in batch],
        [m.sender_id for m in batch],
        [m.content for m in batch],
        [m.client_id for m in batch],
        ords,
        ids,
    )
    results: list[Stored] = [Refusal.NOT_PARTICIPANT] * len(batch)
    for row in rows:
        if row["created"] is None:
            results[row["ord"] - 1] = Refusal(row["refused"])
        else:
            *fields, attachments = list(row.values())[3:]
            message = Message(*fields, attached_images(attachments))
            results[row["ord"] - 1] = (message, row["created"])
    return results


async def store_message(
    conn: asyncpg.Connection,
    *,
    booking_id: int,
    sender_id: int,
    content: str,
    client_id: str | None,
    attachment_ids: tuple[int, ...] = (),
) -> Stored:
    """Store one message, as `store_messages` does a batch, and return it with True; for a
    client_id the sender used before, the original message with False and nothing stored; the
    Refusal when it was not stored."""
    message = NewMessage(booking_id, sender_id, content, client_id, attachment_ids)
    try:
        [result] = await store_messages(conn, [message])
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
