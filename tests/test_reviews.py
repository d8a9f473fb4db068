"""Reviews: every rule and authorization case, and the sitter aggregates kept in step."""

from __future__ import annotations

import asyncio

import pytest

from nanny.keys import POOL, SEARCH_CACHE
from tests.factories import make_admin, make_owner, make_sitter
from tests.rows import insert_booking


async def aggregates(client, sitter_id: int) -> tuple[int, int, int, int]:
    """(rating_count, rating_sum) on the sitter and (count, sum) over its reviews."""
    row = await client.app[POOL].fetchrow(
        """
        SELECT s.rating_count, s.rating_sum,
               (SELECT count(*) FROM reviews WHERE sitter_id = $1) AS n,
               (SELECT coalesce(sum(rating), 0) FROM reviews WHERE sitter_id = $1) AS total
        FROM sitters s WHERE s.user_id = $1
        """,
        sitter_id,
    )
    return tuple(row)


async def assert_consistent(client, sitter_id: int, count: int, total: int) -> None:
    assert await aggregates(client, sitter_id) == (count, total, count, total)


@pytest.fixture
async def world(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    booking = await insert_booking(client, owner.user_id, sitter.user_id, status="completed")
    return owner, sitter, booking


async def post_review(client, account, **body):
    headers = account.headers if account else {}
    return await client.post("/api/reviews", json=body, headers=headers)


async def test_owner_reviews_completed_booking(client, world):
    owner, sitter, booking = world
    resp = await post_review(client, owner, booking_id=booking, rating=4, comment=" Lovely ")
    assert resp.status == 201, await resp.text()
    review = await resp.json()
    assert review["booking_id"] == booking
    assert review["owner_id"] == owner.user_id and review["sitter_id"] == sitter.user_id
    assert review["rating"] == 4 and review["comment"] == "Lovely"
    assert review["owner_name"] == "Aigerim Owner"
    assert review["created_at"].endswith("Z")
    await assert_consistent(client, sitter.user_id, 1, 4)

    resp = await client.get(f"/api/reviews/{review['review_id']}")
    assert resp.status == 200 and await resp.json() == review
    resp = await client.get(f"/api/bookings/{booking}/review")
    assert resp.status == 200 and await resp.json() == review


async def test_who_may_review(client, world):
    _owner, sitter, booking = world
    other = await make_owner(client)
    admin = await make_admin(client)
    assert (await post_review(client, None, booking_id=booking, rating=5)).status == 401
    for account in (sitter, admin):
        resp = await post_review(client, account, booking_id=booking, rating=5)
        assert resp.status == 403
        assert (await resp.json())["code"] == "forbidden"
    # Another owner's booking and a booking that does not exist look the same.
    for booking_id in (booking, 999_999):
        resp = await post_review(client, other, booking_id=booking_id, rating=5)
        assert resp.status == 404
        assert (await resp.json())["code"] == "not_found"
    await assert_consistent(client, sitter.user_id, 0, 0)


@pytest.mark.parametrize("status", ["pending", "confirmed", "cancelled"])
async def test_only_completed_bookings(client, status):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    booking = await insert_booking(client, owner.user_id, sitter.user_id, status=status)
    resp = await post_review(client, owner, booking_id=booking, rating=5)
    assert resp.status == 409
    data = await resp.json()
    assert data["code"] == "conflict" and data["details"]["status"] == status


async def test_one_review_per_booking(client, world):
    owner, sitter, booking = world
    assert (await post_review(client, owner, booking_id=booking, rating=5)).status == 201
    resp = await post_review(client, owner, booking_id=booking, rating=1)
    assert resp.status == 409
    await assert_consistent(client, sitter.user_id, 1, 5)


async def test_concurrent_duplicates_count_once(client, world):
    owner, sitter, booking = world
    results = await asyncio.gather(
        *(post_review(client, owner, booking_id=booking, rating=3) for _ in range(8))
    )
    assert sorted(r.status for r in results) == [201] + [409] * 7
    await assert_consistent(client, sitter.user_id, 1, 3)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": "5"}, "rating"),
        ({"rating": 4.5}, "rating"),
        ({}, "rating"),
        ({"rating": 5, "comment": "x" * 2001}, "comment"),
        ({"rating": 5, "status": "approved"}, "status"),
        ({"rating": 5, "booking_id": "1"}, "booking_id"),
    ],
)
async def test_bad_bodies(client, world, body, field):
    owner, sitter, booking = world
    resp = await post_review(client, owner, **({"booking_id": booking} | body))
    assert resp.status == 400
    data = await resp.json()
    assert data["code"] == "validation_error" and data["details"]["field"] == field
    await assert_consistent(client, sitter.user_id, 0, 0)


