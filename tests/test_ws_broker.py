"""Two apps in one test, each with its own Redis broker connection (through a cuttable proxy),
sharing one database: fan-out, ordering and gap filling, presence, and a Redis outage."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from urllib.parse import urlsplit

import pytest

from nanny.app import create_app
from nanny.db import chat as db_chat
from nanny.events import booking_changed
from nanny.keys import CHAT_HUB, MEDIA_URLS, POOL
from nanny.ws.rooms import message_frame
from tests.chat_support import (
    booking_json,
    collect_messages,
    no_frame,
    recv,
    subscribe,
)
from tests.factories import make_owner, make_sitter
from tests.faults import TcpProxy
from tests.rows import insert_booking


@pytest.fixture
async def redis_proxy(redis_server_url):
    parts = urlsplit(redis_server_url)
    proxy = TcpProxy(host=parts.hostname, port=parts.port)
    await proxy.start()
    yield proxy, f"redis://127.0.0.1:{proxy.port}{parts.path}"
    await proxy.close()


@pytest.fixture
async def pair(settings, redis_proxy, aiohttp_client):
    _, url = redis_proxy
    with_redis = dataclasses.replace(
        settings, redis_url=url, redis_prefix=f"t{uuid.uuid4().hex[:10]}", presence_ttl_seconds=3
    )
    one = await aiohttp_client(create_app(with_redis))
    two = await aiohttp_client(create_app(with_redis))
    owner = await make_owner(one)
    sitter = await make_sitter(one)
    booking_id = await insert_booking(one.app[POOL], owner.user_id, sitter.user_id)
    return one, two, owner, sitter, booking_id


async def test_fan_out_presence_typing_read_booking_across_apps(pair):
    one, two, owner, sitter, booking_id = pair
    health = await (await one.get("/api/health")).json()
    assert health == {"status": "ok", "db": "ok", "redis": "ok"}
    o = await one.ws_connect("/api/ws", headers=owner.headers)
    s = await two.ws_connect("/api/ws", headers=sitter.headers)
    s_idle = await two.ws_connect("/api/ws", headers=sitter.headers)
    await subscribe(o, booking_id)
    assert (await subscribe(s, booking_id))["online"] == [owner.user_id, sitter.user_id]
    assert (await recv(o, "presence"))["user_id"] == sitter.user_id
    await o.send_json({"type": "send", "booking_id": booking_id, "content": "hi", "client_id": "1"})
    ack = await recv(o, "ack")
    assert (await collect_messages(s, 1))[0] == ack["message"]
    await s.send_json({"type": "typing", "booking_id": booking_id})
    assert (await recv(o, "typing"))["user_id"] == sitter.user_id
    await s.send_json({"type": "read", "booking_id": booking_id, "seq": 1})
    assert (await recv(o, "read"))["seq"] == 1
    # A status change announced in app one reaches the sitter's unsubscribed socket on app two.
    await booking_changed(one.app, await booking_json(one.app[POOL], booking_id, "cancelled"))
    assert (await recv(s_idle, "booking"))["booking"]["status"] == "cancelled"
    assert (await recv(s, "booking"))["booking"]["status"] == "cancelled"
    await s.close()
    # Presence is per room: the sitter's other socket is not in it.
    assert (await recv(o, "presence"))["online"] is False
    await s_idle.close()
    await o.close()


async def test_presence_goes_offline_when_the_last_socket_leaves(pair):
    one, two, owner, sitter, booking_id = pair
    o = await one.ws_connect("/api/ws", headers=owner.headers)
    s1 = await two.ws_connect("/api/ws", headers=sitter.headers)
    s2 = await one.ws_connect("/api/ws", headers=sitter.headers)
    await subscribe(o, booking_id)
    await subscribe(s1, booking_id)
    assert (await recv(o, "presence"))["online"] is True
    await subscribe(s2, booking_id)
    await s1.close()
    await no_frame(o, "presence", within=0.5)  # still online through the other device
    await s2.close()
    assert (await recv(o, "presence")) == {
        "type": "presence",
        "booking_id": booking_id,
        "user_id": sitter.user_id,
        "online": False,
    }
    await o.close()


async def test_burst_from_both_apps_arrives_in_order(pair):
    one, two, owner, sitter, booking_id = pair
    o = await one.ws_connect("/api/ws", headers=owner.headers)
    s = await two.ws_connect("/api/ws", headers=sitter.headers)
    o2 = await two.ws_connect("/api/ws", headers=owner.headers)
    for ws in (o, s, o2):
        await subscribe(ws, booking_id)

    async def burst(ws, tag):
        for i in range(50):
            await ws.send_json(
                {
                    "type": "send",
                    "booking_id": booking_id,
                    "content": f"{tag}{i}",
                    "client_id": f"{tag}{i}",
                }
            )

    # Sent from REST concurrently too, so the apps publish interleaved.
    await asyncio.gather(burst(o, "o"), burst(s, "s"))
    for ws in (o, s, o2):
        got = [m["seq"] for m in await collect_messages(ws, 100)]
        assert got == list(range(1, 101))
        await no_frame(ws, "message", within=0.2)


async def test_a_missing_publish_is_filled_from_the_database(pair):
    one, _, owner, sitter, booking_id = pair
    o = await one.ws_connect("/api/ws", headers=owner.headers)
    await subscribe(o, booking_id)
    rooms = one.app[CHAT_HUB].rooms
    async with one.app[POOL].acquire() as db:
        stored = [
            (
                await db_chat.store_message(
                    db,
                    booking_id=booking_id,
                    sender_id=sitter.user_id,
                    content=f"m{i}",
                    client_id=None,
                )
            )[0]
            for i in range(3)
        ]
    # Only seq 3 is "published": 1 and 2 were lost; the room reads them from the database.
    room = rooms.by_booking[booking_id]
    rooms.offer(room, 3, message_frame(stored[2], one.app[MEDIA_URLS]))
    rooms.offer(room, 3, message_frame(stored[2], one.app[MEDIA_URLS]))  # a duplicate is ignored
    assert [m["seq"] for m in await collect_messages(o, 3)] == [1, 2, 3]
    rooms.offer(room, 2, message_frame(stored[1], one.app[MEDIA_URLS]))  # a late arrival is ignored
    await no_frame(o, "message", within=0.3)
    await o.close()


async def test_reconnect_with_after_seq_replays_exactly_the_missed(pair):
    one, two, owner, sitter, booking_id = pair
    o = await one.ws_connect("/api/ws", headers=owner.headers)
    s = await two.ws_connect("/api/ws", headers=sitter.headers)
    await subscribe(o, booking_id)
    await subscribe(s, booking_id)
    for i in range(3):
        await o.send_json({"type": "send", "booking_id": booking_id, "content": f"a{i}"})
        await recv(o, "ack")
    last = (await collect_messages(s, 3))[-1]["seq"]
    await s.close()
    for i in range(4):
        await o.send_json({"type": "send", "booking_id": booking_id, "content": f"b{i}"})
        await recv(o, "ack")
    s = await two.ws_connect("/api/ws", headers=sitter.headers)
    sub = await subscribe(s, booking_id, after_seq=last)
    assert sub["last_seq"] == 7
    await o.send_json({"type": "send", "booking_id": booking_id, "content": "live"})
    got = await collect_messages(s, 5)
    assert [m["seq"] for m in got] == [4, 5, 6, 7, 8]
    assert got[-1]["content"] == "live"
    await no_frame(s, "message", within=0.3)
    await o.close()
    await s.close()


async def test_redis_outage_loses_nothing(pair, redis_proxy):
    proxy, _ = redis_proxy
    one, two, owner, sitter, booking_id = pair
    o = await one.ws_connect("/api/ws", headers=owner.headers)
    s = await two.ws_connect("/api/ws", headers=sitter.headers)
    await subscribe(o, booking_id)
    await subscribe(s, booking_id)
    await o.send_json({"type": "send", "booking_id": booking_id, "content": "before"})
    await collect_messages(s, 1)
    await collect_messages(o, 1)
    await proxy.cut()
    await asyncio.sleep(0.3)
    resp = await one.get("/api/health")
    assert resp.status == 503 and (await resp.json())["redis"] == "down"
    # Sends while Redis is away are stored and acknowledged.
    seen: dict = {o: [], s: []}

    async def send_and_ack(ws, content) -> int:
        await ws.send_json({"type": "send", "booking_id": booking_id, "content": content})
        while True:
            frame = await recv(ws, "ack", "message")
            if frame["type"] == "ack":
                return frame["message"]["seq"]
            seen[ws].append(frame["message"]["seq"])

    for i in range(5):
        assert await send_and_ack(o, f"o{i}") == 2 + 2 * i
        assert await send_and_ack(s, f"s{i}") == 3 + 2 * i
    # The last one only reaches the sitter's process once Redis is back (no later message
    # reveals the gap): the reconnect catches the room up from the database.
    assert await send_and_ack(o, "last") == 12
    await asyncio.sleep(0.3)
    await proxy.restore()
    for ws in (o, s):
        while len(seen[ws]) < 11:
            seen[ws].append((await recv(ws, "message", timeout=10))["message"]["seq"])
        assert seen[ws] == list(range(2, 13))
        await no_frame(ws, "message", within=0.3)
    resp = await one.get("/api/health")
    assert resp.status == 200
    await o.close()
    await s.close()
