"""The one normal form of an e-mail address: what is stored, looked up, kept unique and counted
by the per-e-mail rate limits.

Before, the database matched addresses with `lower()` and the rate limits keyed them with
Python's `str.lower()`, which disagree: PostgreSQL's `lower()` follows the server's locale and
maps "İ" (U+0130) to "i" under a UTF-8 one (and only ASCII under "C"), while Python maps it to
"i" and a combining dot. "vİctim@…" then reached victim's account with a rate-limit budget of
its own. Now addresses are normalised here, once, and the database compares them exactly.

The form is Unicode NFKC with full case folding (`str.casefold`), trimmed: fullwidth and other
compatibility letters become their plain forms, and "ß" and "ẞ" fold to "ss" as "Straße" and
"STRASSE" are the same word. The local part is folded too: RFC 5321 lets a mail server tell
"Ann" from "ann", but no one hands out both, and people type either."""

from __future__ import annotations

import unicodedata


def normalise_email(address: str) -> str:
    folded = unicodedata.normalize("NFKC", address.strip()).casefold()
    # Folding can leave a string that is not NFKC (a letter and a combining mark).
    return unicodedata.normalize("NFKC", folded)
