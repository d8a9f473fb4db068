"""Start-up robustness of a real `nanny serve`: waiting for PostgreSQL and Redis that come up late,
giving up with one line after the bound, and refusing bad production configuration."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.conftest import TEST_JWT_SECRET, free_port
from tests.faults import TcpProxy
from tests.test_cli import _env
from tests.test_shutdown import log_entries, refuses_connections, wait_exit, wait_health


def run_cli(*args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nanny", *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_a_missing_or_short_secret(tmp_path):
    env = {"NANNY_ENV": "production", "NANNY_DATA_DIR": str(tmp_path)}
    for secret in (None, "too-short-for-production"):
        extra = env | ({"JWT_SECRET": secret} if secret else {})
        result = run_cli("serve", "--port", str(free_port()), **extra)
        assert result.returncode == 2
        assert result.stderr.strip() == (
            "nanny: JWT_SECRET must be set to at least 32 characters when NANNY_ENV=production"
        )
    assert not (tmp_path / "jwt_secret").exists()  # no development secret was made up


def test_missing_migrations_stop_the_start(tmp_path, database_url):
    result = run_cli(
        "serve", DATABASE_URL=database_url, NANNY_ROOT=str(tmp_path), JWT_SECRET=TEST_JWT_SECRET
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"nanny: no migrations in {tmp_path}/migrations")


def test_gives_up_after_the_startup_timeout(tmp_path):
    dead = free_port()
    started = time.monotonic()
    result = run_cli(
        "serve",
        "--port",
        str(free_port()),
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:{dead}/nanny",
        STARTUP_TIMEOUT_SECONDS="1.5",
        NANNY_DATA_DIR=str(tmp_path),
    )
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"nanny: PostgreSQL at 127.0.0.1:{dead} did not answer in time")
    assert "retrying in" in result.stderr  # each wait was logged


async def test_waits_for_postgres_then_redis(database_url, redis_server_url, tmp_path):
    pg = TcpProxy.for_postgres(database_url)
    redis_parts = urlsplit(redis_server_url)
    redis = TcpProxy(host=redis_parts.hostname, port=redis_parts.port)
    for proxy in (pg, redis):
        await proxy.start()
        await proxy.cut()  # keeps its port; nothing listens until restore()
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = _env(
        DATABASE_URL=pg.postgres_dsn(database_url),
        REDIS_URL=f"redis://127.0.0.1:{redis.port}{redis_parts.path}",
        JWT_SECRET=TEST_JWT_SECRET,
        NANNY_DATA_DIR=str(tmp_path),
        STARTUP_TIMEOUT_SECONDS="60",
    )
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nanny", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        await asyncio.sleep(2.5)
        assert proc.poll() is None and refuses_connections(port)
        await pg.restore()
        await asyncio.sleep(2.5)  # migrations and the pool get through; Redis is still away
        assert proc.poll() is None and refuses_connections(port)
        await asyncio.sleep(1.5)
        await redis.restore()
        await wait_health(port, timeout=15)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/api/health") as resp,
        ):
            assert await resp.json() == {"status": "ok", "db": "ok", "redis": "ok"}
        proc.send_signal(signal.SIGTERM)
        assert await wait_exit(proc, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        await pg.close()
        await redis.close()
    waits = [e for e in log_entries(log_path) if e["logger"] == "nanny.startup"]
    pg_waits = [e for e in waits if e["message"].startswith("PostgreSQL at 127.0.0.1")]
    redis_waits = [e for e in waits if e["message"].startswith("Redis at 127.0.0.1")]
    assert len(pg_waits) >= 2 and len(redis_waits) >= 2
    assert all(e["level"] == "WARNING" for e in waits)
    assert max(e["attempt"] for e in pg_waits) == len(pg_waits)
    # Backoff: the delays grow (0.5 s, 1 s, 2 s …).
    delays = [e["retry_in_s"] for e in pg_waits]
    assert delays == sorted(delays) and delays[0] < delays[-1]
    assert waits.index(pg_waits[-1]) < waits.index(redis_waits[0])


# --- the retry helpers in-process (the subprocess tests above do not count towards coverage) ---


async def test_retry_async_waits_for_a_restored_connection(database_url, monkeypatch):
    import asyncpg

    from nanny import startup

    monkeypatch.setattr(startup, "FIRST_DELAY", 0.05)
    proxy = TcpProxy.for_postgres(database_url)
    await proxy.start()
    await proxy.cut()
    dsn = proxy.postgres_dsn(database_url)

    async def restore_later():
        await asyncio.sleep(0.4)
        await proxy.restore()

    restoring = asyncio.create_task(restore_later())
    try:
        conn = await startup.retry_async(
            "PostgreSQL", lambda: asyncpg.connect(dsn), startup.ASYNCPG_TRANSIENT, 10
        )
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
        await restoring
    finally:
        await proxy.close()


async def test_pool_start_gives_up_with_a_startup_error(settings, monkeypatch):
    import dataclasses

    import pytest

    from nanny import startup
    from nanny.app import create_app

    monkeypatch.setattr(startup, "FIRST_DELAY", 0.05)
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nanny"
    app = create_app(dataclasses.replace(settings, database_url=dead, startup_timeout_seconds=0.3))
    runner = web.AppRunner(app)
    with pytest.raises(startup.StartupError, match=r"PostgreSQL at 127\.0\.0\.1:\d+ did not"):
        await runner.setup()
    await runner.cleanup()


def test_migrate_gives_up_in_process(monkeypatch, tmp_path, capsys):
    from nanny import startup
    from nanny.cli import main

    monkeypatch.setattr(startup, "FIRST_DELAY", 0.05)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("STARTUP_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("NANNY_DATA_DIR", str(tmp_path))
    assert main(["migrate"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("nanny: PostgreSQL at 127.0.0.1:")


def test_describe_never_shows_credentials():
    from nanny.startup import describe

    assert describe("postgresql://u:secret@db:5432/nanny", "PostgreSQL") == "PostgreSQL at db:5432"
    assert describe("redis://:pw@cache/0", "Redis") == "Redis at cache"
    assert describe("postgresql:///nanny?host=/tmp", "PostgreSQL") == "PostgreSQL"
