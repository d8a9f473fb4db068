"""The client frames of API.md and their handlers, registered per app by `chat_commands`.

A handler reads its frame and calls the use case: the chat's (nanny/chat/messages.py) for
sends and read marks, the rooms' (nanny/ws/rooms.py) for subscriptions, the hub's for typing."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from nanny.chat.messages import message_json
from nanny.db import chat as db_chat
from nanny.db import users as db_users
from nanny.encoding import dumps
from nanny.errors import Forbidden, NannyError, ValidationFailed
from nanny.http import security
from nanny.keys import CHAT, CHAT_HUB, MEDIA_URLS, SETTINGS
from nanny.validation import AttachmentIds, ClientId, Id, MessageContent, Seq
from nanny.ws.connection import Connection
from nanny.ws.protocol import CommandRegistry, Frame


class Subscribe(Frame):
    type: Literal["subscribe"]
    booking_id: Id
    after_seq: Seq | None = None


class Unsubscribe(Frame):
    type: Literal["unsubscribe"]
    booking_id: Id


class Send(Frame):
    type: Literal["send"]
    booking_id: Id
    content: MessageContent = ""
    client_id: ClientId | None = None
    attachment_ids: AttachmentIds = []


class Typing(Frame):
    type: Literal["typing"]
    booking_id: Id


class Read(Frame):
    type: Literal["read"]
    booking_id: Id
    seq: Seq


class Ping(Frame):
    type: Literal["ping"]


class TokenFrame(Frame):
    type: Literal["refresh", "auth"]
    token: str


def chat_commands() -> CommandRegistry:
    """The frame types of the chat."""
    commands = CommandRegistry()
    commands.register("subscribe", Subscribe, subscribe)
    commands.register("unsubscribe", Unsubscribe, unsubscribe)
    commands.register("send", Send, send, writes=True)
    commands.register("typing", Typing, typing, writes=True)
    commands.register("read", Read, read, writes=True)
    commands.register("ping", Ping, ping)
    commands.register("refresh", TokenFrame, refresh)
    # An `auth` frame after the first one is answered like a misplaced refresh.
    commands.register("auth", TokenFrame, refresh)
    return commands


async def subscribe(app: web.Application, conn: Connection, frame: Subscribe) -> None:
    await app[CHAT_HUB].rooms.subscribe(conn, frame.booking_id, frame.after_seq)


async def unsubscribe(app: web.Application, conn: Connection, frame: Unsubscribe) -> None:
    await app[CHAT_HUB].rooms.unsubscribe(conn, frame.booking_id)
    conn.send(dumps({"type": "unsubscribed", "booking_id": frame.booking_id}))


async def send(app: web.Application, conn: Connection, frame: Send) -> None:
    urls = app[MEDIA_URLS]

    def ack(message: db_chat.Message) -> None:
        body = {
            "type": "ack",
            "client_id": frame.client_id,
            "message": message_json(message, urls),
        }
        conn.send(dumps(body))

    await app[CHAT].send_message(
        conn.user_id,
        conn.role,
        frame.booking_id,
        frame.content,
        frame.client_id,
        attachment_ids=tuple(frame.attachment_ids),
        ack=ack,
    )


async def typing(app: web.Application, conn: Connection, frame: Typing) -> None:
    await app[CHAT_HUB].typing(conn, frame.booking_id)


async def read(app: web.Application, conn: Connection, frame: Read) -> None:
    if frame.seq < 1:
        raise ValidationFailed("seq must be at least 1", details={"field": "seq"})
    await app[CHAT].mark_read(conn.user_id, conn.role, frame.booking_id, frame.seq, origin=conn)


async def ping(app: web.Application, conn: Connection, frame: Ping) -> None:
    conn.send('{"type":"pong"}')


async def user_for_token(
    app: web.Application, token: str
) -> tuple[db_users.User, security.TokenClaims]:
    """The live user behind a token; Unauthorized otherwise."""
    claims = security.decode_token(app[SETTINGS], token)
    return await security.user_for_claims(app, claims), claims


async def refresh(app: web.Application, conn: Connection, frame: TokenFrame) -> None:
    if frame.type == "auth":
        raise ValidationFailed("This connection is already authenticated; use 'refresh'")
    try:
        user, claims = await user_for_token(app, frame.token)
    except NannyError as exc:
        raise ValidationFailed(exc.message, details={"field": "token"}) from None
    if user.user_id != conn.user_id:
        raise Forbidden("A refresh token must belong to the connection's own user")
    conn.role = user.role
    conn.signed_in_with(claims.token_id, claims.generation, claims.expires_at)
    conn.send(dumps({"type": "authenticated", "user_id": user.user_id}))
