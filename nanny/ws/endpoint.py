"""GET /api/ws: authentication at the upgrade or by a first `auth` frame, then one frame at a
time from the client, each handled by the app's registered commands (nanny/ws/commands.py);
plus the chat's cleanup_ctx (broker, hub, chat use cases, presence heartbeat) and the shutdown
hook that closes every socket with 1001."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from nanny import ratelimit
from nanny.chat.messages import Chat
from nanny.encoding import dumps
from nanny.errors import (
    Forbidden,
    NannyError,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from nanny.events import on_availability_changed, on_booking_changed
from nanny.http import security
from nanny.http.headers import cors_grant
from nanny.keys import (
    BOOKING_CACHE,
    CHAT,
    CHAT_HUB,
    HEALTH_CHECKS,
    MEDIA_URLS,
    METRICS,
    POOL,
    SEARCH_CACHE,
    SETTINGS,
    USER_CACHE,
    WS_COMMANDS,
    WS_LIMITS,
)
from nanny.ws import commands
from nanny.ws.broker import Broker, InProcessBroker
from nanny.ws.connection import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_UNAUTHORIZED, Connection
from nanny.ws.hub import ChatHub
from nanny.ws.protocol import error_frame, parse
from nanny.ws.redis_broker import RedisBroker

log = logging.getLogger("nanny.ws")
routes = web.RouteTableDef()


def check_origin(request: web.Request) -> None:
    """Cookie-authenticated upgrades must come from our own pages or an allowed origin, so
    another site cannot open a socket with the visitor's cookie (cross-site WebSocket
    hijacking). Requests without Origin are not from a browser and carry no such risk."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    grant = cors_grant(request.app[SETTINGS], origin)
    if grant is not None and grant[1]:  # listed origins only: '*' never carries the cookie
        return
    if urlsplit(origin.rstrip("/")).netloc.lower() == request.host.lower():
        return
    raise Forbidden("This origin may not open a WebSocket with the session cookie")


async def _upgrade_user(request: web.Request):
    found = security.request_token(request)
    if found is None:
        return None
    token, source = found
    if source == "cookie":
        check_origin(request)
    user, claims = await commands.user_for_token(request.app, token)
    await ratelimit.check_ws_connect_rate(request.app, user.user_id)
    return user, claims


@routes.get("/api/ws", name="ws")
async def websocket(request: web.Request) -> web.StreamResponse:
    hub = request.app[CHAT_HUB]
    limits = request.app[WS_LIMITS]
    if hub.closing:
        raise Unavailable("The server is shutting down; reconnect elsewhere")
    authenticated = await _upgrade_user(request)
    ws = web.WebSocketResponse(
        heartbeat=limits.heartbeat, max_msg_size=limits.max_frame_bytes, autoping=True
    )
    if not ws.can_prepare(request).ok:
        raise ValidationFailed("GET /api/ws expects a WebSocket upgrade")
    # What the connection holds is let go in reverse order however it ends.
    async with contextlib.AsyncExitStack() as held:
        # The user's booking events are heard here before the client learns it is signed in
        # (the upgrade's answer, or the `authenticated` frame), so none falls in between.
        if authenticated is not None:
            await held.enter_async_context(hub.feeds.hold(authenticated[0].user_id))
        await ws.prepare(request)
        conn = Connection(ws, request, limits)
        held.push_async_callback(conn.finish)
        held.enter_context(hub.open_connection(conn))
        held.push_async_callback(hub.rooms.leave_all, conn)
        if authenticated is None:
            authenticated = await _first_frame_auth(request.app, conn)
            if authenticated is not None:
                user_id = authenticated[0].user_id
                await held.enter_async_context(hub.feeds.hold(user_id))
                conn.send(dumps({"type": "authenticated", "user_id": user_id}))
        if authenticated is not None:
            user, claims = authenticated
            conn.user_id = user.user_id
            conn.role = user.role
            conn.signed_in_with(claims.token_id, claims.generation, claims.expires_at)
            held.enter_context(hub.feeds.signed_in(conn))
            # A sign-out or password change between the token's check and now closed
            # nobody: the connection was not among its user's yet. Look once more.
            if await _token_ended_meanwhile(request.app, claims):
                conn.close(CLOSE_UNAUTHORIZED, "the token was ended")
            await _serve(request.app, conn)
    return ws


async def _token_ended_meanwhile(app: web.Application, claims: security.TokenClaims) -> bool:
    try:
        await security.user_for_claims(app, claims)
    except Unauthorized:
        return True
    return False


