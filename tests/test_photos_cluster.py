"""A photo message between two real `nanny serve` processes sharing one database, one Redis and
one media directory: it arrives live on the other process, its URLs load from either, and a
client that reconnects gets it again in the replay."""

from __future__ import annotations

import uuid

import aiohttp

from tests.chat_support import Server, recv, server_env, subscribe
from tests.factories import make_owner, make_sitter
from tests.photos import decode, encode, form, picture
from tests.rows import insert_booking


async def test_a_photo_message_crosses_processes_and_survives_replay(
    client, settings, redis_server_url, tmp_path
):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    booking_id = await insert_booking(client, owner.user_id, sitter.user_id)
    env = server_env(
        settings.database_url,
        redis_server_url,
        REDIS_PREFIX=f"t{uuid.uuid4().hex[:10]}",
        MEDIA_DIR=str(tmp_path / "media"),  # the volume both backends mount
    )
    one, two = Server(env).start(), Server(env).start()
    session = aiohttp.ClientSession()
    try:
        for server in (one, two):
            assert (await server.healthy())["redis"] == "ok"
        owner_ws = await session.ws_connect(f"{one.url}/api/ws", headers=owner.headers)
        sitter_ws = await session.ws_connect(f"{two.url}/api/ws", headers=sitter.headers)
        await subscribe(owner_ws, booking_id)
        await subscribe(sitter_ws, booking_id)

        async def upload(size) -> int:
            resp = await session.post(
                f"{two.url}/api/bookings/{booking_id}/attachments",
                data=form(encode(picture(size), "HEIF")),
                headers=sitter.headers,
            )
            assert resp.status == 201, await resp.text()
            return (await resp.json())["attachment_id"]

        walk = [await upload((900, 600)), await upload((600, 900))]
        await sitter_ws.send_json(
            {
                "type": "send",
                "booking_id": booking_id,
                "content": "At the park",
                "attachment_ids": walk,
            }
        )
        acked = (await recv(sitter_ws, "ack"))["message"]
        live = (await recv(owner_ws, "message"))["message"]
        assert live == acked
        assert [a["attachment_id"] for a in live["attachments"]] == walk
        assert [(a["width"], a["height"]) for a in live["attachments"]] == [(900, 600), (600, 900)]
        # Stored by process two, served by process one.
        for attachment in live["attachments"]:
            resp = await session.get(one.url + attachment["url"])
            assert resp.status == 200
            image = decode(await resp.read())
            assert image.size == (attachment["width"], attachment["height"])

        # The owner goes away; a second photo is sent meanwhile; the owner comes back.
        last_seq = live["seq"]
        await owner_ws.close()
        later = [await upload((500, 500))]
        await sitter_ws.send_json(
            {"type": "send", "booking_id": booking_id, "attachment_ids": later}
        )
        missed = (await recv(sitter_ws, "ack"))["message"]
        owner_ws = await session.ws_connect(f"{one.url}/api/ws", headers=owner.headers)
        await subscribe(owner_ws, booking_id, after_seq=last_seq - 1)
        replayed = [(await recv(owner_ws, "message"))["message"] for _ in range(2)]
        assert [m["seq"] for m in replayed] == [last_seq, missed["seq"]]
        assert [a["attachment_id"] for a in replayed[0]["attachments"]] == walk
        assert [a["attachment_id"] for a in replayed[1]["attachments"]] == later
        assert replayed[1]["content"] == ""
        resp = await session.get(one.url + replayed[1]["attachments"][0]["thumb_url"])
        assert resp.status == 200 and decode(await resp.read()).size == (320, 320)
        await owner_ws.close()
        await sitter_ws.close()
    finally:
        await session.close()
        one.kill()
        two.kill()
