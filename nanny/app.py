"""The application factory: all wiring happens here."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp_jinja2
import jinja2
from aiohttp import web

from nanny import PROJECT_ROOT, i18n, inflight, metrics, ratelimit
from nanny.cache import PartyCache, TtlCache
from nanny.config import Settings
from nanny.db.pool import create_pool
from nanny.events import AVAILABILITY_LISTENERS, BOOKING_LISTENERS, LATER
from nanny.expiry import expiry_ctx
from nanny.http import (
    admin,
    admin_charts,
    api_docs,
    auth,
    availability,
    bookings,
    chat,
    headers,
    health,
    language,
    notifications,
    openapi,
    pages,
    payments,
    pets,
    preferences,
    reviews,
    security,
    services,
    sign_in,
)
from nanny.http import media as http_media
from nanny.http import metrics as http_metrics
from nanny.http.middlewares import (
    access_middleware,
    error_middleware,
    index_fixed_paths,
    method_not_allowed_middleware,
)
from nanny.keys import (
    BOOKING_CACHE,
    CPU_EXECUTOR,
    HEALTH_CHECKS,
    IN_FLIGHT,
    MEDIA,
    MEDIA_URLS,
    METRICS,
    POOL,
    SEARCH_CACHE,
    SETTINGS,
    USER_CACHE,
    WS_COMMANDS,
    WS_LIMITS,
)
from nanny.media.library import MediaLibrary
from nanny.media.processing import ImageProcessor, make_executor
from nanny.media.storage import FileStorage
from nanny.media.urls import MediaUrls
from nanny.notify.sender import notify_ctx
from nanny.startup import ASYNCPG_TRANSIENT, describe, retry_async
from nanny.tasks import TaskSet
from nanny.ws import commands as ws_commands
from nanny.ws import endpoint as ws_endpoint
from nanny.ws.limits import WsLimits

log = logging.getLogger("nanny")

MAX_BODY_BYTES = 1024 * 1024


async def lifecycle_ctx(app: web.Application) -> AsyncIterator[None]:
    # First in, last out: "stopped" is logged only after every other resource was released.
    log.info("starting", extra={"env": app[SETTINGS].env})
    yield
    log.info("stopped: requests finished, background tasks and pools closed")


async def log_shutdown(app: web.Application) -> None:
    log.info("shutting down: no new connections; finishing in-flight requests")


async def cpu_executor_ctx(app: web.Application) -> AsyncIterator[None]:
    # Leave a core for the event loop: a login burst queues here instead of starving requests.
    workers = max(1, (os.cpu_count() or 2) // 2)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nanny-cpu")
    app[CPU_EXECUTOR] = executor
    yield
    executor.shutdown(wait=True, cancel_futures=True)


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = await retry_async(
        describe(settings.database_url, "PostgreSQL"),
        lambda: create_pool(
            settings.database_url,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            notifications=settings.notifications_enabled,
        ),
        ASYNCPG_TRANSIENT,
        settings.startup_timeout_seconds,
    )
    app[POOL] = pool

    async def check_db() -> None:
        await pool.fetchval("SELECT 1")

    app[HEALTH_CHECKS]["db"] = check_db
    yield
    await pool.close()


async def finish_requests(app: web.Application) -> None:
    """Answer every request in flight within SHUTDOWN_TIMEOUT_SECONDS (nanny.inflight)."""
    caches = (app[USER_CACHE], app[SEARCH_CACHE], app[BOOKING_CACHE])
    await app[IN_FLIGHT].drain(
        app[SETTINGS].shutdown_timeout_seconds,
        also=lambda: [load for cache in caches for load in cache.loads()] + app[LATER].pending(),
    )


async def media_ctx(app: web.Application) -> AsyncIterator[None]:
    """Photos: the image workers (bounded), the file storage and the use cases over them."""
    settings = app[SETTINGS]
    executor = make_executor(settings.media_executor, settings.media_workers)
    processor = ImageProcessor(executor, settings.media_workers)
    app[MEDIA] = MediaLibrary(app[POOL], FileStorage(settings.media_root), processor)
    yield
    executor.shutdown(wait=True, cancel_futures=True)


def setup_pages(app: web.Application) -> None:
    """Templates (autoescaped: user data is never markup) in each language, and the static
    scripts and styles. The default environment is the API documentation's (English only, as
    Swagger UI is)."""
    i18n.setup(app)
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
    # Outermost first: access log and metrics see the final status of everything inside.
    app = web.Application(
        middlewares=[
            access_middleware,
            error_middleware,
            method_not_allowed_middleware,
            headers.cors_preflight_middleware,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics.create_metrics()
    app[SEARCH_CACHE] = TtlCache(settings.search_cache_seconds)
    app[USER_CACHE] = TtlCache(settings.auth_cache_seconds, max_entries=50_000)
    app[BOOKING_CACHE] = PartyCache(settings.booking_cache_seconds)
    app[WS_LIMITS] = WsLimits()
    app[WS_COMMANDS] = ws_commands.chat_commands()
    app[IN_FLIGHT] = inflight.InFlight()
    app[MEDIA_URLS] = MediaUrls.from_secret(settings.jwt_secret)
    app.on_response_prepare.append(headers.add_response_headers)
    app[HEALTH_CHECKS] = {}
    app[BOOKING_LISTENERS] = []
    app[AVAILABILITY_LISTENERS] = []
    app[LATER] = TaskSet()
    app.on_shutdown.append(log_shutdown)
    app.cleanup_ctx.append(lifecycle_ctx)
    app.cleanup_ctx.append(cpu_executor_ctx)
    app.cleanup_ctx.append(security.dummy_hash_ctx)
    app.cleanup_ctx.append(pool_ctx)
    app.cleanup_ctx.append(media_ctx)
    app.cleanup_ctx.append(ratelimit.rate_limiter_ctx)
    # The chat hub subscribes to booking events, so it starts before the expiry task emits any.
    app.cleanup_ctx.append(ws_endpoint.chat_ctx)
    app.cleanup_ctx.append(expiry_ctx)
    # After the chat: the live notification frame goes to the hub's sockets.
    app.cleanup_ctx.append(notify_ctx)
    app.on_shutdown.append(ws_endpoint.close_sockets)
    app.on_shutdown.append(finish_requests)
    app.add_routes(auth.routes)
    app.add_routes(preferences.routes)  # right after GET /api/auth/me: one resource for the path
    app.add_routes(notifications.routes)
    app.add_routes(health.routes)
    app.add_routes(pets.routes)
    app.add_routes(services.routes)
    app.add_routes(availability.routes)
    app.add_routes(bookings.routes)
    app.add_routes(payments.routes)
    app.add_routes(reviews.routes)
    app.add_routes(chat.routes)
    app.add_routes(http_media.routes)
    app.add_routes(ws_endpoint.routes)
    app.add_routes(admin.routes)
    app.add_routes(admin_charts.routes)
    app.add_routes(http_metrics.routes)
    app.add_routes(pages.routes)
    app.add_routes(sign_in.routes)
    app.add_routes(language.routes)
    app.add_routes(api_docs.routes)
    api_docs.add_swagger_ui_files(app)
    setup_pages(app)
    app.add_routes(openapi.routes)
    app[openapi.OPENAPI_DOCUMENT] = openapi.Document()
    app.on_startup.append(index_fixed_paths)
    return app
