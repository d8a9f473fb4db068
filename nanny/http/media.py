"""Photos over REST: uploads of chat attachments, and the signed URLs that serve every image.

An upload is `multipart/form-data` with one field, `file`, read as a stream: the app's 1 MiB
body limit does not apply, this one of 10 MiB does, and a body passing it is answered 413 at once
(the connection then closes: the rest is never read). The bytes go to the image worker
(nanny/media/processing.py) only once the caller is known to be allowed to upload there.

`GET /api/media/{id}` checks the URL's signature and expiry and nothing else, so `<img>` tags
and apps load it without headers; whoever was shown the URL was allowed to see the image."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Literal

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import Field

from nanny.chat.access import require_participant, require_writer
from nanny.db import users as db_users
from nanny.errors import Forbidden, NotFound, PayloadTooLarge, Unauthorized, ValidationFailed
from nanny.http.endpoint import endpoint, path_id
from nanny.http.responses import json_response
from nanny.http.schemas import Out, Query
from nanny.keys import MEDIA, MEDIA_URLS, POOL
from nanny.media.images import ImageRefused, Processed

log = logging.getLogger("nanny.media")
routes = web.RouteTableDef()

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# Room for the multipart boundaries and part headers around the file.
_FRAMING_BYTES = 16 * 1024
_CHUNK = 64 * 1024
FILE_FIELD = "file"
IMAGE_TYPES = ("image/jpeg", "image/webp")


class ImageOut(Out):
    url: str = Field(description="the display size (longest side at most 1600 px), signed")
    thumb_url: str = Field(description="the thumbnail (longest side at most 320 px), signed")
    width: int = Field(description="of the display size")
    height: int = Field(description="of the display size")


class AttachmentUploadOut(ImageOut):
    attachment_id: int
    content_type: Literal["image/jpeg", "image/webp"]
    bytes: int = Field(description="size of the display file")


class MediaQuery(Query):
    variant: Literal["full", "thumb"]
    expires: int = Field(ge=0, le=2**53, description="Unix time the URL stops working")
    sig: str = Field(max_length=64, description="the server's signature of id, variant, expires")


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"An upload may be at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB",
        details={"field": FILE_FIELD, "limit": MAX_UPLOAD_BYTES},
    )


def _bad_form(message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"field": FILE_FIELD})


async def read_upload(request: web.Request) -> bytes:
    """The bytes of the form's one `file` field, read as they arrive, never more than
    MAX_UPLOAD_BYTES of them: 413 the moment the limit is passed."""
    length = request.content_length
    if length is not None and length > MAX_UPLOAD_BYTES + _FRAMING_BYTES:
        raise _too_large()
    if request.content_type != "multipart/form-data":
        raise _bad_form("Send the image as multipart/form-data in a field named 'file'")
    data = bytearray()
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader) or part.name != FILE_FIELD:
                raise _bad_form("The form must have one field, 'file', holding the image")
            if data:
                raise _bad_form("Send one image per upload")
            while chunk := await part.read_chunk(_CHUNK):
                data += chunk
                if len(data) > MAX_UPLOAD_BYTES:
                    raise _too_large()
    except (
        ValueError,
        AssertionError,
        HttpProcessingError,
        aiohttp.ClientPayloadError,
        ConnectionError,
    ):
        raise _bad_form("The multipart/form-data body is malformed or incomplete") from None
    if not data:
        raise _bad_form("The form must have one field, 'file', holding the image")
    return bytes(data)


@contextlib.asynccontextmanager
async def uploaded_image(request: web.Request) -> AsyncIterator[Processed]:
    """The request's image, read and re-encoded, while this process's upload slot is held."""
    processor = request.app[MEDIA].processor
    async with processor.admit():
        data = await read_upload(request)
        try:
            processed = await processor.process(data)
        except ImageRefused as exc:
            raise _bad_form(str(exc)) from None
        del data
        yield processed


@routes.post("/api/bookings/{id}/attachments", name="upload_attachment")
@endpoint(
    "Upload a photo for the booking's chat (participants); send it with a message's "
    "attachment_ids within 24 hours, or it is deleted",
    tag="chat",
    upload=FILE_FIELD,
    response=AttachmentUploadOut,
    status=201,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, PayloadTooLarge),
)
async def upload_attachment(request: web.Request, user: db_users.User) -> web.Response:
    booking_id = path_id(request)
    require_writer(user.role)
    await require_participant(request.app[POOL], user.user_id, booking_id)
    async with uploaded_image(request) as processed:
        image = await request.app[MEDIA].add_attachment(
            processed, booking_id=booking_id, uploader_id=user.user_id
        )
    body = {
        "attachment_id": image.image_id,
        "content_type": image.content_type,
        "bytes": image.bytes,
    } | request.app[MEDIA_URLS].image_json(image.image_id, image.width, image.height)
    return json_response(body, status=201)


@routes.get("/api/media/{id}", name="media")
@endpoint(
    "An image file by its signed URL (as issued in attachments and pet photos; no token "
    "needed). 403 for a forged or expired URL",
    tag="media",
    query=MediaQuery,
    produces=IMAGE_TYPES,
    errors=(ValidationFailed, Forbidden, NotFound),
    headers={
        "Cache-Control": "private, max-age = the seconds the URL has left",
        "ETag": "the file's content hash",
    },
)
async def media(request: web.Request, query: MediaQuery) -> web.Response:
    image_id = path_id(request)
    urls = request.app[MEDIA_URLS]
    problem = urls.check(image_id, query.variant, query.expires, query.sig)
    if problem == "forged":
        raise Forbidden("This image URL is not valid", details={"field": "sig"})
    if problem == "expired":
        raise Forbidden("This image URL has expired; ask for the image again")
    library = request.app[MEDIA]
    found = await library.locate(image_id, query.variant)
    if found is None:
        raise NotFound("No such image")
    headers = {
        "Cache-Control": f"private, max-age={urls.seconds_left(query.expires)}",
        "ETag": found.etag,
        "X-Content-Type-Options": "nosniff",
        # Nothing in an image file runs, even when opened on its own.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if found.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    data = await library.storage.get(found.key)
    if data is None:
        log.warning("image %s: file %s is missing from storage", image_id, found.key)
        raise NotFound("No such image")
    return web.Response(body=data, content_type=found.content_type, headers=headers)
