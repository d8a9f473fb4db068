"""The expiry task: pending bookings are cancelled, with the reason `expired`, once the sitter
has left them unanswered for PENDING_TTL_HOURS (72) or once they are still pending 24 hours
after their start; chat photos uploaded but never sent within 24 hours are deleted with their
files.

One run per interval across all processes and hosts
----------------------------------------------------
Every process runs the same loop; the schedule lives in the database, not in the processes:

1. In one transaction, take `pg_try_advisory_xact_lock(EXPIRY_LOCK)`. A process that does not
   get it skips: another one is running the task right now. The lock is held for the whole run
   and released by the commit, never leaked by a crashed process.
2. Under the lock, read `task_runs.last_run_at` for this task. If the last run (by anyone)
   started less than one interval ago, skip and sleep until it is due.
3. Otherwise cancel the stale bookings in ONE `UPDATE … RETURNING`, and record
   `last_run_at = now()` in the same transaction, so the run and its record commit together:
   a run that fails leaves no record and the next attempt retries it.

The lock alone would not be enough: two processes waking a few milliseconds apart would both
get it, one after the other. The record alone would not either: two processes could read the
same old `last_run_at` at once. Together, the second process to take the lock always sees the
first one's committed record. Times are the database's, so clock skew between hosts does not
matter. Each process sleeps until the next run is due (as recorded), so the processes wake at
the same moment and exactly one of them runs.

Each run logs how many bookings it cancelled and announces each one through
`nanny.events.booking_changed`, like the HTTP transitions. A database error is logged and the
next attempt (one interval later) retries. The task sleeps between runs, so cancelling it at
shutdown is immediate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from nanny import events
from nanny.db import bookings as db_bookings
from nanny.db import media as db_media
from nanny.http.booking_json import event_json
from nanny.http.bookings import bookings_changed
from nanny.keys import MEDIA, METRICS, POOL, SETTINGS

log = logging.getLogger("nanny.expiry")

TASK_NAME = "expire_stale_bookings"
# An arbitrary constant naming this task's advisory lock ("nanny expiry" in ASCII, truncated).
EXPIRY_LOCK = 0x6E616E6E79_6578
STALE_AFTER = timedelta(hours=24)
# A photo uploaded for a chat and not sent in a message within this long is deleted.
UNSENT_ATTACHMENTS_KEPT = timedelta(hours=24)
# Never sleep less than this between attempts, so an early wake-up cannot spin.
MIN_SLEEP = 0.01


async def run_expiry_if_due(app: web.Application) -> float:
    """One attempt: run the expiry if it is due and no other process is running it.
    Returns the seconds until the next run is due."""
    interval = app[SETTINGS].expire_interval_seconds
    unanswered_after = timedelta(hours=app[SETTINGS].pending_ttl_hours)
    async with app[POOL].acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", EXPIRY_LOCK):
            app[METRICS].expiry_ran(outcome="skipped")
            return interval
        since_last = await conn.fetchval(
            "SELECT extract(epoch FROM now() - last_run_at)::float8 FROM task_runs WHERE task = $1",
            TASK_NAME,
        )
        if since_last is not None and since_last < interval:
            app[METRICS].expiry_ran(outcome="skipped")
            return interval - since_last
        cancelled = await db_bookings.expire_stale_bookings(
            conn, stale_after=STALE_AFTER, unanswered_after=unanswered_after
        )
        unsent = await db_media.delete_unclaimed(conn, UNSENT_ATTACHMENTS_KEPT)
        await conn.execute(
            """
            INSERT INTO task_runs (task, last_run_at) VALUES ($1, now())
            ON CONFLICT (task) DO UPDATE SET last_run_at = excluded.last_run_at
            """,
            TASK_NAME,
        )
    app[METRICS].expiry_ran(expired=len(cancelled))
    log.info(
        "expiry: cancelled %d booking(s) pending more than %d h after their start or "
        "unanswered for %g h%s",
        len(cancelled),
        STALE_AFTER // timedelta(hours=1),
        app[SETTINGS].pending_ttl_hours,
        (": " + ", ".join(str(b.booking_id) for b in cancelled)) if cancelled else "",
    )
    await bookings_changed(app, cancelled)
    for booking in cancelled:
        await events.booking_changed(app, event_json(booking))
    removed = await app[MEDIA].collect_garbage()
    if unsent or removed:
        log.info(
            "expiry: deleted %d chat photo(s) never sent within %d h; %d file(s) removed",
            unsent,
            UNSENT_ATTACHMENTS_KEPT // timedelta(hours=1),
            removed,
        )
    return interval


async def expiry_loop(app: web.Application) -> None:
    interval = app[SETTINGS].expire_interval_seconds
    while True:
        try:
            delay = await run_expiry_if_due(app)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Cancelled mid-query, asyncpg may surface an InterfaceError instead of the
            # CancelledError; shutdown must still win.
            if asyncio.current_task().cancelling():
                raise asyncio.CancelledError from None
            log.exception("expiry: the run failed; retrying in %s s", interval)
            app[METRICS].expiry_ran(outcome="error")
            delay = interval
        await asyncio.sleep(max(delay, MIN_SLEEP))


async def expiry_ctx(app: web.Application) -> AsyncIterator[None]:
    """Runs the expiry loop for the app's lifetime; cancels it at once on shutdown."""
    task = asyncio.create_task(expiry_loop(app), name="nanny-expiry")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
