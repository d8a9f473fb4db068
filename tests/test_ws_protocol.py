"""GET /api/ws in one process: authentication, every frame a participant, a stranger, an admin
or an anonymous client may send, and the limits (frame size, rate, slow readers, heartbeat,
token expiry, shutdown)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import socket

import aiohttp
import pytest

from nanny.app import create_app
from nanny.http.security import csrf_token_for, issue_token
from nanny.keys import CHAT_HUB, POOL, WS_LIMITS
from tests.chat_support import collect_messages, no_frame, recv, subscribe
from tests.factories import make_admin, make_owner, make_sitter
from tests.rows import insert_booking


async def _app_client(aiohttp_client, settings, **limits):
    app = create_app(settings)
    app[WS_LIMITS] = dataclasses.replace(app[WS_LIMITS], **limits)
    return await aiohttp_client(app)


@pytest.fixture
async def room(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    booking_id = await insert_booking(client.app[POOL], owner.user_id, sitter.user_id)
    return owner, sitter, booking_id


async def _error(ws) -> dict:
    return await recv(ws, "error")


async def test_upgrade_authentication(client, room, settings):
    owner, _, booking_id = room
    # A bad bearer token is refused before the upgrade, as JSON.
    resp = await client.get("/api/ws", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401 and (await resp.json())["code"] == "unauthorized"
    # A plain GET without an upgrade is a clear 400.
    resp = await client.get("/api/ws", headers=owner.headers)
    assert resp.status == 400
    # Bearer at the upgrade: frames work at once.
    ws = await client.ws_connect("/api/ws", headers=owner.headers)
    assert (await subscribe(ws, booking_id))["last_seq"] == 0
    await ws.close()


async def test_cookie_needs_our_own_or_an_allowed_origin(aiohttp_client, settings, room):
    owner, _, booking_id = room
    allowed = dataclasses.replace(settings, cors_origins=("https://app.nanny.kz",))
    client = await aiohttp_client(create_app(allowed))
    cookies = {"nanny_token": owner.token}
    resp = await client.get(
        "/api/ws",
        headers={"Origin": "https://evil.example", "Cookie": f"nanny_token={owner.token}"},
    )
    assert resp.status == 403 and (await resp.json())["code"] == "forbidden"
    for origin in (f"http://{client.host}:{client.port}", "https://app.nanny.kz"):
        ws = await client.ws_connect(
            "/api/ws", headers={"Origin": origin, "Cookie": f"nanny_token={owner.token}"}
        )
        assert (await subscribe(ws, booking_id))["booking_id"] == booking_id
        await ws.close()
    assert cookies  # the cookie value was the session token


async def test_first_frame_auth(aiohttp_client, settings, room):
    owner, sitter, booking_id = room
    client = await _app_client(aiohttp_client, settings, auth_timeout=0.4)
    ws = await client.ws_connect("/api/ws")
    await ws.send_json({"type": "auth", "token": sitter.token})
    assert await recv(ws) == {"type": "authenticated", "user_id": sitter.user_id}
    await ws.send_json({"type": "auth", "token": sitter.token})
    assert (await _error(ws))["code"] == "validation_error"  # already authenticated
    assert (await subscribe(ws, booking_id))["online"] == [sitter.user_id]
    await ws.close()

    # Silence for the auth timeout -> 4001.
    ws = await client.ws_connect("/api/ws")
    msg = await ws.receive(timeout=3)
    assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4001
    # Anything but auth first -> 4001; a bad token -> 4001.
    for first in (
        {"type": "subscribe", "booking_id": booking_id},
        {"type": "auth", "token": "garbage"},
        {"type": "auth", "token": owner.token, "extra": 1},
        "not json",
    ):
        ws = await client.ws_connect("/api/ws")
        if isinstance(first, str):
            await ws.send_str(first)
        else:
            await ws.send_json(first)
        msg = await ws.receive(timeout=3)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4001, first
    ws = await client.ws_connect("/api/ws")
    await ws.send_bytes(b"\x00")
    await ws.receive(timeout=3)
    assert ws.close_code == 4001
    assert not client.app[CHAT_HUB].connections or all(
        c.closing for c in client.app[CHAT_HUB].connections
    )


async def test_token_expiry_closes_and_refresh_extends(client, settings, room):
    owner, sitter, booking_id = room
    # Tokens carry whole seconds and "now" is truncated: a 3 s token lives 2 to 3 s, enough for a
    # loaded machine to finish the handshake before it expires.
    short = dataclasses.replace(settings, jwt_ttl_hours=3 / 3600)
    token, _ = issue_token(short, owner.user_id, "owner")
    ws = await client.ws_connect("/api/ws", headers={"Authorization": f"Bearer {token}"})
    await subscribe(ws, booking_id)
    # Refresh with someone else's token: refused, the connection stays.
    await ws.send_json({"type": "refresh", "token": sitter.token})
    assert (await _error(ws))["code"] == "forbidden"
    await ws.send_json({"type": "refresh", "token": "bad"})
    assert (await _error(ws))["code"] == "validation_error"
    await ws.send_json({"type": "refresh", "token": owner.token})
    assert await recv(ws) == {"type": "authenticated", "user_id": owner.user_id}
    await no_frame(ws, within=3.5)  # the short token's expiry has passed: still open
    await ws.close()

    token, _ = issue_token(short, owner.user_id, "owner")
    ws = await client.ws_connect("/api/ws", headers={"Authorization": f"Bearer {token}"})
    msg = await ws.receive(timeout=6)
    if msg.type == aiohttp.WSMsgType.TEXT:  # pragma: no cover - nothing else is sent
        msg = await ws.receive(timeout=6)
    assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 4001


async def test_frames_of_strangers_anonymous_and_bad_input(client, room):
    _, _, booking_id = room
    stranger = await make_owner(client)
    ws = await client.ws_connect("/api/ws", headers=stranger.headers)
    cases = [
        ({"type": "subscribe", "booking_id": booking_id}, "not_found"),
        ({"type": "subscribe", "booking_id": 999999}, "not_found"),
        ({"type": "send", "booking_id": booking_id, "content": "hi"}, "not_found"),
        ({"type": "send", "booking_id": 999999, "content": "hi"}, "not_found"),
        ({"type": "typing", "booking_id": booking_id}, "not_found"),
        ({"type": "read", "booking_id": booking_id, "seq": 1}, "not_found"),
        ({"type": "unsubscribe", "booking_id": booking_id}, "validation_error"),
        ({"type": "subscribe", "booking_id": "1"}, "validation_error"),
        ({"type": "subscribe", "booking_id": -4}, "validation_error"),
        ({"type": "subscribe"}, "validation_error"),
        ({"type": "subscribe", "booking_id": booking_id, "role": "admin"}, "validation_error"),
        ({"type": "send", "booking_id": booking_id, "content": "   "}, "validation_error"),
        ({"type": "send", "booking_id": booking_id, "content": "x" * 4001}, "validation_error"),
        ({"type": "read", "booking_id": booking_id, "seq": 0}, "validation_error"),
        ({"type": "launch"}, "bad_frame"),
        ({"kind": "ping"}, "bad_frame"),
        ([1, 2], "bad_frame"),
    ]
    # Someone else's booking answers exactly like a missing one: its existence is private.
    for frame, code in cases:
        await ws.send_json(frame)
        error = await _error(ws)
        assert error["code"] == code, (frame, error)
        if isinstance(frame, dict) and isinstance(frame.get("booking_id"), int):
            assert error["ref"]["booking_id"] == frame["booking_id"]
    await ws.send_str("{not json")
    assert (await _error(ws))["code"] == "bad_frame"
    await ws.send_bytes(b"\x01\x02")
    assert (await _error(ws))["code"] == "bad_frame"
    # Still open, and nothing was stored.
    await ws.send_json({"type": "ping"})
    assert await recv(ws) == {"type": "pong"}
    count = await client.app[POOL].fetchval("SELECT count(*) FROM messages")
    assert count == 0
    await ws.close()


async def test_admin_may_watch_but_not_talk(client, room):
    owner, _, booking_id = room
    admin = await make_admin(client)
    ws = await client.ws_connect("/api/ws", headers=admin.headers)
    await subscribe(ws, booking_id)
    await ws.send_json({"type": "send", "booking_id": booking_id, "content": "hello"})
    assert (await _error(ws))["code"] == "forbidden"
    owner_ws = await client.ws_connect("/api/ws", headers=owner.headers)
    await owner_ws.send_json({"type": "send", "booking_id": booking_id, "content": "hi admin"})
    assert (await collect_messages(ws, 1))[0]["content"] == "hi admin"
    # Double subscribe and a replay point beyond the end are refused clearly.
    await ws.send_json({"type": "subscribe", "booking_id": booking_id})
    assert (await _error(ws))["code"] == "validation_error"
    await owner_ws.send_json({"type": "subscribe", "booking_id": booking_id, "after_seq": 5})
    assert (await _error(owner_ws))["code"] == "validation_error"
    await ws.send_json({"type": "unsubscribe", "booking_id": booking_id})
    assert await recv(ws) == {"type": "unsubscribed", "booking_id": booking_id}
    await owner_ws.send_json({"type": "send", "booking_id": booking_id, "content": "gone"})
    await no_frame(ws, "message")
    await ws.close()
    await owner_ws.close()


async def test_conversation_in_one_process(client, room):
    owner, sitter, booking_id = room
    o1 = await client.ws_connect("/api/ws", headers=owner.headers)
    s1 = await client.ws_connect("/api/ws", headers=sitter.headers)
    assert (await subscribe(o1, booking_id))["online"] == [owner.user_id]
    sub = await subscribe(s1, booking_id)
    assert sub["online"] == [owner.user_id, sitter.user_id]
    assert await recv(o1, "presence") == {
        "type": "presence",
        "booking_id": booking_id,
        "user_id": sitter.user_id,
        "online": True,
    }
    send = {"type": "send", "booking_id": booking_id, "content": "  Hi!  ", "client_id": "a-1"}
    await o1.send_json(send)
    ack = await recv(o1)
    assert ack["type"] == "ack" and ack["client_id"] == "a-1"
    assert ack["message"]["seq"] == 1 and ack["message"]["content"] == "Hi!"
    assert (await recv(o1))["message"] == ack["message"]  # the sender's own copy follows
    assert (await collect_messages(s1, 1))[0] == ack["message"]
    # A retry returns the original and delivers nothing new.
    await o1.send_json(send)
    again = await recv(o1, "ack")
    assert again["message"] == ack["message"]
    await no_frame(s1, "message")
    await s1.send_json({"type": "typing", "booking_id": booking_id})
    assert await recv(o1, "typing") == {
        "type": "typing",
        "booking_id": booking_id,
        "user_id": sitter.user_id,
    }
    await no_frame(s1, "typing")
    await s1.send_json({"type": "read", "booking_id": booking_id, "seq": 1})
    assert (await recv(o1, "read"))["seq"] == 1
    await s1.send_json({"type": "read", "booking_id": booking_id, "seq": 2})
    assert (await _error(s1))["code"] == "validation_error"
    # A late joiner sees the read marks and the whole history when asking from 0.
    s2 = await client.ws_connect("/api/ws", headers=sitter.headers)
    sub = await subscribe(s2, booking_id, after_seq=0)
    assert sub["read"] == {str(sitter.user_id): 1} and sub["last_seq"] == 1
    assert (await collect_messages(s2, 1))[0]["seq"] == 1
    # Sitter's second device leaving keeps the sitter online; the last one leaving does not.
    await s2.close()
    await no_frame(o1, "presence")
    await s1.close()
    assert (await recv(o1, "presence"))["online"] is False
    await o1.close()


async def test_booking_event_reaches_room_and_unsubscribed_participants(client, room):
    from nanny.events import booking_changed
    from tests.chat_support import booking_json

    owner, sitter, booking_id = room
    watcher = await client.ws_connect("/api/ws", headers=owner.headers)
    await subscribe(watcher, booking_id)
    idle_sitter = await client.ws_connect("/api/ws", headers=sitter.headers)
    stranger = await make_owner(client)
    other = await client.ws_connect("/api/ws", headers=stranger.headers)
    await idle_sitter.send_json({"type": "ping"})
    await recv(idle_sitter, "pong")
    booking = await booking_json(client.app[POOL], booking_id, "confirmed")
    await booking_changed(client.app, booking)
    for ws in (watcher, idle_sitter):
        frame = await recv(ws, "booking")
        assert frame["booking"]["status"] == "confirmed"
        assert frame["booking"]["booking_id"] == booking_id
        await no_frame(ws, "booking")  # once, though the owner is in the room too
    await no_frame(other, "booking")
    for ws in (watcher, idle_sitter, other):
        await ws.close()


async def test_oversized_frame_closes_with_1009(client, room):
    owner, _, _ = room
    ws = await client.ws_connect("/api/ws", headers=owner.headers, max_msg_size=0)
    await ws.send_str(json.dumps({"type": "ping", "pad": "x" * (16 * 1024)}))
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1009


async def test_rate_limit_errors_then_1008(aiohttp_client, settings, room):
    owner, _, _ = room
    client = await _app_client(
        aiohttp_client, settings, frames_per_second=20, frame_burst=20, strikes_before_close=10
    )
    ws = await client.ws_connect("/api/ws", headers=owner.headers)
    for _ in range(40):
        await ws.send_json({"type": "ping"})
    pongs = limited = 0
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        frame = json.loads(msg.data)
        if frame["type"] == "pong":
            pongs += 1
        else:
            assert frame["code"] == "rate_limited" and frame["ref"] == {"type": "ping"}
            limited += 1
    assert ws.close_code == 1008
    assert 20 <= pongs <= 22 and limited == 10
    # A client within the rate is never limited.
    ws = await client.ws_connect("/api/ws", headers=owner.headers)
    for _ in range(15):
        await ws.send_json({"type": "ping"})
        assert (await recv(ws))["type"] == "pong"
        await asyncio.sleep(0.06)
    await ws.close()


def _raw_upgrade(port: int, token: str) -> socket.socket:
    """A WebSocket client that never reads and never answers pings."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    return sock


