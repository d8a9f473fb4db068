"""Shared request/response declarations. Resource modules declare their own models on these
bases; the same classes validate requests and generate the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from nanny.emails import normalise_email


class Body(BaseModel):
    """A JSON request body: unknown fields and wrong JSON types are refused (no coercion)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Query(BaseModel):
    """Query parameters: strings by nature, so values are parsed leniently; unknown ones ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Out(BaseModel):
    """A response shape, declared for the OpenAPI document."""

    model_config = ConfigDict(frozen=True)


class Paging(Query):
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


class ErrorOut(Out):
    error: str
    code: str
    details: dict | None = None


class MessageOut(Out):
    message: str


def _fits_bcrypt(value: str) -> str:
    # bcrypt only reads 72 bytes; refusing longer passwords beats silently ignoring their tail.
    if len(value.encode()) > 72:
        raise ValueError("must be at most 72 bytes")
    return value


def _normalised_email(value: object) -> object:
    # Before the checks, so they see what is stored (NFKC turns a fullwidth at sign into "@").
    return normalise_email(value) if isinstance(value, str) else value


Email = Annotated[
    str,
    BeforeValidator(_normalised_email),
    StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    Field(
        json_schema_extra={"format": "email"},
        description="stored and returned in its normal form: NFKC, case-folded, trimmed",
    ),
]
Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\+[1-9][0-9]{7,14}$"),
    Field(description="E.164, e.g. +77010000001"),
]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Password = Annotated[
    str,
    Field(min_length=8, description="at least 8 characters, at most 72 bytes"),
    AfterValidator(_fits_bcrypt),
]
Money = Annotated[
    Decimal,
    Field(gt=0, le=Decimal("1000000"), decimal_places=2, strict=False),
]


def no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing it here keeps it a 400, not a database error.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, StringConstraints(max_length=2000), AfterValidator(no_nul)]
# Chat: a message is 1..4000 characters once trimmed (stored trimmed); a client_id makes a send
# safely retryable and is unique per sender.
MessageContent = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4000),
    AfterValidator(no_nul),  # WebSocket frames do not pass through parse_body's NUL check
]
ClientId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$"),
    Field(description="the client's id for the message (e.g. a UUID), printable ASCII"),
]


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


# Every time the API reads, in bodies and query parameters alike.
Timestamp = Annotated[AwareDatetime, AfterValidator(_storable_time)]
# Every id is a PostgreSQL `integer`: anything outside 1..MAX_ID is a 400, never a database error.
MAX_ID = 2_147_483_647
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
BookingId = Id  # the name the WebSocket frames import
Seq = Annotated[int, Field(ge=0, le=2**53)]
