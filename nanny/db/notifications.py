"""Notifications and their e-mails' outbox (migration 0010): the rows nanny_notify writes in the
events' transactions, read by their users, claimed by the senders, and the unread-messages
digests written here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg


class Kind(StrEnum):
    """notifications.kind (checked by the database; written by nanny_notify and the digests)."""

    BOOKING_REQUESTED = "booking_requested"
    BOOKING_CONFIRMED = "booking_confirmed"
    BOOKING_CANCELLED = "booking_cancelled"
    BOOKING_COMPLETED = "booking_completed"
    BOOKING_EXPIRED = "booking_expired"
    SITTER_APPROVED = "sitter_approved"
    SITTER_REJECTED = "sitter_rejected"
    UNREAD_MESSAGES = "unread_messages"
    REVIEW_RECEIVED = "review_received"


class EmailStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # the user turned the kind's e-mails off, or has no address


# The e-mail preference each kind follows (users.email_<category>); one-click unsubscribe
# turns one category off.
CATEGORIES = ("bookings", "messages", "reviews")
CATEGORY_OF = {kind: "bookings" for kind in Kind} | {
    Kind.UNREAD_MESSAGES: "messages",
    Kind.REVIEW_RECEIVED: "reviews",
}


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification with what its text needs: the booking's parties, pet and times, and the
    recipient's address, language, zone and e-mail preference for its kind."""

    notification_id: int
    user_id: int
    kind: Kind
    booking_id: int | None
    from_seq: int | None
    to_seq: int | None
    created_at: datetime
    read_at: datetime | None
    attempts: int
    email: str | None
    full_name: str
    locale: str | None
    time_zone: str | None
    email_wanted: bool
    owner_name: str | None
    sitter_name: str | None
    pet_name: str | None
    start_time: datetime | None
    end_time: datetime | None
    rating: int | None


_SELECT = """
    SELECT n.notification_id, n.user_id, n.kind, n.booking_id, n.from_seq, n.to_seq,
           n.created_at, n.read_at, n.attempts, u.email, u.full_name, u.locale, u.time_zone,
           u.deleted_at IS NULL AND CASE n.kind
               WHEN 'unread_messages' THEN u.email_messages
               WHEN 'review_received' THEN u.email_reviews
               ELSE u.email_bookings END AS email_wanted,
           o.full_name AS owner_name, s.full_name AS sitter_name, p.name AS pet_name,
           b.start_time, b.end_time, r.rating
    FROM notifications n
    JOIN users u ON u.user_id = n.user_id
    LEFT JOIN bookings b ON b.booking_id = n.booking_id
    LEFT JOIN users o ON o.user_id = b.owner_id
    LEFT JOIN users s ON s.user_id = b.sitter_id
    LEFT JOIN pets p ON p.pet_id = b.pet_id
    LEFT JOIN reviews r ON r.booking_id = n.booking_id AND n.kind = 'review_received'
"""


def _notification(row: asyncpg.Record) -> Notification:
    return Notification(**dict(row.items()) | {"kind": Kind(row["kind"])})


async def list_notifications(
    conn: asyncpg.Connection, user_id: int, *, unread: bool, limit: int, offset: int
) -> tuple[list[Notification], int]:
    """The user's notifications, newest first, and how many there are in all."""
    unread_filter = "AND n.read_at IS NULL" if unread else ""
    rows = await conn.fetch(
        f"""{_SELECT} WHERE n.user_id = $1 {unread_filter}
        ORDER BY n.notification_id DESC LIMIT $2 OFFSET $3""",
        user_id,
        limit,
        offset,
    )
    total = await conn.fetchval(
        f"SELECT count(*) FROM notifications n WHERE n.user_id = $1 {unread_filter}", user_id
    )
    return [_notification(r) for r in rows], total


async def get_notification(conn: asyncpg.Connection, notification_id: int) -> Notification | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE n.notification_id = $1", notification_id)
    return _notification(row) if row is not None else None


async def mark_read(conn: asyncpg.Connection, user_id: int, ids: list[int] | None) -> int:
    """Mark the user's notifications `ids` (None: all of them) read; how many were unread."""
    result = await conn.execute(
        """
        UPDATE notifications SET read_at = now()
        WHERE user_id = $1 AND read_at IS NULL
          AND ($2::bigint[] IS NULL OR notification_id = ANY($2::bigint[]))
        """,
        user_id,
        ids,
    )
    return int(result.split()[-1])


