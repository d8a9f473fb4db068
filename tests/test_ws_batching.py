"""Messages stored in batches (nanny/chat/batch.py) and frames written together
(nanny/ws/connection.py): the same answers as one at a time, against the real database."""

from __future__ import annotations

import asyncio

from aiohttp import web

from nanny.chat.batch import MessageBatcher
from nanny.db import chat as db_chat
from nanny.keys import POOL
from nanny.ws.connection import Connection
from nanny.ws.limits import WsLimits
from tests.chat_support import collect_messages, recv, subscribe
from tests.factories import make_owner, make_sitter
from tests.rows import insert_booking


async def test_a_batch_answers_each_message_as_a_single_send_would(client):
    pool = client.app[POOL]
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    stranger = await make_owner(client)
    first = await insert_booking(pool, owner.user_id, sitter.user_id)
    second = await insert_booking(pool, owner.user_id, sitter.user_id)
    batch = [
        db_chat.NewMessage(second, owner.user_id, "b1", None),
        db_chat.NewMessage(first, owner.user_id, "a1", "k1"),
        db_chat.NewMessage(first, sitter.user_id, "a2", None),
        db_chat.NewMessage(first, stranger.user_id, "intruder", None),
        db_chat.NewMessage(first, owner.user_id, "a1 again", "k1"),  # a retry in the same batch
        db_chat.NewMessage(second, sitter.user_id, "b2", "k1"),  # same key, other sender
        db_chat.NewMessage(999_999, owner.user_id, "nowhere", None),
    ]
    async with pool.acquire() as conn:
        results = await db_chat.store_messages(conn, batch)
    got = [
        (r[0].booking_id, r[0].seq, r[0].content, r[1]) if isinstance(r, tuple) else r
        for r in results
    ]
    assert got == [
        (second, 1, "b1", True),
        (first, 1, "a1", True),
        (first, 2, "a2", True),
        db_chat.Refusal.NOT_PARTICIPANT,
        (first, 1, "a1", False),
        (second, 2, "b2", True),
        db_chat.Refusal.NOT_PARTICIPANT,
    ]
    assert results[4][0].message_id == results[1][0].message_id
    # A later batch continues the seqs, and a retry of k1 still answers the original.
    async with pool.acquire() as conn:
        again = await db_chat.store_messages(
            conn,
            [
                db_chat.NewMessage(first, owner.user_id, "a1 once more", "k1"),
                db_chat.NewMessage(first, sitter.user_id, "a3", None),
            ],
        )
    assert [(r[0].seq, r[1]) for r in again] == [(1, False), (3, True)]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 5


async def test_concurrent_sends_are_batched_in_order_without_gaps(client, monkeypatch):
    pool = client.app[POOL]
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    booking_id = await insert_booking(pool, owner.user_id, sitter.user_id)
    calls = 0
    real = db_chat.store_messages

    async def counting(conn, batch):
        nonlocal calls
        calls += 1
        return await real(conn, batch)

    monkeypatch.setattr(db_chat, "store_messages", counting)  # counts the real calls
    batcher = MessageBatcher(lambda: pool, asyncio.ensure_future, max_in_flight=1)
    results = await asyncio.gather(
        *(
            batcher.store(
                booking_id=booking_id,
                sender_id=(owner, sitter)[i % 2].user_id,
                content=f"m{i}",
                client_id=None,
            )
            for i in range(40)
        )
    )
    # In arrival order: the first alone, the rest together while it was being stored.
    assert [m.seq for m, _ in results] == list(range(1, 41))
    assert [m.content for m, _ in results] == [f"m{i}" for i in range(40)]
    assert calls == 2


async def test_a_batch_losing_to_a_concurrent_twin_falls_back_one_by_one(client):
    """A client_id committed by another transaction while the batch waited on it: the batch
    fails as a whole on the unique key, and each of its messages is settled on its own."""
    pool = client.app[POOL]
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    booking_id = await insert_booking(pool, owner.user_id, sitter.user_id)
    batcher = MessageBatcher(lambda: pool, asyncio.ensure_future)
    async with pool.acquire() as other:
        tx = other.transaction()
        await tx.start()
        twin, _ = await db_chat.store_message(
            other, booking_id=booking_id, sender_id=owner.user_id, content="twin", client_id="dup"
        )
        sends = asyncio.gather(
            batcher.store(
                booking_id=booking_id, sender_id=owner.user_id, content="mine", client_id="dup"
            ),
            batcher.store(
                booking_id=booking_id, sender_id=sitter.user_id, content="other", client_id=None
            ),
        )
        await asyncio.sleep(0.3)  # the batch now waits on the twin's unique key
        assert not sends.done()
        await tx.commit()
    (mine, mine_created), (other_msg, other_created) = await sends
    assert (mine.message_id, mine.content, mine_created) == (twin.message_id, "twin", False)
    assert (other_msg.content, other_msg.seq, other_created) == ("other", 2, True)


async def test_frames_written_together_arrive_whole(aiohttp_client):
    """Frames queued together go out in one write; the client's parser reads each of them,
    whatever the length encoding (7-bit, 16-bit and 64-bit payload lengths)."""
    texts = ["short", "é" * 2000, "x" * 70_000, "last"]

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(ws, request, WsLimits())
        for text in texts:
            conn.send(text)
        await ws.receive()  # the client's close
        await conn.finish()
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/ws", max_msg_size=0)
    got = [(await ws.receive(timeout=5)).data for _ in texts]
    await ws.close()
    assert got == texts


async def test_the_sender_gets_each_ack_then_its_message(client):
    """An ack and the message frame are queued together and written together: the sender reads
    them whole and in that order, send after send."""
    pool = client.app[POOL]
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    booking_id = await insert_booking(pool, owner.user_id, sitter.user_id)
    ws = await client.ws_connect("/api/ws", headers=owner.headers)
    other = await client.ws_connect("/api/ws", headers=sitter.headers)
    await subscribe(ws, booking_id)
    await subscribe(other, booking_id)
    for i in range(20):
        await ws.send_json(
            {"type": "send", "booking_id": booking_id, "content": f"c{i}", "client_id": f"c{i}"}
        )
    seen = []
    while len(seen) < 40:
        frame = await recv(ws, "ack", "message")
        seq = frame["message"]["seq"]
        seen.append((frame["type"], seq))
    assert seen == [(kind, i) for i in range(1, 21) for kind in ("ack", "message")]
    assert [m["seq"] for m in await collect_messages(other, 20)] == list(range(1, 21))
    await ws.close()
    await other.close()
