"""Photo uploads: what is accepted and what comes back, the limits, who may upload, and the
signed URLs that serve them. Every image is a real file made here with Pillow."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import re
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image, ImageCms

from nanny.http.media import MAX_UPLOAD_BYTES
from nanny.keys import MEDIA, MEDIA_URLS, POOL
from nanny.media.processing import WORKER_NICENESS, make_executor
from nanny.media.urls import MediaUrls
from tests.factories import make_admin, make_owner, make_sitter
from tests.market import assert_error
from tests.photos import (
    GPS_IFD,
    attach,
    decode,
    encode,
    form,
    jpeg_with_gps,
    picture,
    png_bomb,
    upload,
)
from tests.rows import insert_booking


async def fetch(client, url: str, **kwargs):
    resp = await client.get(url, **kwargs)
    return resp, await resp.read()


def media_files(client) -> list[str]:
    root = client.app[MEDIA].storage.root
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize(
    ("fmt", "mode", "served_as"),
    [
        ("JPEG", "RGB", "image/jpeg"),
        ("PNG", "RGB", "image/jpeg"),
        ("PNG", "RGBA", "image/webp"),  # transparency is kept: WebP
        ("WEBP", "RGB", "image/jpeg"),
        ("HEIF", "RGB", "image/jpeg"),  # what iPhones send
    ],
)
async def test_each_accepted_format_is_re_encoded(client, booking_room, fmt, mode, served_as):
    owner, _, booking_id = booking_room
    image = picture((800, 600), mode)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize((800, 600)))
    # The declared name and type are lies on purpose: only the content counts.
    resp = await upload(
        client, owner, booking_id, encode(image, fmt), filename="x.gif", content_type="text/plain"
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert set(body) == {
        "attachment_id",
        "content_type",
        "width",
        "height",
        "bytes",
        "url",
        "thumb_url",
    }
    assert (body["content_type"], body["width"], body["height"]) == (served_as, 800, 600)
    full_resp, full = await fetch(client, body["url"])
    assert full_resp.status == 200 and full_resp.content_type == served_as
    assert len(full) == body["bytes"]
    served = decode(full)
    assert served.format == served_as.split("/")[1].upper() and served.size == (800, 600)
    assert served.getpixel((10, 10))[:3] == pytest.approx((220, 30, 30), abs=12)
    thumb_resp, thumb = await fetch(client, body["thumb_url"])
    assert thumb_resp.status == 200 and decode(thumb).size == (320, 240)


async def test_sizes_are_capped_and_never_enlarged(client, booking_room):
    owner, _, booking_id = booking_room
    big = await attach(client, owner, booking_id, encode(picture((4000, 1000)), "JPEG"))
    assert (big["width"], big["height"]) == (1600, 400)
    _, thumb = await fetch(client, big["thumb_url"])
    assert decode(thumb).size == (320, 80)
    small = await attach(client, owner, booking_id, encode(picture((200, 150)), "PNG"))
    assert (small["width"], small["height"]) == (200, 150)
    _, thumb = await fetch(client, small["thumb_url"])
    assert decode(thumb).size == (200, 150)


async def test_gps_and_all_other_metadata_are_stripped(client, booking_room):
    owner, _, booking_id = booking_room
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the upload has GPS
    body = await attach(client, owner, booking_id, original)
    for url in (body["url"], body["thumb_url"]):
        _, data = await fetch(client, url)
        served = decode(data)
        assert len(served.getexif()) == 0
        assert not served.getexif().get_ifd(GPS_IFD)
        assert not {"exif", "icc_profile", "xmp", "comment"} & set(served.info)
        assert b"Exif" not in data and b"PhoneMaker" not in data


async def test_exif_orientation_is_applied(client, booking_room):
    owner, _, booking_id = booking_room
    # Orientation 6: the sensor's image must be turned 90 degrees clockwise to be upright.
    body = await attach(client, owner, booking_id, jpeg_with_gps((640, 480), orientation=6))
    assert (body["width"], body["height"]) == (480, 640)
    _, data = await fetch(client, body["url"])
    upright = decode(data)
    assert upright.size == (480, 640)
    # The stored top-left (red) quarter is now top-right; nothing says to turn it again.
    assert upright.getpixel((470, 10))[0] > 180 and upright.getpixel((10, 10))[2] > 150
    assert upright.getexif().get(0x0112) is None


async def test_a_text_file_named_jpg_and_a_png_bomb_are_refused(client, booking_room):
    owner, _, booking_id = booking_room
    resp = await upload(client, owner, booking_id, b"just some text\n" * 20, filename="cat.jpg")
    assert resp.status == 400
    assert_error(await resp.json(), "validation_error", "file")
    bomb = png_bomb(10_000)
    assert len(bomb) < 200_000  # 100 megapixels in a small file
    started = time.monotonic()
    resp = await upload(client, owner, booking_id, bomb, filename="bomb.png")
    assert resp.status == 400
    data = await resp.json()
    assert_error(data, "validation_error", "file")
    assert "megapixels" in data["error"]
    assert time.monotonic() - started < 2  # refused from the header, never decoded
    truncated = encode(picture(), "JPEG")[:300]
    resp = await upload(client, owner, booking_id, truncated)
    assert resp.status == 400
    assert await client.app[POOL].fetchval("SELECT count(*) FROM images") == 0
    assert media_files(client) == []


async def test_forms_other_than_one_file_field_are_refused(client, booking_room):
    owner, _, booking_id = booking_room
    path = f"/api/bookings/{booking_id}/attachments"
    jpeg = encode(picture(), "JPEG")
    resp = await client.post(path, data=jpeg, headers=owner.headers)  # not a form
    assert resp.status == 400
    two = form(jpeg)
    two.add_field("file", jpeg, filename="b.jpg", content_type="image/jpeg")
    assert (await client.post(path, data=two, headers=owner.headers)).status == 400
    other = form(jpeg)
    other.add_field("caption", "hello")
    assert (await client.post(path, data=other, headers=owner.headers)).status == 400
    boundary = "b0undary"
    broken = f"--{boundary}\r\nno headers here--{boundary}--\r\n".encode()
    resp = await client.post(
        path,
        data=broken,
        headers=owner.headers | {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status == 400
    assert_error(await resp.json(), "validation_error", "file")


async def test_one_byte_over_10_mib_is_refused_with_413(client, booking_room):
    owner, _, booking_id = booking_room
    resp = await upload(client, owner, booking_id, os.urandom(MAX_UPLOAD_BYTES + 1))
    assert resp.status == 413
    data = await resp.json()
    assert_error(data, "payload_too_large", "file")
    assert data["details"]["limit"] == MAX_UPLOAD_BYTES
    assert await client.app[POOL].fetchval("SELECT count(*) FROM images") == 0


async def _raw_upload(client, owner, path: str, declared: int | None, sent: int) -> bytes:
    """Declare a body of `declared` bytes (None: chunked, no end in sight), send `sent` bytes of
    a file, then wait for an answer without sending the rest of the body."""
    boundary = "rawboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    length = "Transfer-Encoding: chunked" if declared is None else f"Content-Length: {declared}"
    reader, writer = await asyncio.open_connection(client.host, client.port)

    def body(data: bytes) -> bytes:
        return data if declared is not None else b"%x\r\n%s\r\n" % (len(data), data)

    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: {client.host}\r\n"
            f"Authorization: Bearer {owner.token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n{length}\r\n\r\n"
        ).encode()
        + body(head)
    )
    chunk = b"\xff" * 65536
    written = 0
    while written < sent:
        writer.write(body(chunk))
        written += len(chunk)
        await writer.drain()
    # A server that waited for the whole body would answer nothing: the read times out.
    answer = await asyncio.wait_for(reader.read(4096), timeout=10)
    writer.close()
    return answer


async def test_413_comes_before_the_client_has_sent_everything(client, booking_room):
    owner, _, booking_id = booking_room
    path = f"/api/bookings/{booking_id}/attachments"
    # A declared length beyond the limit: answered before any of the file is read.
    answer = await _raw_upload(client, owner, path, declared=50 * 2**20, sent=0)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in answer.lower()
    # A declared length within the limit (and its framing), and a file part passing the limit
    # while 8 KiB of the body are still to come: answered the moment the limit is passed.
    declared = MAX_UPLOAD_BYTES + 12 * 1024 + 128
    answer = await _raw_upload(client, owner, path, declared, sent=MAX_UPLOAD_BYTES + 4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # A chunked body with no end: the same once the limit is passed.
    answer = await _raw_upload(client, owner, path, None, sent=MAX_UPLOAD_BYTES + 2**17)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert await client.app[POOL].fetchval("SELECT count(*) FROM images") == 0


async def test_strangers_get_404_and_admins_403_before_anything_is_read(client, booking_room):
    owner, sitter, booking_id = booking_room
    stranger = await make_owner(client)
    jpeg = encode(picture(), "JPEG")
    resp = await upload(client, stranger, booking_id, jpeg)
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")
    assert (await upload(client, owner, 999_999, jpeg)).status == 404
    admin = await make_admin(client)
    assert (await upload(client, admin, booking_id, jpeg)).status == 403
    resp = await client.post(f"/api/bookings/{booking_id}/attachments", data=form(jpeg))
    assert resp.status == 401
    # Even a body over the limit is a 404 to a stranger: nothing of it is looked at.
    answer = await _raw_upload(
        client, stranger, f"/api/bookings/{booking_id}/attachments", 50 * 2**20, 0
    )
    assert answer.startswith(b"HTTP/1.1 404")
    assert (await upload(client, sitter, booking_id, jpeg)).status == 201


async def test_urls_are_signed_expiring_and_served_with_cache_headers(client, booking_room):
    owner, _, booking_id = booking_room
    body = await attach(client, owner, booking_id)
    resp, data = await fetch(client, body["url"])  # no token, no cookie
    assert resp.status == 200 and decode(data).format == "JPEG"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.content_type == "image/jpeg"
    max_age = int(re.fullmatch(r"private, max-age=(\d+)", resp.headers["Cache-Control"])[1])
    assert 4 * 3600 - 5 <= max_age <= 5 * 3600
    etag = resp.headers["ETag"]
    again = await client.get(body["url"], headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    # The URL stays the same for a while (expiry on the hour), so the browser's copy is reused.
    urls: MediaUrls = client.app[MEDIA_URLS]
    hour = int(time.time()) // 3600 * 3600
    image_id = body["attachment_id"]
    assert urls.url(image_id, "full", now=hour + 1) == urls.url(image_id, "full", now=hour + 3599)
    assert urls.url(image_id, "full", now=hour + 1) != urls.url(image_id, "full", now=hour + 3601)
    query = parse_qs(urlsplit(body["url"]).query)
    path = urlsplit(body["url"]).path

    def url(**over) -> str:
        q = {k: v[0] for k, v in query.items()} | over
        return f"{path}?variant={q['variant']}&expires={q['expires']}&sig={q['sig']}"

    forged = [
        url(sig="A" * 22),
        url(variant="thumb"),  # the signature of the full size does not open the thumbnail
        url(expires=str(int(query["expires"][0]) + 3600)),  # nor a later expiry
        f"/api/media/{body['attachment_id'] + 1}?{urlsplit(body['url']).query}",
    ]
    for bad in forged:
        resp = await client.get(bad)
        assert resp.status == 403, bad
        assert_error(await resp.json(), "forbidden")
    # Signed by the server, but hours ago: expired.
    old = urls.url(body["attachment_id"], "full", now=time.time() - 6 * 3600)
    resp = await client.get(old)
    assert resp.status == 403
    assert "expired" in (await resp.json())["error"]
    # A URL signed with another server's key opens nothing here.
    foreign = MediaUrls.from_secret("another-secret-" + "y" * 40).url(body["attachment_id"], "full")
    assert (await client.get(foreign)).status == 403
    # A valid signature of an image that is gone: 404.
    gone = urls.url(999_999, "full")
    assert (await client.get(gone)).status == 404
    assert (await client.get(f"{path}?variant=full")).status == 400


async def test_a_failed_upload_leaves_no_file_and_no_row(client, booking_room):
    owner, _, booking_id = booking_room
    library = client.app[MEDIA]
    real = library.storage

    class FailingSecondPut:
        """The real storage, failing on its second write: the upload breaks halfway."""

        root = real.root

        def __init__(self):
            self.puts = 0

        async def put(self, key, data):
            self.puts += 1
            if self.puts == 2:
                raise RuntimeError("the disk broke")
            return await real.put(key, data)

        get, delete = real.get, real.delete

    library.storage = FailingSecondPut()
    try:
        resp = await upload(client, owner, booking_id, encode(picture(), "JPEG"))
    finally:
        library.storage = real
    assert resp.status == 500
    pool = client.app[POOL]
    assert await pool.fetchval("SELECT count(*) FROM images") == 0
    assert await pool.fetchval("SELECT count(*) FROM media_files") == 0
    assert media_files(client) == []
    # The same photo again, with storage working: stored once, files named by content hash.
    body = await attach(client, owner, booking_id, encode(picture(), "JPEG"))
    files = media_files(client)
    assert len(files) == 2 and all(re.fullmatch(r"[0-9a-f]{64}", name) for name in files)
    twin = await attach(client, owner, booking_id, encode(picture(), "JPEG"))
    assert twin["attachment_id"] != body["attachment_id"]
    assert media_files(client) == files  # the same bytes are kept once
    assert await pool.fetchval("SELECT array_agg(refs) FROM media_files") == [2, 2]


async def test_a_burst_of_uploads_does_not_stall_the_event_loop(client, booking_room):
    """Each of these images takes about a second of decoding and encoding. Done on the event
    loop, every upload would freeze it (and every chat and REST request with it) for that long;
    in the image workers the loop keeps ticking, and the uploads queue for a worker."""
    owner, _, booking_id = booking_room
    heavy = io.BytesIO()
    Image.linear_gradient("L").resize((6000, 6000)).convert("RGB").save(
        heavy, "PNG", compress_level=1
    )
    loop = asyncio.get_running_loop()
    worst = 0.0
    done = False

    async def ticker():
        nonlocal worst
        while not done:
            before = loop.time()
            await asyncio.sleep(0.01)
            worst = max(worst, loop.time() - before - 0.01)

    ticking = asyncio.create_task(ticker())
    started = loop.time()
    uploads = [
        asyncio.create_task(upload(client, owner, booking_id, heavy.getvalue())) for _ in range(4)
    ]
    health = []
    for _ in range(5):
        t = loop.time()
        assert (await client.get("/api/health")).status == 200
        health.append(loop.time() - t)
        await asyncio.sleep(0.1)
    answers = await asyncio.gather(*uploads)
    took = loop.time() - started
    done = True
    await ticking
    assert [r.status for r in answers] == [201] * 4
    assert took > 1.0  # the work was real
    assert worst < 0.5, f"the loop stalled for {worst:.2f}s"
    assert max(health) < 0.5, health


async def test_worker_processes_do_the_same_work(aiohttp_client, settings, tmp_path):
    """MEDIA_EXECUTOR=process: the image work in worker processes, with the same result."""
    from nanny.app import create_app

    client = await aiohttp_client(
        create_app(dataclasses.replace(settings, media_executor="process", media_workers=1))
    )
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    booking_id = await insert_booking(client, owner.user_id, sitter.user_id)
    body = await attach(client, owner, booking_id, jpeg_with_gps((640, 480), orientation=6))
    assert (body["width"], body["height"]) == (480, 640)
    resp = await upload(client, owner, booking_id, png_bomb(10_000))
    assert resp.status == 400
    _, data = await fetch(client, body["url"])
    assert len(decode(data).getexif()) == 0


def test_image_workers_yield_the_cpu_to_the_event_loop():
    """Worker threads and processes run at a lower priority than the loop's thread."""
    loop_priority = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    for kind in ("thread", "process"):
        executor = make_executor(kind, 1)
        try:
            assert executor.submit(os.getpriority, os.PRIO_PROCESS, 0).result() == min(
                19, loop_priority + WORKER_NICENESS
            ), kind
        finally:
            executor.shutdown()


