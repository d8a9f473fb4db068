"""Payments: only the owner, only confirmed or completed bookings, only once; refunds on cancel."""

from __future__ import annotations

import asyncio
from datetime import timedelta

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


async def confirmed_booking(client, price="1500.00"):
    owner, sitter = await make_owner(client), await make_sitter(client)
    pet = await make_pet(client, owner)
    service = await make_service(client, sitter, price_per_hour=price)
    booking_id = await make_booking(client, owner, pet, service, future(24), future(27))
    resp = await client.post(f"/api/bookings/{booking_id}/confirm", headers=sitter.headers)
    assert resp.status == 200
    return owner, sitter, booking_id


async def test_owner_pays_once(client):
    owner, sitter, booking_id = await confirmed_booking(client)
    url = f"/api/bookings/{booking_id}/payments"
    resp = await client.post(url, json={"method": "card"}, headers=owner.headers)
    assert resp.status == 201
    payment = await resp.json()
    assert set(payment) == {"payment_id", "booking_id", "amount", "method", "status", "created_at"}
    assert payment["booking_id"] == booking_id and payment["amount"] == 4500.0
    assert payment["method"] == "card" and payment["status"] == "paid"

    resp = await client.post(url, json={"method": "cash"}, headers=owner.headers)
    assert resp.status == 409
    assert_error(await resp.json(), "conflict")

    admin = await make_admin(client)
    for who in (owner, sitter, admin):
        resp = await client.get(url, headers=who.headers)
        assert resp.status == 200
        assert await resp.json() == [payment] and resp.headers["X-Total-Count"] == "1"
    resp = await client.get(url + "?offset=3", headers=owner.headers)
    assert await resp.json() == [] and resp.headers["X-Total-Count"] == "1"


async def test_who_may_pay_and_read(client):
    owner, sitter, booking_id = await confirmed_booking(client)
    other_owner, admin = await make_owner(client), await make_admin(client)
    url = f"/api/bookings/{booking_id}/payments"
    body = {"method": "cash"}
    assert (await client.post(url, json=body)).status == 401
    assert (await client.post(url, json=body, headers=sitter.headers)).status == 403
    assert (await client.post(url, json=body, headers=admin.headers)).status == 403
    assert (await client.post(url, json=body, headers=other_owner.headers)).status == 404
    assert (await client.get(url, headers=other_owner.headers)).status == 404
    assert (await client.get(url)).status == 401
    missing = "/api/bookings/999999/payments"
    assert (await client.post(missing, json=body, headers=owner.headers)).status == 404
    assert (await client.get(missing, headers=admin.headers)).status == 404
    assert await client.app[POOL].fetchval("SELECT count(*) FROM payments") == 0


async def test_payment_body_is_validated(client):
    owner, _, booking_id = await confirmed_booking(client)
    url = f"/api/bookings/{booking_id}/payments"
    for body, field in [
        ({"method": "bitcoin"}, "method"),
        ({}, "method"),
        ({"method": "card", "amount": 1}, "amount"),
        ({"method": "card", "status": "refunded"}, "status"),
    ]:
        resp = await client.post(url, json=body, headers=owner.headers)
        assert resp.status == 400, body
        assert_error(await resp.json(), "validation_error", field)
    assert await client.app[POOL].fetchval("SELECT count(*) FROM payments") == 0


async def test_only_confirmed_or_completed_bookings_are_payable(client):
    owner, sitter = await make_owner(client), await make_sitter(client)
    pet = await make_pet(client, owner)
    service = await make_service(client, sitter)
    pending = await make_booking(client, owner, pet, service, future(24))
    resp = await client.post(
        f"/api/bookings/{pending}/payments", json={"method": "card"}, headers=owner.headers
    )
    assert resp.status == 409
    assert (await resp.json())["details"] == {"status": "pending"}

    end = future(-2)
    kinds = {}
    for i, status in enumerate(("completed", "cancelled")):
        kinds[status] = await insert_booking(
            client,
            owner_id=owner.user_id,
            sitter_id=sitter.user_id,
            pet_id=pet["pet_id"],
            service_id=service["service_id"],
            start=end - HOUR - timedelta(hours=3 * i),
            end=end - timedelta(hours=3 * i),
            status=status,
            total_price=250,
        )
    url = "/api/bookings/{}/payments"
    resp = await client.post(
        url.format(kinds["completed"]), json={"method": "cash"}, headers=owner.headers
    )
    assert resp.status == 201 and (await resp.json())["amount"] == 250.0
    resp = await client.post(
        url.format(kinds["cancelled"]), json={"method": "cash"}, headers=owner.headers
    )
    assert resp.status == 409


async def test_cancelling_a_paid_booking_refunds_it(client):
    owner, sitter, booking_id = await confirmed_booking(client)
    url = f"/api/bookings/{booking_id}/payments"
    await client.post(url, json={"method": "card"}, headers=owner.headers)
    resp = await client.post(f"/api/bookings/{booking_id}/cancel", headers=sitter.headers)
    assert resp.status == 200
    payments = await (await client.get(url, headers=owner.headers)).json()
    assert [p["status"] for p in payments] == ["refunded"]
    resp = await client.post(url, json={"method": "card"}, headers=owner.headers)
    assert resp.status == 409  # a cancelled booking cannot be paid again


async def test_cancelling_an_unpaid_booking_touches_no_payment(client):
    owner, _, booking_id = await confirmed_booking(client)
    resp = await client.post(f"/api/bookings/{booking_id}/cancel", headers=owner.headers)
    assert resp.status == 200
    assert await client.app[POOL].fetchval("SELECT count(*) FROM payments") == 0


async def test_concurrent_payments_one_wins(client):
    owner, _, booking_id = await confirmed_booking(client)
    url = f"/api/bookings/{booking_id}/payments"
    responses = await asyncio.gather(
        *(client.post(url, json={"method": "card"}, headers=owner.headers) for _ in range(6))
    )
    assert sorted(r.status for r in responses) == [201] + [409] * 5
    assert await client.app[POOL].fetchval("SELECT count(*) FROM payments") == 1


async def test_pay_racing_cancel_never_leaves_a_paid_cancelled_booking(client):
    owner, sitter = await make_owner(client), await make_sitter(client)
    pet = await make_pet(client, owner)
    service = await make_service(client, sitter)
    ids = []
    for i in range(6):
        start = future(24 + 3 * i)
        booking_id = await make_booking(client, owner, pet, service, start, start + HOUR)
        await client.post(f"/api/bookings/{booking_id}/confirm", headers=sitter.headers)
        ids.append(booking_id)
    await asyncio.gather(
        *(
            request
            for booking_id in ids
            for request in (
                client.post(
                    f"/api/bookings/{booking_id}/payments",
                    json={"method": "card"},
                    headers=owner.headers,
                ),
                client.post(f"/api/bookings/{booking_id}/cancel", headers=sitter.headers),
            )
        )
    )
    bad = await client.app[POOL].fetchval(
        """
        SELECT count(*) FROM bookings b JOIN payments p USING (booking_id)
        WHERE b.status = 'cancelled' AND p.status = 'paid'
        """
    )
    assert bad == 0
    statuses = await client.app[POOL].fetch(
        "SELECT status FROM bookings WHERE booking_id = ANY($1::int[])", ids
    )
    assert {r["status"] for r in statuses} == {"cancelled"}
