"""Bookings: creation with every rule of API.md, the status machine, and the users' lists.

Privacy: a booking is visible to its participants and admins only (404 to anyone else). It
carries `owner` and `sitter` objects with user_id and full_name; their `email` and `phone` are
present only when the viewer is a participant and the booking is confirmed or completed, since
only then do the two parties need to reach each other outside the chat."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
from aiohttp import web
from pydantic import Field

from nanny import events, ratelimit
from nanny.access import is_participant, may_view
from nanny.config import Settings
from nanny.db import bookings as db_bookings
from nanny.db import users as db_users
from nanny.db.bookings import CreationOutcome
from nanny.encoding import encode, rfc3339
from nanny.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    SitterUnavailable,
    Unauthorized,
    ValidationFailed,
)
from nanny.http import security
from nanny.http.booking_json import (
    BookingOut,
    BookingStatus,
    booking_json,
    booking_row_json,
    event_json,
)
from nanny.http.endpoint import endpoint, path_id
from nanny.http.pets import OWNER_ID_DOC, check_redundant_owner
from nanny.http.responses import encoded_list_response, json_response
from nanny.http.schemas import Body, Out, Paging
from nanny.keys import BOOKING_CACHE, CHAT_HUB, POOL, SETTINGS
from nanny.validation import Id, Timestamp

routes = web.RouteTableDef()

MAX_DURATION = timedelta(days=30)


class BookingCreate(Body):
    sitter_id: Id
    pet_id: Id
    service_id: Id
    start_time: Timestamp = Field(
        description="RFC 3339 with an offset; in the future, at most BOOKING_HORIZON_DAYS "
        "(365) ahead"
    )
    end_time: Timestamp = Field(
        description="RFC 3339 with an offset; after start_time, at most 30 days after it"
    )
    owner_id: int | None = Field(None, description=OWNER_ID_DOC)


class BookingCreated(Out):
    booking_id: int
    status: Literal["pending"]
    total_price: float = Field(description="price_per_hour x hours, 2 places")
    message: str


class BookingListQuery(Paging):
    status: BookingStatus | None = None


def _parties(booking: db_bookings.Booking) -> tuple[int, int]:
    return booking.owner_id, booking.sitter_id


async def bookings_changed(app: web.Application, bookings: Iterable[db_bookings.Booking]) -> None:
    """Committed changes of these bookings: every process forgets what it keeps of their
    parties' bookings before this returns (the caller answers after it)."""
    await app[CHAT_HUB].bookings_changed({u for b in bookings for u in _parties(b)})


async def _through_cache(app: web.Application, key, load, parties):
    """`load`'s answer, from the booking cache (nanny.cache.PartyCache) unless this process is
    deaf to the others' changes (Redis is away): then only the database is trusted."""
    if not app[CHAT_HUB].broker.connected:
        return await load()
    return await app[BOOKING_CACHE].get_or_load(key, load, parties)


async def cached_booking(app: web.Application, booking_id: int) -> db_bookings.Booking | None:
    """The booking as last read by this process, unless a change of its owner's or sitter's
    bookings came since; authorization is the caller's (`shown_to`)."""

    async def load() -> db_bookings.Booking | None:
        async with app[POOL].acquire() as conn:
            return await db_bookings.get_booking(conn, booking_id)

    return await _through_cache(app, ("booking", booking_id), load, _parties)


def shown_to(booking: db_bookings.Booking | None, user: db_users.User) -> db_bookings.Booking:
    """The booking if the caller is a participant or an admin; 404 otherwise (its existence is
    private)."""
    if booking is None or not may_view(booking, user.user_id, user.role):
        raise NotFound("No such booking")
    return booking


async def visible_booking(conn, booking_id: int, user: db_users.User) -> db_bookings.Booking:
    return shown_to(await db_bookings.get_booking(conn, booking_id), user)


def _check_times(body: BookingCreate, settings: Settings) -> None:
    now = datetime.now(UTC)
    if body.start_time <= now:
        raise ValidationFailed("start_time must be in the future", details={"field": "start_time"})
    horizon = settings.booking_horizon_days
    if body.start_time > now + timedelta(days=horizon):
        raise ValidationFailed(
            f"start_time may be at most {horizon} days ahead", details={"field": "start_time"}
        )
    if body.end_time <= body.start_time:
        raise ValidationFailed("end_time must be after start_time", details={"field": "end_time"})
    if body.end_time - body.start_time > MAX_DURATION:
        raise ValidationFailed("A booking lasts at most 30 days", details={"field": "end_time"})