async def test_rating_boundaries_accepted(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    for rating in (1, 5):
        booking = await insert_booking(client, owner.user_id, sitter.user_id, status="completed")
        assert (await post_review(client, owner, booking_id=booking, rating=rating)).status == 201
    await assert_consistent(client, sitter.user_id, 2, 6)


async def test_redundant_ids_must_agree(client, world):
    owner, sitter, booking = world
    other_sitter = await make_sitter(client)
    resp = await post_review(
        client, owner, booking_id=booking, rating=5, owner_id=owner.user_id + 1000
    )
    assert resp.status == 403 and (await resp.json())["details"]["field"] == "owner_id"
    resp = await post_review(
        client, owner, booking_id=booking, rating=5, sitter_id=other_sitter.user_id
    )
    assert resp.status == 403 and (await resp.json())["details"]["field"] == "sitter_id"
    await assert_consistent(client, sitter.user_id, 0, 0)
    resp = await post_review(
        client,
        owner,
        booking_id=booking,
        rating=5,
        owner_id=owner.user_id,
        sitter_id=sitter.user_id,
    )
    assert resp.status == 201


async def _review(client, owner, sitter, rating=4) -> dict:
    booking = await insert_booking(client, owner.user_id, sitter.user_id, status="completed")
    resp = await post_review(client, owner, booking_id=booking, rating=rating, comment="ok")
    assert resp.status == 201
    return await resp.json()


async def test_author_updates_and_aggregates_follow(client, world):
    owner, sitter, _ = world
    review = await _review(client, owner, sitter, rating=4)
    url = f"/api/reviews/{review['review_id']}"
    resp = await client.put(url, json={"rating": 2}, headers=owner.headers)
    assert resp.status == 200
    data = await resp.json()
    assert data["rating"] == 2 and data["comment"] == "ok"
    await assert_consistent(client, sitter.user_id, 1, 2)
    resp = await client.put(url, json={"comment": "better now"}, headers=owner.headers)
    assert (await resp.json())["comment"] == "better now"
    await assert_consistent(client, sitter.user_id, 1, 2)
    resp = await client.put(
        url,
        json={"rating": 5, "comment": "great", "owner_id": owner.user_id},
        headers=owner.headers,
    )
    assert resp.status == 200
    await assert_consistent(client, sitter.user_id, 1, 5)


async def test_update_rules(client, world):
    owner, sitter, _ = world
    review = await _review(client, owner, sitter, rating=4)
    url = f"/api/reviews/{review['review_id']}"
    other, admin = await make_owner(client), await make_admin(client)
    assert (await client.put(url, json={"rating": 1})).status == 401
    for account in (other, sitter, admin):
        resp = await client.put(url, json={"rating": 1}, headers=account.headers)
        assert resp.status == 403
    for body in ({}, {"rating": 6}, {"rating": 0}, {"review_id": 9}):
        resp = await client.put(url, json=body, headers=owner.headers)
        assert resp.status == 400, body
    resp = await client.put(url, json={"rating": 1, "sitter_id": 1}, headers=owner.headers)
    assert resp.status == 403
    resp = await client.put("/api/reviews/999999", json={"rating": 1}, headers=owner.headers)
    assert resp.status == 404
    await assert_consistent(client, sitter.user_id, 1, 4)


async def test_delete_by_author_or_admin(client, world):
    owner, sitter, _ = world
    first = await _review(client, owner, sitter, rating=5)
    second = await _review(client, owner, sitter, rating=2)
    await assert_consistent(client, sitter.user_id, 2, 7)
    other, admin = await make_owner(client), await make_admin(client)
    url = f"/api/reviews/{first['review_id']}"
    assert (await client.delete(url)).status == 401
    for account in (other, sitter):
        assert (await client.delete(url, headers=account.headers)).status == 403
    assert (await client.delete(url, headers=owner.headers)).status == 204
    await assert_consistent(client, sitter.user_id, 1, 2)
    assert (await client.delete(url, headers=owner.headers)).status == 404
    assert (await client.get(url)).status == 404
    url = f"/api/reviews/{second['review_id']}"
    assert (await client.delete(url, headers=admin.headers)).status == 204
    await assert_consistent(client, sitter.user_id, 0, 0)
    # The booking can be reviewed again once its review is gone.
    resp = await post_review(client, owner, booking_id=second["booking_id"], rating=3)
    assert resp.status == 201
    await assert_consistent(client, sitter.user_id, 1, 3)


async def test_sitter_reviews_newest_first_with_paging(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    ids = [(await _review(client, owner, sitter, rating=r))["review_id"] for r in (5, 4, 4)]
    url = f"/api/sitters/{sitter.user_id}/reviews"
    resp = await client.get(url)
    assert resp.status == 200 and resp.headers["X-Total-Count"] == "3"
    assert [r["review_id"] for r in await resp.json()] == ids[::-1]
    resp = await client.get(url, params={"limit": "2", "offset": "1"})
    assert [r["review_id"] for r in await resp.json()] == ids[1::-1]
    assert resp.headers["X-Total-Count"] == "3"
    resp = await client.get(url, params={"offset": "10"})
    assert await resp.json() == [] and resp.headers["X-Total-Count"] == "3"
    for bad in ({"limit": "0"}, {"limit": "201"}, {"offset": "-1"}, {"limit": "x"}):
        resp = await client.get(url, params=bad)
        assert resp.status == 400, bad

    resp = await client.get(f"/api/sitters/{sitter.user_id}/rating")
    assert await resp.json() == {
        "sitter_id": sitter.user_id,
        "average_rating": 4.33,
        "total_reviews": 3,
        "review_count": 3,
    }


async def test_rating_without_reviews_and_unknown_sitters(client):
    sitter = await make_sitter(client, status="pending")
    resp = await client.get(f"/api/sitters/{sitter.user_id}/rating")
    assert resp.status == 200
    assert await resp.json() == {
        "sitter_id": sitter.user_id,
        "average_rating": 0,
        "total_reviews": 0,
        "review_count": 0,
    }
    owner = await make_owner(client)  # a user, but not a sitter
    for sitter_id in (owner.user_id, 999_999):
        assert (await client.get(f"/api/sitters/{sitter_id}/rating")).status == 404
        assert (await client.get(f"/api/sitters/{sitter_id}/reviews")).status == 404


async def test_bad_ids_and_missing_rows(client, world):
    _, _, booking = world
    assert (await client.get(f"/api/bookings/{booking}/review")).status == 404
    for path in (
        "/api/reviews/abc",
        "/api/reviews/0",
        "/api/reviews/99999999999",
        "/api/sitters/x/rating",
        "/api/sitters/-1/reviews",
        "/api/bookings/1.5/review",
    ):
        resp = await client.get(path)
        assert resp.status == 400, path
        assert (await resp.json())["code"] == "validation_error"
    assert (await client.get("/api/reviews/12345")).status == 404


async def test_deleted_author_shown_as_deleted_user(client, world):
    owner, sitter, booking = world
    admin = await make_admin(client)
    review = await (await post_review(client, owner, booking_id=booking, rating=5)).json()
    resp = await client.delete(f"/api/admin/users/{owner.user_id}", headers=admin.headers)
    assert resp.status == 204
    resp = await client.get(f"/api/reviews/{review['review_id']}")
    assert (await resp.json())["owner_name"] == "Deleted user"
    await assert_consistent(client, sitter.user_id, 1, 5)


# Texts whose JSON escaping differs from plain copying: quotes, backslashes, control characters,
# Cyrillic and Kazakh letters, an emoji, a line separator and markup.
AWKWARD_COMMENTS = (
    'Said "good dog" \\ twice',
    "line one\nline two\ttabbed",
    "bell \x07 unit \x1f delete \x7f",
    "Керемет! Өте жақсы 🐕",
    "</script> \u2028 end",
)


async def test_the_page_shows_each_review_as_its_own_read_does(client):
    """The page is joined in the database from each review's kept JSON (migration 0015), while a
    single review is encoded by the server: they agree byte for byte, through an edit, a time
    without microseconds, a rename of the author and the author's deletion."""
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    admin = await make_admin(client)
    for comment in AWKWARD_COMMENTS:
        booking = await insert_booking(client, owner.user_id, sitter.user_id, status="completed")
        resp = await post_review(client, owner, booking_id=booking, rating=3, comment=comment)
        assert resp.status == 201, await resp.text()
    pool = client.app[POOL]
    url = f"/api/sitters/{sitter.user_id}/reviews"

    async def page_agrees_with_singles() -> list[dict]:
        resp = await client.get(url)
        assert resp.status == 200
        body = await resp.read()
        page = await resp.json()
        singles = [await client.get(f"/api/reviews/{r['review_id']}") for r in page]
        assert body == b"[" + b",".join([await s.read() for s in singles]) + b"]"
        return page

    page = await page_agrees_with_singles()
    assert [r["comment"] for r in page] == list(AWKWARD_COMMENTS[::-1])

    first = page[-1]["review_id"]
    resp = await client.put(
        f"/api/reviews/{first}", json={"rating": 5, "comment": "better"}, headers=owner.headers
    )
    assert resp.status == 200
    await pool.execute(
        "UPDATE reviews SET created_at = date_trunc('second', created_at) WHERE review_id = $1",
        first,
    )
    page = await page_agrees_with_singles()
    assert (page[-1]["rating"], page[-1]["comment"]) == (5, "better")
    assert "." not in page[-1]["created_at"] and page[-1]["created_at"].endswith("Z")

    # No endpoint renames a user yet; the kept JSON follows a rename all the same.
    await pool.execute(
        "UPDATE users SET full_name = 'Ayan \"A\"' WHERE user_id = $1", owner.user_id
    )
    client.app[SEARCH_CACHE].clear()
    page = await page_agrees_with_singles()
    assert {r["owner_name"] for r in page} == {'Ayan "A"'}

    resp = await client.delete(f"/api/admin/users/{owner.user_id}", headers=admin.headers)
    assert resp.status == 204
    page = await page_agrees_with_singles()
    assert {r["owner_name"] for r in page} == {"Deleted user"}
