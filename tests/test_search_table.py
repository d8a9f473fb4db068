"""service_search, the table search reads, follows every change it mirrors (migrations/
0014.search_table.sql): after each kind of write, through the API where there is one and in SQL
where only the database changes it, the table holds exactly what the join of services, sitters
and users says, and concurrent writes of one sitter leave it right too."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from nanny.keys import POOL
from tests.factories import make_admin, make_owner, make_sitter, set_sitter_status
from tests.market import make_service
from tests.rows import insert_booking

# What service_search must hold: the migration's definition, written out independently.
EXPECTED = """
    SELECT v.service_id, v.sitter_id, v.type, v.price_per_hour, v.description,
           u.full_name AS sitter_name, s.location, lower(s.location) AS location_key,
           CASE WHEN s.rating_count = 0 THEN 0
                ELSE round(s.rating_sum::numeric / s.rating_count, 2) END AS rating,
           s.rating_count AS total_reviews, s.timezone, s.schedule_days
    FROM services v JOIN sitters s ON s.user_id = v.sitter_id JOIN users u ON u.user_id = s.user_id
    WHERE s.status = 'approved' AND u.deleted_at IS NULL
    ORDER BY v.service_id
"""
KEPT = """
    SELECT service_id, sitter_id, type, price_per_hour, description, sitter_name, location,
           location_key, rating, total_reviews, timezone, schedule_days
    FROM service_search ORDER BY service_id
"""


async def assert_mirrors(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    kept = await pool.fetch(KEPT)
    assert [dict(r) for r in kept] == [dict(r) for r in await pool.fetch(EXPECTED)]
    zones = {r["timezone"] for r in await pool.fetch("SELECT timezone FROM search_zones")}
    assert {r["timezone"] for r in kept} <= zones
    return kept


async def test_every_kind_of_change_is_mirrored(client):
    pool = client.app[POOL]
    admin = await make_admin(client)
    sitter = await make_sitter(client, location="Almaty, Medeu")
    waiting = await make_sitter(client)
    walk = await make_service(client, sitter)
    board = await make_service(client, sitter, type="boarding", price_per_hour="9000.00")
    hidden = await make_service(client, waiting)
    await set_sitter_status(client, waiting.user_id, "pending")
    kept = await assert_mirrors(pool)
    mine = {r["service_id"] for r in kept}
    assert {walk["service_id"], board["service_id"]} <= mine
    assert hidden["service_id"] not in mine

    steps = [
        ("PUT", f"/api/services/{walk['service_id']}", sitter, {"price_per_hour": "3100.50"}),
        ("POST", f"/api/admin/sitters/{waiting.user_id}/approve", admin, None),
        ("PUT", f"/api/sitters/{sitter.user_id}/availability", sitter,
         {"timezone": "Asia/Aqtobe", "weekly": [{"weekday": 6, "start": "08:00", "end": "20:00"}]}),
        ("DELETE", f"/api/services/{board['service_id']}", sitter, None),
        ("POST", f"/api/admin/sitters/{waiting.user_id}/reject", admin, None),
    ]  # fmt: skip
    for method, path, account, body in steps:
        resp = await client.request(method, path, json=body, headers=account.headers)
        assert resp.status < 300, (path, await resp.text())
        kept = await assert_mirrors(pool)
    by_id = {r["service_id"]: r for r in kept}
    assert str(by_id[walk["service_id"]]["price_per_hour"]) == "3100.50"
    assert by_id[walk["service_id"]]["timezone"] == "Asia/Aqtobe"
    assert by_id[walk["service_id"]]["schedule_days"] == 1 << 6
    assert board["service_id"] not in by_id and hidden["service_id"] not in by_id

    # A review moves the rating; the rating is the API's, rounded to two places.
    owner = await make_owner(client)
    for stars in (5, 4, 4):
        done = await insert_booking(client, owner.user_id, sitter.user_id, status="completed")
        resp = await client.post(
            "/api/reviews", json={"booking_id": done, "rating": stars}, headers=owner.headers
        )
        assert resp.status == 201, await resp.text()
    kept = await assert_mirrors(pool)
    row = next(r for r in kept if r["service_id"] == walk["service_id"])
    assert (str(row["rating"]), row["total_reviews"]) == ("4.33", 3)

    # Only SQL renames a sitter or moves it; deletion scrubs the name and hides the services.
    await pool.execute(
        "UPDATE users SET full_name = 'Aigerim Two' WHERE user_id = $1", sitter.user_id
    )
    await pool.execute(
        "UPDATE sitters SET location = 'ASTANA, Yesil' WHERE user_id = $1", sitter.user_id
    )
    row = next(r for r in await assert_mirrors(pool) if r["service_id"] == walk["service_id"])
    assert (row["sitter_name"], row["location_key"]) == ("Aigerim Two", "astana, yesil")
    resp = await client.delete(f"/api/admin/users/{sitter.user_id}", headers=admin.headers)
    assert resp.status == 204
    assert walk["service_id"] not in {r["service_id"] for r in await assert_mirrors(pool)}


@pytest.mark.parametrize("first", ["service", "sitter"])
async def test_overlapping_writes_of_one_sitter_leave_it_right(client, database_url, first):
    """One transaction reprices a service, another changes the sitter's rating, and the second
    starts while the first is uncommitted: the second's refresh waits for the sitter's lock and
    then reads what the first committed (without the lock it read the row the first had not
    committed yet, and wrote the old price or the old rating over the first's row)."""
    sitter = await make_sitter(client)
    service = await make_service(client, sitter)
    writes = {
        "service": (
            "UPDATE services SET price_per_hour = 1234.50 WHERE service_id = $1",
            service["service_id"],
        ),
        "sitter": (
            "UPDATE sitters SET rating_count = 2, rating_sum = 9 WHERE user_id = $1",
            sitter.user_id,
        ),
    }
    second = "sitter" if first == "service" else "service"
    a, b = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        await a.execute("BEGIN")
        await a.execute(*writes[first])
        await b.execute("BEGIN")
        waiting = asyncio.create_task(b.execute(*writes[second]))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # it waits for the first, whichever lock it waits on
        await a.execute("COMMIT")
        await waiting
        await b.execute("COMMIT")
    finally:
        await a.close()
        await b.close()
    row = next(
        r for r in await assert_mirrors(client.app[POOL]) if r["sitter_id"] == sitter.user_id
    )
    assert (str(row["price_per_hour"]), str(row["rating"])) == ("1234.50", "4.50")
