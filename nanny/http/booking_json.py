"""A booking's JSON: what each viewer may see of it (the participants' contacts only to the
participants themselves, once the booking is confirmed or completed), from a booking or straight
from a list's row, and the form fanned out to rooms and dashboards."""

from __future__ import annotations

from typing import Literal

import asyncpg
from pydantic import Field

from nanny.db import bookings as db_bookings
from nanny.db.bookings import CancelReason
from nanny.http.schemas import Out

BookingStatus = Literal["pending", "confirmed", "completed", "cancelled"]
CONTACT_STATUSES = frozenset({"confirmed", "completed"})


class PartyOut(Out):
    """A participant of a booking. `email` and `phone` are present only to the booking's own
    participants, and only while the booking is confirmed or completed."""

    user_id: int
    full_name: str
    email: str | None = Field(None, description="only to participants once confirmed")
    phone: str | None = Field(None, description="only to participants once confirmed")


class BookingOut(Out):
    booking_id: int
    owner_id: int
    sitter_id: int
    pet_id: int | None = Field(description="null once the pet was deleted")
    service_id: int | None = Field(description="null once the service was withdrawn")
    start_time: str
    end_time: str
    status: BookingStatus
    cancel_reason: CancelReason | None = Field(
        description="null unless cancelled (and for bookings cancelled before reasons were kept): "
        "owner or sitter (who cancelled it), expired (unanswered for PENDING_TTL_HOURS, or "
        "still pending 24 h after its start), user_deleted (an admin deleted a participant), "
        "sitter_unavailable (declined by the sitter's time off)"
    )
    total_price: float
    created_at: str
    updated_at: str
    owner: PartyOut
    sitter: PartyOut


def _party(party: db_bookings.Party, contacts: bool) -> dict:
    body = {"user_id": party.user_id, "full_name": party.full_name}
    if contacts:
        body["email"] = party.email
        body["phone"] = party.phone
    return body


def booking_json(booking: db_bookings.Booking, viewer_id: int | None = None) -> dict:
    """The booking as `viewer_id` may see it; without a viewer (events fanned out to rooms and
    dashboards) it never carries contact details."""
    contacts = booking.status in CONTACT_STATUSES and viewer_id in (
        booking.owner_id,
        booking.sitter_id,
    )
    return {
        "booking_id": booking.booking_id,
        "owner_id": booking.owner_id,
        "sitter_id": booking.sitter_id,
        "pet_id": booking.pet_id,
        "service_id": booking.service_id,
        "start_time": booking.start_time,
        "end_time": booking.end_time,
        "status": booking.status,
        "cancel_reason": booking.cancel_reason,
        "total_price": booking.total_price,
        "created_at": booking.created_at,
        "updated_at": booking.updated_at,
        "owner": _party(booking.owner, contacts),
        "sitter": _party(booking.sitter, contacts),
    }


def booking_row_json(row: asyncpg.Record, viewer_id: int) -> dict:
    """booking_json of a row of db_bookings.list_bookings, made from the row itself."""
    body = dict(zip(db_bookings.BOOKING_COLUMNS, row, strict=False))
    owner = {"user_id": body["owner_id"], "full_name": row["owner_name"]}
    sitter = {"user_id": body["sitter_id"], "full_name": row["sitter_name"]}
    if body["status"] in CONTACT_STATUSES and viewer_id in (body["owner_id"], body["sitter_id"]):
        owner |= {"email": row["owner_email"], "phone": row["owner_phone"]}
        sitter |= {"email": row["sitter_email"], "phone": row["sitter_phone"]}
    body["owner"] = owner
    body["sitter"] = sitter
    return body


def event_json(booking: db_bookings.Booking) -> dict:
    return booking_json(booking, None)
