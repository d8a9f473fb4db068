"""Helpers for the marketplace tests: pets, services and bookings made through the real API
(tests/rows.py places rows directly in the database where the API forbids them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nanny.keys import POOL
from tests.factories import Account

HOUR = timedelta(hours=1)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def future(hours: float = 24, *, base: datetime | None = None) -> datetime:
    """A whole-minute time `hours` from now, so distinct tests never collide by accident."""
    start = (base or datetime.now(UTC)).replace(second=0, microsecond=0)
    return start + timedelta(hours=hours)


async def make_pet(client, owner: Account, **over) -> dict:
    body = {"name": "Barsik", "type": "cat", "age": 3, "notes": "shy"} | over
    resp = await client.post("/api/pets", json=body, headers=owner.headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def make_service(client, sitter: Account, **over) -> dict:
    body = {"type": "walking", "price_per_hour": "2500.00", "description": "Walks"} | over
    resp = await client.post("/api/services", json=body, headers=sitter.headers)
    assert resp.status == 201, await resp.text()
    return await resp.json()


def booking_body(
    pet: dict, service: dict, start: datetime, end: datetime | None = None, **over
) -> dict:
    end = end or start + 2 * HOUR
    body = {
        "sitter_id": service["sitter_id"],
        "pet_id": pet["pet_id"],
        "service_id": service["service_id"],
        "start_time": iso(start),
        "end_time": iso(end),
    }
    return body | over


async def book(client, owner: Account, pet: dict, service: dict, start, end=None, **over):
    """POST /api/bookings; returns the response (the caller asserts its status)."""
    return await client.post(
        "/api/bookings", json=booking_body(pet, service, start, end, **over), headers=owner.headers
    )


async def make_booking(client, owner, pet, service, start=None, end=None) -> int:
    resp = await book(client, owner, pet, service, start or future(), end)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["booking_id"]


async def booking_status(client, booking_id: int) -> str:
    return await client.app[POOL].fetchval(
        "SELECT status FROM bookings WHERE booking_id = $1", booking_id
    )


def assert_error(data: dict, code: str, field: str | None = None) -> None:
    assert data["code"] == code, data
    assert isinstance(data["error"], str) and data["error"]
    if field is not None:
        assert data["details"]["field"] == field, data
