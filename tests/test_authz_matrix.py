"""Who may do what (API.md's table), as one matrix: every endpoint x {anonymous, owner,
other owner, sitter, other sitter, unapproved sitter, admin} → the expected status.

"owner" and "sitter" are the two parties of the world's bookings and the owner of its pet, its
service and its review. A refused request must change nothing: the world's rows are compared
before and after each refusal. An allowed state-changing request gets a fresh world, so every
allowed role is checked on the same starting state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from nanny.keys import POOL
from nanny.notify.mail import UnsubscribeTokens
from tests.conftest import TEST_JWT_SECRET
from tests.factories import (
    PASSWORD,
    make_admin,
    make_owner,
    make_sitter,
    owner_body,
    sitter_body,
)
from tests.photos import attach, encode, form, picture
from tests.rows import insert_booking, insert_message, insert_pet, insert_service

ROLES = ("anonymous", "owner", "other_owner", "sitter", "other_sitter", "unapproved", "admin")


@dataclass
class World:
    accounts: dict
    ids: dict


async def build_world(client) -> World:
    owner, other_owner = await make_owner(client), await make_owner(client)
    sitter, other_sitter = await make_sitter(client), await make_sitter(client)
    unapproved = await make_sitter(client, status="pending")
    admin = await make_admin(client)
    pet = await insert_pet(client, owner.user_id, "Rex", "dog")
    service = await insert_service(client, sitter.user_id)
    other_service = await insert_service(client, other_sitter.user_id)

    def book(status, **kw):
        return insert_booking(
            client,
            owner.user_id,
            sitter.user_id,
            status=status,
            pet_id=pet,
            service_id=service,
            **kw,
        )

    pending = await book("pending")
    confirmed = await book("confirmed")
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    finished = await book("confirmed", start=past)  # confirmed and past its end: completable
    completed = await book("completed")
    reviewed = await book("completed")
    await insert_message(client, pending, owner.user_id)
    pool = client.app[POOL]
    review = await pool.fetchval(
        "INSERT INTO reviews (booking_id, owner_id, sitter_id, rating, comment) "
        "VALUES ($1, $2, $3, 4, 'Good') RETURNING review_id",
        reviewed,
        owner.user_id,
        sitter.user_id,
    )
    await pool.execute(
        "UPDATE sitters SET rating_count = 1, rating_sum = 4 WHERE user_id = $1", sitter.user_id
    )
    far = datetime.now(UTC).replace(microsecond=0) + timedelta(days=300)
    time_off = await pool.fetchval(
        "INSERT INTO time_off (sitter_id, start_time, end_time) VALUES ($1, $2, $3)"
        " RETURNING time_off_id",
        sitter.user_id,
        far,
        far + timedelta(hours=3),
    )
    photo = await attach(client, owner, pending, encode(picture((64, 48)), "JPEG"))
    signed = parse_qs(urlsplit(photo["url"]).query)
    accounts = {
        "owner": owner,
        "other_owner": other_owner,
        "sitter": sitter,
        "other_sitter": other_sitter,
        "unapproved": unapproved,
        "admin": admin,
    }
    ids = {
        "pet": pet,
        "service": service,
        "other_service": other_service,
        "pending": pending,
        "confirmed": confirmed,
        "finished": finished,
        "completed": completed,
        "reviewed": reviewed,
        "review": review,
        "owner": owner.user_id,
        "sitter": sitter.user_id,
        "other_owner": other_owner.user_id,
        "image": photo["attachment_id"],
        "time_off": time_off,
        "expires": signed["expires"][0],
        "sig": signed["sig"][0],
        "unsubscribe": UnsubscribeTokens(TEST_JWT_SECRET).make(owner.user_id, "bookings"),
    }
    return World(accounts, ids)


def photo_form(w: World) -> aiohttp.FormData:
    return form(encode(picture((64, 48)), "JPEG"))


def future_slot(days: int) -> dict:
    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=days)
    return {
        "start_time": start.isoformat().replace("+00:00", "Z"),
        "end_time": (start + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
    }


def booking_body(w: World) -> dict:
    return {
        "sitter_id": w.ids["sitter"],
        "pet_id": w.ids["pet"],
        "service_id": w.ids["service"],
        **future_slot(200),
    }


# (name, method, path, body) and the expected status per role. Bodies and paths are templates
# filled from the world. A status of 2xx for a role means "allowed".
A, OW, OO, S, OS, U, AD = ROLES
PUBLIC = {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200}
CREATED = dict.fromkeys(ROLES, 201)
MATRIX: list[tuple[str, str, str, object, dict[str, int]]] = [
    ("register owner", "POST", "/api/auth/register/owner", lambda w: owner_body(), CREATED),
    ("register sitter", "POST", "/api/auth/register/sitter", lambda w: sitter_body(), CREATED),
    (
        "login",
        "POST",
        "/api/auth/login",
        lambda w: {"email": w.accounts["owner"].email, "password": PASSWORD},
        PUBLIC,
    ),
    (
        "me",
        "GET",
        "/api/auth/me",
        None,
        {A: 401, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "save my language",
        "PUT",
        "/api/auth/me",
        {"locale": "kk"},
        {A: 401, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "my notifications",
        "GET",
        "/api/notifications",
        None,
        {A: 401, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "mark my notifications read",
        "POST",
        "/api/notifications/read",
        {"all": True},
        {A: 401, OW: 204, OO: 204, S: 204, OS: 204, U: 204, AD: 204},
    ),
    (
        "my e-mail choices",
        "GET",
        "/api/auth/me/notifications",
        None,
        {A: 401, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "save my e-mail choices",
        "PUT",
        "/api/auth/me/notifications",
        {"email": {"reviews": False}},
        {A: 401, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    ("unsubscribe page", "GET", "/api/notifications/unsubscribe?token={unsubscribe}", None, PUBLIC),
    (
        "one-click unsubscribe",
        "POST",
        "/api/notifications/unsubscribe?token={unsubscribe}",
        None,
        PUBLIC,
    ),
    (
        "logout",
        "POST",
        "/api/auth/logout",
        None,
        {A: 401, OW: 204, OO: 204, S: 204, OS: 204, U: 204, AD: 204},
    ),
    (
        "change password",
        "POST",
        "/api/auth/password",
        lambda w: {"current_password": PASSWORD, "new_password": "a-new-password-1"},
        {A: 401, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "create pet",
        "POST",
        "/api/pets",
        {"name": "Mia", "type": "cat", "age": 2},
        {A: 401, OW: 201, OO: 201, S: 403, OS: 403, U: 403, AD: 403},
    ),
    (
        "get pet",
        "GET",
        "/api/pets/{pet}",
        None,
        {A: 401, OW: 200, OO: 404, S: 200, OS: 404, U: 404, AD: 200},
    ),
    (
        "update pet",
        "PUT",
        "/api/pets/{pet}",
        {"age": 5},
        {A: 401, OW: 200, OO: 404, S: 403, OS: 404, U: 404, AD: 403},
    ),
    (
        "delete pet",
        "DELETE",
        "/api/pets/{pet}",
        None,  # has pending bookings: the owner gets 409
        {A: 401, OW: 409, OO: 404, S: 403, OS: 404, U: 404, AD: 403},
    ),
    (
        "owner's pets",
        "GET",
        "/api/owners/{owner}/pets",
        None,
        {A: 401, OW: 200, OO: 403, S: 403, OS: 403, U: 403, AD: 200},
    ),
    (
        "search",
        "GET",
        "/api/services/search",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "get service",
        "GET",
        "/api/services/{service}",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "sitter's services",
        "GET",
        "/api/sitters/{sitter}/services",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "sitter's availability",
        "GET",
        "/api/sitters/{sitter}/availability",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "set availability",
        "PUT",
        "/api/sitters/{sitter}/availability",
        {"timezone": "Asia/Almaty", "weekly": [{"weekday": 0, "start": "09:00", "end": "18:00"}]},
        {A: 401, OW: 403, OO: 403, S: 200, OS: 403, U: 403, AD: 403},
    ),
    (
        "take time off",
        "POST",
        "/api/sitters/{sitter}/time-off",
        future_slot(320),
        {A: 401, OW: 403, OO: 403, S: 201, OS: 403, U: 403, AD: 403},
    ),
    (
        "withdraw time off",
        "DELETE",
        "/api/sitters/{sitter}/time-off/{time_off}",
        None,
        {A: 401, OW: 403, OO: 403, S: 204, OS: 403, U: 403, AD: 403},
    ),
    (
        "create service",
        "POST",
        "/api/services",
        {"type": "boarding", "price_per_hour": "3000.00", "description": "Overnight"},
        {A: 401, OW: 403, OO: 403, S: 201, OS: 201, U: 403, AD: 403},
    ),
    (
        "update service",
        "PUT",
        "/api/services/{service}",
        {"description": "Long walks"},
        {A: 401, OW: 403, OO: 403, S: 200, OS: 403, U: 403, AD: 403},
    ),
    (
        "delete service",
        "DELETE",
        "/api/services/{other_service}",
        None,
        {A: 401, OW: 403, OO: 403, S: 403, OS: 204, U: 403, AD: 403},
    ),
    (
        "create booking",
        "POST",
        "/api/bookings",
        booking_body,
        {A: 401, OW: 201, OO: 404, S: 403, OS: 403, U: 403, AD: 403},
    ),
    (
        "get booking",
        "GET",
        "/api/bookings/{pending}",
        None,
        {A: 401, OW: 200, OO: 404, S: 200, OS: 404, U: 404, AD: 200},
    ),
    (
        "confirm",
        "POST",
        "/api/bookings/{pending}/confirm",
        None,
        {A: 401, OW: 403, OO: 404, S: 200, OS: 404, U: 404, AD: 403},
    ),
    (
        "cancel",
        "POST",
        "/api/bookings/{pending}/cancel",
        None,
        {A: 401, OW: 200, OO: 404, S: 200, OS: 404, U: 404, AD: 403},
    ),
    (
        "complete",
        "POST",
        "/api/bookings/{finished}/complete",
        None,
        {A: 401, OW: 403, OO: 404, S: 200, OS: 404, U: 404, AD: 403},
    ),
    (
        "owner's bookings",
        "GET",
        "/api/owners/{owner}/bookings",
        None,
        {A: 401, OW: 200, OO: 403, S: 403, OS: 403, U: 403, AD: 200},
    ),
    (
        "sitter's bookings",
        "GET",
        "/api/sitters/{sitter}/bookings",
        None,
        {A: 401, OW: 403, OO: 403, S: 200, OS: 403, U: 403, AD: 200},
    ),
    (
        "create review",
        "POST",
        "/api/reviews",
        lambda w: {"booking_id": w.ids["completed"], "rating": 5, "comment": "Great"},
        {A: 401, OW: 201, OO: 404, S: 403, OS: 403, U: 403, AD: 403},
    ),
    (
        "get review",
        "GET",
        "/api/reviews/{review}",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "sitter's reviews",
        "GET",
        "/api/sitters/{sitter}/reviews",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "sitter's rating",
        "GET",
        "/api/sitters/{sitter}/rating",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "booking's review",
        "GET",
        "/api/bookings/{reviewed}/review",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "update review",
        "PUT",
        "/api/reviews/{review}",
        {"rating": 3},
        {A: 401, OW: 200, OO: 403, S: 403, OS: 403, U: 403, AD: 403},
    ),
    (
        "delete review",
        "DELETE",
        "/api/reviews/{review}",
        None,
        {A: 401, OW: 204, OO: 403, S: 403, OS: 403, U: 403, AD: 204},
    ),
    (
        "messages",
        "GET",
        "/api/bookings/{pending}/messages",
        None,
        {A: 401, OW: 200, OO: 404, S: 200, OS: 404, U: 404, AD: 200},
    ),
    (
        "send message",
        "POST",
        "/api/bookings/{pending}/messages",
        {"content": "Salem!"},
        {A: 401, OW: 201, OO: 404, S: 201, OS: 404, U: 404, AD: 403},
    ),
    (
        "read mark",
        "POST",
        "/api/bookings/{pending}/read",
        {"seq": 1},
        {A: 401, OW: 204, OO: 404, S: 204, OS: 404, U: 404, AD: 403},
    ),
    (
        "upload a chat photo",
        "POST",
        "/api/bookings/{pending}/attachments",
        photo_form,
        {A: 401, OW: 201, OO: 404, S: 201, OS: 404, U: 404, AD: 403},
    ),
    (
        "image by signed URL",
        "GET",
        "/api/media/{image}?variant=full&expires={expires}&sig={sig}",
        None,
        PUBLIC,
    ),
    (
        "set pet photo",
        "PUT",
        "/api/pets/{pet}/photo",
        photo_form,
        {A: 401, OW: 200, OO: 404, S: 403, OS: 404, U: 404, AD: 403},
    ),
    (
        "remove pet photo",
        "DELETE",
        "/api/pets/{pet}/photo",
        None,
        {A: 401, OW: 204, OO: 404, S: 403, OS: 404, U: 404, AD: 403},
    ),
    (
        "pay",
        "POST",
        "/api/bookings/{confirmed}/payments",
        {"method": "card"},
        {A: 401, OW: 201, OO: 404, S: 403, OS: 404, U: 404, AD: 403},
    ),
    (
        "payments",
        "GET",
        "/api/bookings/{confirmed}/payments",
        None,
        {A: 401, OW: 200, OO: 404, S: 200, OS: 404, U: 404, AD: 200},
    ),
    (
        "pending sitters",
        "GET",
        "/api/admin/sitters/pending",
        None,
        {A: 401, OW: 403, OO: 403, S: 403, OS: 403, U: 403, AD: 200},
    ),
    (
        "approve",
        "POST",
        "/api/admin/sitters/{sitter}/approve",
        None,
        {A: 401, OW: 403, OO: 403, S: 403, OS: 403, U: 403, AD: 200},
    ),
    (
        "reject",
        "POST",
        "/api/admin/sitters/{sitter}/reject",
        None,
        {A: 401, OW: 403, OO: 403, S: 403, OS: 403, U: 403, AD: 200},
    ),
    (
        "sitter details",
        "GET",
        "/api/admin/sitters/{sitter}",
        None,
        {A: 401, OW: 403, OO: 403, S: 200, OS: 403, U: 403, AD: 200},
    ),
    (
        "users",
        "GET",
        "/api/admin/users",
        None,
        {A: 401, OW: 403, OO: 403, S: 403, OS: 403, U: 403, AD: 200},
    ),
    (
        "user",
        "GET",
        "/api/admin/users/{owner}",
        None,
        {A: 401, OW: 403, OO: 403, S: 403, OS: 403, U: 403, AD: 200},
    ),
    (
        "delete user",
        "DELETE",
        "/api/admin/users/{other_owner}",
        None,
        {A: 401, OW: 403, OO: 403, S: 403, OS: 403, U: 403, AD: 204},
    ),
    (
        "stats",
        "GET",
        "/api/admin/stats",
        None,
        {A: 401, OW: 403, OO: 403, S: 403, OS: 403, U: 403, AD: 200},
    ),
    (
        "bookings per day",
        "GET",
        "/api/admin/stats/bookings-per-day",
        None,
        {A: 401, OW: 403, OO: 403, S: 403, OS: 403, U: 403, AD: 200},
    ),
    (
        "health",
        "GET",
        "/api/health",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "openapi",
        "GET",
        "/api/openapi.json",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
    (
        "API docs page",
        "GET",
        "/api/docs",
        None,
        {A: 200, OW: 200, OO: 200, S: 200, OS: 200, U: 200, AD: 200},
    ),
]


async def snapshot(client) -> list:
    """Everything a refused request could have changed."""
    return [
        await client.app[POOL].fetch(f"SELECT * FROM {table} ORDER BY 1")
        for table in (
            "users",
            "sitters",
            "pets",
            "services",
            "bookings",
            "reviews",
            "payments",
            "messages",
            "chat_reads",
            "images",
            "media_files",
            "sitter_schedule",
            "time_off",
        )
    ]


async def call(client, world: World, role: str, method: str, path: str, body):
    headers = {} if role == "anonymous" else world.accounts[role].headers
    if callable(body):
        body = body(world)
    if isinstance(body, aiohttp.FormData):
        return await client.request(method, path.format(**world.ids), data=body, headers=headers)
    return await client.request(method, path.format(**world.ids), json=body, headers=headers)


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "expected"), MATRIX, ids=[row[0] for row in MATRIX]
)
async def test_who_may_do_what(client, name, method, path, body, expected):
    assert set(expected) == set(ROLES)
    world = await build_world(client)
    mutating = method != "GET"
    for role in ROLES:
        allowed = 200 <= expected[role] < 300
        if mutating and allowed:
            # Allowed writes are checked last, each on a world of its own.
            continue
        before = await snapshot(client) if mutating else None
        resp = await call(client, world, role, method, path, body)
        assert resp.status == expected[role], (role, await resp.text())
        if resp.status >= 400:
            data = await resp.json()
            assert data["code"] and data["error"], data
        if mutating:
            assert await snapshot(client) == before, f"{role}'s refused {name} changed data"
    for role in ROLES:
        if mutating and 200 <= expected[role] < 300:
            fresh = await build_world(client)
            resp = await call(client, fresh, role, method, path, body)
            assert resp.status == expected[role], (role, await resp.text())


def test_every_api_route_is_in_the_matrix():
    from aiohttp import web

    from nanny.app import create_app
    from nanny.config import Settings

    app: web.Application = create_app(
        Settings(database_url="postgresql://unused/x", jwt_secret="x" * 40)
    )
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path") or ""
        if (
            path.startswith("/api/")
            and route.method not in ("HEAD", "OPTIONS")
            and path != "/api/ws"
        ):
            routes.add((route.method, path))
    covered = set()
    for _, method, template, _, _ in MATRIX:
        covered.add((method, _generic(template)))
    missing = {(m, p) for m, p in routes if (m, _generic(p)) not in covered}
    assert not missing, f"endpoints missing from the authorization matrix: {sorted(missing)}"


def _generic(path: str) -> str:
    import re

    return re.sub(r"\{[^}]+\}", "{}", path.split("?")[0])
