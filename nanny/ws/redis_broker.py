"""The Redis broker: pub/sub between the processes and a presence set per room.

One channel per room with per-process reference counting (the hub subscribes when a room's
first local member joins and unsubscribes when the last one leaves, as encode/broadcaster does),
the same per signed-in user for booking events that reach a user's sockets outside the room,
and one shared channel every process hears for user changes. A process reads only the events
some local socket wants.

On a dropped connection it reconnects, re-subscribes every room still needed, and then asks the
hub to catch its rooms up from the database; events published meanwhile wait in an outbox
(messages, read marks and booking events) or are dropped (typing, presence: stale)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from nanny.ws.broker import (
    CONFIRM_TIMEOUT,
    KEPT_WHILE_DOWN,
    SHARED_KINDS,
    Broker,
    EventKind,
    decode_event,
    encode_event,
)
from nanny.ws.redis_presence import RedisPresence

log = logging.getLogger("nanny.ws.broker")

OUTBOX_LIMIT = 100_000


class _Receipts:
    """The processes' receipts of one confirmed event; some may come before Redis has said
    how many processes heard it."""

    __slots__ = ("done", "known", "missing")

    def __init__(self) -> None:
        self.missing = 0
        self.known = False
        self.done = asyncio.get_running_loop().create_future()

    def arrived(self) -> None:
        self.missing -= 1
        if self.known and self.missing <= 0 and not self.done.done():
            self.done.set_result(None)

    def expect(self, count: int) -> asyncio.Future:
        self.missing += count
        self.known = True
        if self.missing <= 0 and not self.done.done():
            self.done.set_result(None)
        return self.done


class RedisBroker(Broker):
    def __init__(self, url: str, *, prefix: str, presence_ttl: float):
        self.origin = uuid.uuid4().hex[:12]
        self.connected = False
        self._prefix = prefix
        no_retry = Retry(NoBackoff(), 0)
        # Commands (publish, presence) fail fast so a Redis outage never stalls a sender; a
        # burst of joins waits for one of a bounded set of connections instead of failing.
        self._command_pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=16,
            timeout=5,
            socket_connect_timeout=2,
            socket_timeout=3,
            retry=no_retry,
        )
        self._redis = aioredis.Redis(connection_pool=self._command_pool)
        self._presence = RedisPresence(
            self._redis, prefix=prefix, origin=self.origin, ttl=presence_ttl
        )
        # The subscriber connection blocks on reads for as long as it is quiet.
        self._sub_redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=None, retry=no_retry
        )
        self._shared_channel = f"{prefix}:shared"
        self._channels: set[str] = {self._shared_channel}
        self._confirmations: dict[str, asyncio.Future] = {}
        self._to_subscribe: list[str] = []
        self._pubsub: Any = None
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._outbox_ready = asyncio.Event()
        self._online = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self._drained: asyncio.Event | None = None
        # confirmation id -> the receipts awaited for it (publish_confirmed)
        self._receipts: dict[str, _Receipts] = {}

    def room_channel(self, booking_id: int) -> str:
        return f"{self._prefix}:room:{booking_id}"

    def user_channel(self, user_id: int) -> str:
        return f"{self._prefix}:user:{user_id}"

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="nanny-redis-listen"),
            asyncio.create_task(self._publish_outbox(), name="nanny-redis-publish"),
        ]
        # Serve even when Redis is down at start; the listener keeps trying.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._online.wait(), timeout=5)

    async def close(self) -> None:
        self._closing = True
        # Give queued events a moment to leave (shutdown closes sockets first).
        if self.connected and self._outbox:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout=2)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()
        await self._command_pool.disconnect()
        await self._sub_redis.aclose()

    async def ping(self) -> None:
        await self._redis.ping()
        if not self.connected:
            raise ConnectionError("the Redis subscriber connection is down")

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe_room(self, booking_id: int) -> None:
        await self._subscribe(self.room_channel(booking_id))

    def unsubscribe_room(self, booking_id: int) -> None:
        self._unsubscribe(self.room_channel(booking_id))

    async def subscribe_user(self, user_id: int) -> None:
        await self._subscribe(self.user_channel(user_id))

    def unsubscribe_user(self, user_id: int) -> None:
        self._unsubscribe(self.user_channel(user_id))

    async def _subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            return
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = confirmed
        # Sign-ins and joins come in bursts (clients reconnecting after a restart): one
        # SUBSCRIBE carries every channel asked for meanwhile.
        self._to_subscribe.append(channel)
        if len(self._to_subscribe) == 1:
            task = asyncio.create_task(self._send_subscribes(pubsub))
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), timeout=5)
        except TimeoutError:
            log.warning("subscribing to %s timed out; the reconnect will cover it", channel)

    async def _send_subscribes(self, pubsub: Any) -> None:
        await asyncio.sleep(0)  # let the other channels of this moment join
        channels, self._to_subscribe = self._to_subscribe, []
        try:
            await pubsub.subscribe(*channels)
        except (RedisError, OSError) as exc:
            log.warning(
                "subscribing to %d channels failed (%r); the reconnect will cover them",
                len(channels),
                exc,
            )
            for channel in channels:
                confirmed = self._confirmations.pop(channel, None)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)

    def _unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            task = asyncio.create_task(self._send_unsubscribe(pubsub, channel))
            self._tasks.append(task)
            task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def _send_unsubscribe(self, pubsub: Any, channel: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            # A channel left and re-joined meanwhile keeps its subscription: Redis runs the
            # commands of one connection in order, so the later SUBSCRIBE wins.
            if channel not in self._channels:
                await pubsub.unsubscribe(channel)

    async def _listen(self) -> None:
        backoff = 0.1
        while not self._closing:
            pubsub = self._sub_redis.pubsub()
            try:
                channels = list(self._channels)
                loop = asyncio.get_running_loop()
                waiting = [loop.create_future() for _ in channels]
                self._confirmations.update(zip(channels, waiting, strict=True))
                await pubsub.subscribe(*channels)
                self._pubsub = pubsub
                resync = asyncio.create_task(self._when_confirmed(waiting))
                self._tasks.append(resync)
                resync.add_done_callback(self._forget_task)
                async for message in pubsub.listen():
                    kind = message["type"]
                    if kind == b"message" or kind == "message":
                        self._deliver(message["data"])
                    elif kind in (b"subscribe", "subscribe"):
                        channel = message["channel"]
                        channel = channel.decode() if isinstance(channel, bytes) else channel
                        confirmed = self._confirmations.pop(channel, None)
                        if confirmed is not None and not confirmed.done():
                            confirmed.set_result(None)
                    backoff = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                if not self._closing:
                    log.warning("Redis subscriber connection lost (%r); reconnecting", exc)
            except Exception:
                log.exception("Redis listener failed; reconnecting")
            finally:
                self._pubsub = None
                self.connected = False
                self._online.clear()
                for confirmed in self._confirmations.values():
                    if not confirmed.done():
                        confirmed.cancel()
                self._confirmations.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _when_confirmed(self, waiting: list[asyncio.Future]) -> None:
        try:
            await asyncio.gather(*waiting)
        except asyncio.CancelledError:
            return  # the connection dropped again before every channel was confirmed
        self.connected = True
        self._online.set()
        log.info("Redis broker connected (origin %s); catching rooms up", self.origin)
        # Rooms joined while Redis was away, or whose events were lost with the old connection,
        # read what they missed from the database (a no-op on the first start).
        try:
            await self._on_resync()
        except Exception:
            log.exception("catching rooms up after a Redis reconnect failed")

    def _deliver(self, data: bytes) -> None:
        try:
            header, frame = decode_event(data)
        except (ValueError, UnicodeDecodeError):
            log.warning("ignoring a malformed event on the broker")
            return
        if header.get("o") == self.origin:
            return  # delivered locally when it was published
        if header.get("k") == EventKind.RECEIPT:
            receipts = self._receipts.get(header.get("c"))
            if receipts is not None:
                receipts.arrived()
            return
        try:
            self._on_remote(header, frame)
        except Exception:
            log.exception("handling a broker event failed")
        if "c" in header:  # its publisher waits until every process has handled it
            self.publish({"k": EventKind.RECEIPT, "c": header["c"]}, "")

    # -- publishing ----------------------------------------------------------------------

    async def publish_confirmed(self, header: dict[str, Any]) -> None:
        confirmation = uuid.uuid4().hex[:16]
        header |= {"o": self.origin, "c": confirmation}
        receipts = self._receipts[confirmation] = _Receipts()
        try:
            # Published at once, not through the outbox: Redis answers with how many
            # subscribers heard it, this process's own listener among them.
            heard = await self._redis.publish(self._shared_channel, encode_event(header, ""))
            others = heard - (1 if self.connected else 0)
            await asyncio.wait_for(receipts.expect(others), CONFIRM_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            # A process that missed it drops its whole cache once it hears Redis again.
            log.warning(
                "a shared change was not confirmed by every process (%s receipts missing): %r",
                receipts.missing if receipts.known else "all",
                exc,
            )
        finally:
            del self._receipts[confirmation]

    def publish(self, header: dict[str, Any], frame: str) -> None:
        header["o"] = self.origin
        kind = header["k"]
        if not self.connected and kind not in KEPT_WHILE_DOWN:
            return
        if "to" in header:
            channel = self.user_channel(header["to"])
        elif kind in SHARED_KINDS:
            channel = self._shared_channel
        else:
            channel = self.room_channel(header["b"])
        if len(self._outbox) >= OUTBOX_LIMIT:
            # The events are in the database; receivers fill gaps from there.
            self._outbox.popleft()
        self._outbox.append((channel, encode_event(header, frame)))
        self._outbox_ready.set()

    async def _publish_outbox(self) -> None:
        outbox = self._outbox
        while True:
            if not outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            await self._online.wait()
            batch = [outbox[i] for i in range(min(len(outbox), 500))]
            try:
                pipe = self._redis.pipeline(transaction=False)
                for channel, data in batch:
                    pipe.publish(channel, data)
                await pipe.execute()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("publishing %d events failed (%r); retrying", len(batch), exc)
                await asyncio.sleep(0.2)
                continue
            for _ in batch:
                outbox.popleft()
            if not outbox and self._drained is not None:
                self._drained.set()

    # -- presence ------------------------------------------------------------------------

    async def presence_add(self, booking_id: int, user_id: int) -> None:
        await self._presence.add(booking_id, user_id)

    async def presence_remove(self, booking_id: int, user_id: int) -> None:
        await self._presence.remove(booking_id, user_id)

    async def presence_refresh(self, entries: Iterable[tuple[int, int]]) -> None:
        await self._presence.refresh(entries)

    async def presence_online(self, booking_ids: list[int]) -> dict[int, set[int]]:
        return await self._presence.online(booking_ids)
