"""Rate limits shared by every process: a fixed-window counter per (limit, key), what is counted
and the 429 when a count is over its limit.

With `REDIS_URL` the counters live in Redis, so all processes and hosts of a deployment share
them (keys are namespaced by the database name); without it they live in this process
(nanny/ratelimit_backends.py). A fixed window lets a client spend up to twice the limit across
a window boundary; for limits meant to stop scripts that is an acceptable price for one round
trip and an exact `Retry-After`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from nanny.client_address import client_address
from nanny.config import RateLimit
from nanny.errors import RateLimited
from nanny.keys import HEALTH_CHECKS, METRICS, RATE_LIMITER, SETTINGS
from nanny.ratelimit_backends import InProcessRateLimiter, RedisRateLimiter
from nanny.startup import describe, retry_async

REDIS_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
# Redis should answer a counter in well under a millisecond; give up fast and let the request in.
REDIS_TIMEOUT = 1.0


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


async def enforce(
    app: web.Application, name: str, key: str, limit: RateLimit, *, often: bool = False
) -> None:
    """Count one event against limit `name` for `key`; 429 `rate_limited` when over it.
    `often`: the key is counted many times a window, and may be counted in batches."""
    if not app[SETTINGS].rate_limit_enabled:  # load tests and benchmarks only
        return
    limiter = app[RATE_LIMITER]
    hit = limiter.hit_often if often else limiter.hit
    retry_after = await hit(f"{name}:{key}", limit)
    if retry_after:
        app[METRICS].limit_hit(name)
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


async def check_chat_message_rate(app: web.Application, user_id: int) -> None:
    """Call before storing a chat message of `user_id`, whichever door it came in by (REST or
    a WebSocket `send`): one budget for both, shared by every process; RateLimited when over.
    Counted in batches: a message costs no Redis round trip until its sender nears the limit."""
    limit = app[SETTINGS].rate_chat_messages_per_user
    await enforce(app, "chat_message_user", str(user_id), limit, often=True)
