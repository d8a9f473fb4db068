"""Chat messages reach the database in batches (group commit in the application).

A send joins the queue; when fewer than `max_in_flight` batches are being stored, a batch of
everything queued starts at once, so a lone message is stored without waiting. Under load,
messages that arrive while batches are under way go together in the next one: one round trip
and one commit for many messages instead of one each, which is where a busy process spends its
database time. Each message is still committed before its sender is acknowledged or anything
is fanned out: `store` returns only once its batch has committed.

A batch that fails as a whole (a concurrent twin of a client_id committed first, or a deadlock)
is retried message by message through the single-send path, which settles each on its own."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import asyncpg

from nanny.db import chat as db_chat

log = logging.getLogger("nanny.chat.batch")

Stored = db_chat.Stored


class MessageBatcher:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        spawn: Callable[..., asyncio.Task],
        *,
        max_in_flight: int = 1,
        max_batch: int = 200,
    ):
        self._pool = pool
        self._spawn = spawn
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._queue: deque[tuple[db_chat.NewMessage, asyncio.Future]] = deque()
        self._in_flight = 0

    async def store(
        self,
        *,
        booking_id: int,
        sender_id: int,
        content: str,
        client_id: str | None,
        attachment_ids: tuple[int, ...] = (),
    ) -> Stored:
        """What `db_chat.store_message` answers, once the message's batch has committed."""
        future = asyncio.get_running_loop().create_future()
        # Retrieved even when the sender went away meanwhile (no "never retrieved" warnings).
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        message = db_chat.NewMessage(booking_id, sender_id, content, client_id, attachment_ids)
        self._queue.append((message, future))
        if self._in_flight < self._max_in_flight:
            self._start()
        # A sender that goes away does not take the batch down with it: shielded.
        return await asyncio.shield(future)

    def _start(self) -> None:
        batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
        if batch:
            self._in_flight += 1
            self._spawn(self._run(batch))

    async def _run(self, batch: list[tuple[db_chat.NewMessage, asyncio.Future]]) -> None:
        try:
            messages = [m for m, _ in batch]
            try:
                async with self._pool().acquire() as db:
                    results = await db_chat.store_messages(db, messages)
            except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError) as exc:
                log.info("a batch of %d messages failed (%r); storing one by one", len(batch), exc)
                await self._one_by_one(batch)
                return
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        except asyncio.CancelledError:  # the chat is stopping: no batch starts after this one
            for _, future in [*batch, *self._queue]:
                future.cancel()
            self._queue.clear()
            raise
        finally:
            self._in_flight -= 1
            if self._queue:
                self._start()

    async def _one_by_one(self, batch: list[tuple[db_chat.NewMessage, asyncio.Future]]) -> None:
        for m, future in batch:
            try:
                async with self._pool().acquire() as db:
                    result = await db_chat.store_message(
                        db,
                        booking_id=m.booking_id,
                        sender_id=m.sender_id,
                        content=m.content,
                        client_id=m.client_id,
                        attachment_ids=m.attachment_ids,
                    )
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
