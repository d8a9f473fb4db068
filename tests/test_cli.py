"""The command line, run as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import asyncpg

from nanny import PROJECT_ROOT
from nanny.cli import main
from tests.conftest import free_port


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    # Run this checkout's code, whichever checkout the package was installed from.
    return env | {"PYTHONPATH": str(PROJECT_ROOT)} | extra


def _wait_health(port: int, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as r:
                return r.status, time.monotonic() - started
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no health answer on port {port} within {timeout}s")


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_on_an_empty_directory_uses_embedded_postgres(tmp_path):
    """`nanny serve` with no environment: embedded PostgreSQL, migrations, health within 15 s.
    A second `nanny serve` on the same data dir reuses the running database."""
    port, port2 = free_port(), free_port()
    env = _env(NANNY_DATA_DIR=str(tmp_path / "data"))
    cmd = [sys.executable, "-m", "nanny", "serve", "--host", "127.0.0.1"]
    first = subprocess.Popen([*cmd, "--port", str(port)], env=env, cwd=tmp_path)
    second = None
    try:
        status, took = _wait_health(port, 60)
        assert status == 200
        second = subprocess.Popen([*cmd, "--port", str(port2)], env=env, cwd=tmp_path)
        assert _wait_health(port2, 30)[0] == 200
        assert _stop(second) == 0
        assert _wait_health(port, 5)[0] == 200  # the first still has its database
    finally:
        if second and second.poll() is None:
            second.kill()
        assert _stop(first) == 0
    assert took < 15, f"took {took:.1f}s"


def test_create_admin_then_login(database_url, capsys):
    os.environ["DATABASE_URL"] = database_url
    os.environ["BCRYPT_ROUNDS"] = "4"
    try:
        args = [
            "create-admin",
            "--email",
            "Boss@Example.kz",
            "--password",
            "admin-pass-1",
            "--full-name",
            "Boss",
        ]
        assert main(args) == 0
        assert "created" in capsys.readouterr().out
        assert main(args) == 1  # the e-mail is taken
        assert main([*args[:-4], "--password", "short", "--full-name", "B"]) == 2
        assert "password" in capsys.readouterr().err
    finally:
        del os.environ["DATABASE_URL"], os.environ["BCRYPT_ROUNDS"]

    async def check():
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchrow(
                "SELECT role, full_name FROM users WHERE email = $1", "boss@example.kz"
            )
        finally:
            await conn.close()

    import asyncio

    row = asyncio.run(check())
    assert row["role"] == "admin" and row["full_name"] == "Boss"


def test_bad_configuration_is_one_line(tmp_path):
    env = _env(NANNY_DATA_DIR=str(tmp_path), JWT_TTL_HOURS="soon")
    result = subprocess.run(
        [sys.executable, "-m", "nanny", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "nanny: JWT_TTL_HOURS must be a positive number, got 'soon'"


def test_migrate_command(database_url):
    os.environ["DATABASE_URL"] = database_url
    try:
        assert main(["migrate"]) == 0
    finally:
        del os.environ["DATABASE_URL"]


def test_workers_zero_is_refused():
    assert main(["serve", "--workers", "0"]) == 2