@routes.post("/api/bookings", name="create_booking")
@endpoint(
    "Request a booking of a sitter's service for one of the caller's pets",
    tag="bookings",
    body=BookingCreate,
    response=BookingCreated,
    status=201,
    roles=("owner",),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, Conflict, RateLimited),
)
async def create_booking(
    request: web.Request, user: db_users.User, body: BookingCreate
) -> web.Response:
    check_redundant_owner(body.owner_id, user)
    settings = request.app[SETTINGS]
    _check_times(body, settings)
    await ratelimit.check_booking_rate(request, user.user_id)
    async with request.app[POOL].acquire() as conn:
        try:
            done = await db_bookings.create_booking(
                conn,
                owner_id=user.user_id,
                sitter_id=body.sitter_id,
                pet_id=body.pet_id,
                service_id=body.service_id,
                start_time=body.start_time,
                end_time=body.end_time,
                max_pending=settings.max_pending_bookings,
                max_pending_per_sitter=settings.max_pending_per_sitter,
            )
        except asyncpg.ExclusionViolationError:
            clash = await db_bookings.find_clash(
                conn, body.sitter_id, body.start_time, body.end_time
            )
            raise _overlap_conflict(clash) from None
    booking = _created_or_refused(done, settings)
    await bookings_changed(request.app, [booking])
    events.announce_later(request.app, event_json(booking))
    return json_response(
        {
            "booking_id": booking.booking_id,
            "status": booking.status,
            "total_price": booking.total_price,
            "message": "Booking requested; the sitter has to confirm it",
        },
        status=201,
    )


def _created_or_refused(done: db_bookings.Creation, settings: Settings) -> db_bookings.Booking:
    """The new booking, or the answer for the first rule the request broke (checked in this
    order by the database: owner, pet, service, sitter, pending cap, pending with the sitter)."""
    match done.outcome:
        case CreationOutcome.CREATED:
            return done.booking
        case CreationOutcome.NO_OWNER:
            raise Unauthorized("The account no longer exists")
        case CreationOutcome.NO_PET:
            raise NotFound("You have no pet with this pet_id", details={"field": "pet_id"})
        case CreationOutcome.NO_SERVICE:
            raise NotFound("No such service of an approved sitter", details={"field": "service_id"})
        case CreationOutcome.WRONG_SITTER:
            raise ValidationFailed(
                "The service is not offered by this sitter", details={"field": "sitter_id"}
            )
        case CreationOutcome.TOO_MANY:
            limit = settings.max_pending_bookings
            raise Conflict(
                f"You already have {done.pending} pending bookings; at most "
                f"{limit} may wait for an answer at once",
                details={"pending": done.pending, "limit": limit},
            )
        case CreationOutcome.TOO_MANY_FOR_SITTER:
            limit = settings.max_pending_per_sitter
            raise Conflict(
                f"You already have {done.pending} pending requests with this sitter; at most "
                f"{limit} may wait for the sitter's answer at once",
                details={"pending": done.pending, "limit": limit, "field": "sitter_id"},
            )
        case CreationOutcome.TIME_OFF:
            raise SitterUnavailable("The sitter has time off then", details={"reason": "time_off"})
        case CreationOutcome.OUTSIDE_SCHEDULE:
            raise SitterUnavailable(
                "The sitter does not work then (see the sitter's availability)",
                details={"reason": "outside_schedule"},
            )
    raise RuntimeError(f"unhandled booking creation outcome {done.outcome!r}")


def _overlap_conflict(clash: db_bookings.Clash | None) -> Conflict:
    if clash is None:  # the clashing booking was cancelled meanwhile; a retry may succeed
        return Conflict(
            "The sitter already has a booking at that time", details={"field": "start_time"}
        )
    start, end = rfc3339(clash.start_time), rfc3339(clash.end_time)
    return Conflict(
        f"The sitter already has a booking from {start} to {end}",
        details={"field": "start_time", "clash_start": start, "clash_end": end},
    )


@routes.get("/api/bookings/{id}", name="get_booking")
@endpoint(
    "A booking (participants and admins; 404 to anyone else)",
    tag="bookings",
    response=BookingOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized, NotFound),
)
async def get_booking(request: web.Request, user: db_users.User) -> web.Response:
    booking = shown_to(await cached_booking(request.app, path_id(request)), user)
    return json_response(booking_json(booking, user.user_id))


