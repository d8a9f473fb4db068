"""The command line, run as real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import asyncpg
import pytest

from nanny import PROJECT_ROOT
from nanny.cli import main
from nanny.db.embedded import check_running_as_root
from nanny.startup import StartupError
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
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(
            [*cmd, "--port", str(port)], env=env, cwd=tmp_path, stderr=log, stdout=log
        )
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
    if os.geteuid() == 0:  # what it does to the machine is said, not done silently
        warnings = [
            json.loads(line)["message"]
            for line in (tmp_path / "first.log").read_text().splitlines()
            if '"WARNING"' in line
        ]
        pgdata = tmp_path / "data" / "pg"
        assert any(
            "runs as the OS user 'pgserver'" in m and str(pgdata.resolve()) in m for m in warnings
        ), warnings


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


def _one_line_failure(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "nanny", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return result.returncode, lines[0]


@pytest.mark.parametrize("reuse_port", [False, True], ids=["other program", "other nanny"])
def test_port_in_use_is_one_line(database_url, redis_server_url, tmp_path, reuse_port):
    """Another program on the port, or another `serve --workers` (SO_REUSEPORT, which our
    workers' binds would silently join): refused before the database is touched."""
    with socket.socket() as taken:
        if reuse_port:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(
            DATABASE_URL=database_url, REDIS_URL=redis_server_url, NANNY_DATA_DIR=str(tmp_path)
        )
        for workers in ("1", "2"):
            args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", workers]
            code, line = _one_line_failure(args, env)
            assert (code, line) == (1, f"nanny: port {port} is in use: pass --port")


def test_unusable_host_port_or_data_dir_is_one_line(database_url, tmp_path):
    env = _env(DATABASE_URL=database_url, NANNY_DATA_DIR=str(tmp_path))
    code, line = _one_line_failure(["serve", "--host", "192.0.2.1", "--port", "8080"], env)
    assert code == 1 and line.startswith("nanny: --host 192.0.2.1 is not an address")
    code, line = _one_line_failure(["serve", "--port", "70000"], env)
    assert (code, line) == (2, "nanny: --port must be between 1 and 65535, got 70000")
    (tmp_path / "file").write_text("")
    env = _env(NANNY_DATA_DIR=str(tmp_path / "file" / "data"))
    code, line = _one_line_failure(["migrate"], env)
    assert code == 2 and line.startswith(f"nanny: NANNY_DATA_DIR {tmp_path}/file/data cannot")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root needs another OS user for PostgreSQL")
def test_root_without_useradd_is_one_line(tmp_path, monkeypatch):
    """pgserver would run `useradd` for its OS user and die in a traceback without it."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no useradd here
    with pytest.raises(StartupError) as refused:
        check_running_as_root(tmp_path / "pg", user="nanny-test-no-such-user")
    message = str(refused.value)
    assert "OS user 'nanny-test-no-such-user', which does not exist" in message
    assert "no useradd on PATH" in message and "DATABASE_URL" in message


def test_migrate_command(database_url):
    os.environ["DATABASE_URL"] = database_url
    try:
        assert main(["migrate"]) == 0
    finally:
        del os.environ["DATABASE_URL"]


def test_workers_zero_is_refused():
    assert main(["serve", "--workers", "0"]) == 2
