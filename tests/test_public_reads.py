"""Public reads (a sitter's reviews, rating and services, a service by id) are answered from the
per-process public-read cache with an ETag, Cache-Control and 304 on If-None-Match, and a change
made through any process is seen by every process as soon as it is answered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from nanny.http.reviews import ReviewOut
from nanny.keys import POOL, SEARCH_CACHE
from tests.chat_support import Server, server_env
from tests.factories import make_owner, make_sitter
from tests.rows import insert_booking

SERVICE = {"type": "walking", "price_per_hour": "2500.00", "description": "Walks"}


async def _public_paths(client) -> tuple[list[str], object]:
    sitter = await make_sitter(client)
    resp = await client.post("/api/services", json=SERVICE, headers=sitter.headers)
    service_id = (await resp.json())["service_id"]
    sid = sitter.user_id
    paths = [
        f"/api/sitters/{sid}/reviews",
        f"/api/sitters/{sid}/rating",
        f"/api/sitters/{sid}/services",
        f"/api/services/{service_id}",
    ]
    return paths, sitter


async def test_public_reads_carry_an_etag_and_answer_304(client):
    paths, _ = await _public_paths(client)
    for path in paths:
        first = await client.get(path)
        assert first.status == 200, path
        body = await first.read()
        etag = first.headers["ETag"]
        assert etag.startswith('"') and etag.endswith('"')
        assert first.headers["Cache-Control"] == "public, max-age=1"
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304, path
        assert await again.read() == b""
        assert again.headers["ETag"] == etag
        weak = await client.get(path, headers={"If-None-Match": f'"other", W/{etag}'})
        assert weak.status == 304
        stale = await client.get(path, headers={"If-None-Match": '"something-else"'})
        assert stale.status == 200 and await stale.read() == body


async def test_the_openapi_document_names_the_headers_and_304(client):
    document = await (await client.get("/api/openapi.json")).json()
    paths = document["paths"]
    for path in (
        "/api/sitters/{sitter_id}/reviews",
        "/api/sitters/{sitter_id}/rating",
        "/api/sitters/{sitter_id}/services",
        "/api/services/{id}",
    ):
        operation = paths[path]["get"]
        assert "304" in operation["responses"], path
        assert {"ETag", "Cache-Control"} <= set(operation["responses"]["200"]["headers"])
        assert "If-None-Match" in [p["name"] for p in operation["parameters"]]
    assert "304" not in paths["/api/bookings/{id}"]["get"]["responses"]


async def test_a_change_gives_a_new_etag(client):
    paths, sitter = await _public_paths(client)
    service_path = paths[3]
    old = (await client.get(service_path)).headers["ETag"]
    resp = await client.put(service_path, json={"price_per_hour": 3000}, headers=sitter.headers)
    assert resp.status == 200
    fresh = await client.get(service_path, headers={"If-None-Match": old})
    assert fresh.status == 200
    assert (await fresh.json())["price_per_hour"] == 3000.0
    assert fresh.headers["ETag"] != old


async def test_an_unapproved_sitters_service_is_not_publicly_cacheable(client):
    paths, sitter = await _public_paths(client)
    await client.app[POOL].execute(
        "UPDATE sitters SET status = 'pending' WHERE user_id = $1", sitter.user_id
    )
    # The approval changed behind the app's back: drop what it keeps (a write would).
    client.app[SEARCH_CACHE].clear()
    for path in (paths[2], paths[3]):
        assert (await client.get(path)).status == 404
        own = await client.get(path, headers=sitter.headers)
        assert own.status == 200
        assert "ETag" not in own.headers
        assert "public" not in own.headers.get("Cache-Control", "")


async def test_reviews_page_and_total_in_one_answer(client):
    sitter = await make_sitter(client)
    owner = await make_owner(client)
    for day in range(3):
        start = datetime.now(UTC) - timedelta(days=10 + day)
        booking_id = await insert_booking(
            client, owner.user_id, sitter.user_id, status="completed", start=start
        )
        resp = await client.post(
            "/api/reviews",
            json={"booking_id": booking_id, "rating": 5 - day, "comment": f"c{day}"},
            headers=owner.headers,
        )
        assert resp.status == 201
    page = await client.get(f"/api/sitters/{sitter.user_id}/reviews?limit=2")
    assert page.headers["X-Total-Count"] == "3"
    rows = await page.json()
    assert [r["comment"] for r in rows] == ["c2", "c1"]
    assert list(rows[0]) == list(ReviewOut.model_fields)  # the order reviews always had
    assert rows[0]["created_at"].endswith("Z")
    past = await client.get(f"/api/sitters/{sitter.user_id}/reviews?offset=10")
    assert past.status == 200 and await past.json() == []
    assert past.headers["X-Total-Count"] == "3"
    assert (await client.get("/api/sitters/999999999/reviews")).status == 404


TRIES = 10


@pytest.fixture
async def two_processes(settings, redis_server_url):
    # A long cache: without invalidation across processes the second would answer stale.
    env = server_env(
        settings.database_url,
        redis_server_url,
        REDIS_PREFIX=f"t{uuid.uuid4().hex[:10]}",
        SEARCH_CACHE_SECONDS="60",
    )
    one, two = Server(env).start(), Server(env).start()
    session = aiohttp.ClientSession()
    try:
        for server in (one, two):
            assert (await server.healthy())["redis"] == "ok"
        yield one, two, session
    finally:
        await session.close()
        for server in (one, two):
            server.kill()


async def test_a_change_through_one_process_is_seen_at_once_on_the_other(two_processes, client):
    one, two, session = two_processes
    paths, sitter = await _public_paths(client)
    service_path = paths[3]
    for price in range(3000, 3000 + TRIES):
        async with session.get(f"{two.url}{service_path}") as resp:  # now cached on two
            assert resp.status == 200
        async with session.put(
            f"{one.url}{service_path}", json={"price_per_hour": price}, headers=sitter.headers
        ) as resp:
            assert resp.status == 200
        async with session.get(f"{two.url}{service_path}") as resp:
            assert (await resp.json())["price_per_hour"] == float(price)
