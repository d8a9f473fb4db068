"""NUL characters, which PostgreSQL text cannot hold, are refused as bad input (400), never a 500.
Found by schemathesis against POST /api/reviews."""

from __future__ import annotations

from aiohttp import web

from nanny.app import create_app
from nanny.keys import POOL
from tests.factories import make_admin, make_owner, make_sitter
from tests.rows import insert_booking


async def test_nul_in_a_body_string_names_the_field(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    booking = await insert_booking(client, owner.user_id, sitter.user_id, status="completed")
    body = '{"booking_id": BOOKING, "rating": 5, "comment": "nice\\u0000"}'
    body = body.replace("BOOKING", str(booking))
    resp = await client.post(
        "/api/reviews",
        data=body,
        headers=owner.headers | {"Content-Type": "application/json"},
    )
    assert resp.status == 400
    data = await resp.json()
    assert data["code"] == "validation_error"
    assert data["details"] == {"field": "comment", "reason": "nul_character"}
    assert await client.app[POOL].fetchval("SELECT count(*) FROM reviews") == 0
    # A backslash-u sequence that is not NUL is ordinary text.
    body = body.replace("\\u0000", "\\u0041")
    resp = await client.post(
        "/api/reviews", data=body, headers=owner.headers | {"Content-Type": "application/json"}
    )
    assert resp.status == 201 and (await resp.json())["comment"] == "niceA"


async def test_nul_in_a_query_parameter(client):
    admin = await make_admin(client)
    resp = await client.get("/api/admin/users?q=a%00b", headers=admin.headers)
    assert resp.status == 400
    assert (await resp.json())["details"]["field"] == "q"


async def test_database_refusal_is_a_400_not_a_500(aiohttp_client, settings):
    """The middleware's safety net, for text that reaches SQL without a declaration."""

    async def store(request: web.Request) -> web.Response:
        await request.app[POOL].fetchval("SELECT $1::text", request.query["text"])
        return web.Response(text="stored")

    app = create_app(settings)
    app.router.add_get("/api/raw", store)
    client = await aiohttp_client(app)
    resp = await client.get("/api/raw?text=a%00b")
    assert resp.status == 400
    assert (await resp.json())["code"] == "validation_error"
    assert (await client.get("/api/raw?text=ab")).status == 200
