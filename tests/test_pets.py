"""Pets: every rule and authorization row of API.md, against the real app and database."""

from __future__ import annotations

from nanny.http.security import csrf_token_for
from nanny.keys import POOL
from tests.factories import make_admin, make_owner, make_sitter
from tests.market import (
    HOUR,
    assert_error,
    future,
    make_booking,
    make_pet,
    make_service,
)
from tests.rows import insert_booking


async def test_create_and_read_own_pet(client):
    owner = await make_owner(client)
    pet = await make_pet(client, owner, name="  Rex ", type="dog", age=0, notes="")
    assert pet == {
        "pet_id": pet["pet_id"],
        "owner_id": owner.user_id,
        "name": "Rex",
        "type": "dog",
        "age": 0,
        "notes": "",
        "photo": None,
    }
    resp = await client.get(f"/api/pets/{pet['pet_id']}", headers=owner.headers)
    assert resp.status == 200
    assert await resp.json() == pet


async def test_create_defaults_and_redundant_owner_id(client):
    owner = await make_owner(client)
    resp = await client.post(
        "/api/pets",
        json={"name": "Kesha", "type": "rodent", "owner_id": owner.user_id},
        headers=owner.headers,
    )
    assert resp.status == 201
    pet = await resp.json()
    assert pet["age"] == 0 and pet["notes"] == "" and pet["owner_id"] == owner.user_id


async def test_redundant_owner_id_of_someone_else_is_forbidden(client):
    owner, other = await make_owner(client), await make_owner(client)
    resp = await client.post(
        "/api/pets",
        json={"name": "Kesha", "type": "cat", "owner_id": other.user_id},
        headers=owner.headers,
    )
    assert resp.status == 403
    assert_error(await resp.json(), "forbidden", "owner_id")
    count = await client.app[POOL].fetchval("SELECT count(*) FROM pets")
    assert count == 0


async def test_create_rejects_bad_input(client):
    owner = await make_owner(client)
    cases = [
        ({"name": "A", "type": "cat", "role": "admin"}, "role"),
        ({"name": "A", "type": "cat", "pet_id": 5}, "pet_id"),
        ({"name": "A", "type": "parrot"}, "type"),
        ({"name": "   ", "type": "cat"}, "name"),
        ({"name": "x" * 101, "type": "cat"}, "name"),
        ({"name": "A", "type": "cat", "age": 51}, "age"),
        ({"name": "A", "type": "cat", "age": -1}, "age"),
        ({"name": "A", "type": "cat", "age": "3"}, "age"),
        ({"type": "cat"}, "name"),
    ]
    for body, field in cases:
        resp = await client.post("/api/pets", json=body, headers=owner.headers)
        assert resp.status == 400, body
        assert_error(await resp.json(), "validation_error", field)
    ok = await client.post(
        "/api/pets", json={"name": "x" * 100, "type": "cat", "age": 50}, headers=owner.headers
    )
    assert ok.status == 201
    assert await client.app[POOL].fetchval("SELECT count(*) FROM pets") == 1


async def test_only_owners_create_pets(client):
    sitter = await make_sitter(client)
    admin = await make_admin(client)
    body = {"name": "A", "type": "cat"}
    assert (await client.post("/api/pets", json=body)).status == 401
    assert (await client.post("/api/pets", json=body, headers=sitter.headers)).status == 403
    assert (await client.post("/api/pets", json=body, headers=admin.headers)).status == 403


async def test_who_may_read_a_pet(client):
    owner, other = await make_owner(client), await make_owner(client)
    sitter, other_sitter = await make_sitter(client), await make_sitter(client)
    admin = await make_admin(client)
    pet = await make_pet(client, owner)
    url = f"/api/pets/{pet['pet_id']}"

    assert (await client.get(url)).status == 401
    for stranger in (other, sitter, other_sitter):
        resp = await client.get(url, headers=stranger.headers)
        assert resp.status == 404  # existence is not revealed
        assert_error(await resp.json(), "not_found")
    assert (await client.get(url, headers=admin.headers)).status == 200

    # A sitter sees the pet only through a booking for it.
    service = await make_service(client, sitter)
    await make_booking(client, owner, pet, service)
    resp = await client.get(url, headers=sitter.headers)
    assert resp.status == 200 and (await resp.json())["pet_id"] == pet["pet_id"]
    assert (await client.get(url, headers=other_sitter.headers)).status == 404

    assert (await client.get("/api/pets/999999", headers=owner.headers)).status == 404
    resp = await client.get("/api/pets/abc", headers=owner.headers)
    assert resp.status == 400
    assert_error(await resp.json(), "validation_error", "id")