async def _first_frame_auth(app: web.Application, conn: Connection):
    try:
        msg = await conn.ws.receive(timeout=conn.limits.auth_timeout)
    except TimeoutError:
        conn.close(CLOSE_UNAUTHORIZED, "authentication timeout")
        return None
    if msg.type is not WSMsgType.TEXT:
        conn.close(CLOSE_UNAUTHORIZED, "authentication required")
        return None
    data, _ = parse(msg.data)
    if not (isinstance(data, dict) and data.get("type") == "auth"):
        conn.close(CLOSE_UNAUTHORIZED, "the first frame must be auth")
        return None
    token = data.get("token")
    try:
        if not isinstance(token, str) or set(data) != {"type", "token"}:
            raise Unauthorized("The auth frame is {type: auth, token}")
        user, claims = await commands.user_for_token(app, token)
    except NannyError as exc:
        conn.close(CLOSE_UNAUTHORIZED, exc.message[:100])
        return None
    try:
        await ratelimit.check_ws_connect_rate(app, user.user_id)
    except RateLimited as exc:
        conn.close(CLOSE_POLICY, exc.message[:100])
        return None
    return user, claims


async def _serve(app: web.Application, conn: Connection) -> None:
    limits = conn.limits
    commands = app[WS_COMMANDS]
    async for msg in conn.ws:
        if conn.closing:
            continue
        if msg.type is WSMsgType.TEXT:
            if not conn.rate.allow():
                _, ref = parse(msg.data)
                conn.send(
                    error_frame(
                        "rate_limited",
                        f"More than {limits.frames_per_second:g} frames per second; slow down",
                        ref,
                    )
                )
                if conn.rate.strikes >= limits.strikes_before_close:
                    conn.close(CLOSE_POLICY, "rate limit exceeded")
                continue
            data, ref = parse(msg.data)
            if data is None:
                conn.send(error_frame("bad_frame", "A frame must be JSON", None))
                continue
            conn.busy = True
            try:
                await commands.dispatch(app, conn, data, ref)
            finally:
                conn.busy = False
            if conn.shutdown_requested:
                conn.close(CLOSE_GOING_AWAY, "server shutting down")
        elif msg.type is WSMsgType.BINARY:
            conn.send(error_frame("bad_frame", "Frames must be text (JSON)", None))


async def _booking_listener(app: web.Application, booking: dict) -> None:
    app[CHAT_HUB].booking_changed(booking)


async def _availability_listener(app: web.Application, sitter_id: int) -> None:
    app[CHAT_HUB].availability_changed(sitter_id)


def make_broker(app: web.Application) -> Broker:
    settings = app[SETTINGS]
    if settings.redis_url:
        return RedisBroker(
            settings.redis_url,
            prefix=settings.redis_prefix,
            presence_ttl=settings.presence_ttl_seconds,
        )
    return InProcessBroker()


async def chat_ctx(app: web.Application) -> AsyncIterator[None]:
    """The chat's resources, opened after the pool and closed before it: the broker, the hub
    (this process's connections and rooms) and the chat's use cases, which fan out through it."""
    settings = app[SETTINGS]
    broker = make_broker(app)
    hub = ChatHub(
        broker,
        app[WS_LIMITS],
        pool=app[POOL],
        user_cache=app[USER_CACHE],
        public_cache=app[SEARCH_CACHE],
        booking_cache=app[BOOKING_CACHE],
        metrics=app[METRICS],
        presence_ttl=settings.presence_ttl_seconds,
        urls=app[MEDIA_URLS],
    )
    app[CHAT_HUB] = hub
    app[CHAT] = chat = Chat(
        app[POOL],
        app[METRICS],
        hub,
        budget=functools.partial(ratelimit.check_chat_message_rate, app),
    )
    if isinstance(broker, RedisBroker):
        app[HEALTH_CHECKS]["redis"] = broker.ping
    await broker.start()
    on_booking_changed(app, _booking_listener)
    on_availability_changed(app, _availability_listener)
    heartbeat = asyncio.create_task(hub.run_presence_heartbeat(), name="nanny-presence")
    yield
    heartbeat.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await heartbeat
    await hub.stop()
    await chat.stop()
    await broker.close()


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: every socket gets 1001 after the frame it is handling, so clients
    reconnect to another process while this one finishes."""
    if CHAT_HUB in app:
        await app[CHAT_HUB].shutdown()
