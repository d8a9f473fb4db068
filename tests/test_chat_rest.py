"""Chat over REST: history windows, sends (idempotent, gapless under concurrency, delivered
live), read marks, and who may do what."""

from __future__ import annotations

import asyncio

from nanny.keys import POOL
from tests.chat_support import collect_messages, recv, subscribe
from tests.factories import make_admin, make_owner, make_sitter
from tests.rows import insert_booking


async def _room(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    booking_id = await insert_booking(client.app[POOL], owner.user_id, sitter.user_id)
    return owner, sitter, booking_id


async def _send(client, account, booking_id, content, **extra):
    resp = await client.post(
        f"/api/bookings/{booking_id}/messages",
        json={"content": content} | extra,
        headers=account.headers,
    )
    return resp.status, await resp.json()


async def test_send_and_history_windows(client):
    owner, sitter, booking_id = await _room(client)
    for i in range(1, 8):
        status, message = await _send(client, owner if i % 2 else sitter, booking_id, f" m{i} ")
        assert status == 201
        assert message["seq"] == i and message["content"] == f"m{i}"
        assert message["booking_id"] == booking_id and message["client_id"] is None
        assert message["attachments"] == []
        assert set(message) == {
            "attachments",
            "message_id",
            "booking_id",
            "chat_id",
            "seq",
            "sender_id",
            "content",
            "client_id",
            "sent_at",
        }
        assert message["sent_at"].endswith("Z")
    url = f"/api/bookings/{booking_id}/messages"

    async def seqs(query: str) -> tuple[list[int], str]:
        resp = await client.get(url + query, headers=sitter.headers)
        assert resp.status == 200, await resp.text()
        return [m["seq"] for m in await resp.json()], resp.headers["X-Total-Count"]

    assert await seqs("") == ([1, 2, 3, 4, 5, 6, 7], "7")
    assert await seqs("?after_seq=4") == ([5, 6, 7], "3")
    assert await seqs("?before_seq=6&limit=2") == ([4, 5], "5")  # the newest page before 6
    assert await seqs("?after_seq=1&before_seq=5") == ([2, 3, 4], "3")
    assert await seqs("?limit=3&offset=2") == ([3, 4, 5], "7")
    for bad in ("?limit=0", "?limit=201", "?after_seq=-1", "?before_seq=x"):
        resp = await client.get(url + bad, headers=owner.headers)
        assert resp.status == 400 and (await resp.json())["code"] == "validation_error"


async def test_idempotent_client_id(client):
    owner, sitter, booking_id = await _room(client)
    status, first = await _send(client, owner, booking_id, "hello", client_id="c-1")
    status2, again = await _send(client, owner, booking_id, "hello", client_id="c-1")
    assert status == status2 == 201 and again == first
    # The same client_id from the other participant is a different message.
    _, theirs = await _send(client, sitter, booking_id, "hi", client_id="c-1")
    assert theirs["seq"] == 2
    # Reusing a client_id in another booking is refused, not silently mapped.
    other = await insert_booking(client.app[POOL], owner.user_id, sitter.user_id)
    status, body = await _send(client, owner, other, "hello", client_id="c-1")
    assert status == 400 and body["details"]["field"] == "client_id"
    last = await client.app[POOL].fetchval(
        "SELECT last_seq FROM chats WHERE booking_id = $1", other
    )
    assert last == 0  # the rolled-back attempt left no gap


async def test_concurrent_sends_are_gapless(client):
    owner, sitter, booking_id = await _room(client)
    results = await asyncio.gather(
        *(_send(client, owner if i % 2 else sitter, booking_id, f"x{i}") for i in range(30))
    )
    assert sorted(m["seq"] for _, m in results) == list(range(1, 31))
    rows = await client.app[POOL].fetch(
        "SELECT seq FROM messages m JOIN chats c USING (chat_id) WHERE c.booking_id = $1",
        booking_id,
    )
    assert sorted(r["seq"] for r in rows) == list(range(1, 31))


async def test_rest_send_and_read_are_delivered_live(client):
    owner, sitter, booking_id = await _room(client)
    ws = await client.ws_connect("/api/ws", headers=owner.headers)
    await subscribe(ws, booking_id)
    _, message = await _send(client, sitter, booking_id, "from the app", client_id="bg-1")
    assert (await collect_messages(ws, 1))[0] == message
    resp = await client.post(
        f"/api/bookings/{booking_id}/read", json={"seq": 1}, headers=sitter.headers
    )
    assert resp.status == 204
    assert await recv(ws, "read") == {
        "type": "read",
        "booking_id": booking_id,
        "user_id": sitter.user_id,
        "seq": 1,
    }
    await ws.close()


async def test_read_marks(client):
    owner, sitter, booking_id = await _room(client)
    for i in range(3):
        await _send(client, owner, booking_id, f"m{i}")
    url = f"/api/bookings/{booking_id}/read"
    assert (await client.post(url, json={"seq": 2}, headers=sitter.headers)).status == 204
    assert (await client.post(url, json={"seq": 1}, headers=sitter.headers)).status == 204
    mark = await client.app[POOL].fetchval(
        "SELECT last_read_seq FROM chat_reads WHERE user_id = $1", sitter.user_id
    )
    assert mark == 2  # marks never move back
    for body in ({"seq": 4}, {"seq": 0}, {"seq": "2"}, {}, {"seq": 1, "x": 1}):
        resp = await client.post(url, json=body, headers=sitter.headers)
        assert resp.status == 400, body


async def test_who_may_use_the_chat(client):
    owner, _sitter, booking_id = await _room(client)
    stranger = await make_sitter(client)
    admin = await make_admin(client)
    url = f"/api/bookings/{booking_id}/messages"
    assert (await client.get(url)).status == 401
    assert (await client.post(url, json={"content": "x"})).status == 401
    resp = await client.get(url, headers=stranger.headers)
    assert resp.status == 404 and (await resp.json())["code"] == "not_found"
    assert (await _send(client, stranger, booking_id, "x"))[0] == 404
    read = f"/api/bookings/{booking_id}/read"
    assert (await client.post(read, json={"seq": 1}, headers=stranger.headers)).status == 404
    assert (await client.get(url, headers=admin.headers)).status == 200
    assert (await _send(client, admin, booking_id, "x"))[0] == 403
    assert (await client.get("/api/bookings/999999/messages", headers=owner.headers)).status == 404
    assert (await client.get("/api/bookings/abc/messages", headers=owner.headers)).status == 400
    for body in ({"content": ""}, {"content": "  "}, {"content": "x" * 4001}, {"text": "x"}):
        resp = await client.post(url, json=body, headers=owner.headers)
        assert resp.status == 400, body
    assert (await _send(client, owner, booking_id, "x", client_id="a" * 65))[0] == 400
    assert (await _send(client, owner, booking_id, "x" * 4000))[0] == 201
    count = await client.app[POOL].fetchval("SELECT count(*) FROM messages")
    assert count == 1


async def test_concurrent_retries_of_one_client_id_store_once(client):
    owner, _, booking_id = await _room(client)
    results = await asyncio.gather(
        *(_send(client, owner, booking_id, "once", client_id="same") for _ in range(8))
    )
    assert {status for status, _ in results} == {201}
    assert len({m["message_id"] for _, m in results}) == 1
    last = await client.app[POOL].fetchval(
        "SELECT last_seq FROM chats WHERE booking_id = $1", booking_id
    )
    assert last == 1
