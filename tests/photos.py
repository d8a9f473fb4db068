"""Real image files made in the test with Pillow (and pillow-heif for HEIC), and uploads of them
through the real API."""

from __future__ import annotations

import io
import struct
import zlib

import aiohttp
import pillow_heif
from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def picture(size: tuple[int, int] = (640, 480), mode: str = "RGB") -> Image.Image:
    """Not a flat colour: the top-left quarter red, the rest blue, so a turn shows."""
    width, height = size
    image = Image.new(mode, size, (20, 40, 200) if mode == "RGB" else (20, 40, 200, 255))
    image.paste(
        (220, 30, 30) if mode == "RGB" else (220, 30, 30, 255), (0, 0, width // 2, height // 2)
    )
    return image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    if fmt == "HEIF":
        pillow_heif.from_pillow(image).save(out, quality=80, **options)
    else:
        image.save(out, format=fmt, **options)
    return out.getvalue()


def jpeg_with_gps(size=(640, 480), *, orientation: int | None = None) -> bytes:
    """A JPEG whose EXIF holds a GPS position in Almaty (and an orientation when given)."""
    image = picture(size)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif.get_ifd(GPS_IFD).update(
        {1: "N", 2: (43.0, 14.0, 18.0), 3: "E", 4: (76.0, 53.0, 45.0)}  # lat, lon
    )
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return encode(image, "JPEG", exif=exif.tobytes(), quality=90)


def png_bomb(side: int = 20_000) -> bytes:
    """A valid PNG of side x side pixels (400 megapixels) that is a few hundred KiB: one grey
    colour, compressed. Decoding it would take 400 MB."""
    row = b"\x00" + b"\x80" * side
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def form(data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg"):
    body = aiohttp.FormData()
    body.add_field("file", data, filename=filename, content_type=content_type)
    return body


async def upload(client, account, booking_id: int, data: bytes, **form_options):
    return await client.post(
        f"/api/bookings/{booking_id}/attachments",
        data=form(data, **form_options),
        headers=account.headers,
    )


async def attach(client, account, booking_id: int, data: bytes | None = None) -> dict:
    """Upload a photo to the booking's chat; its attachment JSON."""
    resp = await upload(client, account, booking_id, data or encode(picture(), "JPEG"))
    assert resp.status == 201, await resp.text()
    return await resp.json()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
