"""Services and search: rules, authorization, filters, sorting, paging and privacy."""

from __future__ import annotations

from nanny.keys import POOL
from tests.factories import make_admin, make_owner, make_sitter, set_sitter_status
from tests.market import assert_error, booking_status, make_booking, make_pet, make_service

SERVICE_KEYS = {"service_id", "sitter_id", "type", "price_per_hour", "description"}
SEARCH_KEYS = SERVICE_KEYS | {"sitter_name", "location", "rating", "total_reviews"}


async def set_rating(client, sitter_id: int, total: int, count: int) -> None:
    await client.app[POOL].execute(
        "UPDATE sitters SET rating_sum = $2, rating_count = $3 WHERE user_id = $1",
        sitter_id,
        total,
        count,
    )


async def test_create_service_money_forms(client):
    sitter = await make_sitter(client)
    service = await make_service(client, sitter, price_per_hour="2500.00", type="boarding")
    assert service == {
        "service_id": service["service_id"],
        "sitter_id": sitter.user_id,
        "type": "boarding",
        "price_per_hour": 2500.0,
        "description": "Walks",
    }
    for sent, shown in ((2500.5, 2500.5), (99, 99.0), ("0.01", 0.01)):
        created = await make_service(client, sitter, price_per_hour=sent)
        assert created["price_per_hour"] == shown
    same = await make_service(client, sitter, sitter_id=sitter.user_id, type="home-care")
    assert same["type"] == "home-care"


async def test_create_service_rejects_bad_input(client):
    sitter = await make_sitter(client)
    other = await make_sitter(client)
    for body, field in [
        ({"type": "walking", "price_per_hour": 0}, "price_per_hour"),
        ({"type": "walking", "price_per_hour": "-1"}, "price_per_hour"),
        ({"type": "walking", "price_per_hour": "1.005"}, "price_per_hour"),
        ({"type": "walking", "price_per_hour": "1000000.01"}, "price_per_hour"),
        ({"type": "flying", "price_per_hour": 10}, "type"),
        ({"type": "walking"}, "price_per_hour"),
        ({"type": "walking", "price_per_hour": 10, "rating": 5}, "rating"),
    ]:
        resp = await client.post("/api/services", json=body, headers=sitter.headers)
        assert resp.status == 400, body
        assert_error(await resp.json(), "validation_error", field)
    resp = await client.post(
        "/api/services",
        json={"type": "walking", "price_per_hour": 10, "sitter_id": other.user_id},
        headers=sitter.headers,
    )
    assert resp.status == 403
    assert_error(await resp.json(), "forbidden", "sitter_id")
    assert await client.app[POOL].fetchval("SELECT count(*) FROM services") == 0


async def test_only_approved_sitters_offer_services(client):
    body = {"type": "walking", "price_per_hour": 10}
    owner, admin = await make_owner(client), await make_admin(client)
    pending = await make_sitter(client, status="pending")
    rejected = await make_sitter(client, status="rejected")
    assert (await client.post("/api/services", json=body)).status == 401
    for who in (owner, admin, pending, rejected):
        resp = await client.post("/api/services", json=body, headers=who.headers)
        assert resp.status == 403, who.role


async def test_public_reads_show_only_approved_sitters(client):
    approved = await make_sitter(client)
    hidden = await make_sitter(client)
    admin, owner = await make_admin(client), await make_owner(client)
    visible = await make_service(client, approved)
    secret = await make_service(client, hidden)
    await set_sitter_status(client, hidden.user_id, "pending")

    resp = await client.get(f"/api/services/{visible['service_id']}")
    assert resp.status == 200 and await resp.json() == visible
    resp = await client.get(f"/api/services/{secret['service_id']}")
    assert resp.status == 404
    assert (
        await client.get(f"/api/services/{secret['service_id']}", headers=owner.headers)
    ).status == 404
    for who in (hidden, admin):
        resp = await client.get(f"/api/services/{secret['service_id']}", headers=who.headers)
        assert resp.status == 200 and await resp.json() == secret
    assert (await client.get("/api/services/999999")).status == 404
    assert (await client.get("/api/services/0")).status == 400

    resp = await client.get(f"/api/sitters/{approved.user_id}/services")
    assert resp.status == 200 and await resp.json() == [visible]
    assert resp.headers["X-Total-Count"] == "1"
    assert (await client.get(f"/api/sitters/{hidden.user_id}/services")).status == 404
    resp = await client.get(f"/api/sitters/{hidden.user_id}/services", headers=hidden.headers)
    assert resp.status == 200 and await resp.json() == [secret]
    resp = await client.get(f"/api/sitters/{hidden.user_id}/services", headers=admin.headers)
    assert resp.status == 200
    assert (await client.get(f"/api/sitters/{owner.user_id}/services")).status == 404
    assert (await client.get("/api/sitters/999999/services")).status == 404

    resp = await client.get("/api/services/search")
    assert [r["service_id"] for r in await resp.json()] == [visible["service_id"]]


