"""The asyncpg pool's lifetime."""

from __future__ import annotations

import asyncpg


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        # Timestamps come back as aware datetimes in UTC whatever the server's zone.
        server_settings={"timezone": "UTC", "application_name": "nanny"},
    )
