"""Bookings: creation rules with their boundaries, the status machine, races, privacy, lists."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from aiohttp.test_utils import make_mocked_request

from nanny.db import bookings as db_bookings
from nanny.errors import ValidationFailed
from nanny.events import on_booking_changed
from nanny.http.endpoint import parse_query
from nanny.http.schemas import Query
from nanny.keys import POOL
from nanny.validation import Timestamp
from tests.factories import make_admin, make_owner, make_sitter, set_sitter_status
from tests.market import (
    HOUR,
    assert_error,
    book,
    booking_body,
    booking_status,
    future,
    iso,
    make_booking,
    make_pet,
    make_service,
)
from tests.rows import insert_booking

BOOKING_KEYS = {
    "booking_id",
    "owner_id",
    "sitter_id",
    "pet_id",
    "service_id",
    "start_time",
    "end_time",
    "status",
    "cancel_reason",
    "total_price",
    "created_at",
    "updated_at",
    "owner",
    "sitter",
}


@pytest.fixture
async def one_sitter_client(aiohttp_client, settings):
    """The app without the cap on one owner's pending requests per sitter, for the tests of
    other rules that book one sitter many times."""
    from nanny.app import create_app

    return await aiohttp_client(
        create_app(dataclasses.replace(settings, max_pending_per_sitter=1000))
    )


async def world(client, price="2500.00"):
    owner, sitter = await make_owner(client), await make_sitter(client)
    pet = await make_pet(client, owner)
    service = await make_service(client, sitter, price_per_hour=price)
    return owner, sitter, pet, service


def record_events(client) -> list[dict]:
    seen: list[dict] = []

    async def listener(app, booking):
        seen.append(booking)

    on_booking_changed(client.app, listener)
    return seen


async def db_now(client):
    return await client.app[POOL].fetchval("SELECT now()")


async def test_create_booking(client):
    owner, sitter, pet, service = await world(client)
    events = record_events(client)
    start = future(48)
    resp = await book(client, owner, pet, service, start, start + 2 * HOUR)
    assert resp.status == 201
    created = await resp.json()
    assert created["status"] == "pending" and created["total_price"] == 5000.0
    assert isinstance(created["booking_id"], int) and created["message"]

    pool = client.app[POOL]
    chats = await pool.fetchval(
        "SELECT count(*) FROM chats WHERE booking_id = $1", created["booking_id"]
    )
    assert chats == 1
    resp = await client.get(f"/api/bookings/{created['booking_id']}", headers=owner.headers)
    booking = await resp.json()
    assert set(booking) == BOOKING_KEYS
    assert booking["owner_id"] == owner.user_id and booking["sitter_id"] == sitter.user_id
    assert booking["pet_id"] == pet["pet_id"] and booking["service_id"] == service["service_id"]
    assert booking["start_time"] == iso(start) and booking["end_time"] == iso(start + 2 * HOUR)
    assert booking["status"] == "pending" and booking["total_price"] == 5000.0
    # Pending: names only, no contact details of anyone.
    assert booking["owner"] == {"user_id": owner.user_id, "full_name": "Aigerim Owner"}
    assert booking["sitter"] == {"user_id": sitter.user_id, "full_name": "Daniyar Sitter"}
    assert [e["booking_id"] for e in events] == [created["booking_id"]]
    assert events[0]["status"] == "pending" and "email" not in events[0]["owner"]


async def test_total_price_is_rounded_in_the_database(client):
    owner, _, pet, service = await world(client, price="33.33")
    start = future(30)
    resp = await book(client, owner, pet, service, start, start + timedelta(minutes=90))
    assert (await resp.json())["total_price"] == 50.0  # 49.995 rounds half up
    start = future(40)
    resp = await book(client, owner, pet, service, start, start + timedelta(minutes=10))
    assert (await resp.json())["total_price"] == 5.56  # 5.555 -> 5.56
    stored = await client.app[POOL].fetchval(
        "SELECT total_price::text FROM bookings ORDER BY booking_id DESC LIMIT 1"
    )
    assert stored == "5.56"


async def test_time_rules(client):
    owner, _, pet, service = await world(client)
    start = future(24)
    cases = [
        (booking_body(pet, service, start) | {"start_time": "2030-01-01T10:00:00"}, "start_time"),
        (booking_body(pet, service, start) | {"end_time": "2030-01-01T12:00:00"}, "end_time"),
        (booking_body(pet, service, start) | {"start_time": "tomorrow"}, "start_time"),
        (booking_body(pet, service, future(-1)), "start_time"),
        (booking_body(pet, service, start, start), "end_time"),
        (booking_body(pet, service, start, start - HOUR), "end_time"),
        (booking_body(pet, service, start, start + timedelta(days=30, minutes=1)), "end_time"),
        (booking_body(pet, service, start, start + timedelta(days=31)), "end_time"),
    ]
    for body, field in cases:
        resp = await client.post("/api/bookings", json=body, headers=owner.headers)
        assert resp.status == 400, body
        assert_error(await resp.json(), "validation_error", field)
    assert await client.app[POOL].fetchval("SELECT count(*) FROM bookings") == 0
    # Exactly 30 days is allowed, offsets other than Z too.
    body = booking_body(pet, service, start, start + timedelta(days=30))
    body["start_time"] = start.astimezone(timedelta_zone(5)).isoformat()
    resp = await client.post("/api/bookings", json=body, headers=owner.headers)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["total_price"] == 2500.0 * 24 * 30


OUT_OF_RANGE = [
    # asyncpg overflowed converting these to UTC (past year 9999), or sent +-infinity.
    ({"start_time": "9999-12-31T20:00:00-05:00"}, "start_time"),
    (
        {"start_time": "9999-12-31T22:00:00Z", "end_time": "9999-12-31T23:59:59.999999+00:00"},
        "end_time",
    ),
    ({"start_time": "0001-01-01T00:00:00+05:00"}, "start_time"),
    ({"end_time": "0001-01-01T00:00:00Z"}, "end_time"),
]


async def test_times_outside_what_postgresql_stores_are_400(client):
    owner, _, pet, service = await world(client)
    for times, field in OUT_OF_RANGE:
        body = booking_body(pet, service, future(24)) | times
        resp = await client.post("/api/bookings", json=body, headers=owner.headers)
        assert resp.status == 400, times
        assert_error(await resp.json(), "validation_error", field)
    assert await client.app[POOL].fetchval("SELECT count(*) FROM bookings") == 0


def test_query_times_outside_what_postgresql_stores_are_400():
    class Since(Query):
        since: Timestamp

    for value in ("9999-12-31T20:00:00-05:00", "9999-12-31T23:59:59.999999Z"):
        request = make_mocked_request("GET", f"/?since={quote(value)}")
        with pytest.raises(ValidationFailed) as refused:
            parse_query(request, Since)
        assert refused.value.details["field"] == "since"
    assert parse_query(make_mocked_request("GET", "/?since=2030-01-01T00:00Z"), Since).since


def timedelta_zone(hours: int):
    from datetime import timezone

    return timezone(timedelta(hours=hours))


async def test_body_rules(client):
    owner, sitter, pet, service = await world(client)
    other_owner = await make_owner(client)
    other_sitter = await make_sitter(client)
    foreign_pet = await make_pet(client, other_owner)
    other_service = await make_service(client, other_sitter)
    start = future(24)
    base = booking_body(pet, service, start)

    for body, field in [
        (base | {"status": "confirmed"}, "status"),
        (base | {"total_price": 1}, "total_price"),
        ({k: v for k, v in base.items() if k != "pet_id"}, "pet_id"),
        (base | {"pet_id": str(pet["pet_id"])}, "pet_id"),
        (base | {"sitter_id": other_sitter.user_id}, "sitter_id"),
    ]:
        resp = await client.post("/api/bookings", json=body, headers=owner.headers)
        assert resp.status == 400, body
        assert_error(await resp.json(), "validation_error", field)

    resp = await client.post(
        "/api/bookings", json=base | {"owner_id": other_owner.user_id}, headers=owner.headers
    )
    assert resp.status == 403
    assert_error(await resp.json(), "forbidden", "owner_id")
    for body, field in [
        (base | {"pet_id": foreign_pet["pet_id"]}, "pet_id"),
        (base | {"pet_id": 999999}, "pet_id"),
        (base | {"service_id": 999999}, "service_id"),
    ]:
        resp = await client.post("/api/bookings", json=body, headers=owner.headers)
        assert resp.status == 404, body
        assert_error(await resp.json(), "not_found", field)

    await set_sitter_status(client, other_sitter.user_id, "pending")
    body = booking_body(pet, other_service, start)
    resp = await client.post("/api/bookings", json=body, headers=owner.headers)
    assert resp.status == 404
    assert_error(await resp.json(), "not_found", "service_id")

    assert (await client.post("/api/bookings", json=base)).status == 401
    assert (await client.post("/api/bookings", json=base, headers=sitter.headers)).status == 403
    admin = await make_admin(client)
    assert (await client.post("/api/bookings", json=base, headers=admin.headers)).status == 403
    assert await client.app[POOL].fetchval("SELECT count(*) FROM bookings") == 0

    resp = await client.post(
        "/api/bookings", json=base | {"owner_id": owner.user_id}, headers=owner.headers
    )
    assert resp.status == 201


async def test_accounts_deleted_behind_the_cache_cannot_book(client):
    """The signed-in user is cached per process; the database still refuses a booking by an
    owner, or of a sitter, whose account was deleted meanwhile."""
    owner, sitter, pet, service = await world(client)
    body = booking_body(pet, service, future(24))
    assert (await client.get("/api/auth/me", headers=owner.headers)).status == 200  # cached
    pool = client.app[POOL]
    await pool.execute("UPDATE users SET deleted_at = now() WHERE user_id = $1", sitter.user_id)
    resp = await client.post("/api/bookings", json=body, headers=owner.headers)
    assert resp.status == 404
    assert_error(await resp.json(), "not_found", "service_id")
    await pool.execute("UPDATE users SET deleted_at = now() WHERE user_id = $1", owner.user_id)
    resp = await client.post("/api/bookings", json=body, headers=owner.headers)
    assert resp.status == 401 and (await resp.json())["code"] == "unauthorized"
    assert (
        await pool.fetchval("SELECT count(*) FROM bookings WHERE owner_id = $1", owner.user_id) == 0
    )


async def test_overlap_boundaries(one_sitter_client):
    client = one_sitter_client
    owner, _, pet, service = await world(client)
    start = future(24)
    first = await make_booking(client, owner, pet, service, start, start + 2 * HOUR)

    # Exactly adjacent on either side is allowed.
    assert (await book(client, owner, pet, service, start + 2 * HOUR, start + 3 * HOUR)).status == (
        201
    )
    assert (await book(client, owner, pet, service, start - HOUR, start)).status == 201

    # Overlapping by one minute is not; the answer names the clash.
    one_minute = timedelta(minutes=1)
    resp = await book(client, owner, pet, service, start + 3 * HOUR - one_minute, start + 4 * HOUR)
    assert resp.status == 409
    data = await resp.json()
    assert_error(data, "conflict", "start_time")
    assert data["details"]["clash_start"] == iso(start + 2 * HOUR)
    assert data["details"]["clash_end"] == iso(start + 3 * HOUR)
    assert iso(start + 2 * HOUR) in data["error"]
    resp = await book(client, owner, pet, service, start - 2 * HOUR, start - HOUR + one_minute)
    assert resp.status == 409

    # Another sitter's calendar is separate; a cancelled booking frees the slot.
    other = await make_sitter(client)
    other_service = await make_service(client, other)
    assert (await book(client, owner, pet, other_service, start, start + HOUR)).status == 201
    assert (await book(client, owner, pet, service, start, start + HOUR)).status == 409
    resp = await client.post(f"/api/bookings/{first}/cancel", headers=owner.headers)
    assert resp.status == 200
    assert (await book(client, owner, pet, service, start, start + HOUR)).status == 201


async def test_confirmed_bookings_block_too(client):
    owner, sitter, pet, service = await world(client)
    start = future(24)
    booking_id = await make_booking(client, owner, pet, service, start)
    await client.post(f"/api/bookings/{booking_id}/confirm", headers=sitter.headers)
    assert (await book(client, owner, pet, service, start + HOUR, start + 3 * HOUR)).status == 409


async def test_at_most_ten_pending_bookings(one_sitter_client):
    client = one_sitter_client
    owner, sitter, pet, service = await world(client)
    base = future(24)
    ids = []
    for i in range(10):
        start = base + i * 3 * HOUR
        ids.append(await make_booking(client, owner, pet, service, start, start + HOUR))
    resp = await book(client, owner, pet, service, base + 40 * HOUR, base + 41 * HOUR)
    assert resp.status == 409
    data = await resp.json()
    assert_error(data, "conflict")
    assert data["details"] == {"pending": 10, "limit": 10}
    assert await client.app[POOL].fetchval("SELECT count(*) FROM bookings") == 10

    # Another owner is not affected; a confirmed booking no longer counts.
    other = await make_owner(client)
    other_pet = await make_pet(client, other)
    assert (await book(client, other, other_pet, service, base - 5 * HOUR)).status == 201
    await client.post(f"/api/bookings/{ids[0]}/confirm", headers=sitter.headers)
    assert (await book(client, owner, pet, service, base + 40 * HOUR, base + 41 * HOUR)).status == (
        201
    )


async def test_pending_cap_holds_under_concurrency(one_sitter_client):
    client = one_sitter_client
    owner, _, pet, service = await world(client)
    base = future(24)
    responses = await asyncio.gather(
        *(
            book(client, owner, pet, service, base + i * 2 * HOUR, base + i * 2 * HOUR + HOUR)
            for i in range(15)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * 10 + [409] * 5
    pending = await client.app[POOL].fetchval(
        "SELECT count(*) FROM bookings WHERE owner_id = $1 AND status = 'pending'", owner.user_id
    )
    assert pending == 10


async def test_twenty_concurrent_overlapping_requests_one_wins(client):
    sitter = await make_sitter(client)
    service = await make_service(client, sitter)
    owners = [await make_owner(client) for _ in range(20)]
    pets = [await make_pet(client, o) for o in owners]
    start = future(24)
    responses = await asyncio.gather(
        *(
            book(client, o, p, service, start + timedelta(minutes=i), start + 2 * HOUR)
            for i, (o, p) in enumerate(zip(owners, pets, strict=True))
        )
    )
    statuses = [r.status for r in responses]
    assert statuses.count(201) == 1 and statuses.count(409) == 19, statuses
    for r in responses:
        if r.status == 409:
            assert_error(await r.json(), "conflict", "start_time")
    count = await client.app[POOL].fetchval("SELECT count(*) FROM bookings")
    assert count == 1


async def test_ten_concurrent_confirms_one_wins(client):
    owner, sitter, pet, service = await world(client)
    events = record_events(client)
    booking_id = await make_booking(client, owner, pet, service)
    url = f"/api/bookings/{booking_id}/confirm"
    responses = await asyncio.gather(*(client.post(url, headers=sitter.headers) for _ in range(10)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [409] * 9
    assert [e["status"] for e in events] == ["pending", "confirmed"]


async def test_who_may_read_a_booking(client):
    owner, sitter, pet, service = await world(client)
    other_owner, other_sitter = await make_owner(client), await make_sitter(client)
    admin = await make_admin(client)
    booking_id = await make_booking(client, owner, pet, service)
    url = f"/api/bookings/{booking_id}"
    for who in (owner, sitter, admin):
        resp = await client.get(url, headers=who.headers)
        assert resp.status == 200 and (await resp.json())["booking_id"] == booking_id
    for who in (other_owner, other_sitter):
        resp = await client.get(url, headers=who.headers)
        assert resp.status == 404
        assert_error(await resp.json(), "not_found")
    assert (await client.get(url)).status == 401
    assert (await client.get("/api/bookings/999999", headers=admin.headers)).status == 404
    assert (await client.get("/api/bookings/-1", headers=admin.headers)).status == 400


async def test_contacts_only_to_participants_once_confirmed(client):
    owner, sitter, pet, service = await world(client)
    admin = await make_admin(client)
    events = record_events(client)
    booking_id = await make_booking(client, owner, pet, service)
    url = f"/api/bookings/{booking_id}"

    async def parties(who):
        data = await (await client.get(url, headers=who.headers)).json()
        return data["owner"], data["sitter"]

    for who in (owner, sitter, admin):
        o, s = await parties(who)
        assert set(o) == set(s) == {"user_id", "full_name"}

    resp = await client.post(url + "/confirm", headers=sitter.headers)
    confirmed = await resp.json()
    assert confirmed["owner"]["email"] == owner.email  # the sitter now reaches the owner
    for who in (owner, sitter):
        o, s = await parties(who)
        assert o["email"] == owner.email and s["email"] == sitter.email
        assert o["phone"].startswith("+7") and s["phone"].startswith("+7")
    o, s = await parties(admin)
    assert "email" not in o and "phone" not in s
    assert all("email" not in e["owner"] and "phone" not in e["sitter"] for e in events)

    resp = await client.post(url + "/cancel", headers=owner.headers)
    assert "email" not in (await resp.json())["sitter"]
    o, s = await parties(owner)
    assert set(s) == {"user_id", "full_name"}


async def test_transitions_and_who_may_make_them(client):
    owner, sitter, pet, service = await world(client)
    other_owner, other_sitter = await make_owner(client), await make_sitter(client)
    admin = await make_admin(client)
    events = record_events(client)
    booking_id = await make_booking(client, owner, pet, service)
    url = f"/api/bookings/{booking_id}"

    for who, status in ((owner, 403), (admin, 403), (other_sitter, 404), (other_owner, 404)):
        resp = await client.post(url + "/confirm", headers=who.headers)
        assert resp.status == status, who.role
    assert (await client.post(url + "/confirm")).status == 401
    resp = await client.post(url + "/complete", headers=sitter.headers)
    assert resp.status == 409  # pending cannot complete
    assert_error(await resp.json(), "conflict")

    resp = await client.post(url + "/confirm", headers=sitter.headers)
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "confirmed" and body["updated_at"] >= body["created_at"]
    assert (await client.post(url + "/confirm", headers=sitter.headers)).status == 409
    for who, status in ((admin, 403), (other_owner, 404), (other_sitter, 404)):
        assert (await client.post(url + "/cancel", headers=who.headers)).status == status
    resp = await client.post(url + "/complete", headers=owner.headers)
    assert resp.status == 403

    resp = await client.post(url + "/cancel", headers=sitter.headers)
    assert resp.status == 200 and (await resp.json())["status"] == "cancelled"
    for action in ("confirm", "cancel", "complete"):
        resp = await client.post(f"{url}/{action}", headers=sitter.headers)
        assert resp.status == 409, action
        assert (await resp.json())["details"] == {"status": "cancelled"}
    assert [e["status"] for e in events] == ["pending", "confirmed", "cancelled"]
    assert (await client.post("/api/bookings/999999/cancel", headers=owner.headers)).status == 404


async def test_owner_cancels_pending(client):
    owner, _, pet, service = await world(client)
    booking_id = await make_booking(client, owner, pet, service)
    resp = await client.post(f"/api/bookings/{booking_id}/cancel", headers=owner.headers)
    assert resp.status == 200 and await booking_status(client, booking_id) == "cancelled"


async def _confirmed_ending_at(client, owner, sitter, pet, service, end) -> int:
    return await insert_booking(
        client,
        owner_id=owner.user_id,
        sitter_id=sitter.user_id,
        pet_id=pet["pet_id"],
        service_id=service["service_id"],
        start=end - timedelta(minutes=10),
        end=end,
        status="confirmed",
    )


async def test_complete_only_once_end_time_has_come(client):
    owner, sitter, pet, service = await world(client)
    events = record_events(client)
    now = await db_now(client)

    early = await _confirmed_ending_at(
        client, owner, sitter, pet, service, now + timedelta(hours=1)
    )
    resp = await client.post(f"/api/bookings/{early}/complete", headers=sitter.headers)
    assert resp.status == 409

    # An end_time one second ahead of the database clock is still in the future.
    soon = await db_now(client) + timedelta(seconds=1)
    soon_id = await _confirmed_ending_at(client, owner, sitter, pet, service, soon)
    resp = await client.post(f"/api/bookings/{soon_id}/complete", headers=sitter.headers)
    assert resp.status == 409
    assert await booking_status(client, soon_id) == "confirmed"

    # Mark the one-second booking done by hand so the next one, ending now, does not overlap it.
    await client.app[POOL].execute(
        "UPDATE bookings SET status = 'cancelled' WHERE booking_id = $1", soon_id
    )
    ended = await _confirmed_ending_at(client, owner, sitter, pet, service, await db_now(client))
    resp = await client.post(f"/api/bookings/{ended}/complete", headers=sitter.headers)
    assert resp.status == 200
    data = await resp.json()
    assert data["status"] == "completed" and data["sitter"]["email"] == sitter.email
    assert (
        await client.post(f"/api/bookings/{ended}/complete", headers=sitter.headers)
    ).status == (409)
    assert (await client.post(f"/api/bookings/{ended}/cancel", headers=owner.headers)).status == 409
    assert [e["booking_id"] for e in events] == [ended]


async def test_complete_boundary_is_inclusive_to_the_microsecond(client):
    """The statement's own clock comparison, with the clock pinned: at end_time it completes,
    one second (or one microsecond) before it does not."""
    owner, sitter, pet, service = await world(client)
    end = future(-1)
    booking_id = await _confirmed_ending_at(client, owner, sitter, pet, service, end)
    async with client.app[POOL].acquire() as conn:
        for before in (timedelta(seconds=1), timedelta(microseconds=1)):
            done = await db_bookings.complete_booking(
                conn, booking_id, sitter.user_id, now=end - before
            )
            assert done is None
        done = await db_bookings.complete_booking(conn, booking_id, sitter.user_id, now=end)
    assert done is not None and done.status == "completed"


async def _list(client, who, path: str, query: str = ""):
    resp = await client.get(path + query, headers=who.headers)
    assert resp.status == 200, await resp.text()
    return [b["booking_id"] for b in await resp.json()], int(resp.headers["X-Total-Count"])


async def test_booking_lists(one_sitter_client):
    client = one_sitter_client
    owner, sitter, pet, service = await world(client)
    other_owner, other_sitter = await make_owner(client), await make_sitter(client)
    admin = await make_admin(client)
    base = future(24)
    ids = [
        await make_booking(
            client, owner, pet, service, base + i * 3 * HOUR, base + i * 3 * HOUR + HOUR
        )
        for i in range(4)
    ]
    await client.post(f"/api/bookings/{ids[1]}/confirm", headers=sitter.headers)
    await client.post(f"/api/bookings/{ids[2]}/cancel", headers=owner.headers)
    newest_first = ids[::-1]
    own = f"/api/owners/{owner.user_id}/bookings"
    sits = f"/api/sitters/{sitter.user_id}/bookings"

    assert await _list(client, owner, own) == (newest_first, 4)
    assert await _list(client, sitter, sits) == (newest_first, 4)
    assert await _list(client, admin, own) == (newest_first, 4)
    assert await _list(client, admin, sits) == (newest_first, 4)
    assert await _list(client, owner, own, "?status=pending") == ([ids[3], ids[0]], 2)
    assert await _list(client, sitter, sits, "?status=confirmed") == ([ids[1]], 1)
    assert await _list(client, owner, own, "?status=completed") == ([], 0)
    assert await _list(client, owner, own, "?limit=2&offset=1") == (newest_first[1:3], 4)
    assert await _list(client, owner, own, "?offset=10") == ([], 4)
    assert await _list(client, owner, own, "?status=pending&offset=10") == ([], 2)

    rows = await (await client.get(own, headers=owner.headers)).json()
    by_id = {r["booking_id"]: r for r in rows}
    assert by_id[ids[1]]["sitter"]["email"] == sitter.email
    assert "email" not in by_id[ids[0]]["sitter"]
    rows = await (await client.get(own, headers=admin.headers)).json()
    assert all("email" not in r["sitter"] for r in rows)

    for who, path in ((other_owner, own), (sitter, own), (other_sitter, sits), (owner, sits)):
        assert (await client.get(path, headers=who.headers)).status == 403
    assert (await client.get(own)).status == 401
    resp = await client.get(own + "?status=done", headers=owner.headers)
    assert resp.status == 400
    assert_error(await resp.json(), "validation_error", "status")
    assert (await client.get("/api/owners/999999/bookings", headers=admin.headers)).status == 404


async def test_deleted_service_leaves_history(client):
    owner, sitter, pet, service = await world(client)
    end = future(-1)
    booking_id = await _confirmed_ending_at(client, owner, sitter, pet, service, end)
    await client.post(f"/api/bookings/{booking_id}/complete", headers=sitter.headers)
    url = f"/api/services/{service['service_id']}"
    assert (await client.delete(url, headers=sitter.headers)).status == 204
    data = await (await client.get(f"/api/bookings/{booking_id}", headers=owner.headers)).json()
    assert data["service_id"] is None and data["status"] == "completed"


async def test_failing_listener_does_not_fail_the_request(client):
    owner, sitter, pet, service = await world(client)

    async def broken(app, booking):
        raise RuntimeError("listener down")

    on_booking_changed(client.app, broken)
    booking_id = await make_booking(client, owner, pet, service)
    resp = await client.post(f"/api/bookings/{booking_id}/confirm", headers=sitter.headers)
    assert resp.status == 200
    assert await booking_status(client, booking_id) == "confirmed"


async def test_out_of_range_ids_are_refused(client):
    owner, _, pet, service = await world(client)
    base = booking_body(pet, service, future(24))
    for field in ("sitter_id", "pet_id", "service_id"):
        for value in (2**31, 0, -5):
            resp = await client.post(
                "/api/bookings", json=base | {field: value}, headers=owner.headers
            )
            assert resp.status == 400, (field, value)
            assert_error(await resp.json(), "validation_error", field)
    resp = await client.post(
        "/api/bookings", json=base | {"owner_id": 2**40}, headers=owner.headers
    )
    assert resp.status == 403


async def test_start_time_at_most_the_horizon_ahead(client):
    """A start in year 9999 was accepted: one owner could hold a sitter's calendar for ever."""
    owner, _, pet, service = await world(client)
    now = await db_now(client)
    for start in (now + timedelta(days=365, minutes=1), datetime(9999, 1, 1, tzinfo=UTC)):
        resp = await book(client, owner, pet, service, start)
        assert resp.status == 400
        data = await resp.json()
        assert_error(data, "validation_error", "start_time")
        assert "365 days" in data["error"]
    assert (await book(client, owner, pet, service, now + timedelta(days=364))).status == 201


