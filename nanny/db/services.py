"""Services and the public search over them.

Ratings come from the aggregates kept on `sitters` (rating_sum, rating_count), updated with
each review write, so neither search nor a service read ever aggregates reviews. Search reads
the table `service_search`, which triggers keep from services, sitters and users."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from nanny.db import page_total


@dataclass(frozen=True, slots=True)
class Service:
    service_id: int
    sitter_id: int
    type: str
    price_per_hour: Decimal
    description: str
    sitter_status: str


# A search result's fields, as the API writes them. Price and rating come as float8 (both are
# exact in 2 places), which orjson writes itself: as Decimals each went through encoding's
# rounding hook, twice per row.
SEARCH_FIELDS = (
    "service_id",
    "sitter_id",
    "type",
    "price_per_hour",
    "description",
    "sitter_name",
    "location",
    "rating",
    "total_reviews",
)


# A deleted sitter's services are nobody's to book or see, whatever its approval said.
_SITTER_STATUS = "CASE WHEN u.deleted_at IS NULL THEN s.status ELSE 'deleted' END"

_COLUMNS = "v.service_id, v.sitter_id, v.type, v.price_per_hour, v.description"


def _service(row: asyncpg.Record | None) -> Service | None:
    return Service(**row) if row else None


async def create_service(
    conn: asyncpg.Connection,
    sitter_id: int,
    *,
    type: str,
    price_per_hour: Decimal,
    description: str,
) -> Service:
    row = await conn.fetchrow(
        f"""
        WITH v AS (
            INSERT INTO services (sitter_id, type, price_per_hour, description)
            VALUES ($1, $2, $3, $4) RETURNING *
        )
        SELECT {_COLUMNS}, s.status AS sitter_status
        FROM v JOIN sitters s ON s.user_id = v.sitter_id
        """,
        sitter_id,
        type,
        price_per_hour,
        description,
    )
    return _service(row)


async def get_service(conn: asyncpg.Connection, service_id: int) -> Service | None:
    """The service with its sitter's approval status (the caller decides who may see it)."""
    row = await conn.fetchrow(
        f"""
        SELECT {_COLUMNS}, {_SITTER_STATUS} AS sitter_status
        FROM services v JOIN sitters s ON s.user_id = v.sitter_id
        JOIN users u ON u.user_id = v.sitter_id
        WHERE v.service_id = $1
        """,
        service_id,
    )
    return _service(row)


async def get_sitter_status(conn: asyncpg.Connection, sitter_id: int) -> str | None:
    """A live sitter's approval status; None when there is no such sitter."""
    return await conn.fetchval(
        """
        SELECT s.status FROM sitters s JOIN users u ON u.user_id = s.user_id
        WHERE s.user_id = $1 AND u.deleted_at IS NULL
        """,
        sitter_id,
    )


async def update_service(
    conn: asyncpg.Connection, service_id: int, sitter_id: int, changes: dict[str, object]
) -> Service | None:
    """Apply `changes` (column -> value, columns from a fixed set) to the sitter's service."""
    allowed = ("type", "price_per_hour", "description")
    columns = [c for c in allowed if c in changes]
    assignments = "".join(f"{c} = ${i}, " for i, c in enumerate(columns, start=3))
    row = await conn.fetchrow(
        f"""
        WITH v AS (
            UPDATE services SET {assignments}updated_at = now()
            WHERE service_id = $1 AND sitter_id = $2 RETURNING *
        )
        SELECT {_COLUMNS}, s.status AS sitter_status
        FROM v JOIN sitters s ON s.user_id = v.sitter_id
        """,
        service_id,
        sitter_id,
        *(changes[c] for c in columns),
    )
    return _service(row)


async def delete_unbooked_service(
    conn: asyncpg.Connection, service_id: int, sitter_id: int
) -> bool | None:
    """Delete the sitter's service unless it has a pending or confirmed booking.
    None: no such service of this sitter; False: it is booked; True: deleted.
    Run inside a transaction: the row lock waits for a booking being created for the service
    (which share-locks it), and the check after it then sees that booking."""
    locked = await conn.fetchval(
        "SELECT 1 FROM services WHERE service_id = $1 AND sitter_id = $2 FOR UPDATE",
        service_id,
        sitter_id,
    )
    if locked is None:
        return None
    deleted = await conn.fetchval(
        """
        DELETE FROM services v WHERE v.service_id = $1
          AND NOT EXISTS (SELECT 1 FROM bookings b
                          WHERE b.service_id = v.service_id
                            AND b.status IN ('pending', 'confirmed'))
        RETURNING 1
        """,
        service_id,
    )
    return deleted is not None