async def test_partial_and_full_update(client):
    owner = await make_owner(client)
    pet = await make_pet(client, owner)
    url = f"/api/pets/{pet['pet_id']}"

    resp = await client.put(url, json={"age": 4}, headers=owner.headers)
    assert resp.status == 200
    assert await resp.json() == pet | {"age": 4}

    full = {"name": "Murka", "type": "dog", "age": 7, "notes": "loud", "owner_id": owner.user_id}
    resp = await client.put(url, json=full, headers=owner.headers)
    assert resp.status == 200
    expected = pet | {"name": "Murka", "type": "dog", "age": 7, "notes": "loud"}
    assert await resp.json() == expected

    resp = await client.put(url, json={}, headers=owner.headers)
    assert resp.status == 200 and await resp.json() == expected


async def test_update_rejects_bad_input_without_change(client):
    owner, other = await make_owner(client), await make_owner(client)
    pet = await make_pet(client, owner)
    url = f"/api/pets/{pet['pet_id']}"
    for body, field in [
        ({"name": None}, "name"),
        ({"age": 99}, "age"),
        ({"type": "fish"}, "type"),
        ({"owner": 1}, "owner"),
    ]:
        resp = await client.put(url, json=body, headers=owner.headers)
        assert resp.status == 400, body
        assert_error(await resp.json(), "validation_error", field)
    resp = await client.put(url, json={"owner_id": other.user_id, "age": 1}, headers=owner.headers)
    assert resp.status == 403
    assert_error(await resp.json(), "forbidden", "owner_id")
    resp = await client.get(url, headers=owner.headers)
    assert await resp.json() == pet


async def test_only_the_owner_may_change_or_delete(client):
    owner, other = await make_owner(client), await make_owner(client)
    sitter, admin = await make_sitter(client), await make_admin(client)
    pet = await make_pet(client, owner)
    service = await make_service(client, sitter)
    await make_booking(client, owner, pet, service)
    url = f"/api/pets/{pet['pet_id']}"

    for who, status in ((other, 404), (sitter, 403), (admin, 403)):
        assert (await client.put(url, json={"age": 9}, headers=who.headers)).status == status
        assert (await client.delete(url, headers=who.headers)).status == status
    assert (await client.put(url, json={"age": 9})).status == 401
    assert (
        await client.put("/api/pets/999999", json={"age": 1}, headers=owner.headers)
    ).status == (404)
    assert (await client.delete("/api/pets/999999", headers=owner.headers)).status == 404
    resp = await client.get(url, headers=owner.headers)
    assert (await resp.json())["age"] == pet["age"]


async def test_delete_refused_while_booked(client):
    owner, sitter = await make_owner(client), await make_sitter(client)
    pet = await make_pet(client, owner)
    service = await make_service(client, sitter)
    booking_id = await make_booking(client, owner, pet, service)
    url = f"/api/pets/{pet['pet_id']}"

    resp = await client.delete(url, headers=owner.headers)
    assert resp.status == 409
    assert_error(await resp.json(), "conflict")
    confirm = await client.post(f"/api/bookings/{booking_id}/confirm", headers=sitter.headers)
    assert confirm.status == 200
    assert (await client.delete(url, headers=owner.headers)).status == 409

    cancel = await client.post(f"/api/bookings/{booking_id}/cancel", headers=owner.headers)
    assert cancel.status == 200
    resp = await client.delete(url, headers=owner.headers)
    assert resp.status == 204
    assert (await client.get(url, headers=owner.headers)).status == 404
    # The history stays; only its pet reference is gone.
    pet_ref = await client.app[POOL].fetchval(
        "SELECT pet_id FROM bookings WHERE booking_id = $1", booking_id
    )
    assert pet_ref is None


