"""Typed application keys: all state hangs off the app through these."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from nanny.cache import TtlCache
from nanny.config import Settings

if TYPE_CHECKING:  # these modules read their keys from here
    from nanny.inflight import InFlight
    from nanny.metrics import Metrics
    from nanny.ratelimit import RateLimiter
    from nanny.ws.limits import WsLimits
    from nanny.ws.rooms import ChatHub

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
# bcrypt and other CPU-heavy work run here, never on the event loop.
CPU_EXECUTOR = web.AppKey("cpu_executor", ThreadPoolExecutor)
# The requests this process is handling (nanny.inflight), finished or refused at shutdown.
IN_FLIGHT: web.AppKey[InFlight] = web.AppKey("in_flight")
# A bcrypt hash at the configured cost that an unknown e-mail's login is checked against.
DUMMY_HASH = web.AppKey("dummy_hash", bytes)
# name -> coroutine function raising when that part is down; GET /api/health runs them all.
HEALTH_CHECKS = web.AppKey("health_checks", dict)

# The app's own Prometheus registry and metric objects (nanny.metrics.Metrics).
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
# The rate limiter every process shares: Redis when configured, else in-process (nanny.ratelimit).
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
# Public search answers, per process (nanny.cache); cleared by local writes that change them.
SEARCH_CACHE = web.AppKey("search_cache", TtlCache)
# The live chat: this process's rooms and connections, and the WebSocket limits in force.
CHAT_HUB: web.AppKey[ChatHub] = web.AppKey("chat_hub")
WS_LIMITS: web.AppKey[WsLimits] = web.AppKey("ws_limits")
# Live users by id, per process (nanny.http.security.current_user); cleared by local user writes.
USER_CACHE = web.AppKey("user_cache", TtlCache)
