"""Notifications across real `nanny serve` processes sharing one database, one Redis and one SMTP
server (aiosmtpd): two senders never send one e-mail twice; a user's socket on one process
hears the `notification` frame of an event handled by the other; a sender killed with SIGKILL
in the middle of a send leaves the e-mail to be sent again, with the same Message-ID."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import bcrypt
import pytest

from tests.chat_support import Server, recv, server_env
from tests.factories import PASSWORD, unique_email

HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


@pytest.fixture
def env(settings, redis_server_url, smtp):
    return server_env(
        settings.database_url,
        redis_server_url,
        REDIS_PREFIX=f"t{uuid.uuid4().hex[:10]}",
        SMTP_URL=smtp.url,
        SMTP_FROM="Nanny <no-reply@nanny.test>",
        NOTIFY_POLL_SECONDS="0.2",
        NOTIFY_RETRY_SECONDS="0.2",
        # A claim outlives a batch's sending many times over (a shorter one would let the other
        # process take e-mails still being sent: the lease is what keeps them apart).
        NOTIFY_LEASE_SECONDS="30",
        MAX_PENDING_PER_SITTER="1000",
        MAX_PENDING_BOOKINGS="1000",
    )


@pytest.fixture
async def db(settings):
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def add_user(db, role: str, name: str) -> tuple[int, str]:
    email = unique_email(role)
    user_id = await db.fetchval(
        "INSERT INTO users (email, full_name, password_hash, role) VALUES ($1, $2, $3, $4) "
        "RETURNING user_id",
        email,
        name,
        HASH,
        role,
    )
    if role == "sitter":
        await db.execute("INSERT INTO sitters (user_id, status) VALUES ($1, 'approved')", user_id)
    return user_id, email


async def add_bookings(db, owner_id: int, sitter_id: int, count: int) -> list[int]:
    pet_id = await db.fetchval(
        "INSERT INTO pets (owner_id, name, type) VALUES ($1, 'Tuzik', 'dog') RETURNING pet_id",
        owner_id,
    )
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    ids = []
    for i in range(count):
        ids.append(
            await db.fetchval(
                "INSERT INTO bookings (owner_id, sitter_id, pet_id, start_time, end_time, "
                "total_price) VALUES ($1, $2, $3, $4, $5, 5000) RETURNING booking_id",
                owner_id,
                sitter_id,
                pet_id,
                base + timedelta(hours=3 * i),
                base + timedelta(hours=3 * i + 2),
            )
        )
    return ids


async def token(session: aiohttp.ClientSession, server: Server, email: str) -> str:
    resp = await session.post(
        f"{server.url}/api/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert resp.status == 200, await resp.text()
    return (await resp.json())["token"]


async def settled(db, timeout: float = 30) -> dict[str, int]:
    for _ in range(int(timeout / 0.1)):
        rows = await db.fetch("SELECT email_status, count(*) AS n FROM notifications GROUP BY 1")
        counts = {r["email_status"]: r["n"] for r in rows}
        if not counts.get("queued"):
            return counts
        await asyncio.sleep(0.1)
    raise AssertionError(f"still queued: {counts}")


async def test_two_senders_one_outbox_no_email_twice(env, db, smtp):
    one, two = Server(env).start(), Server(env).start()
    try:
        await asyncio.gather(one.healthy(), two.healthy())
        owner_id, _ = await add_user(db, "owner", "Owner")
        sitters = [await add_user(db, "sitter", f"Sitter {i}") for i in range(4)]
        for sitter_id, _ in sitters:
            await add_bookings(db, owner_id, sitter_id, 30)
        assert await settled(db) == {"sent": 120}
        await asyncio.sleep(1)  # a late duplicate would have arrived by now
        ids = [m["Message-ID"] for m in smtp.messages]
        assert len(ids) == 120 and len(set(ids)) == 120
        for _, email in sitters:
            assert len(smtp.to(email)) == 30
    finally:
        one.kill()
        two.kill()


async def test_the_frame_reaches_the_socket_on_the_other_process(env, db):
    one, two = Server(env).start(), Server(env).start()
    session = aiohttp.ClientSession()
    try:
        await asyncio.gather(one.healthy(), two.healthy())
        owner_id, owner_email = await add_user(db, "owner", "Owner")
        sitter_id, sitter_email = await add_user(db, "sitter", "Dana")
        [booking_id] = await add_bookings(db, owner_id, sitter_id, 1)
        owner_token = await token(session, two, owner_email)
        sitter_token = await token(session, one, sitter_email)
        ws = await session.ws_connect(
            f"{two.url}/api/ws", headers={"Authorization": f"Bearer {owner_token}"}
        )
        await asyncio.sleep(1.0)  # the watcher has seen the socket
        resp = await session.post(
            f"{one.url}/api/bookings/{booking_id}/confirm",
            headers={"Authorization": f"Bearer {sitter_token}", "Accept-Language": "en"},
        )
        assert resp.status == 200, await resp.text()
        frame = await recv(ws, "notification", timeout=5)
        n = frame["notification"]
        assert n["kind"] == "booking_confirmed" and n["booking_id"] == booking_id
        assert n["read_at"] is None and n["title"] == "Ваше бронирование подтверждено"
        listed = await session.get(
            f"{one.url}/api/notifications", headers={"Authorization": f"Bearer {owner_token}"}
        )
        assert [x["notification_id"] for x in await listed.json()] == [n["notification_id"]]
        await ws.close()
    finally:
        await session.close()
        one.kill()
        two.kill()


async def test_a_sender_killed_mid_send_is_retried_with_the_same_message_id(env, db, smtp):
    smtp.recorder.hold_seconds = 3.0  # each e-mail's DATA is answered after 3 s
    env = env | {"NOTIFY_LEASE_SECONDS": "2"}
    one = Server(env).start()
    two = None
    try:
        await one.healthy()
        owner_id, _ = await add_user(db, "owner", "Owner")
        sitter_id, sitter_email = await add_user(db, "sitter", "Dana")
        await add_bookings(db, owner_id, sitter_id, 1)
        for _ in range(100):  # until the sender has claimed it and is sending
            if await db.fetchval("SELECT attempts FROM notifications") == 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        one.kill()  # SIGKILL: no cleanup, the claim stays as it was
        assert await db.fetchval("SELECT email_status FROM notifications") == "queued"
        smtp.recorder.hold_seconds = 0
        two = Server(env).start()
        await two.healthy()
        assert await settled(db) == {"sent": 1}
        row = await db.fetchrow("SELECT notification_id, attempts FROM notifications")
        assert row["attempts"] == 2
        copies = smtp.to(sitter_email)
        assert copies  # the killed send may or may not have been kept by the server too
        assert {m["Message-ID"] for m in copies} == {
            f"<notification-{row['notification_id']}@nanny.test>"
        }
    finally:
        one.kill()
        if two is not None:
            two.kill()
