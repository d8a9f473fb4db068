"""The expiry task: stale pending bookings are cancelled once per interval across processes,
fresh ones are left alone, failures are retried, and shutdown does not wait for the interval."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg

from nanny.app import create_app
from nanny.events import on_booking_changed
from nanny.expiry import EXPIRY_LOCK, TASK_NAME, run_expiry_if_due
from nanny.keys import POOL
from tests.faults import TcpProxy


async def seed_people(conn: asyncpg.Connection) -> tuple[int, int]:
    owner = await conn.fetchval(
        "INSERT INTO users (email, full_name, password_hash, role) "
        "VALUES ('o@example.kz', 'Owner', 'x', 'owner') RETURNING user_id"
    )
    sitter = await conn.fetchval(
        "INSERT INTO users (email, full_name, password_hash, role) "
        "VALUES ('s@example.kz', 'Sitter', 'x', 'sitter') RETURNING user_id"
    )
    await conn.execute("INSERT INTO sitters (user_id, status) VALUES ($1, 'approved')", sitter)
    return owner, sitter


async def add_booking(conn, owner, sitter, start: datetime, status: str = "pending") -> int:
    return await conn.fetchval(
        """
        INSERT INTO bookings (owner_id, sitter_id, start_time, end_time, status, total_price)
        VALUES ($1, $2, $3, $3::timestamptz + interval '1 hour', $4, 10) RETURNING booking_id
        """,
        owner,
        sitter,
        start,
        status,
    )


async def statuses(conn, ids) -> dict[int, str]:
    rows = await conn.fetch(
        "SELECT booking_id, status FROM bookings WHERE booking_id = ANY($1::int[])", ids
    )
    return {r["booking_id"]: r["status"] for r in rows}


def run_logs(caplog) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("expiry: cancelled")
    ]


async def test_two_instances_cancel_each_stale_booking_once(aiohttp_client, settings, caplog):
    caplog.set_level(logging.INFO, logger="nanny.expiry")
    interval = 0.4
    fast = dataclasses.replace(settings, expire_interval_seconds=interval)
    conn = await asyncpg.connect(settings.database_url)
    try:
        owner, sitter = await seed_people(conn)
        now = await conn.fetchval("SELECT now()")
        stale = [
            await add_booking(conn, owner, sitter, now - timedelta(hours=25 + 2 * i))
            for i in range(3)
        ]
        fresh = [
            # 23 h 59 min after its start a pending booking is not yet stale.
            await add_booking(conn, owner, sitter, now - timedelta(hours=23, minutes=59)),
            await add_booking(conn, owner, sitter, now + timedelta(hours=5)),
            await add_booking(conn, owner, sitter, now - timedelta(hours=48), status="confirmed"),
        ]

        seen: list[tuple[str, int, str]] = []

        def listener_for(name):
            async def listener(app, booking):
                seen.append((name, booking["booking_id"], booking["status"]))

            return listener

        started = time.monotonic()
        apps = [create_app(fast), create_app(fast)]
        for name, app in zip("AB", apps, strict=True):
            on_booking_changed(app, listener_for(name))
        clients = [await aiohttp_client(apps[0])]
        # Start the second instance half an interval later, as a process started at another
        # moment would: it must fall in step with the recorded schedule, not run on its own.
        await asyncio.sleep(interval / 2)
        clients.append(await aiohttp_client(apps[1]))

        await asyncio.sleep(3 * interval)
        # A booking turning stale while the instances run is picked up by a later run, once.
        late = await add_booking(conn, owner, sitter, now - timedelta(hours=30))
        await asyncio.sleep(3 * interval)

        t0 = time.monotonic()
        for client in clients:
            await client.close()
        shutdown = time.monotonic() - t0
        elapsed = time.monotonic() - started

        assert Counter(b for _, b, _ in seen) == Counter([*stale, late])
        assert all(status == "cancelled" for _, _, status in seen)
        assert set(await statuses(conn, [*stale, late])).issubset([*stale, late])
        assert set((await statuses(conn, [*stale, late])).values()) == {"cancelled"}
        assert list((await statuses(conn, fresh)).values()) == ["pending", "pending", "confirmed"]
        runs = run_logs(caplog)
        # One run per interval across both instances (plus the one at start-up), never one each.
        assert 2 <= len(runs) <= elapsed / interval + 1, runs
        assert shutdown < interval, shutdown
    finally:
        await conn.close()


async def test_shutdown_does_not_wait_for_the_interval(aiohttp_client, settings):
    slow = dataclasses.replace(settings, expire_interval_seconds=3600)
    client = await aiohttp_client(create_app(slow))
    pool = client.app[POOL]
    for _ in range(100):  # wait for the start-up run to be recorded
        if await pool.fetchval("SELECT count(*) FROM task_runs"):
            break
        await asyncio.sleep(0.02)
    t0 = time.monotonic()
    await client.close()
    assert time.monotonic() - t0 < 1.0


async def test_not_due_and_locked_runs_are_skipped(client, caplog):
    caplog.set_level(logging.INFO, logger="nanny.expiry")
    pool = client.app[POOL]
    async with pool.acquire() as conn:
        owner, sitter = await seed_people(conn)
        booking = await add_booking(conn, owner, sitter, datetime.now(UTC) - timedelta(days=2))
        for _ in range(100):
            if await conn.fetchval("SELECT count(*) FROM task_runs"):
                break
            await asyncio.sleep(0.02)

    # The start-up run happened moments ago: the next is an interval (3600 s) away.
    wait = await run_expiry_if_due(client.app)
    assert 3500 < wait <= 3600
    assert (await statuses(pool, [booking]))[booking] == "pending"

    await pool.execute(
        "UPDATE task_runs SET last_run_at = now() - interval '2 hours' WHERE task = $1", TASK_NAME
    )
    async with pool.acquire() as holder:
        await holder.execute("SELECT pg_advisory_lock($1)", EXPIRY_LOCK)
        try:
            # Another process is running it: skip without touching anything.
            assert await run_expiry_if_due(client.app) == 3600
            assert (await statuses(pool, [booking]))[booking] == "pending"
        finally:
            await holder.execute("SELECT pg_advisory_unlock($1)", EXPIRY_LOCK)

    assert await run_expiry_if_due(client.app) == 3600
    assert (await statuses(pool, [booking]))[booking] == "cancelled"
    assert any(f": {booking}" in line for line in run_logs(caplog))


async def test_a_database_failure_is_logged_and_retried(aiohttp_client, settings, caplog):
    caplog.set_level(logging.INFO, logger="nanny.expiry")
    interval = 0.3
    proxy = TcpProxy.for_postgres(settings.database_url)
    await proxy.start()
    direct = await asyncpg.connect(settings.database_url)
    try:
        through_proxy = dataclasses.replace(
            settings,
            database_url=proxy.postgres_dsn(settings.database_url),
            expire_interval_seconds=interval,
        )
        client = await aiohttp_client(create_app(through_proxy))
        await asyncio.sleep(interval)  # the start-up run, with nothing to do
        await proxy.cut()
        owner, sitter = await seed_people(direct)
        booking = await add_booking(direct, owner, sitter, datetime.now(UTC) - timedelta(days=3))
        await asyncio.sleep(3 * interval)
        failures = [r for r in caplog.records if "the run failed" in r.getMessage()]
        assert failures and failures[0].exc_info is not None
        assert (await statuses(direct, [booking]))[booking] == "pending"

        await proxy.restore()
        for _ in range(50):
            if (await statuses(direct, [booking]))[booking] == "cancelled":
                break
            await asyncio.sleep(0.1)
        assert (await statuses(direct, [booking]))[booking] == "cancelled"
        await client.close()
    finally:
        await direct.close()
        await proxy.close()


async def test_unanswered_requests_expire_with_their_reason(aiohttp_client, settings):
    """A request the sitter leaves unanswered for PENDING_TTL_HOURS expires however far ahead it
    starts, with the reason `expired` in the booking and in the event pushed for it; one just
    inside the TTL, and an answered one, stay."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        owner, sitter = await seed_people(conn)
        now = await conn.fetchval("SELECT now()")
        months_ahead = now + timedelta(days=60)
        unanswered = await add_booking(conn, owner, sitter, months_ahead)
        recent = await add_booking(conn, owner, sitter, months_ahead + timedelta(hours=2))
        answered = await add_booking(conn, owner, sitter, months_ahead + timedelta(hours=4))
        await conn.execute(
            "UPDATE bookings SET created_at = now() - $2::interval WHERE booking_id = ANY($1)",
            [unanswered, answered],
            timedelta(hours=72, minutes=1),
        )
        await conn.execute(
            "UPDATE bookings SET created_at = now() - interval '71 hours' WHERE booking_id = $1",
            recent,
        )
        await conn.execute(
            "UPDATE bookings SET status = 'confirmed' WHERE booking_id = $1", answered
        )
        app = create_app(settings)
        seen: list[dict] = []

        async def listener(app, booking):
            seen.append(booking)

        on_booking_changed(app, listener)
        client = await aiohttp_client(app)  # the task runs once at start-up
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert [(b["booking_id"], b["status"], b["cancel_reason"]) for b in seen] == [
            (unanswered, "cancelled", "expired")
        ]
        assert await statuses(conn, [unanswered, recent, answered]) == {
            unanswered: "cancelled",
            recent: "pending",
            answered: "confirmed",
        }
        reasons = await conn.fetch(
            "SELECT booking_id, cancel_reason FROM bookings WHERE booking_id = ANY($1)",
            [unanswered, recent, answered],
        )
        assert {r["booking_id"]: r["cancel_reason"] for r in reasons} == {
            unanswered: "expired",
            recent: None,
            answered: None,
        }
        await client.close()
    finally:
        await conn.close()
