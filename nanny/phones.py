"""Phone numbers as people in Kazakhstan write them (`8 701 123 45 67`, `+7 (701) 123-45-67`,
`87011234567`), read with Google's libphonenumber rules (the `phonenumbers` package) and kept
in E.164 (`+77011234567`). A number without a country code is read as a Kazakh one.

`phonenumbers` is imported by the first number read (its tables are 1.7 MiB a process): a worker
that never reads one, or shows only Kazakh numbers, never loads it."""

from __future__ import annotations

import re

DEFAULT_REGION = "KZ"
MAX_INPUT = 32
# Digits and what people put between them; letters ("vanity" numbers) are refused, not mapped.
_WRITTEN = re.compile(r"^\+?[0-9 ().\-]+$")


def normalise_phone(text: str) -> str | None:
    """`text` in E.164 when it is a valid mobile or fixed-line number, else None."""
    text = text.strip()
    if not text or len(text) > MAX_INPUT or not _WRITTEN.match(text):
        return None
    import phonenumbers

    personal = (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    if phonenumbers.number_type(number) not in personal:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164: str | None) -> str:
    """A stored number as people there write it: `+7 701 123 45 67` (libphonenumber's own
    grouping, `+7 701 123 4567`, is not how anyone in Kazakhstan or Russia reads a number)."""
    if not e164:
        return ""
    if not (e164.startswith("+") and e164[1:].isdigit()):
        return e164  # a row the migration could not read is shown as it was stored
    if len(e164) == 12 and e164.startswith("+7"):
        return f"+7 {e164[2:5]} {e164[5:8]} {e164[8:10]} {e164[10:]}"
    import phonenumbers

    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
