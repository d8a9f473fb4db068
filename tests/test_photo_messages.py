"""Photos in chat messages (REST and WebSocket), pets' photos, and what removes images: the expiry
task for attachments never sent, deleting a pet, deleting a user."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from nanny.expiry import run_expiry_if_due
from nanny.keys import MEDIA, POOL
from tests.chat_support import recv, subscribe
from tests.factories import make_admin, make_owner, make_sitter
from tests.market import assert_error, make_pet
from tests.photos import attach, decode, encode, form, picture
from tests.rows import insert_booking
from tests.test_photos import fetch, media_files


async def send(client, account, booking_id: int, **body):
    resp = await client.post(
        f"/api/bookings/{booking_id}/messages", json=body, headers=account.headers
    )
    return resp.status, await resp.json()


def photo(seed: int) -> bytes:
    """A distinct JPEG per seed, larger than a thumbnail: two files each."""
    return encode(picture((400 + seed, 300)), "JPEG")


async def test_a_message_with_photos_and_no_text(client, booking_room):
    owner, sitter, booking_id = booking_room
    first = await attach(client, sitter, booking_id, photo(1))
    second = await attach(client, sitter, booking_id, photo(2))
    ids = [second["attachment_id"], first["attachment_id"]]  # the order sent is kept
    status, message = await send(client, sitter, booking_id, attachment_ids=ids)
    assert status == 201, message
    assert message["content"] == ""
    assert [a["attachment_id"] for a in message["attachments"]] == ids
    shown = message["attachments"][0]
    assert set(shown) == {"attachment_id", "url", "thumb_url", "width", "height"}
    assert (shown["width"], shown["height"]) == (402, 300)
    resp, data = await fetch(client, shown["thumb_url"])
    assert resp.status == 200 and decode(data).size == (320, 239)
    # History, for the owner and for an admin, carries them too.
    admin = await make_admin(client)
    for reader in (owner, admin):
        resp = await client.get(f"/api/bookings/{booking_id}/messages", headers=reader.headers)
        [listed] = await resp.json()
        assert [a["attachment_id"] for a in listed["attachments"]] == ids
    # Text with a photo.
    third = await attach(client, owner, booking_id, photo(3))
    status, message = await send(
        client,
        owner,
        booking_id,
        content=" Barsik says hi ",
        attachment_ids=[third["attachment_id"]],
    )
    assert status == 201 and message["content"] == "Barsik says hi"


async def test_attachments_that_are_not_the_senders_to_give_are_refused(client, booking_room):
    owner, sitter, booking_id = booking_room
    other_booking = await insert_booking(client, owner.user_id, sitter.user_id)
    elsewhere = await attach(client, owner, other_booking, photo(1))
    sitters = await attach(client, sitter, booking_id, photo(2))
    mine = await attach(client, owner, booking_id, photo(3))
    refused = [
        [elsewhere["attachment_id"]],  # another booking's
        [sitters["attachment_id"]],  # another user's
        [mine["attachment_id"], 999_999],  # one that does not exist
    ]
    for ids in refused:
        status, body = await send(client, owner, booking_id, content="look", attachment_ids=ids)
        assert status == 400, ids
        assert_error(body, "validation_error", "attachment_ids")
    status, _ = await send(client, owner, booking_id, attachment_ids=[mine["attachment_id"]])
    assert status == 201
    # Used once: never again, not even by the same sender in the same booking.
    status, body = await send(client, owner, booking_id, attachment_ids=[mine["attachment_id"]])
    assert status == 400
    assert_error(body, "validation_error", "attachment_ids")
    assert await client.app[POOL].fetchval("SELECT count(*) FROM messages") == 1


async def test_bad_attachment_lists_and_empty_messages_are_refused(client, booking_room):
    owner, _, booking_id = booking_room
    five = [(await attach(client, owner, booking_id, photo(i)))["attachment_id"] for i in range(5)]
    cases = [
        ({"attachment_ids": five}, "attachment_ids"),  # at most 4
        ({"attachment_ids": [five[0], five[0]]}, "attachment_ids"),
        ({"attachment_ids": [0]}, "attachment_ids.0"),
        ({"attachment_ids": []}, "content"),
        ({"content": "   "}, "content"),
        ({}, "content"),
    ]
    for body, field in cases:
        status, answer = await send(client, owner, booking_id, **body)
        assert status == 400, body
        assert_error(answer, "validation_error", field)
    stranger = await make_owner(client)
    status, _ = await send(client, stranger, booking_id, attachment_ids=five[:1])
    assert status == 404  # not the stranger's business whether those photos exist
    status, message = await send(client, owner, booking_id, attachment_ids=five[:4])
    assert status == 201 and len(message["attachments"]) == 4


async def test_two_messages_never_claim_one_photo(client, booking_room):
    owner, _, booking_id = booking_room
    for round_ in range(3):
        shared = await attach(client, owner, booking_id, photo(10 + round_))
        results = await asyncio.gather(
            *(
                send(
                    client,
                    owner,
                    booking_id,
                    content=f"{round_}-{i}",
                    attachment_ids=[shared["attachment_id"]],
                )
                for i in range(4)
            )
        )
        assert sorted(status for status, _ in results) == [201, 400, 400, 400]
    claimed = await client.app[POOL].fetch(
        "SELECT message_id, count(*) FROM images GROUP BY message_id"
    )
    assert sorted(r["count"] for r in claimed) == [1, 1, 1]


async def test_a_retried_client_id_returns_the_original_with_its_photos(client, booking_room):
    owner, _, booking_id = booking_room
    first = await attach(client, owner, booking_id, photo(1))
    body = {"attachment_ids": [first["attachment_id"]], "client_id": "retry-1"}
    status, original = await send(client, owner, booking_id, **body)
    assert status == 201
    status, again = await send(client, owner, booking_id, **body)
    assert status == 201 and again["message_id"] == original["message_id"]
    assert again["attachments"] == original["attachments"]


async def test_websocket_send_with_photos(client, booking_room):
    owner, sitter, booking_id = booking_room
    pic = await attach(client, sitter, booking_id, photo(1))
    o = await client.ws_connect("/api/ws", headers=owner.headers)
    s = await client.ws_connect("/api/ws", headers=sitter.headers)
    await subscribe(o, booking_id)
    await subscribe(s, booking_id)
    await s.send_json(
        {
            "type": "send",
            "booking_id": booking_id,
            "client_id": "w1",
            "attachment_ids": [pic["attachment_id"]],
        }
    )
    ack = await recv(s, "ack")
    live = await recv(o, "message")
    assert ack["message"]["attachments"] == live["message"]["attachments"]
    assert live["message"]["attachments"][0]["attachment_id"] == pic["attachment_id"]
    resp, _ = await fetch(client, live["message"]["attachments"][0]["url"])
    assert resp.status == 200
    await s.send_json(
        {"type": "send", "booking_id": booking_id, "attachment_ids": [pic["attachment_id"]]}
    )
    error = await recv(s, "error")
    assert error["code"] == "validation_error" and error["ref"]["booking_id"] == booking_id
    await s.send_json({"type": "send", "booking_id": booking_id, "content": ""})
    assert (await recv(s, "error"))["code"] == "validation_error"
    await o.close()
    await s.close()


async def test_attachments_never_sent_are_deleted_after_24_hours(client, booking_room):
    owner, _, booking_id = booking_room
    pool = client.app[POOL]
    stale = await attach(client, owner, booking_id, photo(1))
    sent = await attach(client, owner, booking_id, photo(2))
    fresh = await attach(client, owner, booking_id, photo(3))
    assert (await send(client, owner, booking_id, attachment_ids=[sent["attachment_id"]]))[0] == 201
    await pool.execute(
        "UPDATE images SET created_at = now() - $1::interval WHERE image_id = ANY($2::int[])",
        timedelta(hours=25),
        [stale["attachment_id"], sent["attachment_id"]],
    )
    assert len(media_files(client)) == 6
    # The app ran the task at start-up; make the next run due.
    while not await pool.fetchval("SELECT count(*) FROM task_runs"):
        await asyncio.sleep(0.02)
    await pool.execute("UPDATE task_runs SET last_run_at = now() - interval '2 hours'")
    await run_expiry_if_due(client.app)
    left = await pool.fetch("SELECT image_id FROM images ORDER BY image_id")
    assert [r["image_id"] for r in left] == [sent["attachment_id"], fresh["attachment_id"]]
    assert len(media_files(client)) == 4
    assert (await client.get(stale["url"])).status == 404
    status, body = await send(client, owner, booking_id, attachment_ids=[stale["attachment_id"]])
    assert status == 400
    assert_error(body, "validation_error", "attachment_ids")


async def photo_form(account, data: bytes):
    return {"data": form(data), "headers": account.headers}


async def test_pet_photo_is_set_shown_to_whom_may_see_it_replaced_and_removed(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    stranger = await make_owner(client)
    pet = await make_pet(client, owner)
    pet_id = pet["pet_id"]
    path = f"/api/pets/{pet_id}/photo"
    await insert_booking(client, owner.user_id, sitter.user_id, pet_id=pet_id)
    resp = await client.put(path, **await photo_form(owner, encode(picture((2400, 1800)), "PNG")))
    assert resp.status == 200, await resp.text()
    shown = await resp.json()
    assert shown | {"photo": None} == pet
    assert (shown["photo"]["width"], shown["photo"]["height"]) == (1600, 1200)
    assert set(shown["photo"]) == {"url", "thumb_url", "width", "height"}
    first_files = media_files(client)
    for viewer in (owner, sitter, await make_admin(client)):
        resp = await client.get(f"/api/pets/{pet_id}", headers=viewer.headers)
        assert resp.status == 200
        photo_json = (await resp.json())["photo"]
        resp, data = await fetch(client, photo_json["thumb_url"])
        assert resp.status == 200 and decode(data).size == (320, 240)
    listed = await client.get(f"/api/owners/{owner.user_id}/pets", headers=owner.headers)
    assert (await listed.json())[0]["photo"]["width"] == 1600
    assert (await client.get(f"/api/pets/{pet_id}", headers=stranger.headers)).status == 404
    # Only the owner changes it: a stranger is told nothing, the sitter is refused.
    jpeg = encode(picture(), "JPEG")
    assert (await client.put(path, **await photo_form(stranger, jpeg))).status == 404
    assert (await client.put(path, **await photo_form(sitter, jpeg))).status == 403
    assert (await client.delete(path, headers=sitter.headers)).status == 403
    assert (await client.delete(path, headers=stranger.headers)).status == 404
    # Replacing it removes the old files.
    resp = await client.put(path, **await photo_form(owner, jpeg))
    assert resp.status == 200
    assert (await resp.json())["photo"]["width"] == 640
    assert not set(first_files) & set(media_files(client)) and len(media_files(client)) == 2
    assert (await client.delete(path, headers=owner.headers)).status == 204
    assert media_files(client) == []
    resp = await client.get(f"/api/pets/{pet_id}", headers=owner.headers)
    assert (await resp.json())["photo"] is None
    assert (await client.delete(path, headers=owner.headers)).status == 204  # idempotent
    bad = await client.put(path, **await photo_form(owner, b"GIF89a not really"))
    assert bad.status == 400


async def test_deleting_a_pet_deletes_its_photo_files(client):
    owner = await make_owner(client)
    pet = await make_pet(client, owner)
    other = await make_pet(client, owner, name="Tuzik")
    shared = encode(picture(), "JPEG")
    for p in (pet, other):  # the same bytes: one pair of files, used twice
        resp = await client.put(f"/api/pets/{p['pet_id']}/photo", **await photo_form(owner, shared))
        assert resp.status == 200
    assert len(media_files(client)) == 2
    assert (await client.delete(f"/api/pets/{pet['pet_id']}", headers=owner.headers)).status == 204
    assert len(media_files(client)) == 2  # still the other pet's
    assert (
        await client.delete(f"/api/pets/{other['pet_id']}", headers=owner.headers)
    ).status == 204
    assert media_files(client) == []
    assert await client.app[POOL].fetchval("SELECT count(*) FROM media_files") == 0


async def test_deleting_a_user_deletes_their_images_and_admin_stats_count_them(
    client, booking_room
):
    owner, sitter, booking_id = booking_room
    admin = await make_admin(client)
    pet = await make_pet(client, owner)
    resp = await client.put(f"/api/pets/{pet['pet_id']}/photo", **await photo_form(owner, photo(1)))
    assert resp.status == 200
    sent = await attach(client, owner, booking_id, photo(2))
    assert (await send(client, owner, booking_id, attachment_ids=[sent["attachment_id"]]))[0] == 201
    kept = await attach(client, sitter, booking_id, photo(3))
    stats = await (await client.get("/api/admin/stats", headers=admin.headers)).json()
    files = await client.app[POOL].fetchval("SELECT sum(bytes) FROM media_files")
    assert stats["media"] == {"images": 3, "files": 6, "bytes": files}
    resp = await client.delete(f"/api/admin/users/{owner.user_id}", headers=admin.headers)
    assert resp.status == 204
    left = await client.app[POOL].fetch("SELECT image_id FROM images")
    assert [r["image_id"] for r in left] == [kept["attachment_id"]]
    assert len(media_files(client)) == 2
    # The message stays (without its photo); the pet's photo is gone with its owner's data.
    resp = await client.get(f"/api/bookings/{booking_id}/messages", headers=sitter.headers)
    [message] = await resp.json()
    assert message["attachments"] == []
    stats = await (await client.get("/api/admin/stats", headers=admin.headers)).json()
    assert stats["media"]["images"] == 1 and stats["media"]["files"] == 2
    library = client.app[MEDIA]
    assert await library.collect_garbage() == 0  # nothing was left behind