async def _wait_until(predicate, timeout: float) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_a_client_that_stops_reading_is_dropped(aiohttp_client, settings, room):
    owner, sitter, _ = room
    client = await _app_client(aiohttp_client, settings, send_queue_frames=16)
    hub = client.app[CHAT_HUB]
    sock = _raw_upgrade(client.port, owner.token)
    reader = await client.ws_connect("/api/ws", headers=sitter.headers)
    try:
        await _wait_until(lambda: len(hub.feeds.by_user.get(owner.user_id, ())) == 1, 5)
        [stuck] = hub.feeds.by_user[owner.user_id]
        [reading] = hub.feeds.by_user[sitter.user_id]
        big = json.dumps({"type": "noise", "pad": "x" * 65536})
        received = 0
        for _ in range(200):
            stuck.send(big)
            reading.send(big)
            while True:
                try:
                    await recv(reader, "noise", timeout=0.001)
                    received += 1
                except (AssertionError, TimeoutError):
                    break
            await asyncio.sleep(0.005)
        await _wait_until(lambda: owner.user_id not in hub.feeds.by_user, 5)
        assert stuck.closing and stuck not in hub.connections
        assert sitter.user_id in hub.feeds.by_user  # the reading client is kept
        while received < 200:
            await recv(reader, "noise")
            received += 1
    finally:
        sock.close()
        await reader.close()