async def test_sitter_service_list_paging(client):
    sitter = await make_sitter(client)
    services = [await make_service(client, sitter, price_per_hour=10 + i) for i in range(3)]
    url = f"/api/sitters/{sitter.user_id}/services"
    resp = await client.get(url + "?limit=2")
    assert await resp.json() == services[:2] and resp.headers["X-Total-Count"] == "3"
    resp = await client.get(url + "?offset=5")
    assert await resp.json() == [] and resp.headers["X-Total-Count"] == "3"
    empty = await make_sitter(client)
    resp = await client.get(f"/api/sitters/{empty.user_id}/services")
    assert await resp.json() == [] and resp.headers["X-Total-Count"] == "0"


async def test_update_service(client):
    sitter, other = await make_sitter(client), await make_sitter(client)
    owner, admin = await make_owner(client), await make_admin(client)
    service = await make_service(client, sitter)
    url = f"/api/services/{service['service_id']}"

    resp = await client.put(url, json={"price_per_hour": "3000"}, headers=sitter.headers)
    assert resp.status == 200 and await resp.json() == service | {"price_per_hour": 3000.0}
    full = {"type": "boarding", "price_per_hour": 1.5, "description": "Stay", "sitter_id": 0}
    resp = await client.put(url, json=full, headers=sitter.headers)
    assert resp.status == 403  # redundant sitter_id must be the caller
    full["sitter_id"] = sitter.user_id
    resp = await client.put(url, json=full, headers=sitter.headers)
    assert resp.status == 200
    assert await resp.json() == service | {
        "type": "boarding",
        "price_per_hour": 1.5,
        "description": "Stay",
    }
    for body, field in [({"type": None}, "type"), ({"price_per_hour": 0}, "price_per_hour")]:
        resp = await client.put(url, json=body, headers=sitter.headers)
        assert resp.status == 400
        assert_error(await resp.json(), "validation_error", field)

    for who in (other, owner, admin):
        assert (await client.put(url, json={"description": "x"}, headers=who.headers)).status == 403
    assert (await client.put(url, json={"description": "x"})).status == 401
    resp = await client.put("/api/services/999999", json={}, headers=sitter.headers)
    assert resp.status == 404

    await set_sitter_status(client, sitter.user_id, "rejected")
    # Hidden from the public now: to others it does not exist; its sitter may still edit it.
    assert (await client.put(url, json={"description": "x"}, headers=other.headers)).status == 404
    assert (await client.put(url, json={"description": "y"}, headers=sitter.headers)).status == 200


async def test_repricing_keeps_existing_booking_prices(client):
    sitter, owner = await make_sitter(client), await make_owner(client)
    service = await make_service(client, sitter, price_per_hour="100.00")
    pet = await make_pet(client, owner)
    booking_id = await make_booking(client, owner, pet, service)
    url = f"/api/services/{service['service_id']}"
    assert (
        await client.put(url, json={"price_per_hour": 999}, headers=sitter.headers)
    ).status == 200
    resp = await client.get(f"/api/bookings/{booking_id}", headers=owner.headers)
    assert (await resp.json())["total_price"] == 200.0


