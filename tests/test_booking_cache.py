"""Bookings and booking lists are answered from a per-process cache (BOOKING_CACHE_SECONDS), and
a change made through any process holds on every process by the time it is answered: two real
`nanny serve` processes share the database and Redis; each change is made through one and read
at once through the other, whose cache held the booking and the lists before it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp

from nanny.cache import PartyCache
from nanny.expiry import TASK_NAME, run_expiry_if_due
from nanny.keys import BOOKING_CACHE, POOL
from tests.chat_support import Server
from tests.factories import make_admin, make_owner, make_sitter
from tests.faults import app_deaf_to_redis
from tests.market import booking_body, future, iso, make_pet, make_service
from tests.rows import insert_booking

TRIES = 10


class Reader:
    """Requests through one process, as one account."""

    def __init__(self, session: aiohttp.ClientSession, server: Server, headers: dict):
        self.session, self.server, self.headers = session, server, headers

    async def call(self, method: str, path: str, **kw) -> tuple[int, object]:
        url = f"{self.server.url}{path}"
        async with self.session.request(method, url, headers=self.headers, **kw) as resp:
            return resp.status, await resp.json() if resp.status != 204 else None

    async def booking(self, booking_id: int) -> dict:
        status, body = await self.call("GET", f"/api/bookings/{booking_id}")
        assert status == 200, body
        return body

    async def listed(self, path: str, booking_id: int) -> dict | None:
        status, body = await self.call("GET", path)
        assert status == 200, body
        return next((b for b in body if b["booking_id"] == booking_id), None)


async def test_creations_and_transitions_are_seen_at_once_on_the_other_process(two_processes):
    one, two, client, session = two_processes
    owner, sitter = await make_owner(client), await make_sitter(client)
    pet, service = await make_pet(client, owner), await make_service(client, sitter)
    owner_one, owner_two = Reader(session, one, owner.headers), Reader(session, two, owner.headers)
    sitter_one, sitter_two = (
        Reader(session, one, sitter.headers),
        Reader(session, two, sitter.headers),
    )
    owner_list = f"/api/owners/{owner.user_id}/bookings"
    sitter_list = f"/api/sitters/{sitter.user_id}/bookings?status=pending"
    for i in range(TRIES):
        assert await owner_two.listed(owner_list, 0) is None  # both lists now cached on two
        assert await sitter_two.listed(sitter_list, 0) is None
        body = booking_body(pet, service, future(24 + 3 * i))
        status, created = await owner_one.call("POST", "/api/bookings", json=body)
        assert status == 201, created
        booking_id = created["booking_id"]
        assert (await owner_two.listed(owner_list, booking_id))["status"] == "pending"
        assert (await sitter_two.listed(sitter_list, booking_id))["status"] == "pending"
        assert (await owner_two.booking(booking_id))["status"] == "pending"  # cached on two

        status, _ = await sitter_one.call("POST", f"/api/bookings/{booking_id}/confirm")
        assert status == 200
        seen = await owner_two.booking(booking_id)
        assert seen["status"] == "confirmed"
        assert seen["sitter"]["email"] == sitter.email  # contacts once confirmed, to a party
        assert (await owner_two.listed(owner_list, booking_id))["status"] == "confirmed"
        assert await sitter_two.listed(sitter_list, booking_id) is None  # no longer pending

        status, _ = await owner_one.call("POST", f"/api/bookings/{booking_id}/cancel")
        assert status == 200
        seen = await sitter_two.booking(booking_id)
        assert (seen["status"], seen["cancel_reason"]) == ("cancelled", "owner")
        assert "email" not in seen["owner"]
        assert (await owner_two.listed(owner_list, booking_id))["status"] == "cancelled"


async def test_deleting_a_pet_or_a_service_is_seen_in_cached_bookings(two_processes):
    one, two, client, session = two_processes
    owner, sitter = await make_owner(client), await make_sitter(client)
    pet, service = await make_pet(client, owner), await make_service(client, sitter)
    booking_id = await insert_booking(
        client, owner.user_id, sitter.user_id, status="cancelled",
        pet_id=pet["pet_id"], service_id=service["service_id"],
    )  # fmt: skip
    owner_two = Reader(session, two, owner.headers)
    owner_list = f"/api/owners/{owner.user_id}/bookings"
    assert (await owner_two.booking(booking_id))["pet_id"] == pet["pet_id"]
    assert (await owner_two.listed(owner_list, booking_id))["service_id"] == service["service_id"]

    status, _ = await Reader(session, one, owner.headers).call(
        "DELETE", f"/api/pets/{pet['pet_id']}"
    )
    assert status == 204
    assert (await owner_two.booking(booking_id))["pet_id"] is None
    assert (await owner_two.listed(owner_list, booking_id))["pet_id"] is None

    path = f"/api/services/{service['service_id']}"
    assert (await Reader(session, one, sitter.headers).call("DELETE", path))[0] == 204
    assert (await owner_two.booking(booking_id))["service_id"] is None
    assert (await owner_two.listed(owner_list, booking_id))["service_id"] is None


async def test_time_off_declining_a_request_is_seen_at_once(two_processes):
    one, two, client, session = two_processes
    owner, sitter = await make_owner(client), await make_sitter(client)
    booking_id = await insert_booking(client, owner.user_id, sitter.user_id)
    owner_two = Reader(session, two, owner.headers)
    start = datetime.fromisoformat((await owner_two.booking(booking_id))["start_time"])
    window = {
        "start_time": iso(start - timedelta(hours=1)),
        "end_time": iso(start + timedelta(days=1)),
    }
    path = f"/api/sitters/{sitter.user_id}/time-off"
    status, body = await Reader(session, one, sitter.headers).call("POST", path, json=window)
    assert status == 201, body
    seen = await owner_two.booking(booking_id)
    assert (seen["status"], seen["cancel_reason"]) == ("cancelled", "sitter_unavailable")


async def test_the_expiry_is_seen_at_once_on_the_other_process(two_processes):
    _, two, client, session = two_processes
    owner, sitter = await make_owner(client), await make_sitter(client)
    stale = datetime.now(UTC) - timedelta(hours=30)
    booking_id = await insert_booking(client, owner.user_id, sitter.user_id, start=stale)
    owner_two = Reader(session, two, owner.headers)
    assert (await owner_two.booking(booking_id))["status"] == "pending"
    await client.app[POOL].execute("DELETE FROM task_runs WHERE task = $1", TASK_NAME)
    await run_expiry_if_due(client.app)
    seen = await owner_two.booking(booking_id)
    assert (seen["status"], seen["cancel_reason"]) == ("cancelled", "expired")


async def test_an_admins_deletion_of_a_party_is_seen_in_the_others_bookings(two_processes):
    one, two, client, session = two_processes
    owner, sitter = await make_owner(client), await make_sitter(client)
    admin = await make_admin(client)
    booking_id = await insert_booking(client, owner.user_id, sitter.user_id, status="completed")
    owner_two = Reader(session, two, owner.headers)
    assert (await owner_two.booking(booking_id))["sitter"]["full_name"] != "Deleted user"
    path = f"/api/admin/users/{sitter.user_id}"
    assert (await Reader(session, one, admin.headers).call("DELETE", path))[0] == 204
    assert (await owner_two.booking(booking_id))["sitter"]["full_name"] == "Deleted user"


async def test_a_process_deaf_to_the_others_reads_bookings_from_the_database(
    settings, redis_server_url, aiohttp_client
):
    """While this process cannot hear other processes' changes (Redis away), it does not trust
    its cache: a change made elsewhere shows here at once, not after BOOKING_CACHE_SECONDS."""
    async with app_deaf_to_redis(settings, redis_server_url, aiohttp_client) as (client, deafen):
        owner, sitter = await make_owner(client), await make_sitter(client)
        booking_id = await insert_booking(client, owner.user_id, sitter.user_id)
        path = f"/api/bookings/{booking_id}"
        assert (await (await client.get(path, headers=owner.headers)).json())["status"] == "pending"
        await deafen()
        await client.app[POOL].execute(
            "UPDATE bookings SET status = 'confirmed' WHERE booking_id = $1", booking_id
        )
        seen = await (await client.get(path, headers=owner.headers)).json()
        assert seen["status"] == "confirmed"


async def test_the_cache_serves_repeated_reads_and_authorizes_each(client):
    """A cached booking is still shown only to its parties and admins."""
    owner, sitter, stranger = (
        await make_owner(client), await make_sitter(client), await make_owner(client)
    )  # fmt: skip
    booking_id = await insert_booking(client, owner.user_id, sitter.user_id)
    path = f"/api/bookings/{booking_id}"
    assert (await client.get(path, headers=owner.headers)).status == 200
    # Changed behind the server's back: the cached answer stays (this is what is cached).
    await client.app[POOL].execute(
        "UPDATE bookings SET total_price = 1 WHERE booking_id = $1", booking_id
    )
    assert (await (await client.get(path, headers=sitter.headers)).json())["total_price"] == 5000
    assert (await client.get(path, headers=stranger.headers)).status == 404
    listed = f"/api/owners/{owner.user_id}/bookings"
    assert (await client.get(listed, headers=stranger.headers)).status == 403


async def test_a_load_under_way_during_a_change_is_not_kept():
    cache = PartyCache(ttl=60)
    release = asyncio.Event()
    reads = []

    async def load():
        reads.append(len(reads) + 1)
        read = reads[-1]
        if read == 1:
            await release.wait()  # the read that began before the change
        return {"owner": 7, "read": read}

    def parties(value):
        return (value["owner"],)

    early = asyncio.create_task(cache.get_or_load("k", load, parties))
    await asyncio.sleep(0)
    cache.changed([7])
    later = await cache.get_or_load("k", load, parties)  # not joined to the early read
    release.set()
    assert (await early)["read"] == 1
    assert later["read"] == 2
    assert (await cache.get_or_load("k", load, parties))["read"] == 2  # kept
    cache.changed([8])  # another user's change leaves it
    assert (await cache.get_or_load("k", load, parties))["read"] == 2
    cache.changed([7])
    assert (await cache.get_or_load("k", load, parties))["read"] == 3


async def test_nothing_found_is_not_kept():
    cache = PartyCache(ttl=60)
    answers = iter([None, {"owner": 1}])

    async def load():
        return next(answers)

    assert await cache.get_or_load("k", load, lambda v: (v["owner"],)) is None
    assert await cache.get_or_load("k", load, lambda v: (v["owner"],)) == {"owner": 1}


def test_the_booking_cache_has_its_setting(client):
    assert client.app[BOOKING_CACHE].ttl == 10.0


async def test_the_versions_kept_are_bounded():
    cache = PartyCache(ttl=60, max_users=3)
    reads = iter(range(10))

    async def load():
        return {"owner": 1, "read": next(reads)}

    def parties(value):
        return (value["owner"],)

    assert (await cache.get_or_load("k", load, parties))["read"] == 0
    cache.changed([2, 3, 4])  # another user's changes: still kept
    assert (await cache.get_or_load("k", load, parties))["read"] == 0
    cache.changed([5])  # past the bound: everything dropped, counting afresh
    assert (await cache.get_or_load("k", load, parties))["read"] == 1
    cache.changed([1])
    assert (await cache.get_or_load("k", load, parties))["read"] == 2