async def test_heartbeat_drops_a_dead_peer(aiohttp_client, settings, room):
    owner, sitter, _ = room
    client = await _app_client(aiohttp_client, settings, heartbeat=1.0)
    hub = client.app[CHAT_HUB]
    sock = _raw_upgrade(client.port, owner.token)
    alive = await client.ws_connect("/api/ws", headers=sitter.headers)
    # aiohttp answers pings while receive() runs, so keep one running.
    reading = asyncio.create_task(alive.receive())
    try:
        await _wait_until(lambda: owner.user_id in hub.feeds.by_user, 5)
        await _wait_until(lambda: owner.user_id not in hub.feeds.by_user, 5)
        await asyncio.sleep(1.0)
        assert sitter.user_id in hub.feeds.by_user and not reading.done()
    finally:
        sock.close()
        reading.cancel()
        await alive.close()


async def test_shutdown_closes_with_1001_after_in_flight_work(aiohttp_client, settings, room):
    owner, sitter, booking_id = room
    client = await aiohttp_client(create_app(settings))
    hub = client.app[CHAT_HUB]
    ws = await client.ws_connect("/api/ws", headers=owner.headers)
    other = await client.ws_connect("/api/ws", headers=sitter.headers)
    await subscribe(ws, booking_id)
    # Hold the chat row so the send is still in flight when shutdown starts.
    blocker = await client.app[POOL].acquire()
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("SELECT 1 FROM chats WHERE booking_id = $1 FOR UPDATE", booking_id)
    # Frames are handled in order: the pong means the subscribe is fully done, so the busy flag
    # awaited below belongs to the send.
    await ws.send_json({"type": "ping"})
    assert await recv(ws) == {"type": "pong"}
    await ws.send_json({"type": "send", "booking_id": booking_id, "content": "last words"})
    await _wait_until(lambda: any(c.busy for c in hub.connections), 5)
    closing = asyncio.create_task(client.server.close())
    await other.receive(timeout=10)
    assert other.close_code == 1001  # an idle socket closes at once
    await tx.rollback()
    await client.app[POOL].release(blocker)
    frames = []
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        frames.append(json.loads(msg.data)["type"])

    assert frames[:1] == ["ack"]
    assert ws.close_code == 1001
    await closing


