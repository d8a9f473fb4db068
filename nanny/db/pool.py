"""The asyncpg pool's lifetime, and what its failing looks like."""

from __future__ import annotations

import asyncio

import asyncpg

from nanny.inflight import mark_database_use

# Failures of the database connection itself: the service is unavailable, not broken. REST
# answers them 503 and a WebSocket frame `unavailable`.
DATABASE_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
)


class PooledConnection(asyncpg.Connection):
    """A pool connection released without asyncpg's reset query.

    The default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) costs a round trip on
    every release, which on a short request is as much as the request's own query. Nanny keeps
    no session state: only transaction-scoped advisory locks, no LISTEN, no SET, no cursors
    outside transactions. asyncpg still rolls back an open transaction on release."""

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, notifications: bool = True
) -> asyncpg.Pool:
    settings = {"timezone": "UTC", "application_name": "nanny"}
    if not notifications:  # read by nanny_notify: the events of this pool write none
        settings["nanny.notifications"] = "off"
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        connection_class=PooledConnection,
        # Tells a shutdown which requests have begun on the database (nanny.inflight).
        setup=mark_database_use,
        # Timestamps come back as aware datetimes in UTC whatever the server's zone.
        server_settings=settings,
    )
