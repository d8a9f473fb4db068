"""Where the rate limits' fixed-window counts are kept: in Redis, shared by every process and host
of a deployment (INCR and EXPIRE in one MULTI round trip), or in this process, which is exact
for the single-process embedded setup. nanny/ratelimit.py decides what is counted.

If Redis fails while counting, the event is allowed (and a warning logged): rate limits protect
the service, they must not take login down with Redis."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
import redis.exceptions

from nanny.config import RateLimit

log = logging.getLogger("nanny.ratelimit")


class RateLimitBackend(Protocol):
    """Where the counts are kept."""

    async def hit(self, key: str, limit: RateLimit) -> int:
        """Count one event for `key`; 0 when within `limit`, else seconds until it resets."""

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

    async def hit(self, key: str, limit: RateLimit) -> int:
        now = self._clock()
        window, retry_after = _window(now, limit)
        slot = f"{self._prefix}:{key}:{limit.seconds}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(slot)
                pipe.expire(slot, limit.seconds + 1)
                count, _ = await pipe.execute()
        except (OSError, redis.exceptions.RedisError) as exc:
            if now - self._warned_at > 10:  # one line per outage burst, not one per request
                self._warned_at = now
                log.warning("rate limits not enforced: Redis failed: %r", exc)
            return 0
        return retry_after if count > limit.count else 0

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