async def test_csrf_and_cookie_for_rest(client, room, settings):
    owner, _, booking_id = room
    cookie = {"Cookie": f"nanny_token={owner.token}"}
    resp = await client.post(
        f"/api/bookings/{booking_id}/messages", json={"content": "hi"}, headers=cookie
    )
    assert resp.status == 403
    csrf = csrf_token_for(settings, owner.token)
    resp = await client.post(
        f"/api/bookings/{booking_id}/messages",
        json={"content": "hi"},
        headers=cookie | {"X-CSRF-Token": csrf},
    )
    assert resp.status == 201


async def test_nested_and_nul_frames_are_refused_and_the_socket_stays(client, room):
    owner, _, booking_id = room
    ws = await client.ws_connect("/api/ws", headers=owner.headers)
    await ws.send_str("[" * 10000)
    assert (await _error(ws))["code"] == "bad_frame"
    await ws.send_json({"type": "send", "booking_id": booking_id, "content": "a\u0000b"})
    error = await _error(ws)
    assert error["code"] == "validation_error"
    await ws.send_json({"type": "ping"})
    assert await recv(ws) == {"type": "pong"}
    assert await client.app[POOL].fetchval("SELECT count(*) FROM messages") == 0
    await ws.close()


async def test_deleting_a_user_closes_their_sockets(client, room):
    owner, _, booking_id = room
    admin = await make_admin(client)
    ws = await client.ws_connect("/api/ws", headers=owner.headers)
    await subscribe(ws, booking_id)
    resp = await client.delete(f"/api/admin/users/{owner.user_id}", headers=admin.headers)
    assert resp.status == 204
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
    # Closed by the server at once (4001, or cut while the cancelled booking's event was queued).
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and ws.closed
    count = await client.app[POOL].fetchval("SELECT count(*) FROM messages")
    assert count == 0


async def test_escaped_lone_surrogates_are_bad_frames(client, room):
    """JSON may escape half of a UTF-16 pair (\\ud800), which is not text: it could be neither
    stored nor echoed back in an error frame. Such frames are bad_frame, the socket stays."""
    owner, _, booking_id = room
    ws = await client.ws_connect("/api/ws", headers=owner.headers)
    await subscribe(ws, booking_id)
    for raw in (
        '{"type": "\\ud800"}',
        f'{{"type": "send", "booking_id": {booking_id}, "content": "a\\ud800b"}}',
        f'{{"type": "send", "booking_id": {booking_id}, "content": "x", "client_id": "\\udfff"}}',
    ):
        await ws.send_str(raw)
        assert (await _error(ws))["code"] == "bad_frame"
    await ws.send_json({"type": "ping"})
    assert await recv(ws) == {"type": "pong"}
    resp = await client.post(
        f"/api/bookings/{booking_id}/messages",
        data=b'{"content": "a\\ud800"}',
        headers=owner.headers | {"Content-Type": "application/json"},
    )
    assert resp.status == 400 and (await resp.json())["code"] == "validation_error"
    assert await client.app[POOL].fetchval("SELECT count(*) FROM messages") == 0
    await ws.close()
