"""Times and tenge written the way each language writes them (CLDR data through Babel), for the
pages, e-mails and, through the scripts' catalog, the pages' JavaScript.

The scripts get the very patterns and names used here (`script_formats`) instead of asking the
browser's Intl for them: browsers ship different CLDR versions and some lack Kazakh data
entirely, and a time must read the same whether the server or a script wrote it. The browser is
only asked for the one thing it knows as well as we do, a time zone's offset."""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, available_timezones

from babel import Locale
from babel.dates import format_datetime as babel_format_datetime
from babel.numbers import format_decimal, parse_pattern

DEFAULT_TIME_ZONE = "Asia/Almaty"  # the whole of Kazakhstan since March 2024
TENGE = "₸"

# Named formats: CLDR skeletons, so each language picks its own order and punctuation.
# "datetime" joins "date" and "time" with the language's own glue ("{1}, {0}").
SKELETONS = {"date": "yMMMd", "time": "Hm", "day": "MMMEd", "daymonth": "MMMd"}
RANGE_DASH = " – "


@functools.cache
def _locale(code: str) -> Locale:
    return Locale.parse(code)


@functools.cache
def patterns(locale: str) -> dict[str, str]:
    """The CLDR date patterns of the named formats for `locale`."""
    data = _locale(locale)
    out = {name: data.datetime_skeletons[skeleton].pattern for name, skeleton in SKELETONS.items()}
    glue = str(data.datetime_formats["medium"])
    out["datetime"] = glue.replace("{1}", out["date"]).replace("{0}", out["time"])
    return out


@functools.cache
def zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or DEFAULT_TIME_ZONE)


@functools.cache
def time_zone_names() -> frozenset[str]:
    """Zone names as the tz database spells them: no "localtime", no file paths, no aliases of
    the database's own layout."""
    return frozenset(
        z
        for z in available_timezones()
        if z not in ("localtime", "Factory", "posixrules")
        and not z.startswith(("posix/", "right/"))
    )


def is_time_zone(name: str) -> bool:
    return name in time_zone_names()


def format_time(value: datetime, locale: str, tz: str | None = None, form: str = "datetime") -> str:
    """`value` (an aware datetime) as a wall-clock time in zone `tz`, in format `form`."""
    return babel_format_datetime(value, patterns(locale)[form], tzinfo=zone(tz), locale=locale)


def format_range(start: datetime, end: datetime, locale: str, tz: str | None = None) -> str:
    """ "11 мая 2031 г., 04:30 – 07:00"; both dates in full when the range crosses midnight."""
    local = zone(tz)
    same_day = start.astimezone(local).date() == end.astimezone(local).date()
    tail = format_time(end, locale, tz, "time" if same_day else "datetime")
    return format_time(start, locale, tz) + RANGE_DASH + tail


@functools.cache
def money_layout(locale: str) -> tuple[str, str]:
    """The text before and after the number in the language's currency pattern, with ₸ for ¤."""
    pattern = parse_pattern(_locale(locale).currency_formats["standard"].pattern)
    prefix, suffix = pattern.prefix[0], pattern.suffix[0]
    return prefix.replace("¤", TENGE), suffix.replace("¤", TENGE)


def format_money(amount: Decimal | float | int | str, locale: str) -> str:
    """Tenge as each language writes them: `2 500 ₸` for whole tenge, `2 500,50 ₸` with tiyn
    (en: `₸2,500`). Prices are mostly whole, and `,00` on each of them is only noise."""
    value = Decimal(str(amount)).quantize(Decimal("0.01"))
    number = format_decimal(
        abs(value), format="#,##0" if value == value.to_integral() else "#,##0.00", locale=locale
    )
    prefix, suffix = money_layout(locale)
    return ("-" if value < 0 else "") + prefix + number + suffix


def script_formats(locale: str) -> dict:
    """What the scripts need to write times and money exactly as `format_time`/`format_money`."""
    data = _locale(locale)
    symbols = data.number_symbols["latn"]
    months, days = data.months, data.days

    def names(table, width: str) -> list[str]:
        return [table[width][key] for key in sorted(table[width])]

    def weekdays(context: str, width: str) -> list[str]:
        # CLDR numbers days from Monday (0); JavaScript's getUTCDay from Sunday.
        return [days[context][width][(key + 6) % 7] for key in range(7)]

    grouping = parse_pattern(data.currency_formats["standard"].pattern).grouping
    prefix, suffix = money_layout(locale)
    return {
        "patterns": patterns(locale),
        "range_dash": RANGE_DASH,
        "months": {
            context: {width: names(months[context], width) for width in ("abbreviated", "wide")}
            for context in ("format", "stand-alone")
        },
        "days": {
            context: {width: weekdays(context, width) for width in ("abbreviated", "wide")}
            for context in ("format", "stand-alone")
        },
        "number": {
            "decimal": symbols["decimal"],
            "group": symbols["group"],
            "grouping": grouping[0],
            "money_prefix": prefix,
            "money_suffix": suffix,
        },
    }