async def test_delete_service(client):
    sitter, other = await make_sitter(client), await make_sitter(client)
    owner = await make_owner(client)
    service = await make_service(client, sitter)
    pet = await make_pet(client, owner)
    booking_id = await make_booking(client, owner, pet, service)
    url = f"/api/services/{service['service_id']}"

    assert (await client.delete(url, headers=other.headers)).status == 403
    assert (await client.delete(url, headers=owner.headers)).status == 403
    resp = await client.delete(url, headers=sitter.headers)
    assert resp.status == 409
    assert_error(await resp.json(), "conflict")
    await client.post(f"/api/bookings/{booking_id}/confirm", headers=sitter.headers)
    assert (await client.delete(url, headers=sitter.headers)).status == 409

    await client.post(f"/api/bookings/{booking_id}/cancel", headers=sitter.headers)
    assert (await client.delete(url, headers=sitter.headers)).status == 204
    assert (await client.get(url)).status == 404
    assert (await client.delete(url, headers=sitter.headers)).status == 404
    assert await booking_status(client, booking_id) == "cancelled"


async def _search_world(client):
    """Three approved sitters in two cities with known ratings, and one pending sitter."""
    a = await make_sitter(client, full_name="Aruzhan", location="Almaty, Medeu")
    b = await make_sitter(client, full_name="Bolat", location="ALMATY")
    c = await make_sitter(client, full_name="Chingiz", location="Astana")
    hidden = await make_sitter(client, full_name="Hidden", location="Almaty")
    await set_rating(client, a.user_id, 14, 3)  # 4.666… -> 4.67
    await set_rating(client, b.user_id, 9, 2)  # 4.5
    s = {
        "a_walk": await make_service(client, a, type="walking", price_per_hour="1000"),
        "a_board": await make_service(client, a, type="boarding", price_per_hour="5000"),
        "b_walk": await make_service(client, b, type="walking", price_per_hour="1500"),
        "c_walk": await make_service(client, c, type="walking", price_per_hour="800"),
        "hidden": await make_service(client, hidden, type="walking", price_per_hour="1"),
    }
    await set_sitter_status(client, hidden.user_id, "pending")
    return a, b, c, s


async def _ids(client, query: str) -> tuple[list[int], int]:
    resp = await client.get("/api/services/search" + query)
    assert resp.status == 200, await resp.text()
    return [r["service_id"] for r in await resp.json()], int(resp.headers["X-Total-Count"])


async def test_search_rows_carry_public_sitter_facts_only(client):
    a, _, c, s = await _search_world(client)
    resp = await client.get("/api/services/search?type=boarding")
    rows = await resp.json()
    assert rows == [
        {
            "service_id": s["a_board"]["service_id"],
            "sitter_id": a.user_id,
            "type": "boarding",
            "price_per_hour": 5000.0,
            "description": "Walks",
            "sitter_name": "Aruzhan",
            "location": "Almaty, Medeu",
            "rating": 4.67,
            "total_reviews": 3,
        }
    ]
    resp = await client.get("/api/services/search?limit=200")
    text = await resp.text()
    assert "@" not in text and "+7701" not in text  # no e-mail, no phone anywhere
    for row in await resp.json():
        assert set(row) == SEARCH_KEYS
        if row["sitter_id"] == c.user_id:
            assert row["rating"] == 0 and row["total_reviews"] == 0


