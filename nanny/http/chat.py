"""Chat over REST: history, send and read marks, for apps in the background. They call the same
use cases as the WebSocket frames (nanny/chat/messages.py), so messages are checked, stored,
numbered and delivered live exactly alike."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from nanny.chat.messages import message_json
from nanny.db import users as db_users
from nanny.errors import Forbidden, NotFound, RateLimited, Unauthorized, ValidationFailed
from nanny.http.endpoint import endpoint, path_id
from nanny.http.media import ImageOut
from nanny.http.responses import json_response, list_response
from nanny.http.schemas import Body, Out, Paging
from nanny.keys import CHAT, MEDIA_URLS
from nanny.validation import AttachmentIds, ClientId, MessageContent, Seq

routes = web.RouteTableDef()


class HistoryQuery(Paging):
    after_seq: Seq | None = Field(None, description="only messages with a greater seq")
    before_seq: Seq | None = Field(
        None,
        description="only messages with a smaller seq; without after_seq the page is taken "
        "from the newest end (the latest `limit` before it), still in ascending order",
    )


class SendBody(Body):
    content: MessageContent = ""
    client_id: ClientId | None = Field(
        None, description="repeat it to retry safely: the original message comes back"
    )
    attachment_ids: AttachmentIds = []


class ReadBody(Body):
    seq: int = Field(ge=1, le=2**53, description="everything up to this seq is read")


class AttachmentOut(ImageOut):
    attachment_id: int


class ChatMessageOut(Out):
    message_id: int
    booking_id: int
    chat_id: int
    seq: int
    sender_id: int
    content: str
    client_id: str | None
    sent_at: str
    attachments: list[AttachmentOut]


@routes.get("/api/bookings/{id}/messages", name="booking_messages")
@endpoint(
    "A booking's chat history, ascending seq (X-Total-Count counts the seq range)",
    tag="chat",
    query=HistoryQuery,
    response=list[ChatMessageOut],
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
)
async def list_messages(
    request: web.Request, user: db_users.User, query: HistoryQuery
) -> web.Response:
    messages, total = await request.app[CHAT].history(
        user.user_id,
        user.role,
        path_id(request),
        after_seq=query.after_seq,
        before_seq=query.before_seq,
        limit=query.limit,
        offset=query.offset,
    )
    urls = request.app[MEDIA_URLS]
    return list_response([message_json(m, urls) for m in messages], total)


@routes.post("/api/bookings/{id}/messages", name="send_message")
@endpoint(
    "Send a message (text, photos or both); delivered live exactly as a WebSocket send",
    tag="chat",
    body=SendBody,
    response=ChatMessageOut,
    status=201,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, RateLimited),
)
async def send_message(request: web.Request, user: db_users.User, body: SendBody) -> web.Response:
    message, _ = await request.app[CHAT].send_message(
        user.user_id,
        user.role,
        path_id(request),
        body.content,
        body.client_id,
        attachment_ids=tuple(body.attachment_ids),
    )
    # A retried client_id answers 201 with the original message, like the first attempt.
    return json_response(message_json(message, request.app[MEDIA_URLS]), status=201)


@routes.post("/api/bookings/{id}/read", name="mark_read")
@endpoint(
    "Mark the chat read up to seq for the caller (marks never move back)",
    tag="chat",
    body=ReadBody,
    status=204,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
)
async def mark_read(request: web.Request, user: db_users.User, body: ReadBody) -> web.Response:
    await request.app[CHAT].mark_read(user.user_id, user.role, path_id(request), body.seq)
    return web.Response(status=204)
