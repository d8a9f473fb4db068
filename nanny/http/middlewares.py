"""The error middleware: every failure becomes API.md's JSON error, tagged with a request id.
The access middleware around it logs one JSON line per request and feeds the request metrics."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time

import asyncpg
from aiohttp import web

from nanny import metrics
from nanny.client_address import client_address
from nanny.db.pool import DATABASE_UNAVAILABLE
from nanny.errors import NannyError, PayloadTooLarge, RateLimited
from nanny.http.headers import is_preflight
from nanny.http.responses import error_response
from nanny.http.security import USER_KEY
from nanny.inflight import was_refused
from nanny.keys import IN_FLIGHT, METRICS

log = logging.getLogger("nanny.http")
access_log = logging.getLogger("nanny.access")

# Polled by health checkers and scrapers every few seconds: logged at DEBUG, not INFO.
_QUIET_ROUTES = frozenset({"/api/health", "/metrics"})
# nginx's code for "the client closed the connection before the answer".
CLIENT_CLOSED = 499

REQUEST_ID_KEY = web.RequestKey("nanny_request_id", str)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Our own request ids: a random per-process prefix and a counter, unique across processes and
# hosts without a uuid4 (a system call and an object) per request.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)

HTTP_CODES = {
    400: ("validation_error", "The request is malformed"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not_found", "No such resource"),
    405: ("method_not_allowed", "Method not allowed on this resource"),
    413: ("payload_too_large", "The request body is larger than 1 MiB"),
    415: ("unsupported_media_type", "Unsupported media type"),
}

_UNSTORABLE_TEXT = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"  # 32 hex digits, like a uuid4 hex


def request_id(request: web.Request) -> str:
    return request.get(REQUEST_ID_KEY, "-")


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    rid = incoming if incoming and _REQUEST_ID.match(incoming) else new_request_id()
    request[REQUEST_ID_KEY] = rid
    in_flight = request.app[IN_FLIGHT]
    if in_flight.draining:  # arrived on a kept-alive connection after SIGTERM
        return _shutting_down(rid)
    # A WebSocket is answered once upgraded; shutdown closes it with 1001 instead.
    tracked = in_flight.enter(refusable=request.headers.get("Upgrade", "").lower() != "websocket")
    try:
        response = await handler(request)
    except NannyError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        elif isinstance(exc, PayloadTooLarge):
            # The rest of the body is not wanted: the connection ends after this answer.
            response.force_close()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp keeps the exception of an unmatched route on the request's match info, and
        # its traceback holds the request: a cycle that would keep both until a full collection.
        exc.__traceback__ = None
        code, message = HTTP_CODES.get(exc.status, ("error", exc.reason))
        response = error_response(exc.status, code, message)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except asyncio.CancelledError:
        if not was_refused():
            raise
        return _shutting_down(rid)
    except _UNSTORABLE_TEXT:
        # Text the database cannot hold (NUL) that slipped past the declarations: bad input.
        response = error_response(
            400, "validation_error", "The request contains text the database cannot store"
        )
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
        # A concurrent change won; nothing was stored, and the same request may be retried.
        log.warning("concurrent change (request %s): %r", rid, exc)
        response = error_response(
            409,
            "conflict",
            "A concurrent change got there first; retry the request",
            {"request_id": rid},
        )
    except DATABASE_UNAVAILABLE as exc:
        log.warning("database unavailable (request %s): %r", rid, exc)
        response = error_response(
            503,
            "unavailable",
            "The database is unavailable; try again shortly",
            {"request_id": rid},
        )
    except Exception:
        log.exception(
            "unhandled error (request %s) %s %s",
            rid,
            request.method,
            request.path,
            extra={"request_id": rid},
        )
        response = error_response(
            500, "internal_error", "Something went wrong on our side", {"request_id": rid}
        )
    finally:
        in_flight.leave(tracked)
    if not response.prepared:
        response.headers["X-Request-ID"] = rid
        if in_flight.draining:
            response.force_close()
    return response


def _shutting_down(rid: str) -> web.Response:
    """The answer to a request a shutdown refused: nothing was done, another process (or this
    one, restarted) may take it."""
    response = error_response(
        503,
        "unavailable",
        "The server is shutting down; nothing was done: retry the request",
        {"request_id": rid},
    )
    response.headers["Retry-After"] = "1"
    response.headers["X-Request-ID"] = rid
    response.force_close()
    return response


def route_template(request: web.Request) -> str:
    """The matched route's canonical path (/api/bookings/{id}), never the raw one."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else metrics.UNMATCHED_ROUTE


@web.middleware
async def access_middleware(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # redirects; errors were rendered inside
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED
        raise
    finally:
        _observe(request, status, time.perf_counter() - started)


def _observe(request: web.Request, status: int, seconds: float) -> None:
    route = route_template(request)
    request.app[METRICS].observe_request(request.method, route, status, seconds)
    level = logging.DEBUG if route in _QUIET_ROUTES and status < 400 else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    user = request.get(USER_KEY)
    fields = {
        "method": request.method,
        "route": route,
        "path": request.path,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "request_id": request_id(request),
        "user_id": user.user_id if user is not None else None,
        "remote": client_address(request),
    }
    access_log.log(
        level, "%s %s %s %.1f ms", request.method, route, status, seconds * 1000, extra=fields
    )


def _fixed_path_methods(app: web.Application) -> dict[str, frozenset[str]]:
    """Each path without parameters and the methods routed to it."""
    methods: dict[str, set[str]] = {}
    for resource in app.router.resources():
        if isinstance(resource, web.PlainResource):
            methods.setdefault(resource.canonical, set()).update(r.method for r in resource)
    return {path: frozenset(m) for path, m in methods.items()}


_FIXED_PATHS = web.AppKey("fixed_path_methods", dict)


async def index_fixed_paths(app: web.Application) -> None:
    """on_startup, when the router is frozen."""
    app[_FIXED_PATHS] = _fixed_path_methods(app)


@web.middleware
async def method_not_allowed_middleware(request: web.Request, handler) -> web.StreamResponse:
    """A method a fixed path does not have is 405, even when a path with a parameter would
    take the request (PUT /api/services/search is not PUT /api/services/{id} with id
    'search')."""
    allowed = request.app[_FIXED_PATHS].get(request.path)
    if (
        allowed is not None
        and request.method not in allowed
        and not is_preflight(request)  # answered by the CORS middleware
    ):
        # HEAD is answered wherever GET is, but not described: Allow lists what the API has.
        raise web.HTTPMethodNotAllowed(request.method, sorted(allowed - {"HEAD"}))
    return await handler(request)
