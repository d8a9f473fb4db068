"""Who is online in each room, on every process.

A participant is present in a room while one of their connections, on any process, is
subscribed to it (an admin watching is not present). This process holds one entry per
(room, user) in the broker's presence set, from its user's first connection in the room until
the last one leaves, and re-announces its entries every ttl/3 so those of a crashed process
lapse. Members are told about each change by comparing who is online with what they were told
last, so repeated or crossing recomputations are harmless."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from nanny.encoding import dumps
from nanny.tasks import TaskSet
from nanny.ws.broker import Broker, EventKind
from nanny.ws.rooms import Room
from nanny.ws.subscriptions import Subscriptions

log = logging.getLogger("nanny.ws")


class Presence:
    def __init__(self, broker: Broker, tasks: TaskSet):
        self._broker = broker
        self._tasks = tasks
        # (booking_id, user_id): this process's entries
        self._entries: Subscriptions[tuple[int, int], Room] = Subscriptions(
            self._enter, self._leave, tasks
        )
        self._dirty: set[Room] = set()
        self._recomputing = False

    @contextlib.asynccontextmanager
    async def hold(self, room: Room, user_id: int) -> AsyncIterator[None]:
        """The user is online in the room while this is held; `room.online` includes them
        (and every other member knows) once it is entered."""
        async with self._entries.hold((room.booking_id, user_id), room):
            await self.recompute([room])
            yield

    async def _enter(self, key: tuple[int, int], room: Room) -> Room:
        await self._announce(self._broker.presence_add, key, "adding")
        return room

    async def _leave(self, key: tuple[int, int], room: Room) -> None:
        await self._announce(self._broker.presence_remove, key, "removing")
        if room.members and not room.closed:
            await self.recompute([room])

    async def _announce(
        self, change: Callable[[int, int], Awaitable[None]], key: tuple[int, int], doing: str
    ) -> None:
        """Change the broker's entry and tell the other processes to re-read the room."""
        booking_id, user_id = key
        try:
            await change(booking_id, user_id)
        except Exception as exc:
            log.warning("presence: %s user %s failed: %r", doing, user_id, exc)
        self._broker.publish({"k": EventKind.PRESENCE, "b": booking_id}, "")

    def changed_elsewhere(self, room: Room) -> None:
        """Another process announced a change in the room. Joins come in bursts (a process
        restarting, clients reconnecting): the rooms touched meanwhile are recomputed
        together, in one broker round trip."""
        self._dirty.add(room)
        if not self._recomputing:
            self._recomputing = True
            self._tasks.spawn(self._recompute_dirty())

    async def _recompute_dirty(self) -> None:
        try:
            while self._dirty:
                rooms = [r for r in self._dirty if not r.closed]
                self._dirty.clear()
                await self.recompute(rooms)
        finally:
            self._recomputing = False

    async def recompute(self, rooms: list[Room]) -> None:
        """Tell each room's members who came online or went offline since they were told."""
        try:
            online = await self._broker.presence_online([r.booking_id for r in rooms])
        except Exception as exc:
            log.warning("presence: reading the online users failed: %r", exc)
            return
        for room in rooms:
            async with room.presence_lock:
                now = online.get(room.booking_id, set())
                for user_id in now - room.online:
                    _tell(room, user_id, True)
                for user_id in room.online - now:
                    _tell(room, user_id, False)
                room.online = now

    async def refresh(self, rooms: list[Room]) -> None:
        """Re-announce this process's entries (they lapse otherwise) and notice users of
        crashed processes going offline."""
        try:
            await self._broker.presence_refresh(self._entries.keys())
        except Exception as exc:
            log.warning("presence: refreshing failed: %r", exc)
        await self.recompute(rooms)


def _tell(room: Room, user_id: int, online: bool) -> None:
    frame = dumps(
        {"type": "presence", "booking_id": room.booking_id, "user_id": user_id, "online": online}
    )
    for conn in room.members:
        if conn.user_id != user_id:
            conn.send(frame)
