"""A decision that takes a right away holds on every process by the time it is answered: two
real `nanny serve` processes share the database and Redis; the decision is made through one and
the right used at once through the other, whose cache held the user (AUTH_CACHE_SECONDS, 30 s).
Before, the change reached the other process a moment after the answer: a sitter rejected on
one process created services on the other in 3 of 30 tries."""

from __future__ import annotations

import asyncio

import aiohttp

from nanny.keys import POOL
from tests.chat_support import Server, recv
from tests.factories import PASSWORD, login, make_admin, make_owner, make_sitter
from tests.faults import app_deaf_to_redis

TRIES = 30


async def test_a_rejected_sitter_cannot_create_services_anywhere(two_processes):
    one, two, client, session = two_processes
    admin = await make_admin(client)
    sitter = await make_sitter(client)
    service = {"type": "walking", "price_per_hour": "2500.00", "description": "Walks"}

    async def call(server: Server, method: str, path: str, headers, **kw) -> int:
        async with session.request(method, f"{server.url}{path}", headers=headers, **kw) as r:
            await r.read()
            return r.status

    created = 0
    for _ in range(TRIES):
        approve = f"/api/admin/sitters/{sitter.user_id}/approve"
        assert await call(one, "POST", approve, admin.headers) == 200
        assert await call(two, "GET", "/api/auth/me", sitter.headers) == 200  # cached there
        reject = f"/api/admin/sitters/{sitter.user_id}/reject"
        assert await call(one, "POST", reject, admin.headers) == 200
        status = await call(two, "POST", "/api/services", sitter.headers, json=service)
        assert status in (201, 403)
        created += status == 201
    assert created == 0, f"{created} of {TRIES} services created after the rejection"


async def test_a_deleted_account_is_refused_everywhere_at_once(two_processes):
    one, two, client, session = two_processes
    admin = await make_admin(client)
    owners = [await make_owner(client) for _ in range(TRIES)]

    async def me(server: Server, headers) -> int:
        async with session.get(f"{server.url}/api/auth/me", headers=headers) as resp:
            return resp.status

    assert await asyncio.gather(*(me(two, o.headers) for o in owners)) == [200] * TRIES
    for owner in owners:
        async with session.delete(
            f"{one.url}/api/admin/users/{owner.user_id}", headers=admin.headers
        ) as resp:
            assert resp.status == 204
        assert await me(two, owner.headers) == 401


async def test_ended_tokens_are_refused_everywhere_at_once(two_processes):
    one, two, client, session = two_processes
    owner = await make_owner(client)

    async def call(server: Server, method: str, path: str, token: str, **kw) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.request(method, f"{server.url}{path}", headers=headers, **kw) as r:
            return r.status, (await r.json() if r.status != 204 else {})

    for _ in range(TRIES):
        token = (await login(client, owner.email))["token"]
        assert (await call(two, "GET", "/api/auth/me", token))[0] == 200  # cached there
        assert (await call(one, "POST", "/api/auth/logout", token))[0] == 204
        assert (await call(two, "GET", "/api/auth/me", token))[0] == 401

    others = [(await login(client, owner.email))["token"] for _ in range(3)]
    for token in others:
        assert (await call(two, "GET", "/api/auth/me", token))[0] == 200
    body = {"current_password": PASSWORD, "new_password": "another-long-pass"}
    status, fresh = await call(one, "POST", "/api/auth/password", others[0], json=body)
    assert status == 200
    for token in others:
        assert (await call(two, "GET", "/api/auth/me", token))[0] == 401
    assert (await call(two, "GET", "/api/auth/me", fresh["token"]))[0] == 200


async def test_a_process_deaf_to_the_others_reads_users_from_the_database(
    settings, redis_server_url, aiohttp_client
):
    """While this process cannot hear other processes' user changes (Redis away), it does not
    trust its cache: a deletion made elsewhere holds here at once, not after 30 s."""
    async with app_deaf_to_redis(settings, redis_server_url, aiohttp_client) as (client, deafen):
        owner = await make_owner(client)
        assert (await client.get("/api/auth/me", headers=owner.headers)).status == 200
        await deafen()
        await client.app[POOL].execute(
            "UPDATE users SET deleted_at = now(), email = NULL WHERE user_id = $1", owner.user_id
        )
        assert (await client.get("/api/auth/me", headers=owner.headers)).status == 401


async def test_sockets_of_ended_tokens_close_everywhere(two_processes):
    """Signing out closes (4001) the sockets of that token on every process by the time it is
    answered, and only those; a password change closes every socket of the user's earlier
    tokens. Before, such sockets stayed open until the token's own expiry, 72 h on."""
    one, two, client, session = two_processes
    owner = await make_owner(client)
    tokens = [(await login(client, owner.email))["token"] for _ in range(3)]
    ended, kept, refreshed = tokens

    async def open_ws(server: Server, token: str, *, by_frame: bool = False):
        if by_frame:
            ws = await session.ws_connect(f"{server.url}/api/ws")
            await ws.send_json({"type": "auth", "token": token})
            assert (await recv(ws))["type"] == "authenticated"
        else:
            ws = await session.ws_connect(
                f"{server.url}/api/ws", headers={"Authorization": f"Bearer {token}"}
            )
        return ws

    async def alive(ws) -> None:
        await ws.send_json({"type": "ping"})
        assert await recv(ws, "pong") == {"type": "pong"}

    async def closed_4001(ws) -> None:
        msg = await ws.receive(timeout=1)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4001, msg

    async def post(server: Server, path: str, token: str, **kw) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(f"{server.url}{path}", headers=headers, **kw) as r:
            return r.status, (await r.json() if r.status != 204 else {})

    ended_sockets = [await open_ws(two, ended), await open_ws(one, ended, by_frame=True)]
    kept_sockets = [await open_ws(two, kept), await open_ws(one, kept)]
    # Signed in with one token, then refreshed to a newer one: it holds the newer one.
    moved = await open_ws(two, refreshed)
    newer = (await login(client, owner.email))["token"]
    await moved.send_json({"type": "refresh", "token": newer})
    assert (await recv(moved))["type"] == "authenticated"
    for ws in [*ended_sockets, *kept_sockets, moved]:
        await alive(ws)

    assert (await post(one, "/api/auth/logout", ended))[0] == 204
    for ws in ended_sockets:
        await closed_4001(ws)
    assert (await post(two, "/api/auth/logout", refreshed))[0] == 204
    for ws in [*kept_sockets, moved]:
        await alive(ws)

    body = {"current_password": PASSWORD, "new_password": "another-long-pass"}
    status, fresh = await post(one, "/api/auth/password", kept, json=body)
    assert status == 200
    for ws in [*kept_sockets, moved]:
        await closed_4001(ws)
    for server in (one, two):
        ws = await open_ws(server, fresh["token"])
        await alive(ws)
        await ws.close()
