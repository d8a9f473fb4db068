"""Waiting for PostgreSQL and Redis at start-up.

A compose stack (or an orchestrator) starts the database, Redis and the backend together, so the
backend must tolerate arriving first: it retries with backoff, logs every wait, and gives up with
one clear line after `STARTUP_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg

from nanny.config import StartupError

log = logging.getLogger("nanny.startup")

T = TypeVar("T")

FIRST_DELAY = 0.5
MAX_DELAY = 5.0

# Errors that mean "not up yet" rather than "misconfigured": refused or reset connections,
# timeouts, and PostgreSQL's own "the database system is starting up" (57P03).
ASYNCPG_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)


def describe(url: str, kind: str) -> str:
    """'PostgreSQL at db:5432' — where we connect, never the credentials."""
    parts = urlsplit(url)
    if parts.hostname:
        return f"{kind} at {parts.hostname}:{parts.port or ''}".rstrip(":")
    return kind


def _delays() -> Iterator[float]:
    delay = FIRST_DELAY
    while True:
        yield delay
        delay = min(delay * 2, MAX_DELAY)


def _next_delay(what: str, attempt: int, exc: BaseException, deadline: float, delay: float):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StartupError(f"{what} did not answer in time: {reason}") from exc
    delay = min(delay, remaining)
    log.warning(
        "%s is not available yet; retrying in %.1f s",
        what,
        delay,
        extra={"attempt": attempt, "error": repr(exc), "retry_in_s": round(delay, 1)},
    )
    return delay


def retry_sync(
    what: str,
    attempt: Callable[[], T],
    transient: tuple[type[BaseException], ...],
    give_up_after: float,
) -> T:
    deadline = time.monotonic() + give_up_after
    for n, delay in enumerate(_delays(), 1):
        try:
            return attempt()
        except transient as exc:
            time.sleep(_next_delay(what, n, exc, deadline, delay))
    raise AssertionError("unreachable")  # pragma: no cover


async def retry_async(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    transient: tuple[type[BaseException], ...],
    give_up_after: float,
) -> T:
    deadline = time.monotonic() + give_up_after
    for n, delay in enumerate(_delays(), 1):
        try:
            return await attempt()
        except transient as exc:
            await asyncio.sleep(_next_delay(what, n, exc, deadline, delay))
    raise AssertionError("unreachable")  # pragma: no cover
