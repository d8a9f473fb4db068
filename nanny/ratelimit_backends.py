"""Where the rate limits' fixed-window counts are kept: in Redis, shared by every process and host
of a deployment (INCR and EXPIRE in one MULTI round trip), or in this process, which is exact
for the single-process embedded setup. nanny/ratelimit.py decides what is counted.

A count hit many times a window by one key (chat messages) is kept by `hit_often`: in Redis too,
but sent there in batches. Its first hit of a window and every hit past half the limit go to
Redis at once (with what this process had not sent yet), so a key far from its limit costs no
round trip and one near it is counted exactly; across processes a key can pass its limit by
what the other processes counted in their last FLUSH_INTERVAL and had not sent.

If Redis fails while counting, the event is allowed (and a warning logged): rate limits protect
the service, they must not take login down with Redis."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
import redis.exceptions

from nanny.config import RateLimit
from nanny.tasks import TaskSet

log = logging.getLogger("nanny.ratelimit")

# How long hit_often keeps counts in this process before sending them to Redis.
FLUSH_INTERVAL = 0.25


@dataclass(frozen=True, slots=True)
class _Known:
    total: int  # the slot's count in Redis when it last answered
    ends_at: float  # when the slot's window ends


@dataclass(slots=True)
class _Unsent:
    amount: int  # hits counted here and not yet sent to Redis
    ends_at: float


class RateLimitBackend(Protocol):
    """Where the counts are kept."""

    async def hit(self, key: str, limit: RateLimit) -> int:
        """Count one event for `key`; 0 when within `limit`, else seconds until it resets."""

    async def hit_often(self, key: str, limit: RateLimit) -> int:
        """`hit`, for a key counted many times a window: may be counted in batches."""

    async def close(self) -> None: ...


def _window(now: float, limit: RateLimit) -> tuple[int, int]:
    """The current window's index and the whole seconds until it ends (at least 1)."""
    index = int(now // limit.seconds)
    return index, max(1, math.ceil((index + 1) * limit.seconds - now))


class InProcessRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._counts: dict[str, tuple[int, int, float]] = {}  # key -> (window, count, ends_at)
        self._prune_at = 10_000

    async def hit(self, key: str, limit: RateLimit) -> int:
        now = self._clock()
        window, retry_after = _window(now, limit)
        slot = f"{key}:{limit.seconds}"
        seen_window, count, _ = self._counts.get(slot, (window, 0, 0.0))
        count = count + 1 if seen_window == window else 1
        self._counts[slot] = (window, count, now + retry_after)
        if len(self._counts) >= self._prune_at:
            self._prune(now)
        return retry_after if count > limit.count else 0

    hit_often = hit  # in one process every count is exact and costs nothing

    def _prune(self, now: float) -> None:
        # Amortised: drop finished windows only when the table has doubled since the last sweep.
        self._counts = {k: v for k, v in self._counts.items() if v[2] > now}
        self._prune_at = max(10_000, 2 * len(self._counts))

    async def close(self) -> None:
        self._counts.clear()


class RedisRateLimiter:
    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        *,
        prefix: str,
        clock: Callable[[], float] = time.time,
    ):
        self._redis = client
        # REDIS_PREFIX first, like every other key and channel of the deployment.
        self._prefix = f"{prefix}:rl:{namespace}"
        self._clock = clock
        self._warned_at = 0.0
        # hit_often's counts: per slot, the total Redis last told and what it has not been sent
        self._known: dict[str, _Known] = {}
        self._unsent: dict[str, _Unsent] = {}
        self._answer: asyncio.Future[dict[str, int]] | None = None  # the next flush's counts
        self._flusher: asyncio.TimerHandle | None = None
        self._flushes = TaskSet()
        self.round_trips = 0

    def _slot(self, key: str, limit: RateLimit) -> tuple[str, int]:
        window, retry_after = _window(self._clock(), limit)
        return f"{self._prefix}:{key}:{limit.seconds}:{window}", retry_after

    async def hit(self, key: str, limit: RateLimit) -> int:
        slot, retry_after = self._slot(key, limit)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(slot)
                pipe.expire(slot, limit.seconds + 1)
                self.round_trips += 1
                count, _ = await pipe.execute()
        except (OSError, redis.exceptions.RedisError) as exc:
            self._failed(exc)
            return 0
        return retry_after if count > limit.count else 0

    async def hit_often(self, key: str, limit: RateLimit) -> int:
        slot, retry_after = self._slot(key, limit)
        unsent = self._unsent.get(slot)
        if unsent is None:
            unsent = self._unsent[slot] = _Unsent(0, self._clock() + retry_after)
        unsent.amount += 1
        known = self._known.get(slot)
        if known is not None and known.total + unsent.amount <= limit.count // 2:
            self._flush_in(FLUSH_INTERVAL)
            return 0
        # New to this process this window, or past half its limit: counted in Redis now, in
        # one round trip with every other such hit of this turn of the loop.
        if self._answer is None:
            self._answer = asyncio.get_running_loop().create_future()
        answer = self._answer
        self._flush_in(0)
        count = (await asyncio.shield(answer)).get(slot, 0)
        return retry_after if count > limit.count else 0

    def _flush_in(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + seconds
        if self._flusher is not None:
            if self._flusher.when() <= due:
                return
            self._flusher.cancel()
        self._flusher = loop.call_at(due, self._start_flush)

    def _start_flush(self) -> None:
        self._flusher = None
        self._flushes.spawn(self.flush())

    async def flush(self) -> None:
        """Send every unsent count to Redis in one round trip, tell the hits waiting for it
        their slots' counts, and forget finished windows."""
        unsent, self._unsent = self._unsent, {}
        answer, self._answer = self._answer, None
        now = self._clock()
        self._known = {slot: k for slot, k in self._known.items() if k.ends_at > now}
        counts: dict[str, int] = {}
        try:
            if unsent:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for slot, u in unsent.items():
                        pipe.incrby(slot, u.amount)
                        pipe.expire(slot, max(1, math.ceil(u.ends_at - now)) + 1)
                    self.round_trips += 1
                    results = await pipe.execute()
                counts = dict(zip(unsent, results[::2], strict=True))
        except (OSError, redis.exceptions.RedisError) as exc:
            self._failed(exc)  # the counts are dropped: allowed, as with every Redis failure
        finally:
            for slot, count in counts.items():
                self._known[slot] = _Known(count, unsent[slot].ends_at)
            if answer is not None and not answer.done():
                answer.set_result(counts)

    def _failed(self, exc: BaseException) -> None:
        now = self._clock()
        if now - self._warned_at > 10:  # one line per outage burst, not one per request
            self._warned_at = now
            log.warning("rate limits not enforced: Redis failed: %r", exc)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await asyncio.gather(*self._flushes.pending(), return_exceptions=True)
        await self.flush()
        await self._redis.aclose()
