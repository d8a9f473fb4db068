"""This process's live chat: its connections, and the fan-out of every committed event to them and
to the other processes.

Every event goes the same way: delivered to this process's connections first, then handed to the
broker, which carries it to the other processes, whose hubs deliver it to theirs (`on_remote`).
The chat's use cases (nanny/chat/messages.py) hand their committed messages and read marks here;
status changes of bookings come through nanny.events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import asyncpg

from nanny.access import is_participant
from nanny.cache import PartyCache, TtlCache
from nanny.chat.access import no_such_booking, require_participant
from nanny.db import chat as db_chat
from nanny.encoding import dumps
from nanny.media.urls import MediaUrls
from nanny.metrics import Metrics
from nanny.tasks import TaskSet
from nanny.ws.broker import Broker, EventKind
from nanny.ws.connection import CLOSE_GOING_AWAY, CLOSE_UNAUTHORIZED, Connection
from nanny.ws.feeds import UserFeeds
from nanny.ws.limits import WsLimits
from nanny.ws.presence import Presence
from nanny.ws.rooms import RoomRegistry, message_frame

log = logging.getLogger("nanny.ws")


class ChatHub:
    def __init__(
        self,
        broker: Broker,
        limits: WsLimits,
        *,
        pool: asyncpg.Pool,
        user_cache: TtlCache,
        public_cache: TtlCache,
        booking_cache: PartyCache,
        metrics: Metrics,
        presence_ttl: float,
        urls: MediaUrls,
    ):
        self.broker = broker
        self.limits = limits
        self._pool = pool
        self._user_cache = user_cache
        self._public_cache = public_cache
        self._booking_cache = booking_cache
        # Booking changes not yet confirmed by the other processes: one publish carries all
        # that came while the previous one was on its way (None: every user's).
        self._changed_users: set[int] | None = set()
        self._changes_sent: asyncio.Future | None = None
        self._sending_changes = False
        self._metrics = metrics
        self._presence_ttl = presence_ttl
        self._tasks = TaskSet()
        self.connections: set[Connection] = set()
        self.presence = Presence(broker, self._tasks)
        self._urls = urls
        self.rooms = RoomRegistry(pool, broker, self.presence, limits, metrics, self._tasks, urls)
        self.feeds = UserFeeds(broker, self._tasks)
        self._all_gone = asyncio.Event()
        self._all_gone.set()
        self.closing = False
        self._broker_seen = False
        broker.bind(self.on_remote, self.resync)

    # -- connections ---------------------------------------------------------------------

    @contextlib.contextmanager
    def open_connection(self, conn: Connection) -> Iterator[None]:
        """The connection counts as open here (and in the socket gauge) while this is held."""
        self.connections.add(conn)
        self._all_gone.clear()
        self._metrics.websocket_opened()
        try:
            yield
        finally:
            self.connections.discard(conn)
            self._metrics.websocket_closed()
            if not self.connections:
                self._all_gone.set()

    async def user_changed(
        self,
        user_id: int,
        *,
        deleted: bool = False,
        ended_token: str | None = None,
        generation: int | None = None,
    ) -> None:
        """A user's row changed (sitter approval, rejection, deletion, a token ended): every
        process forgets its cached copy and closes with 4001 the user's sockets that a deleted
        account held, or that were signed in with `ended_token` (signed out) or with another
        token generation than `generation` (the user's now, after a password change), before
        this returns (the broker waits for every process's receipt), so a right taken away is
        gone everywhere by the time the change is answered."""
        self._user_changed_here(user_id, deleted, ended_token, generation)
        header = {"k": EventKind.USER, "u": user_id, "d": deleted}
        if ended_token is not None:
            header["t"] = ended_token
        if generation is not None:
            header["g"] = generation
        await self.broker.publish_confirmed(header)

    def _user_changed_here(
        self, user_id: int, deleted: bool, ended_token: str | None, generation: int | None
    ) -> None:
        self._user_cache.forget(user_id)
        # Public answers show users' names and only approved, undeleted sitters.
        self._public_cache.clear()
        if deleted:
            # The account's name and contacts are gone from the bookings of its other parties.
            self._booking_cache.clear()
        for conn in list(self.feeds.connections(user_id)):
            if deleted:
                conn.close(CLOSE_UNAUTHORIZED, "the account no longer exists")
            elif conn.holds_ended_token(ended_token, generation):
                conn.close(CLOSE_UNAUTHORIZED, "the token was ended")

    async def public_changed(self) -> None:
        """What a public read answers changed: every process forgets its cached answers
        before this returns (as for a user change, the broker waits for the receipts)."""
        self._public_cache.clear()
        await self.broker.publish_confirmed({"k": EventKind.PUBLIC})

    async def bookings_changed(self, user_ids: Iterable[int] | None) -> None:
        """Bookings of these users (None: of anyone) changed: every process outdates what it
        keeps of them (nanny.cache.PartyCache) before this returns, as for a user change. The
        changes made while one confirmation is on its way share the next. Nothing to do when
        the deployment keeps no bookings (BOOKING_CACHE_SECONDS=0, as every process is set)."""
        users = None if user_ids is None else set(user_ids)
        if self._booking_cache.ttl <= 0 or (users is not None and not users):
            return
        self._booking_cache_changed(users)
        if self._changed_users is not None:
            if users is None:
                self._changed_users = None
            else:
                self._changed_users |= users
        if self._changes_sent is None:
            self._changes_sent = asyncio.get_running_loop().create_future()
            if not self._sending_changes:
                self._sending_changes = True
                self._tasks.spawn(self._send_booking_changes())
        # A cancelled request must not cancel the confirmation others wait on.
        await asyncio.shield(self._changes_sent)

    async def _send_booking_changes(self) -> None:
        try:
            while self._changes_sent is not None:
                users, self._changed_users = self._changed_users, set()
                sent, self._changes_sent = self._changes_sent, None
                header: dict[str, Any] = {"k": EventKind.BOOKINGS}
                if users is not None:
                    header["u"] = sorted(users)
                try:
                    await self.broker.publish_confirmed(header)
                except Exception:
                    log.exception("publishing a change of bookings failed")
                finally:
                    sent.set_result(None)
        finally:
            self._sending_changes = False
            if self._changes_sent is not None:  # cancelled (the hub stops): nobody waits on
                self._changes_sent.set_result(None)
                self._changes_sent = None

    def _booking_cache_changed(self, users: set[int] | None) -> None:
        if users is None:
            self._booking_cache.clear()
        else:
            self._booking_cache.changed(users)

    async def shutdown(self) -> None:
        """Close every socket with 1001 once its in-flight frame is handled."""
        self.closing = True
        for conn in list(self.connections):
            conn.request_shutdown()
            if not conn.busy:
                conn.close(CLOSE_GOING_AWAY, "server shutting down")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_gone.wait(), timeout=self.limits.shutdown_grace)
        for conn in list(self.connections):
            conn.abort()

    async def stop(self) -> None:
        await self._tasks.cancel_all()

    # -- events of this process (the chat's fan-out) -------------------------------------

    def message_stored(self, message: db_chat.Message) -> None:
        frame = message_frame(message, self._urls)
        room = self.rooms.get(message.booking_id)
        if room is not None:
            self.rooms.offer(room, message.seq, frame)
        header = {"k": EventKind.MESSAGE, "b": message.booking_id, "s": message.seq}
        self.broker.publish(header, frame)

    def read_marked(self, booking_id: int, user_id: int, seq: int, origin: object) -> None:
        frame = dumps({"type": "read", "booking_id": booking_id, "user_id": user_id, "seq": seq})
        self.rooms.to_members(booking_id, frame, skip=origin)
        self.broker.publish({"k": EventKind.READ, "b": booking_id, "u": user_id}, frame)

    async def typing(self, conn: Connection, booking_id: int) -> None:
        room = self.rooms.get(booking_id)
        if room is None or booking_id not in conn.cursors:
            await require_participant(self._pool, conn.user_id, booking_id)
        elif not is_participant(room, conn.user_id):
            raise no_such_booking(booking_id)
        frame = dumps({"type": "typing", "booking_id": booking_id, "user_id": conn.user_id})
        self.rooms.to_members(booking_id, frame, skip_user=conn.user_id)
        self.broker.publish({"k": EventKind.TYPING, "b": booking_id, "u": conn.user_id}, frame)

    def booking_changed(self, booking: dict[str, Any]) -> None:
        """A committed status change, live to the room and to every connection of the
        booking's owner and sitter."""
        frame = dumps({"type": "booking", "booking": booking})
        booking_id = booking["booking_id"]
        parties = [u for u in (booking.get("owner_id"), booking.get("sitter_id")) if u]
        recipients: set[Connection] = set()
        room = self.rooms.get(booking_id)
        if room is not None:
            recipients.update(room.members)
        for user_id in parties:
            recipients.update(self.feeds.connections(user_id))
        for conn in recipients:
            conn.send(frame)
        # Elsewhere the parties' sockets hear it on their user's channel, and the room's other
        # members (admins watching) on the room's: each socket gets it once, and a process
        # reads it only if one of its sockets wants it.
        self.broker.publish({"k": EventKind.BOOKING, "b": booking_id, "u": parties}, frame)
        for user_id in parties:
            self.broker.publish({"k": EventKind.BOOKING, "b": booking_id, "to": user_id}, frame)

    def availability_changed(self, sitter_id: int) -> None:
        """The sitter's schedule or time off changed: live to every connection of the sitter,
        here and in the other processes (its pages re-read the calendar)."""
        frame = dumps({"type": "availability", "sitter_id": sitter_id})
        self.feeds.send(sitter_id, frame)
        self.broker.publish({"k": EventKind.AVAILABILITY, "to": sitter_id}, frame)

    # -- events of other processes -------------------------------------------------------

    def on_remote(self, header: dict[str, Any], frame: str) -> None:
        kind = header.get("k")
        if kind == EventKind.BOOKING:
            self._booking_from_remote(header, frame)
            return
        if kind == EventKind.AVAILABILITY:
            self.feeds.send(header["to"], frame)
            return
        if kind == EventKind.USER:
            ended_token, generation = header.get("t"), header.get("g")
            self._user_changed_here(
                header["u"],
                bool(header.get("d")),
                ended_token if isinstance(ended_token, str) else None,
                generation if isinstance(generation, int) else None,
            )
            return
        if kind == EventKind.PUBLIC:
            self._public_cache.clear()
            return
        if kind == EventKind.BOOKINGS:
            users = header.get("u")
            self._booking_cache_changed(set(users) if isinstance(users, list) else None)
            return
        room = self.rooms.get(header.get("b", 0))
        if room is None:
            return
        if kind == EventKind.MESSAGE:
            self.rooms.offer(room, header["s"], frame)
        elif kind == EventKind.TYPING:
            self.rooms.to_members(room.booking_id, frame, skip_user=header.get("u"))
        elif kind == EventKind.READ:
            self.rooms.to_members(room.booking_id, frame)
        elif kind == EventKind.PRESENCE:
            self.presence.changed_elsewhere(room)

    def _booking_from_remote(self, header: dict[str, Any], frame: str) -> None:
        if "to" in header:
            self.feeds.send(header["to"], frame)
            return
        # The room's copy: for its members who are neither party (admins watching).
        room = self.rooms.get(header["b"])
        if room is None:
            return
        parties = header.get("u") or ()
        for conn in room.members:
            if conn.user_id not in parties:
                conn.send(frame)

    async def resync(self) -> None:
        """After the broker was away: catch every room up from the database."""
        if self._broker_seen:  # the first connection is not a reconnect
            self._metrics.broker_reconnected()
            # Changes published while we were away were not heard: read them afresh.
            self._user_cache.clear()
            self._public_cache.clear()
            self._booking_cache.clear()
        self._broker_seen = True
        await self.rooms.catch_up()
        await self.presence.refresh(self.rooms.all())

    async def run_presence_heartbeat(self) -> None:
        interval = self._presence_ttl / 3
        while True:
            started = time.monotonic()
            await self.presence.refresh(self.rooms.all())
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
