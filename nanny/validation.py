"""Validation shared by the REST bodies and the WebSocket frames: the field types both accept and
how a refused value reads (`validation_error`)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from nanny import formats
from nanny.errors import ValidationFailed


def no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing it here keeps it a 400, not a database error.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# What pydantic's strip_whitespace removes (Unicode's White_Space, as Rust's trim), spelled out:
# a pattern's \s means other sets in other regex engines (Python's adds U+001C-U+001F,
# ECMA-262's U+FEFF and not U+0085).
_SPACE = "\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
# A string with something besides whitespace, and no NUL: how the document describes a field the
# server strips and then refuses when empty.
NOT_BLANK = f"^[^\\x00]*[^\\x00{_SPACE}][^\\x00]*$"
NOT_BLANK_SCHEMA = Field(json_schema_extra={"pattern": NOT_BLANK})


# Chat: a message is up to 4000 characters once trimmed (stored trimmed), and has text or
# photos (the use case checks that: nanny/chat/messages.py); a client_id makes a send safely
# retryable and is unique per sender.
MessageContent = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=4000),
    AfterValidator(no_nul),  # WebSocket frames do not pass through parse_body's NUL check
    Field(description="the text, trimmed; may be empty when attachment_ids are sent"),
]
ClientId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$"),
    Field(description="the client's id for the message (e.g. a UUID), printable ASCII"),
]
# Every id is a PostgreSQL `integer`: anything outside 1..MAX_ID is a 400, never a database error.
MAX_ID = 2_147_483_647
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Seq = Annotated[int, Field(ge=0, le=2**53)]


def _storable_time(value: datetime) -> datetime:
    # asyncpg sends the UTC value: past year 9999 it overflows (a 500 once), and exactly
    # 9999-12-31T23:59:59.999999 or 0001-01-01T00:00 become PostgreSQL's +-infinity.
    try:
        utc = value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        utc = datetime.max
    if not datetime.min < utc < datetime.max:
        raise ValueError("must lie between 0001-01-01 and 9999-12-31 in UTC")
    return value


def decimal_parameter(minimum: int, maximum: int, description: str | None = None) -> Any:
    """A decimal query parameter from `minimum` to `maximum`, both included. Described as the
    number it is (pydantic would describe any string), so the document and the check agree."""
    schema: dict[str, Any] = {"type": "number", "minimum": minimum, "maximum": maximum}
    if description:
        schema["description"] = description
    return Annotated[
        Decimal, Field(ge=minimum, le=maximum, allow_inf_nan=False), WithJsonSchema(schema)
    ]


# Every time the API reads, in bodies, query parameters and frames alike.
Timestamp = Annotated[AwareDatetime, AfterValidator(_storable_time)]


def _known_zone(value: str) -> str:
    if not formats.is_time_zone(value):
        raise ValueError("must be an IANA time zone name, such as Asia/Almaty")
    return value


TimeZoneName = Annotated[
    str,
    Field(max_length=64),
    AfterValidator(_known_zone),
    # The names themselves, so that the document accepts exactly what the server does.
    WithJsonSchema({"type": "string", "enum": sorted(formats.time_zone_names())}),
]


def _distinct(ids: list[int]) -> list[int]:
    if len(set(ids)) != len(ids):
        raise ValueError("must not name a photo twice")
    return ids


# Photos of a chat message: ids from POST /api/bookings/{id}/attachments, in the order shown.
AttachmentIds = Annotated[
    list[Id],
    Field(
        max_length=4,
        description="up to 4 photos uploaded by the sender to this booking and not sent yet",
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_distinct),
]


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def validation_error(exc: ValidationError, where: str = "body") -> ValidationFailed:
    """The API's validation_error for the first problem pydantic found in `where` (the body,
    the query, a frame)."""
    first = exc.errors(include_url=False)[0]
    name = _field_name(first["loc"])
    kind = first["type"]
    if kind == "json_invalid":
        return ValidationFailed(
            f"Malformed JSON: {first['msg'].removeprefix('Invalid JSON: ')}",
            details={"field": where},
        )
    if kind == "extra_forbidden":
        message = f"Unknown field '{name}'"
    elif kind == "missing":
        message = f"Field '{name}' is required"
    elif kind == "model_type":
        message = f"The {where} must be a JSON object"
    else:
        message = f"Invalid '{name}': {first['msg'].removeprefix('Value error, ')}"
    return ValidationFailed(message, details={"field": name, "reason": kind})
