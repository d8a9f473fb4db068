"""The client frame protocol: a registry of frame type -> (handler, pydantic schema), one
dispatcher and one error envelope (as home-assistant's websocket_api does).

Every client frame is one JSON object with a `type`. A frame that is not JSON, has no known type
or fails its schema gets `{"type":"error","code":…,"message":…,"ref":{type, booking_id}}` and the
connection stays open; so does a handler's NannyError (forbidden, not_found, …)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from nanny.db.pool import DATABASE_UNAVAILABLE
from nanny.encoding import dumps
from nanny.errors import NannyError
from nanny.validation import validation_error
from nanny.ws.connection import Connection
from nanny.ws.rooms import ChatHub

log = logging.getLogger("nanny.ws")


class Frame(BaseModel):
    """A client frame: unknown fields and wrong JSON types are refused, as for REST bodies."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


FrameHandler = Callable[[ChatHub, Connection, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FrameType:
    handler: FrameHandler
    schema: type[Frame]


FRAME_TYPES: dict[str, FrameType] = {}


def frame_handler(type_: str, schema: type[Frame]) -> Callable[[FrameHandler], FrameHandler]:
    """Register the handler of a client frame type; it gets the validated frame."""

    def register(handler: FrameHandler) -> FrameHandler:
        FRAME_TYPES[type_] = FrameType(handler, schema)
        return handler

    return register


def error_frame(code: str, message: str, ref: dict[str, Any] | None) -> str:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message, "ref": ref}
    return dumps(body)


def _ref(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        return None
    ref = {}
    if isinstance(data.get("type"), str):
        ref["type"] = data["type"][:32]
    if isinstance(data.get("booking_id"), int):
        ref["booking_id"] = data["booking_id"]
    return ref or None


def parse(text: str) -> tuple[Any, dict[str, Any] | None]:
    """The frame's JSON, or None. orjson refuses what could not be sent back or stored: escaped
    lone surrogates (not text; echoing one in an error frame would fail) and nesting deeper than
    1,024 levels."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, None
    return data, _ref(data)


async def dispatch(hub: ChatHub, conn: Connection, data: Any, ref: dict[str, Any] | None) -> None:
    if not isinstance(data, dict):
        conn.send(error_frame("bad_frame", "A frame must be a JSON object", ref))
        return
    type_ = data.get("type")
    known = FRAME_TYPES.get(type_) if isinstance(type_, str) else None
    if known is None:
        conn.send(error_frame("bad_frame", f"Unknown frame type {type_!r}", ref))
        return
    try:
        frame = known.schema.model_validate(data)
    except ValidationError as exc:
        err = validation_error(exc, "frame")
        conn.send(error_frame("validation_error", err.message, ref))
        return
    try:
        await known.handler(hub, conn, frame)
    except NannyError as exc:
        conn.send(error_frame(exc.code, exc.message, ref))
    except asyncio.CancelledError:
        raise
    except DATABASE_UNAVAILABLE as exc:
        log.warning("frame %s failed, database unavailable: %r", type_, exc)
        conn.send(error_frame("unavailable", "The database is unavailable; try again", ref))
    except Exception:
        log.exception("frame %s from user %s failed", type_, conn.user_id)
        conn.send(error_frame("internal_error", "Something went wrong on our side", ref))
