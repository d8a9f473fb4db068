"""Health reports the database; when it is down the answer is 503 and the process recovers."""

from __future__ import annotations

import dataclasses

from nanny.app import create_app
from tests.conftest import with_database
from tests.factories import owner_body
from tests.faults import TcpProxy


async def test_health_ok(client):
    resp = await client.get("/api/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "db": "ok", "redis": "disabled"}
    assert resp.headers["X-Request-ID"]


async def test_request_id_is_echoed(client):
    resp = await client.get("/api/health", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/api/health", headers={"X-Request-ID": "bad id\u00e9"})
    assert resp.headers["X-Request-ID"] != "bad id\u00e9"


async def test_database_down_then_back(aiohttp_client, settings):
    """The network to PostgreSQL is cut: health says 503 naming the database, requests that need
    it get a JSON 503, the process stays up, and all recovers when the database is back."""
    proxy = TcpProxy.for_postgres(settings.database_url)
    await proxy.start()
    try:
        through_proxy = dataclasses.replace(
            settings, database_url=proxy.postgres_dsn(settings.database_url)
        )
        client = await aiohttp_client(create_app(through_proxy))
        assert (await client.get("/api/health")).status == 200
        await proxy.cut()
        resp = await client.get("/api/health")
        assert resp.status == 503
        assert await resp.json() == {"status": "unavailable", "db": "down", "redis": "disabled"}
        resp = await client.get("/api/auth/me", headers={"Authorization": "Bearer x"})
        assert resp.status == 401  # token checks need no database
        resp = await client.post(
            "/api/auth/login", json={"email": "a@b.kz", "password": "whatever1"}
        )
        assert resp.status == 503
        assert (await resp.json())["code"] == "unavailable"
        await proxy.restore()
        resp = await client.get("/api/health")
        assert resp.status == 200
        resp = await client.post("/api/auth/register/owner", json=owner_body())
        assert resp.status == 201
    finally:
        await proxy.close()


async def test_unknown_route_and_method_are_json(client):
    resp = await client.get("/api/nothing-here")
    assert resp.status == 404
    assert (await resp.json())["code"] == "not_found"
    resp = await client.delete("/api/health")
    assert resp.status == 405
    assert (await resp.json())["code"] == "method_not_allowed"


async def test_unexpected_error_is_a_json_500_with_request_id(aiohttp_client, settings):
    from aiohttp import web

    app = create_app(settings)

    async def boom(request):
        raise RuntimeError("kaboom")

    app.router.add_get("/api/boom", boom)
    client = await aiohttp_client(app)
    resp = await client.get("/api/boom", headers={"X-Request-ID": "rid-1"})
    assert resp.status == 500
    data = await resp.json()
    assert data["code"] == "internal_error"
    assert data["details"]["request_id"] == "rid-1"
    assert "kaboom" not in await resp.text()
    assert isinstance(app, web.Application)


def test_with_database_keeps_query():
    dsn = "postgresql://postgres:@/postgres?host=/tmp/x"
    assert with_database(dsn, "db1") == "postgresql://postgres:@/db1?host=/tmp/x"


async def test_a_deadlock_lost_to_a_concurrent_request_is_a_409(aiohttp_client, settings):
    """PostgreSQL breaks a deadlock by failing one transaction: that request gets a retryable
    409, not a 500."""
    import asyncio

    from nanny.keys import POOL

    app = create_app(settings)
    both_hold_first = asyncio.Barrier(2)

    async def cross(request):
        first, second = (1, 2) if request.query["order"] == "ab" else (2, 1)
        async with request.app[POOL].acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7, $1)", first)
            await both_hold_first.wait()
            await conn.execute("SELECT pg_advisory_xact_lock(7, $1)", second)
        from aiohttp import web

        return web.json_response({})

    app.router.add_get("/api/cross", cross)
    client = await aiohttp_client(app)
    statuses = sorted(
        r.status
        for r in await asyncio.gather(
            client.get("/api/cross?order=ab"), client.get("/api/cross?order=ba")
        )
    )
    assert statuses == [200, 409]
