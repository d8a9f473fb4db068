"""What a notification says, in its reader's language: the title, the body, the page it links to,
and the JSON shape of the API and the `notification` frame."""

from __future__ import annotations

from typing import Any

from nanny.db.notifications import Kind, Notification
from nanny.i18n import Localizer


def title(loc: Localizer, n: Notification) -> str:
    match n.kind:
        case Kind.BOOKING_REQUESTED:
            return loc.gettext("New booking request")
        case Kind.BOOKING_CONFIRMED:
            return loc.gettext("Your booking is confirmed")
        case Kind.BOOKING_CANCELLED:
            return loc.gettext("A booking was cancelled")
        case Kind.BOOKING_COMPLETED:
            return loc.gettext("A booking is completed")
        case Kind.BOOKING_EXPIRED:
            return loc.gettext("A booking request expired")
        case Kind.SITTER_APPROVED:
            return loc.gettext("Your sitter profile is approved")
        case Kind.SITTER_REJECTED:
            return loc.gettext("Your sitter profile was not approved")
        case Kind.UNREAD_MESSAGES:
            return loc.gettext(
                "Unread messages about booking #{booking_id}", booking_id=n.booking_id
            )
        case Kind.REVIEW_RECEIVED:
            return loc.gettext("You have a new review")
    raise ValueError(n.kind)


def _when(loc: Localizer, n: Notification) -> str:
    if n.start_time is None or n.end_time is None:
        return ""
    return loc.time_range(n.start_time, n.end_time)


def body(loc: Localizer, n: Notification) -> str:
    pet = n.pet_name or loc.gettext("a pet")
    params = {"booking_id": n.booking_id, "pet": pet, "when": _when(loc, n)}
    match n.kind:
        case Kind.BOOKING_REQUESTED:
            return loc.gettext(
                "{owner} asks you to look after {pet}, {when}.", owner=n.owner_name, **params
            )
        case Kind.BOOKING_CONFIRMED:
            return loc.gettext(
                "{sitter} confirmed booking #{booking_id} for {pet}, {when}.",
                sitter=n.sitter_name,
                **params,
            )
        case Kind.BOOKING_CANCELLED:
            return loc.gettext("Booking #{booking_id} for {pet}, {when}, was cancelled.", **params)
        case Kind.BOOKING_COMPLETED:
            return loc.gettext("Booking #{booking_id} for {pet} is completed.", **params)
        case Kind.BOOKING_EXPIRED:
            return loc.gettext(
                "Booking #{booking_id} for {pet}, {when}, expired without an answer.", **params
            )
        case Kind.SITTER_APPROVED:
            return loc.gettext("Owners can now find and book your services.")
        case Kind.SITTER_REJECTED:
            return loc.gettext("An administrator did not approve your sitter profile.")
        case Kind.UNREAD_MESSAGES:
            count = (n.to_seq or 0) - (n.from_seq or 0) + 1
            return loc.ngettext(
                "You have {n} unread message in the chat of booking #{booking_id}.",
                "You have {n} unread messages in the chat of booking #{booking_id}.",
                count,
                booking_id=n.booking_id,
            )
        case Kind.REVIEW_RECEIVED:
            return loc.gettext(
                "{owner} rated booking #{booking_id} {rating} of 5.",
                owner=n.owner_name,
                rating=n.rating,
                booking_id=n.booking_id,
            )
    raise ValueError(n.kind)


def link_path(n: Notification) -> str:
    """The page a notification leads to."""
    if n.booking_id is not None:
        return f"/bookings/{n.booking_id}/chat"
    return "/sitter"


def notification_json(loc: Localizer, n: Notification) -> dict[str, Any]:
    return {
        "notification_id": n.notification_id,
        "kind": n.kind.value,
        "booking_id": n.booking_id,
        "title": title(loc, n),
        "body": body(loc, n),
        "created_at": n.created_at,
        "read_at": n.read_at,
    }
