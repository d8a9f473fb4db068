"""Real `nanny serve` processes on different ports sharing one database and one Redis: the
owner on process 1, the sitter and the owner's second device on process 2."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from dataclasses import dataclass

import aiohttp
import pytest
import redis.asyncio as aioredis

from nanny.app import create_app
from nanny.events import booking_changed
from nanny.keys import POOL
from tests.chat_support import (
    Server,
    booking_json,
    collect_messages,
    no_frame,
    recv,
    server_env,
    subscribe,
)
from tests.factories import Account, make_admin, make_owner, make_sitter
from tests.rows import insert_booking


@dataclass
class Cluster:
    one: Server
    two: Server
    app_client: object  # an in-process app on the same database and Redis
    session: aiohttp.ClientSession
    owner: Account
    sitter: Account
    booking_id: int

    async def ws(self, server: Server, account: Account):
        return await self.session.ws_connect(f"{server.url}/api/ws", headers=account.headers)


@pytest.fixture
async def cluster(settings, redis_server_url, aiohttp_client):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = server_env(
        settings.database_url, redis_server_url, REDIS_PREFIX=prefix, PRESENCE_TTL_SECONDS="3"
    )
    one, two = Server(env).start(), Server(env).start()
    session = aiohttp.ClientSession()
    try:
        local = dataclasses.replace(settings, redis_url=redis_server_url, redis_prefix=prefix)
        client = await aiohttp_client(create_app(local))
        owner = await make_owner(client)
        sitter = await make_sitter(client)
        booking_id = await insert_booking(client.app[POOL], owner.user_id, sitter.user_id)
        for server in (one, two):
            health = await server.healthy()
            assert health == {"status": "ok", "db": "ok", "redis": "ok"}
        yield Cluster(one, two, client, session, owner, sitter, booking_id)
    finally:
        await session.close()
        for server in (one, two):
            server.kill()


async def test_conversation_across_processes(cluster):
    c, b = cluster, cluster.booking_id
    owner1 = await c.ws(c.one, c.owner)
    sitter2 = await c.ws(c.two, c.sitter)
    owner2 = await c.ws(c.two, c.owner)
    assert (await subscribe(owner1, b))["online"] == [c.owner.user_id]
    assert (await subscribe(sitter2, b))["online"] == [c.owner.user_id, c.sitter.user_id]
    presence = await recv(owner1, "presence")
    assert presence == {
        "type": "presence",
        "booking_id": b,
        "user_id": c.sitter.user_id,
        "online": True,
    }
    await subscribe(owner2, b)
    await no_frame(sitter2, "presence")  # the owner was online already

    send = {"type": "send", "booking_id": b, "content": "Is Rex fed?", "client_id": "q-1"}
    await owner1.send_json(send)
    ack = await recv(owner1, "ack")
    assert ack["client_id"] == "q-1" and ack["message"]["seq"] == 1
    for ws in (owner1, sitter2, owner2):
        assert (await collect_messages(ws, 1))[0] == ack["message"]
    await owner1.send_json(send)  # a retry after a lost ack
    assert (await recv(owner1, "ack"))["message"] == ack["message"]
    for ws in (sitter2, owner2):
        await no_frame(ws, "message")

    await sitter2.send_json({"type": "typing", "booking_id": b})
    for ws in (owner1, owner2):
        assert (await recv(ws, "typing"))["user_id"] == c.sitter.user_id
    await sitter2.send_json({"type": "read", "booking_id": b, "seq": 1})
    for ws in (owner1, owner2):
        assert (await recv(ws, "read"))["seq"] == 1

    # REST on process 2 is delivered live on process 1 like a WebSocket send.
    resp = await c.session.post(
        f"{c.two.url}/api/bookings/{b}/messages", json={"content": "Yes"}, headers=c.sitter.headers
    )
    assert resp.status == 201
    assert (await collect_messages(owner1, 1))[0]["seq"] == 2

    # A status change (announced by any process, here an in-process app on the same Redis)
    # reaches the room, an admin watching it and the sitter's socket that joined no room,
    # each once.
    idle = await c.ws(c.one, c.sitter)
    await idle.send_json({"type": "ping"})
    await recv(idle, "pong")
    admin2 = await c.ws(c.two, await make_admin(c.app_client))
    await subscribe(admin2, b)
    await booking_changed(
        c.app_client.app, await booking_json(c.app_client.app[POOL], b, "confirmed")
    )
    for ws in (idle, owner1, owner2, sitter2, admin2):
        assert (await recv(ws, "booking"))["booking"]["status"] == "confirmed"
    for ws in (idle, owner1, owner2, sitter2, admin2):
        await no_frame(ws, "booking")
    await admin2.close()

    # The sitter leaves: owners on both processes see it once.
    await sitter2.close()
    await idle.close()
    for ws in (owner1, owner2):
        assert (await recv(ws, "presence"))["online"] is False
    await owner1.close()
    await owner2.close()


async def test_booking_events_reach_only_processes_with_the_users_sockets(
    cluster, redis_server_url
):
    """Each process listens to a user's booking events while it holds a socket of that user,
    from before the client is told it is signed in (so no event falls in between), and stops
    with the user's last socket there."""
    c = cluster
    redis = aioredis.from_url(redis_server_url)
    channel = f"{c.one.env['REDIS_PREFIX']}:user:{c.owner.user_id}"

    async def listeners() -> int:
        return dict(await redis.pubsub_numsub(channel))[channel.encode()]

    async def listeners_become(n: int) -> None:
        while await listeners() != n:
            await asyncio.sleep(0.02)

    try:
        assert await listeners() == 0
        first = await c.ws(c.one, c.owner)  # signed in by the upgrade's header
        assert await listeners() == 1
        second = await c.ws(c.one, c.owner)  # the same process holds one subscription
        assert await listeners() == 1
        third = await c.session.ws_connect(f"{c.two.url}/api/ws")
        await third.send_json({"type": "auth", "token": c.owner.token})
        assert (await recv(third, "authenticated"))["user_id"] == c.owner.user_id
        assert await listeners() == 2
        await first.close()
        await second.send_json({"type": "ping"})
        await recv(second, "pong")
        assert await listeners() == 2  # the other socket there still holds it
        await second.close()
        await asyncio.wait_for(listeners_become(1), timeout=3)
        await booking_changed(
            c.app_client.app,
            await booking_json(c.app_client.app[POOL], c.booking_id, "confirmed"),
        )
        assert (await recv(third, "booking"))["booking"]["booking_id"] == c.booking_id
        await third.close()
        await asyncio.wait_for(listeners_become(0), timeout=3)
    finally:
        await redis.aclose()