async def _refusal(conn, booking_id: int, user: db_users.User, actor: str, needs: str) -> None:
    """Why a transition changed no row: 404 when the caller may not see the booking, 403 when
    the caller is not the `actor` the transition needs, else 409 (wrong status or time)."""
    booking = await visible_booking(conn, booking_id, user)
    if actor == "sitter" and user.user_id != booking.sitter_id:
        raise Forbidden("Only the booking's sitter may do this")
    if actor == "participant" and not is_participant(booking, user.user_id):
        raise Forbidden("Only the booking's owner or sitter may do this")
    raise Conflict(
        f"The booking is {booking.status}; this needs {needs}",
        details={"status": booking.status},
    )


async def _transitioned(request: web.Request, booking: db_bookings.Booking, user) -> web.Response:
    await bookings_changed(request.app, [booking])
    events.announce_later(request.app, event_json(booking))
    return json_response(booking_json(booking, user.user_id))


@routes.post("/api/bookings/{id}/confirm", name="confirm_booking")
@endpoint(
    "Confirm a pending booking (the booking's sitter)",
    tag="bookings",
    response=BookingOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, Conflict),
)
async def confirm_booking(request: web.Request, user: db_users.User) -> web.Response:
    booking_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        booking = await db_bookings.confirm_booking(conn, booking_id, user.user_id)
        if booking is None:
            await _refusal(conn, booking_id, user, "sitter", "a pending booking")
    return await _transitioned(request, booking, user)


@routes.post("/api/bookings/{id}/cancel", name="cancel_booking")
@endpoint(
    "Cancel a pending or confirmed booking (either participant); a paid payment is refunded",
    tag="bookings",
    response=BookingOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, Conflict),
)
async def cancel_booking(request: web.Request, user: db_users.User) -> web.Response:
    booking_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        async with conn.transaction():
            booking = await db_bookings.cancel_booking(conn, booking_id, user.user_id)
        if booking is None:
            await _refusal(conn, booking_id, user, "participant", "a pending or confirmed booking")
    return await _transitioned(request, booking, user)


@routes.post("/api/bookings/{id}/complete", name="complete_booking")
@endpoint(
    "Complete a confirmed booking once its end_time has come (the booking's sitter)",
    tag="bookings",
    response=BookingOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, Conflict),
)
async def complete_booking(request: web.Request, user: db_users.User) -> web.Response:
    booking_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        booking = await db_bookings.complete_booking(conn, booking_id, user.user_id)
        if booking is None:
            await _refusal(
                conn, booking_id, user, "sitter", "a confirmed booking whose end_time has passed"
            )
    return await _transitioned(request, booking, user)


async def _list(request: web.Request, user, query: BookingListQuery, role: str) -> web.Response:
    user_id = path_id(request, f"{role}_id")
    security.require_self_or_admin(user, user_id)
    app = request.app
    own = user_id == user.user_id
    if not own:
        async with app[POOL].acquire() as conn:
            if await db_users.get_user(conn, user_id) is None:
                raise NotFound("No such user")

    async def load() -> tuple[bytes, int]:
        async with app[POOL].acquire() as conn:
            bookings, total = await db_bookings.list_bookings(
                conn,
                owner_id=user_id if role == "owner" else None,
                sitter_id=user_id if role == "sitter" else None,
                status=query.status,
                limit=query.limit,
                offset=query.offset,
            )
        # Contacts depend only on whether the viewer is the listed user: an admin is never
        # a party, so every admin sees the same page.
        return encode([booking_row_json(b, user.user_id) for b in bookings]), total

    key = (role, user_id, query.status, query.limit, query.offset, own)
    body, total = await _through_cache(app, key, load, lambda _: (user_id,))
    return encoded_list_response(body, total)


@routes.get("/api/owners/{owner_id}/bookings", name="owner_bookings")
@endpoint(
    "An owner's bookings, newest first (that owner or an admin)",
    tag="bookings",
    query=BookingListQuery,
    response=list[BookingOut],
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
    headers={"X-Total-Count": "how many bookings match"},
)
async def owner_bookings(
    request: web.Request, user: db_users.User, query: BookingListQuery
) -> web.Response:
    return await _list(request, user, query, "owner")


@routes.get("/api/sitters/{sitter_id}/bookings", name="sitter_bookings")
@endpoint(
    "A sitter's bookings, newest first (that sitter or an admin)",
    tag="bookings",
    query=BookingListQuery,
    response=list[BookingOut],
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
    headers={"X-Total-Count": "how many bookings match"},
)
async def sitter_bookings(
    request: web.Request, user: db_users.User, query: BookingListQuery
) -> web.Response:
    return await _list(request, user, query, "sitter")
