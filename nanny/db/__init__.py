"""SQL, one module per table group: plain async functions taking a connection."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def page_total(
    conn: asyncpg.Connection,
    rows: Sequence[asyncpg.Record],
    offset: int,
    count_sql: str,
    *args,
    column: str = "total",
) -> int:
    """How many rows match in all: a page carries it in its `count(*) OVER ()` column; past the
    last page there is no row to carry it, so `count_sql` counts the matches plainly."""
    if rows:
        return rows[0][column]
    if offset:
        return await conn.fetchval(count_sql, *args)
    return 0
