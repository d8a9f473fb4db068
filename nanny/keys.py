"""Typed application keys: all state hangs off the app through these."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import asyncpg
from aiohttp import web

from nanny.config import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
# bcrypt and other CPU-heavy work run here, never on the event loop.
CPU_EXECUTOR = web.AppKey("cpu_executor", ThreadPoolExecutor)
# name -> coroutine function raising when that part is down; GET /api/health runs them all.
HEALTH_CHECKS = web.AppKey("health_checks", dict)
