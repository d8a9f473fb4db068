"""The rooms of one process: who is subscribed to which booking's chat, and delivery in order.

Ordering: a room delivers messages to its local members strictly in seq order. A message that
arrives ahead of its predecessors (two processes publish concurrently) is held back; if the gap
is still open after `gap_wait`, the missing ones are read from the database (seq N committed
implies every seq below N is committed). Each member has a cursor (the last seq it was sent), so
nothing repeats: replay and live delivery meet at the cursor.

A room exists while a local connection is subscribed to it: the first subscriber's
subscription opens it (and its broker channel), the last one leaving closes it."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Protocol

import asyncpg

from nanny.access import is_participant
from nanny.chat.access import require_reader
from nanny.chat.messages import message_json
from nanny.db import chat as db_chat
from nanny.encoding import dumps
from nanny.errors import ValidationFailed
from nanny.media.urls import MediaUrls
from nanny.metrics import Metrics
from nanny.tasks import TaskSet
from nanny.ws.broker import Broker
from nanny.ws.connection import Connection
from nanny.ws.limits import WsLimits
from nanny.ws.subscriptions import Subscriptions

log = logging.getLogger("nanny.ws")

# A member that is still replaying history gets no live messages until it is attached.
_JOINING = 2**62
_REPLAY_PAGE = 200


def message_frame(m: db_chat.Message, urls: MediaUrls) -> str:
    return dumps({"type": "message", "message": message_json(m, urls)})


class Room:
    __slots__ = (
        "attach_lock",
        "booking_id",
        "closed",
        "gap_task",
        "held",
        "last_seq",
        "members",
        "online",
        "owner_id",
        "paused",
        "presence_lock",
        "sitter_id",
    )

    def __init__(self, access: db_chat.ChatAccess):
        self.booking_id = access.booking_id
        self.owner_id = access.owner_id
        self.sitter_id = access.sitter_id
        self.members: set[Connection] = set()
        self.last_seq: int | None = None  # last seq delivered here; None until the first attach
        self.held: dict[int, str] = {}
        self.paused = 0
        self.attach_lock = asyncio.Lock()
        self.presence_lock = asyncio.Lock()
        self.online: set[int] = set()  # who the members were last told is online
        self.gap_task: asyncio.Task | None = None
        self.closed = False


class RoomPresence(Protocol):
    def hold(self, room: Room, user_id: int) -> AbstractAsyncContextManager[None]:
        """The user is online in the room while this is held."""


class RoomRegistry:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        presence: RoomPresence,
        limits: WsLimits,
        metrics: Metrics,
        tasks: TaskSet,
        urls: MediaUrls,
    ):
        self._pool = pool
        self._urls = urls
        self._broker = broker
        self._presence = presence
        self._limits = limits
        self._metrics = metrics
        self._tasks = tasks
        self.by_booking: dict[int, Room] = {}
        self._subscriptions: Subscriptions[int, Room] = Subscriptions(
            self._open, self._close, tasks
        )

    def get(self, booking_id: int) -> Room | None:
        return self.by_booking.get(booking_id)

    def all(self) -> list[Room]:
        return list(self.by_booking.values())

    async def _open(self, booking_id: int, access: db_chat.ChatAccess) -> Room:
        room = self.by_booking[booking_id] = Room(access)
        try:
            await self._broker.subscribe_room(booking_id)
        except BaseException:
            await self._close(booking_id, room)
            raise
        return room

    async def _close(self, booking_id: int, room: Room) -> None:
        room.closed = True
        if self.by_booking.get(booking_id) is room:
            del self.by_booking[booking_id]
        if room.gap_task is not None:
            room.gap_task.cancel()
        self._broker.unsubscribe_room(booking_id)

    # -- members -------------------------------------------------------------------------

    async def subscribe(self, conn: Connection, booking_id: int, after_seq: int | None) -> None:
        if booking_id in conn.cursors:
            raise ValidationFailed(
                f"Already subscribed to booking {booking_id}; unsubscribe first",
                details={"field": "booking_id"},
            )
        if len(conn.cursors) >= self._limits.rooms_per_connection:
            raise ValidationFailed(
                f"At most {self._limits.rooms_per_connection} rooms per connection",
                details={"field": "booking_id"},
            )
        access = await require_reader(self._pool, conn.user_id, conn.role, booking_id)
        if after_seq is not None and after_seq > access.last_seq:
            raise ValidationFailed(
                f"after_seq {after_seq} is beyond the last message ({access.last_seq})",
                details={"field": "after_seq"},
            )
        conn.cursors[booking_id] = _JOINING
        # Everything the membership holds is let go, in reverse, by `leave`.
        membership = conn.memberships[booking_id] = AsyncExitStack()
        try:
            room = await membership.enter_async_context(
                self._subscriptions.hold(booking_id, access)
            )
            if is_participant(room, conn.user_id):  # an admin watching is not "present"
                await membership.enter_async_context(self._presence.hold(room, conn.user_id))
            async with self._pool.acquire() as db:
                reads = await db_chat.read_marks(db, access.chat_id)
            conn.send(
                dumps(
                    {
                        "type": "subscribed",
                        "booking_id": booking_id,
                        "last_seq": access.last_seq,
                        "online": sorted(room.online),
                        "read": {str(u): s for u, s in reads.items()},
                    }
                )
            )
            # From here on the member hears presence, typing and read events (no await since
            # the snapshot above, so none is missed); messages wait for _attach.
            room.members.add(conn)
            membership.callback(room.members.discard, conn)
            cursor = access.last_seq if after_seq is None else after_seq
            if cursor < access.last_seq:
                cursor = await self._replay(conn, booking_id, cursor)
            if conn.closing or conn.shutdown_requested:
                return  # it ends before the replay did: nothing to attach
            await self._attach(room, conn, cursor)
        except BaseException:
            await self.leave(conn, booking_id)
            raise

    async def _replay(self, conn: Connection, booking_id: int, cursor: int) -> int:
        """Send history after `cursor` page by page, at the pace the client reads it, until
        it is all sent or the connection is ending."""
        while True:
            async with self._pool.acquire() as db:
                page = await db_chat.messages_after(db, booking_id, cursor, limit=_REPLAY_PAGE)
            for m in page:
                if not await conn.send_paced(message_frame(m, self._urls)):
                    return cursor
                cursor = m.seq
            if len(page) < _REPLAY_PAGE:
                return cursor

    async def _attach(self, room: Room, conn: Connection, cursor: int) -> None:
        """Join live delivery at `cursor` with nothing lost or repeated: the room holds its
        deliveries while the tail is read, and everything it delivered before is committed, so
        the tail read reaches at least as far as the room has."""
        async with room.attach_lock:
            room.paused += 1
            try:
                async with self._pool.acquire() as db:
                    tail = await db_chat.messages_after(db, room.booking_id, cursor)
                for m in tail:
                    conn.send(message_frame(m, self._urls))
                    cursor = m.seq
                if room.last_seq is None:
                    room.last_seq = cursor
                    for seq in [s for s in room.held if s <= cursor]:
                        del room.held[seq]
                if conn in room.members:
                    conn.cursors[room.booking_id] = cursor
            finally:
                room.paused -= 1
                self._flush(room)

    async def unsubscribe(self, conn: Connection, booking_id: int) -> None:
        if booking_id not in conn.cursors:
            raise ValidationFailed(
                f"Not subscribed to booking {booking_id}", details={"field": "booking_id"}
            )
        await self.leave(conn, booking_id)

    async def leave(self, conn: Connection, booking_id: int) -> None:
        conn.cursors.pop(booking_id, None)
        membership = conn.memberships.pop(booking_id, None)
        if membership is not None:
            await membership.aclose()

    async def leave_all(self, conn: Connection) -> None:
        for booking_id in list(conn.memberships):
            await self.leave(conn, booking_id)

    def to_members(
        self,
        booking_id: int,
        frame: str,
        *,
        skip: object = None,
        skip_user: int | None = None,
    ) -> None:
        """A frame for everyone in the room (but `skip`, a connection, and `skip_user`'s)."""
        room = self.by_booking.get(booking_id)
        if room is None:
            return
        for conn in room.members:
            if conn is not skip and conn.user_id != skip_user:
                conn.send(frame)

    # -- message ordering ----------------------------------------------------------------

    def offer(self, room: Room, seq: int, frame: str) -> None:
        """A message for the room, from this process, another one, or the database."""
        if room.last_seq is not None and seq <= room.last_seq:
            return
        room.held[seq] = frame
        if not room.paused and room.last_seq is not None:
            self._flush(room)

    def _flush(self, room: Room) -> None:
        if room.last_seq is None or room.paused:
            return
        held = room.held
        seq = room.last_seq + 1
        while seq in held:
            frame = held.pop(seq)
            booking_id = room.booking_id
            delivered = 0
            for conn in room.members:
                cursors = conn.cursors
                if cursors.get(booking_id, _JOINING) < seq:
                    cursors[booking_id] = seq
                    conn.send(frame)
                    delivered += 1
            self._metrics.delivered(delivered)
            room.last_seq = seq
            seq += 1
        if held and room.gap_task is None:
            room.gap_task = self._tasks.spawn(self._fill_gap(room))

    async def _fill_gap(self, room: Room) -> None:
        gap_wait = self._limits.gap_wait
        try:
            await asyncio.sleep(gap_wait)
            while room.held and not room.closed:
                if room.paused or room.last_seq is None:
                    await asyncio.sleep(gap_wait)
                    continue
                first_held = min(room.held)
                if first_held <= room.last_seq + 1:
                    for seq in [s for s in room.held if s <= room.last_seq]:
                        del room.held[seq]
                    self._flush(room)
                    continue
                missing = first_held - room.last_seq - 1
                async with self._pool.acquire() as db:
                    found = await db_chat.messages_after(
                        db, room.booking_id, room.last_seq, limit=missing
                    )
                for m in found:
                    self.offer(room, m.seq, message_frame(m, self._urls))
                if not found:
                    await asyncio.sleep(gap_wait)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("filling a gap in room %s failed", room.booking_id)
        finally:
            room.gap_task = None
        if room.held and not room.closed:
            await asyncio.sleep(0.5)
            if room.gap_task is None and room.held:
                room.gap_task = self._tasks.spawn(self._fill_gap(room))

    async def catch_up(self) -> None:
        """After the broker was away: read what every room missed from the database."""
        rooms = [r for r in self.by_booking.values() if r.last_seq is not None]
        if not rooms:
            return
        async with self._pool.acquire() as db:
            missed = await db_chat.messages_after_many(
                db, [(r.booking_id, r.last_seq) for r in rooms]
            )
        for m in missed:
            room = self.by_booking.get(m.booking_id)
            if room is not None:
                self.offer(room, m.seq, message_frame(m, self._urls))
        log.info("resync: %d rooms, %d missed messages", len(rooms), len(missed))
