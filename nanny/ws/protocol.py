"""The client frame protocol: the frame types an app answers, registered explicitly with their
schema and whether they write (as home-assistant's websocket_api `async_register_command`), one
dispatcher and one error envelope.

Every client frame is one JSON object with a `type`. A frame that is not JSON, has no known type
or fails its schema gets `{"type":"error","code":…,"message":…,"ref":{type, booking_id}}` and the
connection stays open; so does a refusal by the handler (forbidden, not_found, …). A frame
registered with `writes=True` is refused to read-only users (admins) before its handler runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from nanny.chat.access import require_writer
from nanny.db.pool import DATABASE_UNAVAILABLE
from nanny.encoding import dumps
from nanny.errors import NannyError, RateLimited
from nanny.validation import validation_error
from nanny.ws.connection import Connection

log = logging.getLogger("nanny.ws")


class Frame(BaseModel):
    """A client frame: unknown fields and wrong JSON types are refused, as for REST bodies."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# handler(app, connection, validated frame)
CommandHandler = Callable[[web.Application, Connection, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    handler: CommandHandler
    schema: type[Frame]
    writes: bool


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def register(
        self,
        type_: str,
        schema: type[Frame],
        handler: CommandHandler,
        *,
        writes: bool = False,
    ) -> None:
        """Answer frames of `type_` with `handler`, which gets the frame validated by `schema`;
        `writes`: the frame changes the chat, so read-only users may not send it."""
        if type_ in self._commands:
            raise ValueError(f"frame type {type_!r} is registered already")
        self._commands[type_] = Command(handler, schema, writes)

    async def dispatch(
        self, app: web.Application, conn: Connection, data: Any, ref: dict[str, Any] | None
    ) -> None:
        if not isinstance(data, dict):
            conn.send(error_frame("bad_frame", "A frame must be a JSON object", ref))
            return
        type_ = data.get("type")
        command = self._commands.get(type_) if isinstance(type_, str) else None
        if command is None:
            conn.send(error_frame("bad_frame", f"Unknown frame type {type_!r}", ref))
            return
        try:
            frame = command.schema.model_validate(data)
        except ValidationError as exc:
            err = validation_error(exc, "frame")
            conn.send(error_frame("validation_error", err.message, ref))
            return
        try:
            if command.writes:
                require_writer(conn.role)
            await command.handler(app, conn, frame)
        except RateLimited as exc:
            conn.send(error_frame(exc.code, exc.message, ref, retry_after=exc.retry_after))
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


def error_frame(
    code: str, message: str, ref: dict[str, Any] | None, *, retry_after: int | None = None
) -> str:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message, "ref": ref}
    if retry_after is not None:  # a budget of the user's: seconds until it is refilled
        body["retry_after"] = retry_after
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
