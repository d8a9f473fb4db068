"""Shared request/response declarations. Resource modules declare their own models on these
bases; the same classes validate requests and generate the OpenAPI document."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from nanny.emails import normalise_email
from nanny.phones import MAX_INPUT as MAX_PHONE_INPUT
from nanny.phones import normalise_phone
from nanny.validation import NOT_BLANK_SCHEMA, no_nul


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
    StringConstraints(max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$"),
    Field(
        json_schema_extra={"format": "email"},
        description="stored and returned in its normal form: NFKC, case-folded, trimmed",
    ),
]


KAZAKH_MOBILE = (
    r"^(\+7|8) ?\(?(70[0125678]|747|76[0-4]|77[15678]|785)\)?"
    r"[ -]?[0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{2}$"
)


def _phone(value: str) -> str:
    e164 = normalise_phone(value)
    if e164 is None:
        raise ValueError("must be a valid mobile or fixed-line phone number, e.g. 8 701 123 45 67")
    return e164


Phone = Annotated[
    str,
    StringConstraints(max_length=MAX_PHONE_INPUT),
    AfterValidator(_phone),
    Field(
        description="a mobile or fixed-line number as people write it (8 701 123 45 67, "
        "+7 (701) 123-45-67; without a country code a Kazakh number); stored and returned "
        "in E.164, e.g. +77011234567",
        examples=["+7 701 123 45 67"],
        # The document can only show the forms of Kazakh mobile numbers (which of them a
        # number may take is the phone library's knowledge); any other valid number is taken
        # as well.
        json_schema_extra={"pattern": KAZAKH_MOBILE},
    ),
]
FullName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NOT_BLANK_SCHEMA
]
Password = Annotated[
    str,
    Field(min_length=8, description="at least 8 characters, at most 72 bytes"),
    AfterValidator(_fits_bcrypt),
]


def _ascii_digits(value: object) -> object:
    # Decimal() reads any script's digits ("٢" is 2); money is written with 0-9.
    if isinstance(value, str) and not value.isascii():
        raise ValueError("must be written with the digits 0-9")
    return value


# Money as a number or a string: above 0, at most 1,000,000, at most 2 decimal places (trailing
# zeros aside), exactly as described (the string's pattern is the same rule).
MONEY_PATTERN = (
    r"^\+?0*(?:[1-9][0-9]{0,5}(?:\.[0-9]{0,2}0*)?|1000000(?:\.0*)?|\.(?:[1-9][0-9]?|0[1-9])0*)$"
)
Money = Annotated[
    Decimal,
    BeforeValidator(_ascii_digits),
    Field(gt=0, le=Decimal("1000000"), decimal_places=2, strict=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": 1000000, "multipleOf": 0.01},
                {"type": "string", "pattern": MONEY_PATTERN},
            ]
        }
    ),
]
Text = Annotated[str, StringConstraints(max_length=2000), AfterValidator(no_nul)]
