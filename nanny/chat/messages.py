"""The chat's use cases: send a message, mark a chat read, read its history. REST
(nanny/http/chat.py) and the WebSocket frames (nanny/ws/commands.py) call the same ones, so a
message is checked, stored, numbered and delivered exactly alike whichever door it came in by.

Each goes one way: the access rules (access.py), then the database (a message through the
batcher), and only once that is committed, the sender's acknowledgement and then the fan-out,
which delivers it to the room's subscribers on every process (nanny/ws/hub.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg

from nanny.chat.access import (
    no_such_booking,
    require_participant,
    require_reader,
    require_writer,
)
from nanny.chat.batch import MessageBatcher
from nanny.db import chat as db_chat
from nanny.errors import ValidationFailed
from nanny.media.urls import MediaUrls
from nanny.metrics import Metrics
from nanny.tasks import TaskSet

MAX_ATTACHMENTS = 4


def message_json(m: db_chat.Message, urls: MediaUrls) -> dict[str, Any]:
    """A message as the API shows it. Its photos' URLs are signed for whoever is shown the
    message: only the booking's participants and admins ever are."""
    return {
        "message_id": m.message_id,
        "booking_id": m.booking_id,
        "chat_id": m.chat_id,
        "seq": m.seq,
        "sender_id": m.sender_id,
        "content": m.content,
        "client_id": m.client_id,
        "sent_at": m.sent_at,
        "attachments": [
            {"attachment_id": a.image_id} | urls.image_json(a.image_id, a.width, a.height)
            for a in m.attachments
        ],
    }


class ChatFanout(Protocol):
    """Where committed chat events go: to every subscriber of the room, on every process."""

    def message_stored(self, message: db_chat.Message) -> None: ...

    def read_marked(self, booking_id: int, user_id: int, seq: int, origin: object) -> None:
        """`origin` (a connection, or None) is not told: it sent the mark."""


def _refused(refusal: db_chat.Refusal, booking_id: int) -> Exception:
    """The error for a participant's message that the database did not store."""
    if refusal is db_chat.Refusal.ATTACHMENTS:
        return ValidationFailed(
            "attachment_ids must be photos you uploaded to this booking and have not sent yet",
            details={"field": "attachment_ids"},
        )
    if refusal is db_chat.Refusal.EMPTY:
        return ValidationFailed(
            "A message needs content or attachment_ids", details={"field": "content"}
        )
    # Not a participant after all: the account was deleted meanwhile.
    return no_such_booking(booking_id)


# budget(user_id): counts one message the user sends; raises RateLimited when over the budget.
MessageBudget = Callable[[int], Awaitable[None]]


class Chat:
    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: Metrics,
        fanout: ChatFanout,
        *,
        budget: MessageBudget,
    ):
        self.pool = pool
        self._budget = budget
        self._metrics = metrics
        self._fanout = fanout
        self._tasks = TaskSet()
        self._batcher = MessageBatcher(lambda: pool, self._tasks.spawn)

    async def stop(self) -> None:
        await self._tasks.cancel_all()

    async def send_message(
        self,
        user_id: int,
        role: str,
        booking_id: int,
        content: str,
        client_id: str | None,
        *,
        attachment_ids: tuple[int, ...] = (),
        ack: Callable[[db_chat.Message], None] | None = None,
    ) -> tuple[db_chat.Message, bool]:
        """Store the message, then `ack` it, then fan it out. A client_id the sender used
        before answers the original message (and False), stored and delivered once. Every
        attempt spends one of the sender's message budget (RateLimited beyond it)."""
        require_writer(role)
        if not content and not attachment_ids:
            raise ValidationFailed(
                "A message needs content or attachment_ids", details={"field": "content"}
            )
        # Both doors spend the one budget, so a user cannot send past it by switching.
        await self._budget(user_id)
        stored = await self._batcher.store(
            booking_id=booking_id,
            sender_id=user_id,
            content=content,
            client_id=client_id,
            attachment_ids=attachment_ids,
        )
        if isinstance(stored, db_chat.Refusal):
            await require_participant(self.pool, user_id, booking_id)
            raise _refused(stored, booking_id)
        message, created = stored
        if created:
            self._metrics.message_stored()
        if message.booking_id != booking_id:
            raise ValidationFailed(
                "This client_id was already used for a message in another booking",
                details={"field": "client_id"},
            )
        if ack is not None:
            ack(message)
        if created:
            self._fanout.message_stored(message)
        return message, created

    async def mark_read(
        self, user_id: int, role: str, booking_id: int, seq: int, *, origin: object = None
    ) -> int | None:
        """Move the user's read mark forward to `seq`: the new mark, or None when it was there
        already (marks never move back; nothing is announced then)."""
        require_writer(role)
        access = await require_participant(self.pool, user_id, booking_id)
        if seq > access.last_seq:
            raise ValidationFailed(
                f"seq {seq} is beyond the last message ({access.last_seq})",
                details={"field": "seq"},
            )
        async with self.pool.acquire() as db:
            marked = await db_chat.mark_read(db, access.chat_id, user_id, seq)
        if marked is not None:
            self._fanout.read_marked(booking_id, user_id, marked, origin)
        return marked

    async def history(
        self,
        user_id: int,
        role: str,
        booking_id: int,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int,
        offset: int,
    ) -> tuple[list[db_chat.Message], int]:
        """A page of the chat in ascending seq, and how many messages the seq bounds match.
        Without after_seq, a before_seq takes the page from the newest end."""
        access = await require_reader(self.pool, user_id, role, booking_id)
        async with self.pool.acquire() as db:
            return await db_chat.list_messages(
                db,
                access.chat_id,
                after_seq=after_seq,
                before_seq=before_seq,
                limit=limit,
                offset=offset,
                newest_first=before_seq is not None and after_seq is None,
            )
