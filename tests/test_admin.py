"""Admin endpoints: approval, user lists, soft deletion that keeps history, stats."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from nanny.db import bookings as db_bookings
from nanny.encoding import dumps
from nanny.events import on_booking_changed
from nanny.keys import POOL
from tests.factories import PASSWORD, make_admin, make_owner, make_sitter
from tests.rows import (
    insert_booking,
    insert_message,
    insert_payment,
    insert_pet,
    insert_service,
)

ADMIN_ONLY = [
    ("GET", "/api/admin/sitters/pending"),
    ("POST", "/api/admin/sitters/{sitter}/approve"),
    ("POST", "/api/admin/sitters/{sitter}/reject"),
    ("GET", "/api/admin/users"),
    ("GET", "/api/admin/users/{owner}"),
    ("DELETE", "/api/admin/users/{owner}"),
    ("GET", "/api/admin/stats"),
]


@pytest.mark.parametrize(("method", "template"), ADMIN_ONLY)
async def test_admin_only_endpoints(client, method, template):
    owner = await make_owner(client)
    sitter = await make_sitter(client, status="pending")
    approved = await make_sitter(client)
    path = template.format(sitter=sitter.user_id, owner=owner.user_id)
    resp = await client.request(method, path)
    assert resp.status == 401 and (await resp.json())["code"] == "unauthorized"
    for account in (owner, sitter, approved):
        resp = await client.request(method, path, headers=account.headers)
        assert resp.status == 403 and (await resp.json())["code"] == "forbidden"
    admin = await make_admin(client)
    resp = await client.request(method, path, headers=admin.headers)
    assert resp.status in (200, 204)


async def test_approve_and_reject(client):
    admin = await make_admin(client)
    first = await make_sitter(client, status="pending", full_name="Aruzhan Sadykova")
    second = await make_sitter(client, status="pending", location="Astana")
    await make_sitter(client)  # approved already: not pending

    resp = await client.get("/api/admin/sitters/pending", headers=admin.headers)
    assert resp.status == 200 and resp.headers["X-Total-Count"] == "2"
    pending = await resp.json()
    assert [s["sitter_id"] for s in pending] == [first.user_id, second.user_id]
    assert pending[0]["full_name"] == "Aruzhan Sadykova"
    assert pending[0]["email"] == first.email and pending[0]["status"] == "pending"
    assert pending[0]["rating"] == 0 and pending[0]["total_reviews"] == 0
    resp = await client.get(
        "/api/admin/sitters/pending", params={"limit": 1, "offset": 1}, headers=admin.headers
    )
    assert [s["sitter_id"] for s in await resp.json()] == [second.user_id]
    assert resp.headers["X-Total-Count"] == "2"
    resp = await client.get(
        "/api/admin/sitters/pending", params={"offset": 5}, headers=admin.headers
    )
    assert await resp.json() == [] and resp.headers["X-Total-Count"] == "2"

    resp = await client.post(f"/api/admin/sitters/{first.user_id}/approve", headers=admin.headers)
    assert resp.status == 200
    assert (await resp.json())["status"] == "approved"
    resp = await client.post(f"/api/admin/sitters/{second.user_id}/reject", headers=admin.headers)
    assert resp.status == 200 and (await resp.json())["status"] == "rejected"
    resp = await client.get("/api/admin/sitters/pending", headers=admin.headers)
    assert await resp.json() == [] and resp.headers["X-Total-Count"] == "0"
    # The sitter sees the decision on its own profile.
    resp = await client.get("/api/auth/me", headers=first.headers)
    assert (await resp.json())["sitter"]["status"] == "approved"
    # An approval can be withdrawn, and a rejection reversed.
    resp = await client.post(f"/api/admin/sitters/{first.user_id}/reject", headers=admin.headers)
    assert (await resp.json())["status"] == "rejected"
    resp = await client.post(f"/api/admin/sitters/{second.user_id}/approve", headers=admin.headers)
    assert (await resp.json())["status"] == "approved"


async def test_approve_unknown_or_non_sitter(client):
    admin = await make_admin(client)
    owner = await make_owner(client)
    for sitter_id in (owner.user_id, 999_999):
        for action in ("approve", "reject"):
            resp = await client.post(
                f"/api/admin/sitters/{sitter_id}/{action}", headers=admin.headers
            )
            assert resp.status == 404
    resp = await client.post("/api/admin/sitters/abc/approve", headers=admin.headers)
    assert resp.status == 400


async def test_sitter_details_for_admin_and_self(client):
    admin = await make_admin(client)
    sitter = await make_sitter(client)
    other_sitter = await make_sitter(client)
    owner = await make_owner(client)
    for type_ in ("walking", "boarding"):
        await insert_service(client, sitter.user_id, type_)
    for status in ("completed", "completed", "cancelled", "pending"):
        await insert_booking(client, owner.user_id, sitter.user_id, status=status)
    await client.app[POOL].execute(
        "UPDATE sitters SET rating_count = 3, rating_sum = 14 WHERE user_id = $1", sitter.user_id
    )
    path = f"/api/admin/sitters/{sitter.user_id}"
    for account in (admin, sitter):
        resp = await client.get(path, headers=account.headers)
        assert resp.status == 200
        data = await resp.json()
        # insert_booking adds a service per booking, so 2 + 4.
        assert data["total_services"] == 6
        assert data["total_bookings"] == 4 and data["completed_bookings"] == 2
        assert data["average_rating"] == 4.67 and data["rating"] == 4.67
        assert data["total_reviews"] == 3
        assert data["sitter_id"] == sitter.user_id and data["email"] == sitter.email
    assert (await client.get(path)).status == 401
    for account in (other_sitter, owner):
        assert (await client.get(path, headers=account.headers)).status == 403
    resp = await client.get(f"/api/admin/sitters/{owner.user_id}", headers=admin.headers)
    assert resp.status == 404


async def test_user_list_filters_and_search(client):
    admin = await make_admin(client)
    owners = [await make_owner(client, full_name=f"Owner Nurlan {i}") for i in range(3)]
    sitter = await make_sitter(client, full_name="Saule Bekova")
    resp = await client.get("/api/admin/users", headers=admin.headers)
    assert resp.status == 200 and resp.headers["X-Total-Count"] == "5"
    users = await resp.json()
    assert users[0]["user_id"] == sitter.user_id  # newest first
    assert users[0]["sitter"]["status"] == "approved"
    assert users[1]["sitter"] is None

    resp = await client.get("/api/admin/users", params={"role": "owner"}, headers=admin.headers)
    assert {u["user_id"] for u in await resp.json()} == {o.user_id for o in owners}
    assert resp.headers["X-Total-Count"] == "3"
    resp = await client.get(
        "/api/admin/users", params={"role": "owner", "limit": 2}, headers=admin.headers
    )
    assert len(await resp.json()) == 2 and resp.headers["X-Total-Count"] == "3"
    resp = await client.get("/api/admin/users", params={"q": "bekova"}, headers=admin.headers)
    assert [u["user_id"] for u in await resp.json()] == [sitter.user_id]
    resp = await client.get(
        "/api/admin/users", params={"q": owners[0].email.upper()}, headers=admin.headers
    )
    assert [u["user_id"] for u in await resp.json()] == [owners[0].user_id]
    # LIKE wildcards are matched literally.
    resp = await client.get("/api/admin/users", params={"q": "%"}, headers=admin.headers)
    assert await resp.json() == [] and resp.headers["X-Total-Count"] == "0"
    for bad in ({"role": "root"}, {"limit": "500"}, {"offset": "-3"}):
        resp = await client.get("/api/admin/users", params=bad, headers=admin.headers)
        assert resp.status == 400, bad

    resp = await client.get(f"/api/admin/users/{owners[1].user_id}", headers=admin.headers)
    assert resp.status == 200
    data = await resp.json()
    assert data["email"] == owners[1].email and data["role"] == "owner"
    assert (await client.get("/api/admin/users/999999", headers=admin.headers)).status == 404


async def test_delete_user_keeps_history(client):
    admin = await make_admin(client)
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    events: list[dict] = []

    async def record(app, booking):
        events.append(booking)

    on_booking_changed(client.app, record)
    lonely_pet = await insert_pet(client, owner.user_id, "Lonely")
    busy_pet = await insert_pet(client, owner.user_id, "Busy")
    done = await insert_booking(
        client, owner.user_id, sitter.user_id, status="completed", pet_id=busy_pet
    )
    pending = await insert_booking(client, owner.user_id, sitter.user_id, status="pending")
    confirmed = await insert_booking(client, owner.user_id, sitter.user_id, status="confirmed")
    paid = await insert_payment(client, confirmed)
    old_paid = await insert_payment(client, done)
    await insert_message(client, done, owner.user_id, "Rahmet!")
    review = await client.post(
        "/api/reviews", json={"booking_id": done, "rating": 5}, headers=owner.headers
    )
    assert review.status == 201

    resp = await client.delete(f"/api/admin/users/{owner.user_id}", headers=admin.headers)
    assert resp.status == 204
    pool = client.app[POOL]
    row = await pool.fetchrow("SELECT * FROM users WHERE user_id = $1", owner.user_id)
    assert row["email"] is None and row["phone"] is None and row["password_hash"] is None
    assert row["full_name"] == "Deleted user" and row["deleted_at"] is not None
    statuses = dict(
        await pool.fetch(
            "SELECT booking_id, status FROM bookings WHERE owner_id = $1", owner.user_id
        )
    )
    assert statuses == {done: "completed", pending: "cancelled", confirmed: "cancelled"}
    payments = dict(await pool.fetch("SELECT payment_id, status FROM payments"))
    assert payments == {paid: "refunded", old_paid: "paid"}
    pets = {r["pet_id"] for r in await pool.fetch("SELECT pet_id FROM pets")}
    assert busy_pet in pets and lonely_pet not in pets
    assert await pool.fetchval("SELECT count(*) FROM reviews WHERE booking_id = $1", done) == 1
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert sorted(e["booking_id"] for e in events) == sorted([pending, confirmed])
    assert all(e["status"] == "cancelled" for e in events)
    # The same event as any other status change (times and money are encoded when it is sent).
    sent = json.loads(dumps(events[0]))
    assert sent["start_time"].endswith("Z") and sent["total_price"] > 0
    assert "owner" in sent and "sitter" in sent

    # The token stops working, the account cannot log in, lists and lookups forget it.
    assert (await client.get("/api/auth/me", headers=owner.headers)).status == 401
    resp = await client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert resp.status == 401
    resp = await client.get(f"/api/admin/users/{owner.user_id}", headers=admin.headers)
    assert resp.status == 404
    resp = await client.get("/api/admin/users", headers=admin.headers)
    assert owner.user_id not in {u["user_id"] for u in await resp.json()}
    resp = await client.delete(f"/api/admin/users/{owner.user_id}", headers=admin.headers)
    assert resp.status == 404
    # The e-mail is free again.
    resp = await client.post(
        "/api/auth/register/owner",
        json={
            "full_name": "New Owner",
            "email": owner.email,
            "phone": "+77019998877",
            "password": PASSWORD,
        },
    )
    assert resp.status == 201


async def test_delete_sitter_cancels_its_bookings_and_hides_it(client):
    admin = await make_admin(client)
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    pending = await insert_booking(client, owner.user_id, sitter.user_id, status="pending")
    resp = await client.delete(f"/api/admin/users/{sitter.user_id}", headers=admin.headers)
    assert resp.status == 204
    pool = client.app[POOL]
    status = await pool.fetchval("SELECT status FROM bookings WHERE booking_id = $1", pending)
    assert status == "cancelled"
    sitter_row = await pool.fetchrow("SELECT * FROM sitters WHERE user_id = $1", sitter.user_id)
    assert sitter_row["status"] == "rejected" and sitter_row["certificates"] == ""
    resp = await client.get(f"/api/admin/sitters/{sitter.user_id}", headers=admin.headers)
    assert resp.status == 404
    resp = await client.post(f"/api/admin/sitters/{sitter.user_id}/approve", headers=admin.headers)
    assert resp.status == 404


async def test_sitter_deleted_while_a_booking_is_created_gets_it_cancelled(client):
    """The deletion waits for a booking being created for the sitter to commit and cancels it
    with the sitter's other open bookings: it is never left pending for a deleted account."""
    admin = await make_admin(client)
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    pet_id = await insert_pet(client, owner.user_id)
    service_id = await insert_service(client, sitter.user_id)
    pool = client.app[POOL]
    start = datetime.now(UTC) + timedelta(days=3)

    async def deletion_waits_on_the_calendar_lock() -> None:
        while not await pool.fetchval(
            """
            SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event = 'advisory'
            """
        ):
            await asyncio.sleep(0.02)

    async def create(conn, start: datetime) -> db_bookings.Creation:
        return await db_bookings.create_booking(
            conn,
            owner_id=owner.user_id,
            sitter_id=sitter.user_id,
            pet_id=pet_id,
            service_id=service_id,
            start_time=start,
            end_time=start + timedelta(hours=2),
            max_pending=10,
            max_pending_per_sitter=2,
        )

    async with pool.acquire() as conn, conn.transaction():
        creation = await create(conn, start)
        assert creation.outcome == "created"
        deletion = asyncio.create_task(
            client.delete(f"/api/admin/users/{sitter.user_id}", headers=admin.headers)
        )
        await asyncio.wait_for(deletion_waits_on_the_calendar_lock(), timeout=5)
        assert not deletion.done()
    resp = await deletion
    assert resp.status == 204
    status = await pool.fetchval(
        "SELECT status FROM bookings WHERE booking_id = $1", creation.booking.booking_id
    )
    assert status == "cancelled"

    # Once the sitter is deleted, a creation sees it and books nothing.
    async with pool.acquire() as conn:
        late = await create(conn, start + timedelta(days=1))
    assert late.outcome == "no_service" and late.booking is None


