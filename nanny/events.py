"""Domain events raised after a commit. The HTTP transitions and the expiry task call
`booking_changed`; the chat fan-out subscribes to it, so every path pushes the same event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from nanny.tasks import TaskSet

log = logging.getLogger("nanny.events")

BookingListener = Callable[[web.Application, dict[str, Any]], Awaitable[None]]
BOOKING_LISTENERS = web.AppKey("booking_listeners", list)
# Announcements deferred until the response that caused them is on its way (announce_later).
LATER = web.AppKey("later_announcements", TaskSet)


def on_booking_changed(app: web.Application, listener: BookingListener) -> None:
    app[BOOKING_LISTENERS].append(listener)


async def booking_changed(app: web.Application, booking: dict[str, Any]) -> None:
    """Announce a committed status change of `booking` (its API JSON). The change is already
    durable, so a failing listener is logged and never fails the caller."""
    for listener in app[BOOKING_LISTENERS]:
        try:
            await listener(app, booking)
        except Exception:
            log.exception(
                "booking listener %r failed for booking %s", listener, booking.get("booking_id")
            )


AvailabilityListener = Callable[[web.Application, int], Awaitable[None]]
AVAILABILITY_LISTENERS = web.AppKey("availability_listeners", list)


def on_availability_changed(app: web.Application, listener: AvailabilityListener) -> None:
    app[AVAILABILITY_LISTENERS].append(listener)


async def availability_changed(app: web.Application, sitter_id: int) -> None:
    """Announce a committed change of a sitter's schedule or time off."""
    for listener in app.get(AVAILABILITY_LISTENERS, ()):
        try:
            await listener(app, sitter_id)
        except Exception:
            log.exception("availability listener %r failed for sitter %s", listener, sitter_id)


def announce_later(app: web.Application, booking: dict[str, Any]) -> None:
    """`booking_changed`, once the current handler's response has been handed to the transport:
    the loop runs this process's ready callbacks only after the handler's task has written it,
    so the caller hears its answer before the fan-out's work is done. The booking is committed
    and its event carries no answer, so nothing the caller sees depends on the order."""
    tasks = app[LATER]
    asyncio.get_running_loop().call_soon(lambda: tasks.spawn(booking_changed(app, booking)))
