"""Login burst vs. health latency: bcrypt must not stall the event loop.

Starts `python -m nanny serve` on a free 127.0.0.1 port, registers one user, then for a fixed
time fires bursts of concurrent logins (20 at once, the next burst when the last one ends) while
another task polls GET /api/health back to back. Prints logins/s and the health latency
percentiles measured during the bursts; target: health p99 < 50 ms.

    python bench/auth_load.py [--duration 10] [--concurrency 20] [--bcrypt-rounds 12]

DATABASE_URL selects the database; without it a fresh database is created on the machine's
PostgreSQL (postgresql://postgres@127.0.0.1:5432) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def create_database(server_dsn: str) -> tuple[str, str]:
    name = f"nanny_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, with_database(server_dsn, name)


async def drop_database(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def start_server(database_url: str, port: int, rounds: int, data_dir: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "BCRYPT_ROUNDS": str(rounds),
        "NANNY_DATA_DIR": data_dir,
        "LOG_LEVEL": "WARNING",
        # Twenty logins at once to one account is what the per-e-mail login limit exists to
        # refuse; the benchmark measures bcrypt's load, not how fast 429s go out.
        "RATE_LIMIT_ENABLED": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "nanny", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=data_dir,
    )


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_healthy(session: aiohttp.ClientSession, base: str, proc, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            async with session.get(f"{base}/api/health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the server did not become healthy in time")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def drive(base: str, proc, duration: float, concurrency: int) -> dict:
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency + 5)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await wait_healthy(session, base, proc)
        email = f"bench-{uuid.uuid4().hex[:8]}@example.kz"
        body = {
            "full_name": "Bench Owner",
            "email": email,
            "phone": "+77010000999",
            "password": PASSWORD,
        }
        async with session.post(f"{base}/api/auth/register/owner", json=body) as resp:
            assert resp.status == 201, await resp.text()

        stop = asyncio.Event()
        health: list[float] = []
        logins = failures = bursts = 0

        async def login() -> bool:
            credentials = {"email": email, "password": PASSWORD}
            async with session.post(f"{base}/api/auth/login", json=credentials) as resp:
                await resp.read()
                return resp.status == 200

        async def burst_loop() -> None:
            nonlocal logins, failures, bursts
            while not stop.is_set():
                results = await asyncio.gather(*(login() for _ in range(concurrency)))
                bursts += 1
                logins += sum(results)
                failures += len(results) - sum(results)

        async def health_loop() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                async with session.get(f"{base}/api/health") as resp:
                    await resp.read()
                    assert resp.status == 200
                health.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.005)

        started = time.monotonic()
        tasks = [asyncio.create_task(burst_loop()), asyncio.create_task(health_loop())]
        await asyncio.sleep(duration)
        stop.set()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    return {
        "elapsed": elapsed,
        "logins": logins,
        "failures": failures,
        "bursts": bursts,
        "health": health,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of bursts")
    parser.add_argument("--concurrency", type=int, default=20, help="logins per burst")
    parser.add_argument("--bcrypt-rounds", type=int, default=12, help="the server's cost")
    args = parser.parse_args()
    if not 1 <= args.duration <= 50:
        parser.error("--duration must be between 1 and 50 seconds")

    own_db = None
    database_url = os.environ.get("DATABASE_URL")
    server_dsn = DEFAULT_SERVER
    if not database_url:
        own_db, database_url = await create_database(server_dsn)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="nanny-bench-") as data_dir:
        proc = start_server(database_url, port, args.bcrypt_rounds, data_dir)
        print(f"server pid {proc.pid} on {base}, bcrypt cost {args.bcrypt_rounds}")
        try:
            result = await drive(base, proc, args.duration, args.concurrency)
        finally:
            stop_server(proc)
            if own_db:
                await drop_database(server_dsn, own_db)

    health = result["health"]
    rate = result["logins"] / result["elapsed"]
    p99 = percentile(health, 99)
    print(
        f"logins: {result['logins']} ok, {result['failures']} failed in "
        f"{result['bursts']} bursts of {args.concurrency} over {result['elapsed']:.1f}s "
        f"-> {rate:.1f} logins/s"
    )
    print(
        f"health during the bursts: {len(health)} requests, "
        f"p50 {statistics.median(health):.1f} ms, p99 {p99:.1f} ms, max {max(health):.1f} ms"
    )
    verdict = "OK" if p99 < 50 else "MISSED"
    print(f"target health p99 < 50 ms: {verdict}")
    return 0 if verdict == "OK" and not result["failures"] else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
