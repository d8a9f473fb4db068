"""Sockets that go away in the middle of a long replay are freed, on real server processes.

Two `nanny serve` processes share a database and a Redis; a room holds more history than one
replay page. Clients of both participants subscribe with after_seq=0 on both processes: half
never read a byte and close (the kernel resets a socket closed with data unread), half read
slowly for a moment and then reset. Every handler must end at once: the open-socket gauge
comes back, both participants are offline in the room on both processes, and SIGTERM is quick
because nothing is left to wait for."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import time
import uuid

import aiohttp
import pytest

from bench.raw_ws import reset, stalled_subscriber
from nanny.app import create_app
from nanny.keys import POOL
from tests.chat_support import (
    Server,
    add_history,
    server_env,
    subscribe,
)
from tests.factories import make_admin, make_owner, make_sitter
from tests.rows import insert_booking

HISTORY = 1_100  # messages in the room: several replay pages
PER_KIND = 200  # clients that close without reading, and as many that read and reset


async def _gauges(session: aiohttp.ClientSession, servers: list[Server]) -> list[float]:
    """Each process's open-socket gauge, from its /metrics."""
    values = []
    for server in servers:
        async with session.get(f"{server.url}/metrics") as resp:
            text = await resp.text()
        [line] = [x for x in text.splitlines() if x.startswith("nanny_websockets_open ")]
        values.append(float(line.split()[1]))
    return values


async def _read_slowly(sock: socket.socket, until: asyncio.Event) -> None:
    """Read 4 KiB every 50 ms or so: a replay of the room takes this client far longer than
    it stays."""
    loop = asyncio.get_running_loop()
    while not until.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.05)
        await asyncio.sleep(0.05)


class Watcher:
    """An admin watching the room on one process: who that process says is online."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, online: list[int]):
        self.ws = ws
        self.online = set(online)
        self.task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        async for msg in self.ws:
            frame = json.loads(msg.data)
            if frame["type"] == "presence":
                (self.online.add if frame["online"] else self.online.discard)(frame["user_id"])


@pytest.fixture
async def pair(settings, redis_server_url, aiohttp_client):
    env = server_env(
        settings.database_url,
        redis_server_url,
        REDIS_PREFIX=f"t{uuid.uuid4().hex[:10]}",
        RATE_WS_CONNECT_PER_USER="1000/60s",
    )
    servers = [Server(env).start(), Server(env).start()]
    try:
        local = dataclasses.replace(settings, redis_url=redis_server_url)
        client = await aiohttp_client(create_app(local))
        for server in servers:
            await server.healthy()
        yield servers, client
    finally:
        for server in servers:
            server.kill()


async def test_sockets_dropped_during_replay_are_freed_everywhere(pair):
    servers, client = pair
    owner, sitter = await make_owner(client), await make_sitter(client)
    admin = await make_admin(client)
    pool = client.app[POOL]
    booking_id = await insert_booking(pool, owner.user_id, sitter.user_id)
    await add_history(pool, booking_id, owner.user_id, HISTORY)
    async with aiohttp.ClientSession() as session:
        watchers = []
        for server in servers:
            ws = await session.ws_connect(f"{server.url}/api/ws", headers=admin.headers)
            watchers.append(Watcher(ws, (await subscribe(ws, booking_id))["online"]))
        before = await _gauges(session, servers)
        assert before == [1.0, 1.0]

        drop = asyncio.Event()
        socks: list[socket.socket] = []

        async def client_of(server: Server, token: str, reads: bool) -> None:
            sock = await stalled_subscriber(server.port, token, booking_id)
            socks.append(sock)
            if reads:
                await _read_slowly(sock, drop)
                reset(sock)
            else:
                await drop.wait()
                sock.close()  # a reset too: what the client never read is still queued

        clients = [
            asyncio.create_task(client_of(servers[i % 2], account.token, reads))
            for reads, account in ((False, sitter), (True, owner))
            for i in range(PER_KIND)
        ]
        # Everyone is connected and in the room, replaying, on both processes.
        parties = {owner.user_id, sitter.user_id}
        deadline = time.monotonic() + 30
        while not (len(socks) == 2 * PER_KIND and all(w.online == parties for w in watchers)):
            assert time.monotonic() < deadline, "the clients did not all join"
            await asyncio.sleep(0.05)
        assert await _gauges(session, servers) == [1.0 + PER_KIND] * 2
        await asyncio.sleep(0.5)
        drop.set()
        await asyncio.gather(*clients)

        dropped_at = time.monotonic()
        while True:
            gauges = await _gauges(session, servers)
            if gauges == before and all(not w.online for w in watchers):
                break
            assert time.monotonic() - dropped_at < 5, (
                f"5 s after the drop: sockets {gauges} (before {before}), "
                f"online {[w.online for w in watchers]}"
            )
            await asyncio.sleep(0.1)
        # The watchers are still served.
        for ws in (w.ws for w in watchers):
            await ws.send_json({"type": "ping"})
        await asyncio.sleep(0.2)

        started = time.monotonic()
        for server in servers:
            server.proc.terminate()
        codes = await asyncio.gather(*(asyncio.to_thread(s.proc.wait, 10) for s in servers))
        took = time.monotonic() - started
        assert codes == [0, 0] and took < 2, f"SIGTERM took {took:.1f} s ({codes})"
        for w in watchers:
            w.task.cancel()