async def test_delete_allowed_with_only_finished_bookings(client):
    owner, sitter = await make_owner(client), await make_sitter(client)
    pet = await make_pet(client, owner)
    service = await make_service(client, sitter)
    start = future(-72)
    for status in ("completed", "cancelled"):
        await insert_booking(
            client,
            owner_id=owner.user_id,
            sitter_id=sitter.user_id,
            pet_id=pet["pet_id"],
            service_id=service["service_id"],
            start=start,
            end=start + HOUR,
            status=status,
        )
        start += 2 * HOUR
    assert (await client.delete(f"/api/pets/{pet['pet_id']}", headers=owner.headers)).status == 204


async def test_owner_pet_list(client):
    owner, other = await make_owner(client), await make_owner(client)
    admin, sitter = await make_admin(client), await make_sitter(client)
    pets = [await make_pet(client, owner, name=f"Pet {i}") for i in range(3)]
    await make_pet(client, other)
    url = f"/api/owners/{owner.user_id}/pets"

    resp = await client.get(url, headers=owner.headers)
    assert resp.status == 200
    assert resp.headers["X-Total-Count"] == "3"
    assert await resp.json() == pets

    resp = await client.get(url + "?limit=2&offset=1", headers=owner.headers)
    assert await resp.json() == pets[1:] and resp.headers["X-Total-Count"] == "3"
    resp = await client.get(url + "?offset=10", headers=owner.headers)
    assert await resp.json() == [] and resp.headers["X-Total-Count"] == "3"
    resp = await client.get(url + "?limit=201", headers=owner.headers)
    assert resp.status == 400
    assert_error(await resp.json(), "validation_error", "limit")

    resp = await client.get(url, headers=admin.headers)
    assert resp.status == 200 and len(await resp.json()) == 3
    assert (await client.get(url, headers=other.headers)).status == 403
    assert (await client.get(url, headers=sitter.headers)).status == 403
    assert (await client.get(url)).status == 401
    resp = await client.get("/api/owners/999999/pets", headers=admin.headers)
    assert resp.status == 404

    resp = await client.get(f"/api/owners/{other.user_id}/pets?offset=0", headers=other.headers)
    assert resp.headers["X-Total-Count"] == "1"
    empty = await make_owner(client)
    resp = await client.get(f"/api/owners/{empty.user_id}/pets", headers=empty.headers)
    assert await resp.json() == [] and resp.headers["X-Total-Count"] == "0"


async def test_cookie_write_needs_csrf_token(client, settings):
    owner = await make_owner(client)
    cookie = {"Cookie": f"nanny_token={owner.token}"}
    body = {"name": "Cookie", "type": "cat"}

    resp = await client.post("/api/pets", json=body, headers=cookie)
    assert resp.status == 403
    assert_error(await resp.json(), "forbidden", "X-CSRF-Token")
    wrong = cookie | {"X-CSRF-Token": "0" * 64}
    assert (await client.post("/api/pets", json=body, headers=wrong)).status == 403
    assert await client.app[POOL].fetchval("SELECT count(*) FROM pets") == 0

    good = cookie | {"X-CSRF-Token": csrf_token_for(settings, owner.token)}
    resp = await client.post("/api/pets", json=body, headers=good)
    assert resp.status == 201
    assert (await resp.json())["owner_id"] == owner.user_id


async def test_nul_characters_are_a_validation_error(client):
    owner = await make_owner(client)
    for body, field in [
        ({"name": "a\u0000b", "type": "cat"}, "name"),
        ({"name": "a", "type": "cat", "notes": "\u0000"}, "notes"),
    ]:
        resp = await client.post("/api/pets", json=body, headers=owner.headers)
        assert resp.status == 400
        assert_error(await resp.json(), "validation_error", field)
    sitter = await make_sitter(client)
    resp = await client.post(
        "/api/services",
        json={"type": "walking", "price_per_hour": 1, "description": "\u0000"},
        headers=sitter.headers,
    )
    assert resp.status == 400
    resp = await client.get("/api/services/search?location=a%00b")
    assert resp.status == 400
    assert_error(await resp.json(), "validation_error", "location")
