"""Rate limits shared by every process: a fixed-window counter per (limit, key).

With `REDIS_URL` the counters live in Redis (INCR and EXPIRE in one MULTI round trip), so all
processes and hosts of a deployment share them (keys are namespaced by the database name);
without it they live in this process, which is exact for the single-process embedded setup.
A fixed window lets a client spend up to twice the limit across a window boundary; for limits
meant to stop scripts that is an acceptable price for one round trip and an exact `Retry-After`.

If Redis fails while counting, the request is allowed (and a warning logged): rate limits protect
the service, they must not take login down with Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from nanny import metrics
from nanny.config import RateLimit
from nanny.errors import RateLimited
from nanny.http.client_address import client_address
from nanny.keys import HEALTH_CHECKS, RATE_LIMITER, SETTINGS
from nanny.startup import describe, retry_async

log = logging.getLogger("nanny.ratelimit")

REDIS_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
# Redis should answer a counter in well under a millisecond; give up fast and let the request in.
REDIS_TIMEOUT = 1.0


class RateLimiter(Protocol):
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


def deployment_namespace(database_url: str | None) -> str:
    """Counters are shared by the processes of one deployment, i.e. of one database; another
    deployment (staging beside production, or each test's own database) sharing the Redis keeps
    its own counts."""
    return urlsplit(database_url or "").path.strip("/") or "nanny"


async def rate_limiter_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    limiter: InProcessRateLimiter | RedisRateLimiter
    if settings.redis_url:
        client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            # One immediate retry covers a pooled connection that died with a Redis restart;
            # more would only delay the fail-open answer.
            retry=Retry(NoBackoff(), 1),
        )
        limiter = RedisRateLimiter(
            client, deployment_namespace(settings.database_url), prefix=settings.redis_prefix
        )
        # Start-up waits here for Redis, so the broker that starts after us finds it up.
        await retry_async(
            describe(settings.redis_url, "Redis"),
            limiter.ping,
            REDIS_TRANSIENT,
            settings.startup_timeout_seconds,
        )
        app[HEALTH_CHECKS].setdefault("redis", limiter.ping)
    else:
        limiter = InProcessRateLimiter()
    app[RATE_LIMITER] = limiter
    yield
    await limiter.close()


def _email_key(email: str) -> str:
    """The key of an address already in nanny.emails' normal form, as stored and looked up.
    Keys may sit in a shared Redis; keep addresses out of them."""
    return hashlib.sha256(email.encode()).hexdigest()[:32]


async def enforce(app: web.Application, name: str, key: str, limit: RateLimit) -> None:
    """Count one event against limit `name` for `key`; 429 `rate_limited` when over it."""
    if not app[SETTINGS].rate_limit_enabled:  # load tests and benchmarks only
        return
    retry_after = await app[RATE_LIMITER].hit(f"{name}:{key}", limit)
    if retry_after:
        metrics.rate_limited(app, name)
        raise RateLimited(
            f"Too many requests; try again in {retry_after} s",
            retry_after=retry_after,
            details={"limit": name, "retry_after": retry_after},
        )


async def check_login_rate(request: web.Request, email: str) -> None:
    settings = request.app[SETTINGS]
    await enforce(request.app, "login_ip", client_address(request), settings.rate_login_per_ip)
    await enforce(request.app, "login_email", _email_key(email), settings.rate_login_per_email)


async def check_register_rate(request: web.Request, email: str) -> None:
    settings = request.app[SETTINGS]
    address = client_address(request)
    await enforce(request.app, "register_ip", address, settings.rate_register_per_ip)
    await enforce(
        request.app, "register_email", _email_key(email), settings.rate_register_per_email
    )


async def check_booking_rate(request: web.Request, owner_id: int) -> None:
    """Call before creating a booking for `owner_id`; raises RateLimited (429) when over."""
    limit = request.app[SETTINGS].rate_bookings_per_owner
    await enforce(request.app, "booking_owner", str(owner_id), limit)


async def check_ws_connect_rate(app: web.Application, user_id: int) -> None:
    """Call before accepting a WebSocket for `user_id`; raises RateLimited (429) when over."""
    limit = app[SETTINGS].rate_ws_connect_per_user
    await enforce(app, "ws_connect_user", str(user_id), limit)
