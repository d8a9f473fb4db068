"""Typed application keys: all state hangs off the app through these.

What the keys hold is built by modules that take their dependencies as arguments and never
read the app themselves, so this module imports them without a cycle (tests/test_imports.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import asyncpg
from aiohttp import web

from nanny.cache import PartyCache, TtlCache
from nanny.catalogs import I18n
from nanny.chat.messages import Chat
from nanny.config import Settings
from nanny.inflight import InFlight
from nanny.media.library import MediaLibrary
from nanny.media.urls import MediaUrls
from nanny.metrics import Metrics
from nanny.ratelimit_backends import RateLimitBackend
from nanny.ws.hub import ChatHub
from nanny.ws.limits import WsLimits
from nanny.ws.protocol import CommandRegistry

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
# bcrypt and other CPU-heavy work run here, never on the event loop.
CPU_EXECUTOR = web.AppKey("cpu_executor", ThreadPoolExecutor)
# The requests this process is handling (nanny.inflight), finished or refused at shutdown.
IN_FLIGHT = web.AppKey("in_flight", InFlight)
# A bcrypt hash at the configured cost that an unknown e-mail's login is checked against.
DUMMY_HASH = web.AppKey("dummy_hash", bytes)
# name -> coroutine function raising when that part is down; GET /api/health runs them all.
HEALTH_CHECKS = web.AppKey("health_checks", dict)

# The app's own Prometheus registry and metric objects.
METRICS = web.AppKey("metrics", Metrics)
# Where the rate limits' counts are kept: Redis when configured, else in-process.
RATE_LIMITER: web.AppKey[RateLimitBackend] = web.AppKey("rate_limiter")
# Public reads (search, a sitter's reviews, rating and services, a service), per process
# (nanny.cache, nanny.http.public); emptied on every process by each write that changes them.
SEARCH_CACHE = web.AppKey("search_cache", TtlCache)
# The chat's use cases, shared by REST and WebSocket (nanny.chat).
CHAT = web.AppKey("chat", Chat)
# The live chat: this process's connections, rooms and fan-out, the frame types it answers and
# the WebSocket limits in force.
CHAT_HUB = web.AppKey("chat_hub", ChatHub)
WS_COMMANDS = web.AppKey("ws_commands", CommandRegistry)
WS_LIMITS = web.AppKey("ws_limits", WsLimits)
# Live users by id, per process (nanny.http.security.current_user); cleared by local user writes.
USER_CACHE = web.AppKey("user_cache", TtlCache)
# Bookings and booking lists as read, outdated on every process by each change (ChatHub).
BOOKING_CACHE = web.AppKey("booking_cache", PartyCache)
# The compiled catalogs and one template environment per language (nanny.catalogs, nanny.i18n).
I18N = web.AppKey("i18n", I18n)
# Photos: their use cases, storage and image worker (nanny.media.library), and the signer of
# their URLs.
MEDIA = web.AppKey("media", MediaLibrary)
MEDIA_URLS = web.AppKey("media_urls", MediaUrls)
