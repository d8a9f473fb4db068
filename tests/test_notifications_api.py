"""Notifications in the app (GET /api/notifications, POST /api/notifications/read) and the
unread-messages digest (one per booking per period, listing the messages; none when they were
read in time), against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from nanny.app import create_app
from nanny.keys import POOL
from tests.factories import make_owner, make_sitter
from tests.rows import insert_booking
from tests.test_notify_email import settle


@pytest.fixture
async def app_client(settings, smtp, aiohttp_client):
    local = dataclasses.replace(
        settings,
        smtp_url=smtp.url,
        public_url="https://nanny.test",
        notify_poll_seconds=0.2,
        notify_unread_minutes=0.02,  # 1.2 s
    )
    return await aiohttp_client(create_app(local))


async def send(client, account, booking_id: int, text: str) -> dict:
    resp = await client.post(
        f"/api/bookings/{booking_id}/messages", json={"content": text}, headers=account.headers
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_list_filter_page_and_mark_read(app_client):
    owner = await make_owner(app_client)
    sitter = await make_sitter(app_client)
    pool = app_client.app[POOL]
    ids = [await insert_booking(app_client, owner.user_id, sitter.user_id) for _ in range(3)]
    resp = await app_client.get("/api/notifications?limit=2", headers=sitter.headers)
    assert resp.status == 200 and resp.headers["X-Total-Count"] == "4"  # 3 requests, approval
    page = await resp.json()
    assert [n["kind"] for n in page] == ["booking_requested"] * 2
    assert [n["booking_id"] for n in page] == [ids[2], ids[1]]  # newest first
    assert set(page[0]) == {
        "notification_id", "kind", "booking_id", "title", "body", "created_at", "read_at"
    }  # fmt: skip
    resp = await app_client.get(
        "/api/notifications?limit=2", headers=sitter.headers | {"Accept-Language": "en"}
    )
    # The language of the pages: the saved choice, else the browser's.
    assert (await resp.json())[0]["title"] == "New booking request"
    resp = await app_client.post(
        "/api/notifications/read",
        json={"ids": [page[0]["notification_id"]]},
        headers=sitter.headers,
    )
    assert resp.status == 204
    resp = await app_client.get("/api/notifications?unread=true", headers=sitter.headers)
    assert resp.headers["X-Total-Count"] == "3"
    # Someone else's ids change nothing.
    resp = await app_client.post(
        "/api/notifications/read", json={"ids": [page[1]["notification_id"]]}, headers=owner.headers
    )
    assert resp.status == 204
    assert await pool.fetchval("SELECT count(*) FROM notifications WHERE read_at IS NULL") == 3
    resp = await app_client.post(
        "/api/notifications/read", json={"all": True}, headers=sitter.headers
    )
    assert resp.status == 204
    resp = await app_client.get("/api/notifications?unread=1", headers=sitter.headers)
    assert resp.headers["X-Total-Count"] == "0" and await resp.json() == []


@pytest.mark.parametrize(
    "body",
    [{}, {"ids": [1], "all": True}, {"all": False}, {"ids": "1"}, {"ids": [1], "x": 1}, []],
)
async def test_bad_read_bodies_are_refused(app_client, body):
    owner = await make_owner(app_client)
    resp = await app_client.post("/api/notifications/read", json=body, headers=owner.headers)
    assert resp.status == 400
    assert (await resp.json())["code"] == "validation_error"


async def test_bad_queries_and_no_token(app_client):
    owner = await make_owner(app_client)
    for query in ("limit=0", "limit=201", "offset=-1", "unread=maybe"):
        resp = await app_client.get(f"/api/notifications?{query}", headers=owner.headers)
        assert resp.status == 400, query
    resp = await app_client.get("/api/notifications")
    assert resp.status == 401


async def test_unread_messages_make_one_digest_listing_them(app_client, smtp):
    owner = await make_owner(app_client, full_name="Aigerim")
    sitter = await make_sitter(app_client, full_name="Dana")
    booking_id = await insert_booking(app_client, owner.user_id, sitter.user_id, status="confirmed")
    await settle(app_client)
    before = len(smtp.messages)
    for text in ("Hello!", "Tuzik ate well", "We are back home"):
        await send(app_client, sitter, booking_id, text)
    await send(app_client, owner, booking_id, "Thanks")  # the owner wrote: the sitter's unread
    await asyncio.sleep(2.5)
    await settle(app_client)
    digests = [m for m in smtp.messages[before:] if "Непрочитанные" in str(m["Subject"])]
    to_owner = [m for m in digests if owner.email in str(m["To"])]
    to_sitter = [m for m in digests if sitter.email in str(m["To"])]
    assert len(to_owner) == 1 and len(to_sitter) == 1
    text = to_owner[0].get_body(("plain",)).get_content()
    for line in ("Dana: Hello!", "Dana: Tuzik ate well", "Dana: We are back home"):
        assert line in text
    assert "Thanks" not in text
    assert "3 непрочитанных сообщения" in text
    assert f"https://nanny.test/bookings/{booking_id}/chat" in text
    # Nothing new: no second digest. A new message: a digest of it alone.
    await asyncio.sleep(1.5)
    await send(app_client, sitter, booking_id, "One more")
    await asyncio.sleep(2.5)
    await settle(app_client)
    to_owner = [
        m for m in smtp.messages[before:] if "Непрочитанные" in str(m["Subject"])
        and owner.email in str(m["To"])
    ]  # fmt: skip
    assert len(to_owner) == 2
    second = to_owner[1].get_body(("plain",)).get_content()
    assert "One more" in second and "Hello!" not in second


async def test_no_digest_when_the_messages_were_read_in_time(app_client, smtp):
    owner = await make_owner(app_client)
    sitter = await make_sitter(app_client)
    booking_id = await insert_booking(app_client, owner.user_id, sitter.user_id, status="confirmed")
    message = await send(app_client, sitter, booking_id, "Are you home?")
    resp = await app_client.post(
        f"/api/bookings/{booking_id}/read", json={"seq": message["seq"]}, headers=owner.headers
    )
    assert resp.status == 204
    await asyncio.sleep(2.5)
    await settle(app_client)
    assert not [m for m in smtp.messages if "Непрочитанные" in str(m["Subject"])]
    count = await app_client.app[POOL].fetchval(
        "SELECT count(*) FROM notifications WHERE kind = 'unread_messages'"
    )
    assert count == 0
