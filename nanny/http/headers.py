"""Headers on every response: CORS for the configured origins, and the security headers.

Our own ~80 lines rather than aiohttp-cors: that library must be handed every route after all route
tables are added (and again for each new module), configures CORS per route although we have one
policy, and does not touch error responses rendered by our middleware. Here one middleware answers
preflights and one `on_response_prepare` hook decorates every response — JSON, errors, pages,
static files and WebSocket handshakes alike.
"""

from __future__ import annotations

from aiohttp import web

from nanny.config import Settings
from nanny.errors import Forbidden
from nanny.keys import SETTINGS

ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-CSRF-Token, X-Request-ID"
EXPOSE_HEADERS = "X-Total-Count, X-Request-ID, Retry-After"
PREFLIGHT_MAX_AGE = "600"

# Pages load only our own scripts and styles (no inline code), talk only to us (REST and the
# WebSocket), and may not be framed by anyone (clickjacking).
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def cors_grant(settings: Settings, origin: str | None) -> tuple[str, bool] | None:
    """(Access-Control-Allow-Origin value, credentials allowed) for `origin`, or None.

    A listed origin is echoed and may send credentials; '*' in the list admits any other origin
    without credentials (browsers refuse credentials with a wildcard, and so do we)."""
    if not origin or not settings.cors_origins:
        return None
    if origin.rstrip("/") in settings.cors_origins:
        return origin, True
    if "*" in settings.cors_origins:
        return "*", False
    return None


def is_preflight(request: web.Request) -> bool:
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


@web.middleware
async def cors_preflight_middleware(request: web.Request, handler) -> web.StreamResponse:
    if not is_preflight(request):
        return await handler(request)
    if cors_grant(request.app[SETTINGS], request.headers["Origin"]) is None:
        raise Forbidden("This origin may not call the API", details={"field": "Origin"})
    # Allow-Origin and credentials are added by add_response_headers, as on every response.
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        },
    )


def _add_vary_origin(response: web.StreamResponse) -> None:
    vary = response.headers.get("Vary", "")
    if "origin" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"


async def add_response_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if response.content_type == "text/html":
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
        headers.setdefault("X-Frame-Options", "DENY")
    settings = request.app[SETTINGS]
    if not settings.cors_origins:
        return
    # The answer depends on Origin, so shared caches must key on it.
    _add_vary_origin(response)
    grant = cors_grant(settings, request.headers.get("Origin"))
    if grant is None:
        return
    allow_origin, credentials = grant
    headers["Access-Control-Allow-Origin"] = allow_origin
    headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    if credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