async def test_burst_from_two_processes(cluster):
    c, b = cluster, cluster.booking_id
    owner1 = await c.ws(c.one, c.owner)
    sitter2 = await c.ws(c.two, c.sitter)
    owner2 = await c.ws(c.two, c.owner)
    for ws in (owner1, sitter2, owner2):
        await subscribe(ws, b)

    async def burst(ws, tag):
        for i in range(50):
            frame = {
                "type": "send",
                "booking_id": b,
                "content": f"{tag}{i}",
                "client_id": f"{tag}{i}",
            }
            await ws.send_json(frame)

    await asyncio.gather(burst(owner1, "o"), burst(sitter2, "s"))
    for ws in (owner1, sitter2, owner2):
        got = await collect_messages(ws, 100)
        assert [m["seq"] for m in got] == list(range(1, 101))
        await no_frame(ws, "message", within=0.2)
    # Each side's own messages kept their order.
    contents = [m["content"] for m in got]
    assert [x for x in contents if x[0] == "o"] == [f"o{i}" for i in range(50)]


async def test_kill_9_a_process_mid_conversation(cluster):
    c, b = cluster, cluster.booking_id
    owner1 = await c.ws(c.one, c.owner)
    sitter2 = await c.ws(c.two, c.sitter)
    await subscribe(owner1, b)
    await subscribe(sitter2, b)
    await recv(owner1, "presence")
    for i in range(5):
        await owner1.send_json({"type": "send", "booking_id": b, "content": f"a{i}"})
    last = (await collect_messages(sitter2, 5))[-1]["seq"]
    c.two.kill()  # the sitter's process dies without a word
    for i in range(3):
        await owner1.send_json({"type": "send", "booking_id": b, "content": f"b{i}"})
    # The owner's process notices the sitter is gone once the presence entry lapses.
    started = asyncio.get_running_loop().time()
    assert (await recv(owner1, "presence", timeout=10))["online"] is False
    assert asyncio.get_running_loop().time() - started < 8
    # The sitter reconnects to the surviving process and misses nothing.
    sitter1 = await c.ws(c.one, c.sitter)
    sub = await subscribe(sitter1, b, after_seq=last)
    assert sub["last_seq"] == 8
    got = await collect_messages(sitter1, 3)
    assert [m["content"] for m in got] == ["b0", "b1", "b2"]
    assert (await recv(owner1, "presence"))["online"] is True
    await owner1.close()
    await sitter1.close()


async def test_sigterm_closes_sockets_with_1001(cluster):
    c, b = cluster, cluster.booking_id
    ws = await c.ws(c.two, c.sitter)
    await subscribe(ws, b)
    c.two.proc.terminate()
    msg = await ws.receive(timeout=15)
    assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1001
    assert await asyncio.to_thread(c.two.proc.wait, 20) == 0


async def test_user_changes_reach_every_process_at_once(cluster):
    """Each process caches signed-in users (AUTH_CACHE_SECONDS, 30 s by default); an approval or
    a deletion made through one process is forgotten by the others at once, and the deleted
    account's sockets on them are closed."""
    c = cluster
    admin = await make_admin(c.app_client)
    pending = await make_sitter(c.app_client, status="pending")
    other = await make_owner(c.app_client)

    async def me(server: Server, account: Account) -> tuple[int, dict]:
        async with c.session.get(f"{server.url}/api/auth/me", headers=account.headers) as resp:
            return resp.status, await resp.json()

    for server in (c.one, c.two):  # both processes have the users cached now
        assert (await me(server, pending))[1]["sitter"]["status"] == "pending"
        assert (await me(server, other))[0] == 200
    ws = await c.ws(c.two, other)
    await ws.send_json({"type": "ping"})
    assert await recv(ws) == {"type": "pong"}

    resp = await c.app_client.post(
        f"/api/admin/sitters/{pending.user_id}/approve", headers=admin.headers
    )
    assert resp.status == 200
    resp = await c.app_client.delete(f"/api/admin/users/{other.user_id}", headers=admin.headers)
    assert resp.status == 204

    async def seen_everywhere() -> None:
        while True:
            statuses = [
                ((await me(s, pending))[1].get("sitter", {}).get("status"), (await me(s, other))[0])
                for s in (c.one, c.two)
            ]
            if statuses == [("approved", 401)] * 2:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(seen_everywhere(), timeout=3)  # not the cache's 30 s
    msg = await ws.receive(timeout=3)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4001