async def test_admin_cannot_delete_itself(client):
    admin = await make_admin(client)
    other_admin = await make_admin(client)
    resp = await client.delete(f"/api/admin/users/{admin.user_id}", headers=admin.headers)
    assert resp.status == 409 and (await resp.json())["code"] == "conflict"
    assert (await client.get("/api/auth/me", headers=admin.headers)).status == 200
    # Another admin may be deleted.
    resp = await client.delete(f"/api/admin/users/{other_admin.user_id}", headers=admin.headers)
    assert resp.status == 204
    for bad in ("0", "x", "3000000000"):
        resp = await client.delete(f"/api/admin/users/{bad}", headers=admin.headers)
        assert resp.status == 400


async def test_stats(client):
    admin = await make_admin(client)
    empty = await (await client.get("/api/admin/stats", headers=admin.headers)).json()
    assert empty == {
        "users": {"owner": 0, "sitter": 0, "admin": 1},
        "sitters": {"pending": 0, "approved": 0, "rejected": 0},
        "bookings": {"pending": 0, "confirmed": 0, "completed": 0, "cancelled": 0},
        "messages_today": 0,
        "revenue_paid": 0,
        "media": {"images": 0, "files": 0, "bytes": 0},
        "outbox": {"queued": 0, "sent": 0, "failed": 0, "skipped": 0},
    }
    owner = await make_owner(client)
    gone = await make_owner(client)
    sitter = await make_sitter(client)
    await make_sitter(client, status="pending")
    await make_sitter(client, status="rejected")
    done = await insert_booking(client, owner.user_id, sitter.user_id, status="completed")
    confirmed = await insert_booking(client, owner.user_id, sitter.user_id, status="confirmed")
    await insert_booking(client, owner.user_id, sitter.user_id, status="pending")
    await insert_booking(client, owner.user_id, sitter.user_id, status="cancelled")
    await insert_payment(client, done, amount="5000.50")
    await insert_payment(client, confirmed, amount="1234.25")
    await insert_payment(client, confirmed, status="refunded", amount="999.00")
    await insert_message(client, done, owner.user_id)
    await insert_message(client, done, sitter.user_id)
    old = await insert_message(client, done, sitter.user_id)
    yesterday = datetime.now(UTC) - timedelta(days=1, minutes=1)
    await client.app[POOL].execute(
        "UPDATE messages SET sent_at = $2 WHERE message_id = $1", old, yesterday
    )
    await client.delete(f"/api/admin/users/{gone.user_id}", headers=admin.headers)

    resp = await client.get("/api/admin/stats", headers=admin.headers)
    stats = await resp.json()
    # Two sitters approved or rejected, one request: three e-mails, sent or on their way.
    outbox = stats.pop("outbox")
    assert set(outbox) == {"queued", "sent", "failed", "skipped"}
    assert outbox["queued"] + outbox["sent"] == 3 and outbox["failed"] == 0
    assert stats == {
        "users": {"owner": 1, "sitter": 3, "admin": 1},
        "sitters": {"pending": 1, "approved": 1, "rejected": 1},
        "bookings": {"pending": 1, "confirmed": 1, "completed": 1, "cancelled": 1},
        "messages_today": 2,
        "revenue_paid": 6234.75,
        "media": {"images": 0, "files": 0, "bytes": 0},
    }
