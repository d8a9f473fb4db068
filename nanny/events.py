"""Domain events raised after a commit. The HTTP transitions and the expiry task call
`booking_changed`; the chat fan-out subscribes to it, so every path pushes the same event."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("nanny.events")

BookingListener = Callable[[web.Application, dict[str, Any]], Awaitable[None]]
BOOKING_LISTENERS = web.AppKey("booking_listeners", list)


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