async def test_colour_profiles_grey_16_bit_and_just_over_40_megapixels(client, booking_room):
    owner, _, booking_id = booking_room
    # A colour profile is applied, then dropped.
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    body = await attach(client, owner, booking_id, encode(picture(), "JPEG", icc_profile=srgb))
    _, data = await fetch(client, body["url"])
    served = decode(data)
    assert "icc_profile" not in served.info
    assert served.getpixel((10, 10)) == pytest.approx((220, 30, 30), abs=12)
    # 16-bit greyscale (scanners, some editors) becomes 8-bit.
    grey = Image.linear_gradient("L").resize((400, 300)).convert("I;16")
    grey = grey.point(lambda v: v * 256)
    body = await attach(client, owner, booking_id, encode(grey, "PNG"))
    _, data = await fetch(client, body["url"])
    served = decode(data)
    # Black to white, not clipped to white from the first 1/256 of the range on.
    assert served.getpixel((200, 1))[0] < 10 and served.getpixel((200, 299))[0] > 245
    assert served.getpixel((200, 150))[0] == pytest.approx(128, abs=10)
    # Refused by our own limit (Pillow's own refuses only beyond twice as many).
    resp = await upload(client, owner, booking_id, png_bomb(6_500))
    assert resp.status == 400
    assert "6500 x 6500" in (await resp.json())["error"]


async def test_an_image_whose_file_is_gone_is_a_404(client, booking_room):
    owner, _, booking_id = booking_room
    body = await attach(client, owner, booking_id)
    library = client.app[MEDIA]
    key = await client.app[POOL].fetchval(
        "SELECT full_key FROM images WHERE image_id = $1", body["attachment_id"]
    )
    await library.storage.delete(key)
    await library.storage.delete(key)  # deleting what is not there is no error
    resp = await client.get(body["url"])
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")
    with pytest.raises(ValueError):
        library.storage.path("../../etc/passwd")
