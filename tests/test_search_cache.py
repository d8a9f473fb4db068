"""The per-process search cache: repeated searches are answered from memory, writes in this
process are visible at once, and concurrent misses share one database query."""

from __future__ import annotations

import asyncio

from nanny.cache import TtlCache
from nanny.keys import POOL
from tests.factories import make_sitter


async def _search(client):
    resp = await client.get("/api/services/search?type=walking")
    assert resp.status == 200
    return await resp.json(), int(resp.headers["X-Total-Count"])


async def test_search_is_cached_and_cleared_by_writes(client):
    sitter = await make_sitter(client)
    body = {"type": "walking", "price_per_hour": "1500.00", "description": "Morning walks"}
    resp = await client.post("/api/services", json=body, headers=sitter.headers)
    assert resp.status == 201
    service_id = (await resp.json())["service_id"]
    rows, total = await _search(client)
    assert total == 1 and rows[0]["price_per_hour"] == 1500.0

    # A change made behind the app's back (another process) is not seen until the entry expires.
    await client.app[POOL].execute(
        "UPDATE services SET price_per_hour = 999 WHERE service_id = $1", service_id
    )
    assert (await _search(client))[0][0]["price_per_hour"] == 1500.0
    # A write through this process is seen at once.
    resp = await client.put(
        f"/api/services/{service_id}", json={"price_per_hour": 1700}, headers=sitter.headers
    )
    assert resp.status == 200
    assert (await _search(client))[0][0]["price_per_hour"] == 1700.0


async def test_entries_expire_and_concurrent_misses_share_one_load():
    cache = TtlCache(ttl=0.05)
    calls = 0

    async def load():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    results = await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(20)))
    assert results == [1] * 20 and calls == 1
    assert await cache.get_or_load("k", load) == 1
    await asyncio.sleep(0.06)
    assert await cache.get_or_load("k", load) == 2


async def test_a_load_racing_a_write_is_not_stored():
    cache = TtlCache(ttl=10)
    gate = asyncio.Event()

    async def slow():
        await gate.wait()
        return "old"

    pending = asyncio.ensure_future(cache.get_or_load("k", slow))
    await asyncio.sleep(0)
    cache.clear()
    gate.set()
    assert await pending == "old"

    async def fresh():
        return "new"

    assert await cache.get_or_load("k", fresh) == "new"


async def test_a_request_after_a_write_does_not_join_a_load_begun_before_it():
    """forget() (a user changed): a later request reads afresh instead of waiting for what a
    load begun before the change will read."""
    cache = TtlCache(ttl=10)
    gate = asyncio.Event()

    async def before():
        await gate.wait()
        return "before the change"

    async def after():
        return "after the change"

    first = asyncio.ensure_future(cache.get_or_load("k", before))
    await asyncio.sleep(0)
    cache.forget("k")
    assert await cache.get_or_load("k", after) == "after the change"
    gate.set()
    assert await first == "before the change"  # its own request may have it, nobody else
    assert await cache.get_or_load("k", before) == "after the change"


async def test_failures_reach_every_waiter_and_are_not_cached():
    cache = TtlCache(ttl=10)

    async def broken():
        await asyncio.sleep(0.01)
        raise RuntimeError("db down")

    results = await asyncio.gather(
        *(cache.get_or_load("k", broken) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)

    async def works():
        return 7

    assert await cache.get_or_load("k", works) == 7


async def test_disabled_cache_always_loads():
    cache = TtlCache(ttl=0)
    calls = []

    async def load():
        calls.append(1)
        return len(calls)

    assert [await cache.get_or_load("k", load) for _ in range(3)] == [1, 2, 3]