async def test_two_pending_requests_per_owner_for_one_sitter(client):
    owner, sitter, pet, service = await world(client)
    base = future(24)
    first = await make_booking(client, owner, pet, service, base)
    await make_booking(client, owner, pet, service, base + 3 * HOUR)
    resp = await book(client, owner, pet, service, base + 6 * HOUR)
    assert resp.status == 409
    data = await resp.json()
    assert_error(data, "conflict", "sitter_id")
    assert data["details"] == {"pending": 2, "limit": 2, "field": "sitter_id"}
    # Another sitter, or another owner with this sitter, is not affected.
    other_sitter = await make_sitter(client)
    other_service = await make_service(client, other_sitter)
    assert (await book(client, owner, pet, other_service, base + 6 * HOUR)).status == 201
    other = await make_owner(client)
    other_pet = await make_pet(client, other)
    assert (await book(client, other, other_pet, service, base + 9 * HOUR)).status == 201
    # Once the sitter answers one, the owner may ask again.
    await client.post(f"/api/bookings/{first}/confirm", headers=sitter.headers)
    assert (await book(client, owner, pet, service, base + 12 * HOUR)).status == 201


async def test_pending_per_sitter_cap_holds_under_concurrency(client):
    """Counted under the sitter's calendar lock, in the database: concurrent requests that each
    see one pending request cannot all go in."""
    owner, _, pet, service = await world(client)
    base = future(24)
    responses = await asyncio.gather(
        *(book(client, owner, pet, service, base + i * 3 * HOUR) for i in range(8))
    )
    assert sorted(r.status for r in responses) == [201] * 2 + [409] * 6
    stored = await client.app[POOL].fetchval(
        "SELECT count(*) FROM bookings WHERE owner_id = $1", owner.user_id
    )
    assert stored == 2


