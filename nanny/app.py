"""The application factory: all wiring happens here."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp_jinja2
import jinja2
from aiohttp import web

from nanny import PROJECT_ROOT
from nanny.config import Settings
from nanny.db.pool import create_pool
from nanny.events import BOOKING_LISTENERS
from nanny.expiry import expiry_ctx
from nanny.http import admin_charts, auth, bookings, health, pages, payments, pets, services
from nanny.http.middlewares import error_middleware
from nanny.keys import CPU_EXECUTOR, HEALTH_CHECKS, POOL, SETTINGS

log = logging.getLogger("nanny")

MAX_BODY_BYTES = 1024 * 1024


async def cpu_executor_ctx(app: web.Application) -> AsyncIterator[None]:
    # Leave a core for the event loop: a login burst queues here instead of starving requests.
    workers = max(1, (os.cpu_count() or 2) // 2)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nanny-cpu")
    app[CPU_EXECUTOR] = executor
    yield
    executor.shutdown(wait=True, cancel_futures=True)


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = await create_pool(
        settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
    )
    app[POOL] = pool

    async def check_db() -> None:
        await pool.fetchval("SELECT 1")

    app[HEALTH_CHECKS]["db"] = check_db
    yield
    await pool.close()


def setup_pages(app: web.Application) -> None:
    """Templates (autoescaped: user data is never markup) and the static scripts and styles."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(PROJECT_ROOT / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    # append_version puts a content hash in every static URL, so a deploy is never half-cached.
    app.router.add_static("/static/", PROJECT_ROOT / "static", name="static", append_version=True)


def create_app(settings: Settings) -> web.Application:
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url (the CLI finds one)")
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app[HEALTH_CHECKS] = {}
    app[BOOKING_LISTENERS] = []
    app.cleanup_ctx.append(cpu_executor_ctx)
    app.cleanup_ctx.append(pool_ctx)
    app.cleanup_ctx.append(expiry_ctx)
    app.add_routes(auth.routes)
    app.add_routes(health.routes)
    app.add_routes(pets.routes)
    app.add_routes(services.routes)
    app.add_routes(bookings.routes)
    app.add_routes(payments.routes)
    app.add_routes(admin_charts.routes)
    app.add_routes(pages.routes)
    setup_pages(app)
    return app