async def claim_due(
    conn: asyncpg.Connection, limit: int, lease_seconds: float
) -> list[Notification]:
    """Take up to `limit` queued e-mails that are due, for `lease_seconds`: the claim commits at
    once, and no other sender takes them until the lease is over (a sender killed mid-send
    thus leaves its e-mails to be sent again, with the same Message-ID)."""
    rows = await conn.fetch(
        f"""
        WITH claimed AS (
            UPDATE notifications n
            SET attempts = n.attempts + 1,
                next_attempt_at = now() + make_interval(secs => $2)
            FROM (
                SELECT notification_id FROM notifications
                WHERE email_status = 'queued' AND next_attempt_at <= now()
                ORDER BY next_attempt_at
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            ) due
            WHERE n.notification_id = due.notification_id
            RETURNING n.notification_id
        ) {_SELECT} WHERE n.notification_id IN (SELECT notification_id FROM claimed)
        ORDER BY n.notification_id
        """,
        limit,
        lease_seconds,
    )
    # The CTE's update is not visible to the outer select: it sees the attempts before.
    return [_notification(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a claimed e-mail: sent, skipped, failed, or queued again in `retry_in`
    seconds; `error` the server's or the connection's words."""

    notification_id: int
    status: EmailStatus
    error: str | None = None
    retry_in: float | None = None


async def record_outcomes(conn: asyncpg.Connection, outcomes: list[Outcome]) -> None:
    await conn.executemany(
        """
        UPDATE notifications
        SET email_status = $2, last_error = $3,
            sent_at = CASE WHEN $2 = 'sent' THEN now() END,
            next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at
                                   ELSE now() + make_interval(secs => $4::float8) END
        WHERE notification_id = $1
        """,
        [(o.notification_id, o.status, o.error, o.retry_in) for o in outcomes],
    )


async def outbox_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT email_status, count(*) AS n FROM notifications GROUP BY 1")
    counts = {status.value: 0 for status in EmailStatus}
    counts.update({r["email_status"]: r["n"] for r in rows})
    return counts


DIGEST_LOCK = 0x6E6F7469  # advisory lock namespace: one process writes digests at a time


async def write_digests(conn: asyncpg.Connection, unread_minutes: float) -> list[tuple[int, int]]:
    """One unread_messages notification for each participant of each chat with messages from
    the other side still unread `unread_minutes` after they were sent and in no digest yet;
    (user_id, notification_id) of each. Run in a transaction; a process finding another one at
    it does nothing."""
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", DIGEST_LOCK):
        return []
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT c.chat_id, c.booking_id, u.user_id,
                   min(m.seq) AS from_seq, max(m.seq) AS to_seq
            FROM messages m
            JOIN chats c ON c.chat_id = m.chat_id
            JOIN bookings b ON b.booking_id = c.booking_id
            CROSS JOIN LATERAL (VALUES (b.owner_id), (b.sitter_id)) u (user_id)
            LEFT JOIN chat_reads r ON r.chat_id = c.chat_id AND r.user_id = u.user_id
            LEFT JOIN chat_digests d ON d.chat_id = c.chat_id AND d.user_id = u.user_id
            WHERE m.sent_at <= now() - make_interval(secs => $1 * 60)
              AND m.sent_at > now() - make_interval(secs => $1 * 60) - interval '7 days'
              AND m.sender_id <> u.user_id
              AND m.seq > coalesce(r.last_read_seq, 0)
              AND m.seq > coalesce(d.notified_seq, 0)
            GROUP BY c.chat_id, c.booking_id, u.user_id
        ), marked AS (
            INSERT INTO chat_digests (chat_id, user_id, notified_seq)
            SELECT chat_id, user_id, to_seq FROM due
            ON CONFLICT (chat_id, user_id) DO UPDATE SET notified_seq = excluded.notified_seq
        )
        INSERT INTO notifications (user_id, kind, booking_id, from_seq, to_seq)
        SELECT user_id, 'unread_messages', booking_id, from_seq, to_seq FROM due
        RETURNING user_id, notification_id
        """,
        unread_minutes,
    )
    return [(r["user_id"], r["notification_id"]) for r in rows]


async def list_recent(
    conn: asyncpg.Connection, user_ids: list[int], seconds: float
) -> list[Notification]:
    """The notifications of `user_ids` written in the last `seconds`, oldest first. (By time, not
    by id: ids are taken at insert, so a later commit can bring a lower one.)"""
    rows = await conn.fetch(
        f"""{_SELECT} WHERE n.user_id = ANY($1::int[])
        AND n.created_at > now() - make_interval(secs => $2) ORDER BY n.notification_id""",
        user_ids,
        seconds,
    )
    return [_notification(r) for r in rows]


@dataclass(frozen=True, slots=True)
class DigestMessage:
    sender_name: str
    content: str
    sent_at: datetime


async def digest_messages(
    conn: asyncpg.Connection, booking_id: int, user_id: int, from_seq: int, to_seq: int
) -> list[DigestMessage]:
    """The messages a digest lists: from the other side, in its seq range."""
    rows = await conn.fetch(
        """
        SELECT u.full_name AS sender_name, m.content, m.sent_at
        FROM chats c JOIN messages m ON m.chat_id = c.chat_id
        JOIN users u ON u.user_id = m.sender_id
        WHERE c.booking_id = $1 AND m.seq BETWEEN $3 AND $4 AND m.sender_id <> $2
        ORDER BY m.seq
        """,
        booking_id,
        user_id,
        from_seq,
        to_seq,
    )
    return [DigestMessage(**dict(r.items())) for r in rows]


async def get_email_preferences(conn: asyncpg.Connection, user_id: int) -> dict[str, bool] | None:
    row = await conn.fetchrow(
        "SELECT email_bookings, email_messages, email_reviews FROM users "
        "WHERE user_id = $1 AND deleted_at IS NULL",
        user_id,
    )
    if row is None:
        return None
    return {category: row[f"email_{category}"] for category in CATEGORIES}


async def set_email_preferences(
    conn: asyncpg.Connection, user_id: int, changes: dict[str, bool]
) -> bool:
    """Save the given categories' choices (keys of CATEGORIES); False when the user is gone."""
    assignments = ", ".join(
        f"email_{category} = ${i}" for i, category in enumerate(changes, start=2)
    )
    if not assignments:
        return await get_email_preferences(conn, user_id) is not None
    result = await conn.execute(
        f"UPDATE users SET {assignments} WHERE user_id = $1 AND deleted_at IS NULL",
        user_id,
        *changes.values(),
    )
    return result != "UPDATE 0"
