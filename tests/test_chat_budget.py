"""One chat message budget per user (RATE_CHAT_MESSAGES_PER_USER) for both doors: what a user
sends over REST spends what it may send over the WebSocket and the other way round, on every
process. Before, REST had no limit at all: one user posted 1,199 messages in 5 s while the
WebSocket held each connection to 20 frames a second."""

from __future__ import annotations

import dataclasses
import uuid

import aiohttp
import pytest

from nanny.app import create_app
from nanny.config import ConfigError, RateLimit, load_settings
from nanny.keys import POOL
from tests.chat_support import Server, recv, server_env
from tests.factories import make_owner, make_sitter
from tests.rows import insert_booking

# A day's window: the count cannot roll over in the middle of a test (but at midnight UTC).
BUDGET = 4
LIMIT = RateLimit(BUDGET, 86400)


async def rest_send(session, base: str, account, booking_id: int, content: str):
    async with session.post(
        f"{base}/api/bookings/{booking_id}/messages",
        json={"content": content},
        headers=account.headers,
    ) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def ws_send(ws, booking_id: int, content: str) -> dict:
    await ws.send_json({"type": "send", "booking_id": booking_id, "content": content})
    return await recv(ws, "ack", "error")


def assert_limited_frame(frame: dict, booking_id: int) -> None:
    assert frame["type"] == "error" and frame["code"] == "rate_limited", frame
    assert frame["ref"] == {"type": "send", "booking_id": booking_id}
    assert 1 <= frame["retry_after"] <= LIMIT.seconds


def assert_limited_response(status: int, headers, body: dict) -> None:
    assert status == 429, body
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= LIMIT.seconds
    assert body["code"] == "rate_limited"
    assert body["details"] == {"limit": "chat_message_user", "retry_after": retry_after}


async def stored(pool, booking_id: int) -> list[tuple[int, str]]:
    rows = await pool.fetch(
        """SELECT m.sender_id, m.content FROM messages m JOIN chats c USING (chat_id)
           WHERE c.booking_id = $1 ORDER BY m.seq""",
        booking_id,
    )
    return [(r["sender_id"], r["content"]) for r in rows]


async def test_one_budget_for_rest_and_websocket(aiohttp_client, settings):
    client = await aiohttp_client(
        create_app(dataclasses.replace(settings, rate_chat_messages_per_user=LIMIT))
    )
    pool = client.app[POOL]
    owner, sitter = await make_owner(client), await make_sitter(client)
    booking_id = await insert_booking(pool, owner.user_id, sitter.user_id)
    base = str(client.make_url("")).rstrip("/")
    session = client.session
    ws = await client.ws_connect("/api/ws", headers=owner.headers)
    for i in range(BUDGET // 2):
        assert (await rest_send(session, base, owner, booking_id, f"rest {i}"))[0] == 201
        assert (await ws_send(ws, booking_id, f"ws {i}"))["type"] == "ack"
    # Spent: refused by both doors, and nothing stored.
    assert_limited_frame(await ws_send(ws, booking_id, "one more"), booking_id)
    assert_limited_response(*await rest_send(session, base, owner, booking_id, "one more"))
    # The socket stays open (a budget is not a flood), and the other participant has its own.
    await ws.send_json({"type": "ping"})
    assert await recv(ws) == {"type": "pong"}
    assert (await rest_send(session, base, sitter, booking_id, "mine"))[0] == 201
    assert [c for _, c in await stored(pool, booking_id)] == [
        "rest 0",
        "ws 0",
        "rest 1",
        "ws 1",
        "mine",
    ]
    await ws.close()


async def test_the_budget_is_shared_by_every_process(settings, redis_server_url, aiohttp_client):
    """Two real `nanny serve` processes on one Redis: a user who spent the budget over REST
    on one is refused on the other's WebSocket, and the other way round."""
    env = server_env(
        settings.database_url,
        redis_server_url,
        REDIS_PREFIX=f"t{uuid.uuid4().hex[:10]}",
        RATE_CHAT_MESSAGES_PER_USER=f"{BUDGET}/day",
    )
    assert load_settings(env).rate_chat_messages_per_user == LIMIT
    one, two = Server(env).start(), Server(env).start()
    try:
        client = await aiohttp_client(create_app(settings))
        pool = client.app[POOL]
        owner, sitter = await make_owner(client), await make_sitter(client)
        booking_id = await insert_booking(pool, owner.user_id, sitter.user_id)
        for server in (one, two):
            assert (await server.healthy())["redis"] == "ok"
        async with aiohttp.ClientSession() as session:
            owner_ws = await session.ws_connect(f"{two.url}/api/ws", headers=owner.headers)
            sitter_ws = await session.ws_connect(f"{two.url}/api/ws", headers=sitter.headers)
            # The owner spends it over REST on process one, then tries the socket on two.
            for i in range(BUDGET):
                assert (await rest_send(session, one.url, owner, booking_id, f"o{i}"))[0] == 201
            assert_limited_frame(await ws_send(owner_ws, booking_id, "o more"), booking_id)
            # The sitter spends it over the socket on two, then tries REST on one.
            for i in range(BUDGET):
                assert (await ws_send(sitter_ws, booking_id, f"s{i}"))["type"] == "ack"
            assert_limited_response(*await rest_send(session, one.url, sitter, booking_id, "s"))
            assert_limited_response(*await rest_send(session, two.url, owner, booking_id, "o"))
            await owner_ws.close()
            await sitter_ws.close()
        contents = [c for _, c in await stored(pool, booking_id)]
        assert contents == [f"o{i}" for i in range(BUDGET)] + [f"s{i}" for i in range(BUDGET)]
    finally:
        for server in (one, two):
            server.kill()


@pytest.mark.parametrize("raw", ["0/minute", "many", "5/fortnight"])
def test_a_bad_budget_stops_the_start(tmp_path, raw):
    env = {"NANNY_DATA_DIR": str(tmp_path), "RATE_CHAT_MESSAGES_PER_USER": raw}
    with pytest.raises(ConfigError, match=r"^RATE_CHAT_MESSAGES_PER_USER"):
        load_settings(env)