async def test_the_reason_of_every_cancellation(client):
    owner, sitter, pet, service = await world(client)
    admin = await make_admin(client)
    base = future(24)
    by_owner = await make_booking(client, owner, pet, service, base)
    by_sitter = await make_booking(client, owner, pet, service, base + 3 * HOUR)
    resp = await client.get(f"/api/bookings/{by_owner}", headers=owner.headers)
    assert (await resp.json())["cancel_reason"] is None
    resp = await client.post(f"/api/bookings/{by_owner}/cancel", headers=owner.headers)
    assert (await resp.json())["cancel_reason"] == "owner"
    resp = await client.post(f"/api/bookings/{by_sitter}/cancel", headers=sitter.headers)
    assert (await resp.json())["cancel_reason"] == "sitter"
    # An admin deleting the sitter cancels its open bookings, saying why.
    other = await make_owner(client)
    other_pet = await make_pet(client, other)
    orphaned = await make_booking(client, other, other_pet, service, base + 6 * HOUR)
    seen = record_events(client)
    resp = await client.delete(f"/api/admin/users/{sitter.user_id}", headers=admin.headers)
    assert resp.status == 204
    assert [(b["booking_id"], b["cancel_reason"]) for b in seen] == [(orphaned, "user_deleted")]
    resp = await client.get(f"/api/bookings/{orphaned}", headers=other.headers)
    assert (await resp.json())["cancel_reason"] == "user_deleted"