async def list_sitter_services(
    conn: asyncpg.Connection, sitter_id: int, *, limit: int, offset: int
) -> tuple[list[Service], int]:
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, s.status AS sitter_status, count(*) OVER () AS total
        FROM services v JOIN sitters s ON s.user_id = v.sitter_id
        WHERE v.sitter_id = $1
        ORDER BY v.service_id LIMIT $2 OFFSET $3
        """,
        sitter_id,
        limit,
        offset,
    )
    total = await page_total(
        conn, rows, offset, "SELECT count(*) FROM services WHERE sitter_id = $1", sitter_id
    )
    return [Service(**{k: r[k] for k in Service.__slots__}) for r in rows], total


# sort parameter -> ORDER BY; service_id last keeps paging stable among equal keys.
SEARCH_ORDER = {
    "price": "v.price_per_hour ASC, v.service_id ASC",
    "-price": "v.price_per_hour DESC, v.service_id ASC",
    "rating": "v.rating ASC, v.service_id ASC",
    "-rating": "v.rating DESC, v.service_id ASC",
}

# Search reads service_search (migrations/0014.search_table.sql): a row per visible service
# with its sitter's name, location, rating, time zone and schedule days, kept by triggers.
# Each filter is a clause only when it is given, so each combination of filters is its own
# statement text, prepared once per connection with a generic plan that uses the type index
# (a clause "$1 IS NULL OR type = $1" had PostgreSQL plan every search afresh).
_FILTERS = (
    ("type", "v.type = ${}"),
    # The pattern lowered once (a subquery), not once per row.
    ("location", "v.location_key LIKE (SELECT lower(${}))"),
    ("min_price", "v.price_per_hour >= ${}"),
    ("max_price", "v.price_per_hour <= ${}"),
    ("min_rating", "v.rating >= ${}"),
)

# With dates ($1, $2): the sitters busy then (an open booking or time off overlapping), found
# by the range indexes in one pass each and left out by a hashed anti-join; and, per time zone
# of a visible sitter (search_zones, a handful), what the booking rule needs of the window in
# that zone, computed once per zone rather than once per row.
_DATED = """
    busy AS (
        SELECT b.sitter_id FROM bookings b
        WHERE b.status IN ('pending', 'confirmed')
          AND tstzrange(b.start_time, b.end_time, '[)') && tstzrange($1, $2, '[)')
        UNION
        SELECT t.sitter_id FROM time_off t
        WHERE tstzrange(t.start_time, t.end_time, '[)') && tstzrange($1, $2, '[)')
    ), zones AS MATERIALIZED (
        SELECT timezone, nanny_days_mask($1, $2, timezone) AS days,
               extract(isodow FROM ($1 AT TIME ZONE timezone))::integer - 1 AS weekday,
               extract(epoch FROM ($1 AT TIME ZONE timezone) - ($1 AT TIME ZONE timezone)::date)
                   AS start_second,
               extract(epoch FROM ($2 AT TIME ZONE timezone) - ($1 AT TIME ZONE timezone)::date)
                   AS end_second
        FROM search_zones
    ),
"""
# ... and the weekly schedule: the rule of migrations/functions/nanny_outside_schedule.sql
# written out here, so that only walks look up intervals and whole days are one mask test;
# tests/test_availability.py checks that search and the booking rule agree.
_FITS = """
    AND v.sitter_id NOT IN (SELECT sitter_id FROM busy)
    AND (v.schedule_days = 0 OR CASE
        WHEN v.type = 'walking' THEN EXISTS (
            SELECT 1 FROM sitter_schedule w
            WHERE w.sitter_id = v.sitter_id AND w.weekday = z.weekday
              AND w.start_minute * 60 <= z.start_second AND w.end_minute * 60 >= z.end_second)
        ELSE (z.days & ~v.schedule_days) = 0
    END)
"""


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_services(
    conn: asyncpg.Connection,
    *,
    type: str | None = None,
    location: str | None = None,
    min_price: Decimal | None = None,
    max_price: Decimal | None = None,
    min_rating: Decimal | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    sort: str = "-rating",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict], int]:
    """Services of approved sitters matching every given filter, one page of them (dicts of
    SEARCH_FIELDS), and how many match in all (counted by a window over the same statement).
    With dates (both or neither) only the services whose sitter the booking would fit then."""
    dated = start_time is not None
    args: list[object] = [start_time, end_time] if dated else []
    given = {
        "type": type,
        "location": _like_pattern(location) if location else None,
        "min_price": min_price,
        "max_price": max_price,
        "min_rating": min_rating,
    }
    clauses = []
    for name, clause in _FILTERS:
        if given[name] is not None:
            args.append(given[name])
            clauses.append(clause.format(len(args)))
    where = " AND ".join(clauses) or "true"
    # The matches are found and counted from the covering index alone (service_search_find_idx);
    # only the page's rows are read from the table.
    rows = await conn.fetch(
        f"""
        WITH {_DATED if dated else ""} page AS (
            SELECT v.service_id, count(*) OVER () AS total
            FROM service_search v {"JOIN zones z ON z.timezone = v.timezone" if dated else ""}
            WHERE {where} {_FITS if dated else ""}
            ORDER BY {SEARCH_ORDER[sort]}
            LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}
        )
        SELECT v.service_id, v.sitter_id, v.type, v.price_per_hour::float8 AS price_per_hour,
               v.description, v.sitter_name, v.location, v.rating::float8 AS rating,
               v.total_reviews, p.total
        FROM page p JOIN service_search v USING (service_id)
        ORDER BY {SEARCH_ORDER[sort]}
        """,
        *args,
        limit,
        offset,
    )
    if rows:
        total = rows[0]["total"]
    elif offset:
        # Past the last page the window has no row to ride on; count the matches plainly.
        total = (
            await search_services(
                conn,
                type=type,
                location=location,
                min_price=min_price,
                max_price=max_price,
                min_rating=min_rating,
                start_time=start_time,
                end_time=end_time,
                sort=sort,
                limit=1,
                offset=0,
            )
        )[1]
    else:
        total = 0
    return [{k: r[k] for k in SEARCH_FIELDS} for r in rows], total
