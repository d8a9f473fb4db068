"""Graceful shutdown of a real `nanny serve` process on SIGTERM and SIGINT.

The slow in-flight request is a real one: logging in to an account whose password hash has cost
15 (an account created while BCRYPT_ROUNDS was 15) takes about two seconds of bcrypt.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from nanny.db import users as db_users
from tests.conftest import TEST_JWT_SECRET, free_port
from tests.factories import PASSWORD, unique_email
from tests.test_cli import _env

# bcrypt of tests.factories.PASSWORD at cost 15, made once.
SLOW_HASH = "$2b$15$03desv1/TaCgiufXBlXpge405uDtjOoWSH7QXbCGuzcsAsIAFcj.m"


async def slow_account(database_url: str) -> str:
    email = unique_email("slow")
    conn = await asyncpg.connect(database_url)
    try:
        await db_users.create_user(
            conn, email=email, phone=None, full_name="Slow", password_hash=SLOW_HASH, role="owner"
        )
    finally:
        await conn.close()
    return email


def start_server(database_url: str, log_path: Path, **env) -> tuple[subprocess.Popen, int]:
    port = free_port()
    environment = _env(
        DATABASE_URL=database_url,
        JWT_SECRET=TEST_JWT_SECRET,
        NANNY_DATA_DIR=str(log_path.parent),
        **env,
    )
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nanny", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc, port


async def wait_health(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}/api/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"server on {port} never became healthy")


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


async def wait_exit(proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        raise AssertionError(f"the server did not exit within {timeout}s")
    return proc.returncode


def log_entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def login(port: int, email: str) -> tuple[int, dict | None]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{port}/api/auth/login",
            json={"email": email, "password": PASSWORD},
        ) as resp,
    ):
        return resp.status, await resp.json()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_finishes_in_flight_request_then_exits_0(database_url, tmp_path, sig):
    email = await slow_account(database_url)
    log_path = tmp_path / "serve.log"
    proc, port = start_server(database_url, log_path)
    try:
        await wait_health(port)
        in_flight = asyncio.create_task(login(port, email))
        await asyncio.sleep(0.5)  # the request is inside bcrypt now
        assert not in_flight.done()
        proc.send_signal(sig)
        deadline = time.monotonic() + 1.0
        while not refuses_connections(port):
            assert time.monotonic() < deadline, "still accepting connections after the signal"
            await asyncio.sleep(0.05)
        assert not in_flight.done(), "refusal must come while the request is still running"
        status, body = await in_flight
        assert status == 200 and body["token"]
        assert await wait_exit(proc, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    entries = log_entries(log_path)  # every line is JSON
    messages = [e["message"] for e in entries]
    shutting = next(i for i, m in enumerate(messages) if m.startswith("shutting down"))
    login_line = next(i for i, e in enumerate(entries) if e.get("route") == "/api/auth/login")
    stopped = next(i for i, m in enumerate(messages) if m.startswith("stopped"))
    assert shutting < login_line < stopped == len(entries) - 1
    assert entries[login_line]["status"] == 200
    assert not [e for e in entries if e["level"] in ("ERROR", "CRITICAL")]


async def test_shutdown_timeout_bounds_the_wait(database_url, tmp_path):
    email = await slow_account(database_url)
    log_path = tmp_path / "serve.log"
    proc, port = start_server(database_url, log_path, SHUTDOWN_TIMEOUT_SECONDS="0.2")
    try:
        await wait_health(port)
        in_flight = asyncio.create_task(login(port, email))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(aiohttp.ClientError):  # cut off, not answered
            await in_flight
        # The cut came from the 0.2 s bound, long before bcrypt's two seconds were up.
        assert time.monotonic() - started < 1.5
        assert await wait_exit(proc, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert log_entries(log_path)[-1]["message"].startswith("stopped")
