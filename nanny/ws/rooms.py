"""The room registry of one process and the chat use cases shared by WebSocket and REST.

Ordering: a room delivers messages to its local members strictly in seq order. A message that
arrives ahead of its predecessors (two processes publish concurrently) is held back; if the gap
is still open after `gap_wait`, the missing ones are read from the database (seq N committed
implies every seq below N is committed). Each member has a cursor (the last seq it was sent), so
nothing repeats: replay and live delivery meet at the cursor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import asyncpg
from aiohttp import web

from nanny import metrics
from nanny.db import chat as db_chat
from nanny.errors import Forbidden, NotFound, ValidationFailed
from nanny.http.responses import dumps
from nanny.keys import POOL, USER_CACHE
from nanny.ws.batch import MessageBatcher
from nanny.ws.broker import Broker
from nanny.ws.connection import CLOSE_GOING_AWAY, CLOSE_UNAUTHORIZED, Connection
from nanny.ws.limits import WsLimits

log = logging.getLogger("nanny.ws")

# A member that is still replaying history gets no live messages until it is attached.
_JOINING = 2**62
_REPLAY_PAGE = 200


def message_json(m: db_chat.Message) -> dict[str, Any]:
    return {
        "message_id": m.message_id,
        "booking_id": m.booking_id,
        "chat_id": m.chat_id,
        "seq": m.seq,
        "sender_id": m.sender_id,
        "content": m.content,
        "client_id": m.client_id,
        "sent_at": m.sent_at,
    }


def message_frame(m: db_chat.Message) -> str:
    return dumps({"type": "message", "message": message_json(m)})


class Room:
    __slots__ = (
        "attach_lock",
        "booking_id",
        "gap_task",
        "held",
        "last_seq",
        "members",
        "online",
        "owner_id",
        "paused",
        "presence_lock",
        "ready",
        "refs",
        "sitter_id",
    )

    def __init__(self, access: db_chat.ChatAccess):
        self.booking_id = access.booking_id
        self.owner_id = access.owner_id
        self.sitter_id = access.sitter_id
        self.members: set[Connection] = set()
        self.refs = 0  # members plus connections still joining
        self.last_seq: int | None = None  # last seq delivered here; None until the first attach
        self.held: dict[int, str] = {}
        self.paused = 0
        self.attach_lock = asyncio.Lock()
        self.presence_lock = asyncio.Lock()
        self.online: set[int] = set()
        self.ready: asyncio.Task | None = None
        self.gap_task: asyncio.Task | None = None

    def is_participant(self, user_id: int) -> bool:
        return user_id in (self.owner_id, self.sitter_id)


class ChatHub:
    def __init__(self, app: web.Application, broker: Broker, limits: WsLimits, presence_ttl: float):
        self.app = app
        self.broker = broker
        self.limits = limits
        self.presence_ttl = presence_ttl
        self.connections: set[Connection] = set()
        self.by_user: dict[int, set[Connection]] = {}
        self.rooms: dict[int, Room] = {}
        # user_id -> this process's connections that need the user's booking events (the
        # user's broker channel is subscribed while there is one), and the subscriptions
        # still waiting for Redis's confirmation
        self._feed_holders: dict[int, int] = {}
        self._feed_pending: dict[int, asyncio.Task] = {}
        # (booking_id, user_id) -> this process's connections of the user in the room
        self._present: dict[tuple[int, int], int] = {}
        self._tasks: set[asyncio.Task] = set()
        self._presence_dirty: set[Room] = set()
        self._presence_task: asyncio.Task | None = None
        self._all_gone = asyncio.Event()
        self._all_gone.set()
        self.closing = False
        self._broker_seen = False
        broker.bind(self.on_remote, self.resync)
        self._batcher = MessageBatcher(lambda: self.pool, self._spawn)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.app[POOL]

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- connections ---------------------------------------------------------------------

    async def user_changed(self, user_id: int, *, deleted: bool = False) -> None:
        """A user's row changed (sitter approval, rejection, deletion, a token revoked): every
        process forgets its cached copy, and a deleted account's sockets are closed wherever
        they are, before this returns (the broker waits for every process's receipt), so a
        right taken away is gone everywhere by the time the change is answered."""
        self._user_changed_here(user_id, deleted)
        await self.broker.publish_confirmed({"k": "u", "u": user_id, "d": deleted})

    def _user_changed_here(self, user_id: int, deleted: bool) -> None:
        self.app[USER_CACHE].forget(user_id)
        if deleted:
            for conn in list(self.by_user.get(user_id, ())):
                conn.close(CLOSE_UNAUTHORIZED, "the account no longer exists")

    async def hold_user_feed(self, user_id: int) -> None:
        """Booking events addressed to the user reach this process from when this returns
        (the user's broker channel is subscribed and confirmed) until the matching
        `release_user_feed`. Every call holds, even one cancelled while waiting."""
        holders = self._feed_holders.get(user_id, 0)
        self._feed_holders[user_id] = holders + 1
        if holders == 0:
            self._feed_pending[user_id] = self._spawn(self.broker.subscribe_user(user_id))
        pending = self._feed_pending.get(user_id)
        if pending is not None:
            await asyncio.shield(pending)
            if self._feed_pending.get(user_id) is pending:
                del self._feed_pending[user_id]

    def release_user_feed(self, user_id: int) -> None:
        holders = self._feed_holders[user_id] - 1
        if holders:
            self._feed_holders[user_id] = holders
            return
        del self._feed_holders[user_id]
        self._feed_pending.pop(user_id, None)
        self.broker.unsubscribe_user(user_id)

    def add_connection(self, conn: Connection) -> None:
        self.connections.add(conn)
        self._all_gone.clear()
        metrics.websocket_opened(self.app)

    def authenticated(self, conn: Connection) -> None:
        self.by_user.setdefault(conn.user_id, set()).add(conn)

    async def remove_connection(self, conn: Connection) -> None:
        for booking_id in list(conn.cursors):
            await self.leave(conn, booking_id)
        users = self.by_user.get(conn.user_id)
        if users is not None:
            users.discard(conn)
            if not users:
                del self.by_user[conn.user_id]
        if conn in self.connections:
            self.connections.discard(conn)
            metrics.websocket_closed(self.app)
        if not self.connections:
            self._all_gone.set()

    async def shutdown(self) -> None:
        """Close every socket with 1001 once its in-flight frame is handled."""
        self.closing = True
        for conn in list(self.connections):
            conn.shutdown_requested = True
            if not conn.busy:
                conn.close(CLOSE_GOING_AWAY, "server shutting down")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_gone.wait(), timeout=self.limits.shutdown_grace)
        for conn in list(self.connections):
            conn.abort()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- access --------------------------------------------------------------------------

    @staticmethod
    def refuse_admin_writes(role: str | None) -> None:
        """Admins may watch any chat but take no part in it."""
        if role == "admin":
            raise Forbidden("Admins may read chats but not write in them")

    async def chat_access(self, booking_id: int) -> db_chat.ChatAccess:
        async with self.pool.acquire() as conn:
            access = await db_chat.get_chat_access(conn, booking_id)
            if access is not None and access.chat_id is None:
                await db_chat.ensure_chat(conn, booking_id)
                access = await db_chat.get_chat_access(conn, booking_id)
        if access is None:
            raise NotFound(f"Booking {booking_id} does not exist")
        return access

    async def require_participant(self, user_id: int, booking_id: int) -> db_chat.ChatAccess:
        access = await self.chat_access(booking_id)
        if not access.is_participant(user_id):
            # As for bookings: to anyone outside it, someone else's booking does not exist.
            raise NotFound(f"Booking {booking_id} does not exist")
        return access

    async def require_reader(self, user_id: int, role: str, booking_id: int) -> db_chat.ChatAccess:
        access = await self.chat_access(booking_id)
        if role != "admin" and not access.is_participant(user_id):
            raise NotFound(f"Booking {booking_id} does not exist")
        return access

    # -- rooms ---------------------------------------------------------------------------

    async def subscribe(self, conn: Connection, booking_id: int, after_seq: int | None) -> None:
        if booking_id in conn.cursors:
            raise ValidationFailed(
                f"Already subscribed to booking {booking_id}; unsubscribe first",
                details={"field": "booking_id"},
            )
        if len(conn.cursors) >= self.limits.rooms_per_connection:
            raise ValidationFailed(
                f"At most {self.limits.rooms_per_connection} rooms per connection",
                details={"field": "booking_id"},
            )
        access = await self.require_reader(conn.user_id, conn.role, booking_id)
        if after_seq is not None and after_seq > access.last_seq:
            raise ValidationFailed(
                f"after_seq {after_seq} is beyond the last message ({access.last_seq})",
                details={"field": "after_seq"},
            )
        conn.cursors[booking_id] = _JOINING
        room = self.rooms.get(booking_id)
        if room is None:
            room = self.rooms[booking_id] = Room(access)
            room.ready = self._spawn(self.broker.subscribe_room(booking_id))
        room.refs += 1
        try:
            await asyncio.shield(room.ready)
            if room.is_participant(conn.user_id):  # an admin watching is not "present"
                await self._presence_join(room, conn.user_id)
            async with self.pool.acquire() as db:
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
            cursor = access.last_seq if after_seq is None else after_seq
            if cursor < access.last_seq:
                cursor = await self._replay(conn, booking_id, cursor)
            await self._attach(room, conn, cursor)
        except BaseException:
            await self.leave(conn, booking_id)
            raise

    async def _replay(self, conn: Connection, booking_id: int, cursor: int) -> int:
        """Send history after `cursor` page by page, at the pace the client reads it."""
        while True:
            async with self.pool.acquire() as db:
                page = await db_chat.messages_after(db, booking_id, cursor, limit=_REPLAY_PAGE)
            for m in page:
                await conn.send_paced(message_frame(m))
                cursor = m.seq
            if len(page) < _REPLAY_PAGE or conn.closing:
                return cursor

    async def _attach(self, room: Room, conn: Connection, cursor: int) -> None:
        """Join live delivery at `cursor` with nothing lost or repeated: the room holds its
        deliveries while the tail is read, and everything it delivered before is committed, so
        the tail read reaches at least as far as the room has."""
        async with room.attach_lock:
            room.paused += 1
            try:
                async with self.pool.acquire() as db:
                    tail = await db_chat.messages_after(db, room.booking_id, cursor)
                for m in tail:
                    conn.send(message_frame(m))
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
        if conn.cursors.pop(booking_id, None) is None:
            return
        room = self.rooms.get(booking_id)
        if room is None:
            return
        room.members.discard(conn)
        room.refs -= 1
        if room.refs == 0:
            del self.rooms[booking_id]
            if room.gap_task is not None:
                room.gap_task.cancel()
            self.broker.unsubscribe_room(booking_id)
        if room.is_participant(conn.user_id):
            await self._presence_leave(room, conn.user_id)

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
            metrics.messages_delivered(self.app, delivered)
            room.last_seq = seq
            seq += 1
        if held and room.gap_task is None:
            room.gap_task = self._spawn(self._fill_gap(room))

    async def _fill_gap(self, room: Room) -> None:
        try:
            await asyncio.sleep(self.limits.gap_wait)
            while room.held and self.rooms.get(room.booking_id) is room:
                if room.paused or room.last_seq is None:
                    await asyncio.sleep(self.limits.gap_wait)
                    continue
                first_held = min(room.held)
                if first_held <= room.last_seq + 1:
                    for seq in [s for s in room.held if s <= room.last_seq]:
                        del room.held[seq]
                    self._flush(room)
                    continue
                missing = first_held - room.last_seq - 1
                async with self.pool.acquire() as db:
                    found = await db_chat.messages_after(
                        db, room.booking_id, room.last_seq, limit=missing
                    )
                for m in found:
                    self.offer(room, m.seq, message_frame(m))
                if not found:
                    await asyncio.sleep(self.limits.gap_wait)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("filling a gap in room %s failed", room.booking_id)
        finally:
            room.gap_task = None
        if room.held and self.rooms.get(room.booking_id) is room:
            await asyncio.sleep(0.5)
            if room.gap_task is None and room.held:
                room.gap_task = self._spawn(self._fill_gap(room))

    async def resync(self) -> None:
        """After the broker was away: read what every room missed from the database."""
        if self._broker_seen:  # the first connection is not a reconnect
            metrics.broker_reconnected(self.app)
            # User changes published while we were away were not heard: read users afresh.
            self.app[USER_CACHE].clear()
        self._broker_seen = True
        rooms = [r for r in self.rooms.values() if r.last_seq is not None]
        if rooms:
            async with self.pool.acquire() as db:
                missed = await db_chat.messages_after_many(
                    db, [(r.booking_id, r.last_seq) for r in rooms]
                )
            for m in missed:
                room = self.rooms.get(m.booking_id)
                if room is not None:
                    self.offer(room, m.seq, message_frame(m))
            log.info("resync: %d rooms, %d missed messages", len(rooms), len(missed))
        await self.refresh_presence()

    # -- the use cases -------------------------------------------------------------------

    async def send_message(
        self,
        user_id: int,
        booking_id: int,
        content: str,
        client_id: str | None,
        *,
        ack_to: Connection | None = None,
    ) -> tuple[db_chat.Message, bool]:
        """Store, acknowledge, then fan out: the one path of WebSocket and REST sends."""
        stored = await self._batcher.store(
            booking_id=booking_id, sender_id=user_id, content=content, client_id=client_id
        )
        if stored is None:
            access = await self.require_participant(user_id, booking_id)
            # A participant without a chat row: chat_access created it; try once more.
            async with self.pool.acquire() as db:
                stored = await db_chat.store_message(
                    db,
                    booking_id=access.booking_id,
                    sender_id=user_id,
                    content=content,
                    client_id=client_id,
                )
            if stored is None:  # pragma: no cover - the chat row exists now
                raise NotFound(f"Booking {booking_id} has no chat")
        message, created = stored
        if created:
            metrics.message_stored(self.app)
        if message.booking_id != booking_id:
            raise ValidationFailed(
                "This client_id was already used for a message in another booking",
                details={"field": "client_id"},
            )
        if ack_to is not None:
            ack_to.send(
                dumps({"type": "ack", "client_id": client_id, "message": message_json(message)})
            )
        if created:
            frame = message_frame(message)
            room = self.rooms.get(booking_id)
            if room is not None:
                self.offer(room, message.seq, frame)
            self.broker.publish({"k": "m", "b": booking_id, "s": message.seq}, frame)
        return message, created

    async def mark_read(
        self, user_id: int, booking_id: int, seq: int, *, origin: Connection | None = None
    ) -> int | None:
        access = await self.require_participant(user_id, booking_id)
        if seq > access.last_seq:
            raise ValidationFailed(
                f"seq {seq} is beyond the last message ({access.last_seq})",
                details={"field": "seq"},
            )
        async with self.pool.acquire() as db:
            marked = await db_chat.mark_read(db, access.chat_id, user_id, seq)
        if marked is not None:
            frame = dumps(
                {"type": "read", "booking_id": booking_id, "user_id": user_id, "seq": marked}
            )
            self._to_room(booking_id, frame, skip=origin)
            self.broker.publish({"k": "r", "b": booking_id, "u": user_id}, frame)
        return marked

    async def typing(self, conn: Connection, booking_id: int) -> None:
        room = self.rooms.get(booking_id)
        if room is None or booking_id not in conn.cursors:
            await self.require_participant(conn.user_id, booking_id)
        elif not room.is_participant(conn.user_id):
            raise NotFound(f"Booking {booking_id} does not exist")
        frame = dumps({"type": "typing", "booking_id": booking_id, "user_id": conn.user_id})
        self._to_room(booking_id, frame, skip_user=conn.user_id)
        self.broker.publish({"k": "t", "b": booking_id, "u": conn.user_id}, frame)

    async def booking_changed(self, app: web.Application, booking: dict[str, Any]) -> None:
        """The listener of nanny.events: push a committed status change live, to the room and
        to every connection of the booking's owner and sitter."""
        frame = dumps({"type": "booking", "booking": booking})
        booking_id = booking["booking_id"]
        parties = [u for u in (booking.get("owner_id"), booking.get("sitter_id")) if u]
        recipients: set[Connection] = set()
        room = self.rooms.get(booking_id)
        if room is not None:
            recipients.update(room.members)
        for user_id in parties:
            recipients.update(self.by_user.get(user_id, ()))
        for conn in recipients:
            conn.send(frame)
        # Elsewhere the parties' sockets hear it on their user's channel, and the room's other
        # members (admins watching) on the room's: each socket gets it once, and a process
        # reads it only if one of its sockets wants it.
        self.broker.publish({"k": "b", "b": booking_id, "u": parties}, frame)
        for user_id in parties:
            self.broker.publish({"k": "b", "b": booking_id, "to": user_id}, frame)

    def _booking_from_remote(self, header: dict[str, Any], frame: str) -> None:
        if "to" in header:
            recipients = self.by_user.get(header["to"], ())
        else:  # the room's copy: for its members who are neither party (admins watching)
            room = self.rooms.get(header["b"])
            parties = header.get("u") or ()
            members = room.members if room is not None else ()
            recipients = [conn for conn in members if conn.user_id not in parties]
        for conn in recipients:
            conn.send(frame)

    def _to_room(
        self,
        booking_id: int,
        frame: str,
        *,
        skip: Connection | None = None,
        skip_user: int | None = None,
    ) -> None:
        room = self.rooms.get(booking_id)
        if room is None:
            return
        for conn in room.members:
            if conn is not skip and conn.user_id != skip_user:
                conn.send(frame)

    def on_remote(self, header: dict[str, Any], frame: str) -> None:
        """An event published by another process."""
        kind = header.get("k")
        if kind == "b":
            self._booking_from_remote(header, frame)
            return
        if kind == "u":
            self._user_changed_here(header["u"], bool(header.get("d")))
            return
        room = self.rooms.get(header.get("b"))
        if room is None:
            return
        if kind == "m":
            self.offer(room, header["s"], frame)
        elif kind == "t":
            self._to_room(room.booking_id, frame, skip_user=header.get("u"))
        elif kind == "r":
            self._to_room(room.booking_id, frame)
        elif kind == "p":
            # Joins come in bursts (a process restarting, clients reconnecting): recompute the
            # rooms touched meanwhile together, in one Redis round trip.
            self._presence_dirty.add(room)
            if self._presence_task is None:
                self._presence_task = self._spawn(self._recompute_dirty_presence())

    # -- presence ------------------------------------------------------------------------

    async def _recompute_dirty_presence(self) -> None:
        try:
            while self._presence_dirty:
                rooms = [r for r in self._presence_dirty if self.rooms.get(r.booking_id) is r]
                self._presence_dirty.clear()
                await self._recompute_presence(rooms)
        finally:
            self._presence_task = None

    async def _presence_join(self, room: Room, user_id: int) -> None:
        key = (room.booking_id, user_id)
        count = self._present.get(key, 0)
        self._present[key] = count + 1
        if count == 0:
            try:
                await self.broker.presence_add(room.booking_id, user_id)
            except Exception as exc:
                log.warning("presence: adding user %s failed: %r", user_id, exc)
            self.broker.publish({"k": "p", "b": room.booking_id}, "")
        await self._recompute_presence([room])

    async def _presence_leave(self, room: Room, user_id: int) -> None:
        key = (room.booking_id, user_id)
        count = self._present.get(key, 0) - 1
        if count > 0:
            self._present[key] = count
            return
        self._present.pop(key, None)
        try:
            await self.broker.presence_remove(room.booking_id, user_id)
        except Exception as exc:
            log.warning("presence: removing user %s failed: %r", user_id, exc)
        self.broker.publish({"k": "p", "b": room.booking_id}, "")
        if self.rooms.get(room.booking_id) is room:
            await self._recompute_presence([room])

    async def _recompute_presence(self, rooms: list[Room]) -> None:
        """Compare who is online in each room with what its members were told, and tell them
        the difference. Diffing makes repeated or crossing recomputations harmless."""
        try:
            online = await self.broker.presence_online([r.booking_id for r in rooms])
        except Exception as exc:
            log.warning("presence: reading the online users failed: %r", exc)
            return
        for room in rooms:
            async with room.presence_lock:
                now = online.get(room.booking_id, set())
                for user_id in now - room.online:
                    self._presence_frame(room, user_id, True)
                for user_id in room.online - now:
                    self._presence_frame(room, user_id, False)
                room.online = now

    def _presence_frame(self, room: Room, user_id: int, online: bool) -> None:
        frame = dumps(
            {
                "type": "presence",
                "booking_id": room.booking_id,
                "user_id": user_id,
                "online": online,
            }
        )
        self._to_room(room.booking_id, frame, skip_user=user_id)

    async def refresh_presence(self) -> None:
        """Re-announce this process's users (their entries lapse otherwise) and notice users
        of crashed processes going offline."""
        entries: Iterable[tuple[int, int]] = list(self._present)
        try:
            await self.broker.presence_refresh(entries)
        except Exception as exc:
            log.warning("presence: refreshing failed: %r", exc)
        await self._recompute_presence(list(self.rooms.values()))

    async def run_presence_heartbeat(self) -> None:
        interval = self.presence_ttl / 3
        while True:
            started = time.monotonic()
            await self.refresh_presence()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