async def test_search_filters(client):
    _, _, _, s = await _search_world(client)
    sid = {k: v["service_id"] for k, v in s.items()}

    ids, total = await _ids(client, "?location=almaty&sort=price")
    assert ids == [sid["a_walk"], sid["b_walk"], sid["a_board"]] and total == 3
    assert (await _ids(client, "?location=MEDEU"))[1] == 2
    assert (await _ids(client, "?location=%25"))[1] == 0  # a literal '%', not a wildcard
    assert (await _ids(client, "?location=_"))[1] == 0
    assert (await _ids(client, "?location="))[1] == 4  # empty means no filter
    ids, _ = await _ids(client, "?type=walking&sort=price")
    assert ids == [sid["c_walk"], sid["a_walk"], sid["b_walk"]]
    # Price bounds are inclusive.
    ids, _ = await _ids(client, "?min_price=1000&max_price=1500&sort=price")
    assert ids == [sid["a_walk"], sid["b_walk"]]
    assert (await _ids(client, "?min_price=1500.01&max_price=4999.99"))[1] == 0
    assert (await _ids(client, "?min_price=2000&max_price=1000"))[1] == 0
    # Rating bounds are inclusive on the shown (rounded) rating.
    ids, _ = await _ids(client, "?min_rating=4.67&sort=price")
    assert ids == [sid["a_walk"], sid["a_board"]]
    assert (await _ids(client, "?min_rating=4.68"))[1] == 0
    assert (await _ids(client, "?min_rating=4.5"))[1] == 3
    assert (await _ids(client, "?min_rating=0"))[1] == 4
    ids, total = await _ids(client, "?type=walking&location=almaty&min_rating=4.5&sort=-rating")
    assert ids == [sid["a_walk"], sid["b_walk"]] and total == 2


async def test_search_sorting_and_paging(client):
    _, _, _, s = await _search_world(client)
    sid = {k: v["service_id"] for k, v in s.items()}
    by_price = [sid["c_walk"], sid["a_walk"], sid["b_walk"], sid["a_board"]]
    assert (await _ids(client, "?sort=price"))[0] == by_price
    assert (await _ids(client, "?sort=-price"))[0] == by_price[::-1]
    assert (await _ids(client, "?sort=rating"))[0] == [
        sid["c_walk"],
        sid["b_walk"],
        sid["a_walk"],
        sid["a_board"],
    ]
    default = (await _ids(client, ""))[0]
    assert default == (await _ids(client, "?sort=-rating"))[0]
    assert default == [sid["a_walk"], sid["a_board"], sid["b_walk"], sid["c_walk"]]

    ids, total = await _ids(client, "?sort=price&limit=2&offset=1")
    assert ids == by_price[1:3] and total == 4
    ids, total = await _ids(client, "?sort=price&offset=4")
    assert ids == [] and total == 4
    ids, total = await _ids(client, "?type=boarding&offset=50")
    assert ids == [] and total == 1


async def test_search_rejects_bad_parameters(client):
    for query, field in [
        ("?sort=name", "sort"),
        ("?type=flying", "type"),
        ("?min_rating=5.01", "min_rating"),
        ("?min_price=-1", "min_price"),
        ("?max_price=abc", "max_price"),
        ("?limit=0", "limit"),
        ("?offset=-1", "offset"),
        ("?location=" + "x" * 201, "location"),
    ]:
        resp = await client.get("/api/services/search" + query)
        assert resp.status == 400, query
        assert_error(await resp.json(), "validation_error", field)


async def test_search_over_a_few_thousand_services(client):
    pool = client.app[POOL]
    await pool.execute(
        """
        WITH u AS (
            INSERT INTO users (email, phone, full_name, password_hash, role)
            SELECT 'bulk' || g || '@example.kz', '+7702' || lpad(g::text, 7, '0'),
                   'Bulk ' || g, 'x', 'sitter'
            FROM generate_series(1, 1000) g RETURNING user_id
        ), s AS (
            INSERT INTO sitters (user_id, location, status, rating_sum, rating_count)
            SELECT user_id, CASE WHEN user_id % 2 = 0 THEN 'Almaty' ELSE 'Astana' END,
                   'approved', (user_id % 5) * 3, 3
            FROM u RETURNING user_id
        )
        INSERT INTO services (sitter_id, type, price_per_hour)
        SELECT s.user_id, t, 100 + (s.user_id % 50)
        FROM s, unnest(ARRAY['walking', 'boarding', 'home-care']) t
        """
    )
    await pool.execute("ANALYZE")
    ids, total = await _ids(client, "?type=walking&location=almaty&sort=-rating&limit=20")
    assert len(ids) == 20 and total == 500
    resp = await client.get("/api/services/search?type=walking&location=almaty&limit=200")
    rows = await resp.json()
    ratings = [r["rating"] for r in rows]
    assert ratings == sorted(ratings, reverse=True) and all(r["location"] == "Almaty" for r in rows)
