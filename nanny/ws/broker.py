"""Fan-out of room events between server processes, and where presence is kept.

The hub always delivers an event to its own process's connections first and then hands it to
the broker, which carries it to the other processes only. Two implementations:

- `InProcessBroker` (here): one process, no Redis; publishing has nowhere to go, presence is a
  dict.
- `RedisBroker` (nanny/ws/redis_broker.py): Redis pub/sub, with a presence set per room
  (nanny/ws/redis_presence.py).

An event on the wire is a small JSON header line (origin process, kind, booking, seq, user)
and the client frame's text, which receivers pass to their clients untouched."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from typing import Any

import orjson


class EventKind(StrEnum):
    """The header's `k`: what happened."""

    MESSAGE = "m"  # a message was stored ("b" booking, "s" seq)
    READ = "r"  # a read mark moved ("b", "u" user)
    TYPING = "t"  # someone is typing ("b", "u")
    PRESENCE = "p"  # someone came or went in a room: re-read who is online ("b")
    BOOKING = "b"  # a booking's status changed ("b"; "u" its parties, or "to" one of them)
    # a user changed or was deleted ("u", "d" deleted, "t" a token signed out, "g" the token
    # generation now; "c" a receipt is awaited)
    USER = "u"
    PUBLIC = "pub"  # what a public read shows changed: forget the cached answers ("c")
    # bookings changed: outdate the cached answers showing those of "u" (absent: anyone's) ("c")
    BOOKINGS = "bk"
    RECEIPT = "ack"  # a process handled the confirmed event "c"
    AVAILABILITY = "a"  # a sitter's schedule or time off changed ("to" the sitter)


# Kept for after a Redis outage: messages, read marks, booking events and user changes matter
# after the fact; typing and presence pings are worthless once stale (presence is re-read
# anyway), and so are receipts (their publisher stopped waiting).
KEPT_WHILE_DOWN = frozenset(
    {EventKind.MESSAGE, EventKind.READ, EventKind.BOOKING, EventKind.USER, EventKind.AVAILABILITY}
)
# Kinds every process hears on one shared channel (user, public-read and booking changes reach
# every process's caches, and their receipts the process waiting for them). An event addressed
# to a user ("to") goes to that user's channel; the others to their room's.
SHARED_KINDS = frozenset({EventKind.USER, EventKind.PUBLIC, EventKind.BOOKINGS, EventKind.RECEIPT})
# How long a process waits for the others to confirm a user change before answering anyway.
CONFIRM_TIMEOUT = 2.0

RemoteHandler = Callable[[dict[str, Any], str], None]
ResyncHandler = Callable[[], Awaitable[None]]


def encode_event(header: dict[str, Any], frame: str) -> bytes:
    return orjson.dumps(header) + b"\n" + frame.encode()


def decode_event(data: bytes) -> tuple[dict[str, Any], str]:
    head, _, frame = data.partition(b"\n")
    return orjson.loads(head), frame.decode()


class Broker:
    """What the hub needs from a broker."""

    origin: str
    connected: bool = True

    def bind(self, on_remote: RemoteHandler, on_resync: ResyncHandler) -> None:
        self._on_remote = on_remote
        self._on_resync = on_resync

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def subscribe_room(self, booking_id: int) -> None:
        """Return once events of the room published from now on will be heard (or, while the
        broker is down, at once: the resync after reconnecting covers the room)."""

    def unsubscribe_room(self, booking_id: int) -> None:
        pass

    async def subscribe_user(self, user_id: int) -> None:
        """Return once events addressed to the user (header "to") will be heard."""

    def unsubscribe_user(self, user_id: int) -> None:
        pass

    def publish(self, header: dict[str, Any], frame: str) -> None:
        """Hand an event to the other processes; never blocks, never raises."""

    async def publish_confirmed(self, header: dict[str, Any]) -> None:
        """Hand a shared event to the other processes and return once each has handled it (or
        after CONFIRM_TIMEOUT): a change that takes a right away holds everywhere by then. One
        process alone has nobody to tell."""

    async def presence_add(self, booking_id: int, user_id: int) -> None:
        raise NotImplementedError

    async def presence_remove(self, booking_id: int, user_id: int) -> None:
        raise NotImplementedError

    async def presence_refresh(self, entries: Iterable[tuple[int, int]]) -> None:
        pass

    async def presence_online(self, booking_ids: list[int]) -> dict[int, set[int]]:
        raise NotImplementedError


class InProcessBroker(Broker):
    def __init__(self) -> None:
        self.origin = uuid.uuid4().hex[:12]
        self._present: dict[int, set[int]] = {}

    async def presence_add(self, booking_id: int, user_id: int) -> None:
        self._present.setdefault(booking_id, set()).add(user_id)

    async def presence_remove(self, booking_id: int, user_id: int) -> None:
        users = self._present.get(booking_id)
        if users is not None:
            users.discard(user_id)
            if not users:
                del self._present[booking_id]

    async def presence_online(self, booking_ids: list[int]) -> dict[int, set[int]]:
        return {b: set(self._present.get(b, ())) for b in booking_ids}
