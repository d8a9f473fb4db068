"""The client frames of API.md and their handlers."""

from __future__ import annotations

from typing import Literal

from nanny.db import users as db_users
from nanny.errors import Forbidden, NannyError, ValidationFailed
from nanny.http import security
from nanny.http.responses import dumps
from nanny.http.schemas import BookingId, ClientId, MessageContent, Seq
from nanny.keys import SETTINGS
from nanny.ws.connection import Connection
from nanny.ws.protocol import Frame, frame_handler
from nanny.ws.rooms import ChatHub


class Subscribe(Frame):
    type: Literal["subscribe"]
    booking_id: BookingId
    after_seq: Seq | None = None


class Unsubscribe(Frame):
    type: Literal["unsubscribe"]
    booking_id: BookingId


class Send(Frame):
    type: Literal["send"]
    booking_id: BookingId
    content: MessageContent
    client_id: ClientId | None = None


class Typing(Frame):
    type: Literal["typing"]
    booking_id: BookingId


class Read(Frame):
    type: Literal["read"]
    booking_id: BookingId
    seq: Seq


class Ping(Frame):
    type: Literal["ping"]


class TokenFrame(Frame):
    type: Literal["refresh", "auth"]
    token: str


@frame_handler("subscribe", Subscribe)
async def subscribe(hub: ChatHub, conn: Connection, frame: Subscribe) -> None:
    await hub.subscribe(conn, frame.booking_id, frame.after_seq)


@frame_handler("unsubscribe", Unsubscribe)
async def unsubscribe(hub: ChatHub, conn: Connection, frame: Unsubscribe) -> None:
    await hub.unsubscribe(conn, frame.booking_id)
    conn.send(dumps({"type": "unsubscribed", "booking_id": frame.booking_id}))


@frame_handler("send", Send)
async def send(hub: ChatHub, conn: Connection, frame: Send) -> None:
    hub.refuse_admin_writes(conn.role)
    await hub.send_message(
        conn.user_id, frame.booking_id, frame.content, frame.client_id, ack_to=conn
    )


@frame_handler("typing", Typing)
async def typing(hub: ChatHub, conn: Connection, frame: Typing) -> None:
    hub.refuse_admin_writes(conn.role)
    await hub.typing(conn, frame.booking_id)


@frame_handler("read", Read)
async def read(hub: ChatHub, conn: Connection, frame: Read) -> None:
    hub.refuse_admin_writes(conn.role)
    if frame.seq < 1:
        raise ValidationFailed("seq must be at least 1", details={"field": "seq"})
    await hub.mark_read(conn.user_id, frame.booking_id, frame.seq, origin=conn)


@frame_handler("ping", Ping)
async def ping(hub: ChatHub, conn: Connection, frame: Ping) -> None:
    conn.send('{"type":"pong"}')


async def user_for_token(hub: ChatHub, token: str) -> tuple[db_users.User, security.TokenClaims]:
    """The live user behind a token; Unauthorized otherwise."""
    claims = security.decode_token(hub.app[SETTINGS], token)
    return await security.user_for_claims(hub.app, claims), claims


@frame_handler("refresh", TokenFrame)
async def refresh(hub: ChatHub, conn: Connection, frame: TokenFrame) -> None:
    if frame.type == "auth":
        raise ValidationFailed("This connection is already authenticated; use 'refresh'")
    try:
        user, claims = await user_for_token(hub, frame.token)
    except NannyError as exc:
        raise ValidationFailed(exc.message, details={"field": "token"}) from None
    if user.user_id != conn.user_id:
        raise Forbidden("A refresh token must belong to the connection's own user")
    conn.role = user.role
    conn.expire_at(claims.expires_at)
    conn.send(dumps({"type": "authenticated", "user_id": user.user_id}))


# An `auth` frame after the first one is answered like a misplaced refresh.
frame_handler("auth", TokenFrame)(refresh)
