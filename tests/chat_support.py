"""Helpers of the chat tests: WebSocket frame reading and real `nanny serve` processes (bookings
with their chat come from tests/rows.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from nanny import PROJECT_ROOT
from tests.conftest import TEST_JWT_SECRET, free_port


async def add_history(
    db: asyncpg.Pool | asyncpg.Connection, booking_id: int, sender_id: int, count: int
) -> None:
    """`count` messages of some 320 characters in the booking's chat, by SQL."""
    await db.execute(
        """
        WITH c AS (UPDATE chats SET last_seq = last_seq + $3 WHERE booking_id = $1
                   RETURNING chat_id, last_seq - $3 AS base)
        INSERT INTO messages (chat_id, seq, sender_id, content)
        SELECT c.chat_id, c.base + g, $2, repeat('history ', 40)
        FROM c, generate_series(1, $3) g
        """,
        booking_id,
        sender_id,
        count,
    )


async def booking_json(db, booking_id: int, status: str) -> dict[str, Any]:
    """Set the status by SQL, as a transition would, and return the booking's API JSON."""
    row = await db.fetchrow(
        """
        UPDATE bookings SET status = $2, updated_at = now() WHERE booking_id = $1
        RETURNING booking_id, owner_id, sitter_id, pet_id, service_id, status, total_price
        """,
        booking_id,
        status,
    )
    return dict(row) | {"total_price": float(row["total_price"])}


async def recv(ws, *types: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame (of one of `types`, skipping others when given)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"no {types or 'frame'} within {timeout}s")
        msg = await ws.receive(timeout=left)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"socket ended: {msg.type} {ws.close_code} {msg.extra}")
        frame = json.loads(msg.data)
        if not types or frame["type"] in types:
            return frame


async def no_frame(ws, *types: str, within: float = 0.3) -> None:
    """Assert that no frame (of `types`) arrives within `within` seconds."""
    try:
        frame = await recv(ws, *types, timeout=within)
    except (AssertionError, TimeoutError):
        return
    raise AssertionError(f"unexpected frame {frame}")


async def subscribe(ws, booking_id: int, after_seq: int | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "subscribe", "booking_id": booking_id}
    if after_seq is not None:
        frame["after_seq"] = after_seq
    await ws.send_json(frame)
    return await recv(ws, "subscribed")


async def collect_messages(ws, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    out = []
    while len(out) < count:
        out.append((await recv(ws, "message", timeout=timeout))["message"])
    return out


def server_env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "PYTHONPATH": str(PROJECT_ROOT),
        "DATABASE_URL": database_url,
        "BCRYPT_ROUNDS": "4",
        "JWT_SECRET": TEST_JWT_SECRET,
        "NANNY_ENV": "test",
        "LOG_LEVEL": "WARNING",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
        # Keys and channels of their own (tests share one Redis), unless the test gives one.
        env["REDIS_PREFIX"] = f"t{uuid.uuid4().hex[:10]}"
    return env | extra


class Server:
    """A `python -m nanny serve` process on its own port, stopped by PID."""

    def __init__(self, env: dict[str, str], *, workers: int = 1, port: int | None = None):
        self.port = port or free_port()
        self.env = env
        self.workers = workers
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        cmd = [sys.executable, "-m", "nanny", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=PROJECT_ROOT)
        return self

    def wait_healthy(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited with {self.proc.returncode}"
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=1) as r:
                    return json.loads(r.read())
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"server on {self.port} not healthy within {timeout}s")

    async def healthy(self, timeout: float = 30) -> dict:
        return await asyncio.to_thread(self.wait_healthy, timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise
        return self.proc.returncode


def worker_pids(pid: int) -> set[int]:
    """The worker processes (`python -m nanny.worker`) of a `serve --workers` parent."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return set()
    workers = set()
    for child in map(int, text.split()):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"nanny.worker" in cmdline:
            workers.add(child)
    return workers
