"""A sitter's availability: the calendar anyone may read, the weekly schedule and the time off
the sitter keeps (docs/API.md, "Availability"). The rules bookings must follow live in the
database; this module validates, answers and announces changes."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import Field

from nanny import calendar_days, events, formats
from nanny.db import availability as db_availability
from nanny.db import bookings as db_bookings
from nanny.db import users as db_users
from nanny.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from nanny.http import security
from nanny.http.booking_json import event_json
from nanny.http.bookings import bookings_changed
from nanny.http.endpoint import endpoint, path_id
from nanny.http.responses import json_response
from nanny.http.schemas import Body, Out, Query
from nanny.keys import POOL
from nanny.validation import Timestamp, TimeZoneName

routes = web.RouteTableDef()

MAX_WINDOW_DAYS = 92
DEFAULT_WINDOW_DAYS = 30
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


def _minute(clock: str) -> int:
    match = _CLOCK.match(clock)
    if match is None:
        raise ValueError("must be HH:MM, from 00:00 to 24:00")
    return 1440 if clock == "24:00" else int(clock[:2]) * 60 + int(clock[3:])


def clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


class IntervalIn(Body):
    weekday: int = Field(ge=0, le=6, description="Monday = 0 … Sunday = 6")
    start: str = Field(description='"HH:MM" in the sitter\'s time zone')
    end: str = Field(description='"HH:MM", after start; "24:00" is the end of the day')


class ScheduleIn(Body):
    timezone: TimeZoneName = Field(
        formats.DEFAULT_TIME_ZONE, description="IANA name, default Asia/Almaty"
    )
    weekly: list[IntervalIn] = Field(
        max_length=7 * 24, description="no intervals: available every day, all day"
    )


class TimeOffIn(Body):
    start_time: Timestamp
    end_time: Timestamp


class AvailabilityQuery(Query):
    from_: date | None = Field(
        None, alias="from", description="first local day (default today in the sitter's zone)"
    )
    to: date | None = Field(
        None, description=f"last local day, inclusive; at most {MAX_WINDOW_DAYS} days in all"
    )


class IntervalOut(Out):
    weekday: int
    start: str
    end: str


class TimeOffOut(Out):
    time_off_id: int
    start_time: datetime
    end_time: datetime


class SpanOut(Out):
    start_time: datetime
    end_time: datetime


class DayOut(Out):
    date: str
    available: bool
    state: str = Field(description="free | partly_booked | booked | off")


class AvailabilityOut(Out):
    sitter_id: int
    timezone: str
    weekly: list[IntervalOut]
    time_off: list[TimeOffOut] | None = Field(
        None, description="only to the sitter itself and admins; others see it under busy"
    )
    busy: list[SpanOut] = Field(description="bookings and time off merged, whose not said")
    days: list[DayOut]


class ScheduleOut(Out):
    sitter_id: int
    timezone: str
    weekly: list[IntervalOut]
    conflicts: list[int] = Field(
        description="ids of pending or confirmed bookings the schedule leaves outside"
    )


def _intervals(weekly: list[IntervalIn]) -> list[db_availability.Interval]:
    out = []
    for n, item in enumerate(weekly):
        field = f"weekly[{n}]"
        try:
            start, end = _minute(item.start), _minute(item.end)
        except ValueError as exc:
            raise ValidationFailed(f"{field}: {exc}", details={"field": field}) from None
        if start >= end or start == 1440:
            raise ValidationFailed(f"{field}: end must be after start", details={"field": field})
        out.append(db_availability.Interval(item.weekday, start, end))
    out.sort(key=lambda i: (i.weekday, i.start_minute))
    for a, b in itertools.pairwise(out):
        if a.weekday == b.weekday and b.start_minute < a.end_minute:
            raise ValidationFailed(
                f"Intervals overlap on weekday {a.weekday}: {clock(a.start_minute)}-"
                f"{clock(a.end_minute)} and {clock(b.start_minute)}-{clock(b.end_minute)}",
                details={"field": "weekly"},
            )
    return out


def _interval_json(i: db_availability.Interval) -> dict:
    return {"weekday": i.weekday, "start": clock(i.start_minute), "end": clock(i.end_minute)}


def _own_sitter(user: db_users.User, sitter_id: int) -> None:
    if user.user_id != sitter_id or user.sitter is None:
        raise Forbidden("Only the sitter may change its availability")


@routes.get("/api/sitters/{sitter_id}/availability", name="sitter_availability")
@endpoint(
    "A sitter's calendar: weekly schedule, busy spans and days (public when approved)",
    tag="availability",
    query=AvailabilityQuery,
    response=AvailabilityOut,
    errors=(ValidationFailed, Unauthorized, NotFound),
)
async def get_availability(request: web.Request, query: AvailabilityQuery) -> web.Response:
    sitter_id = path_id(request, "sitter_id")
    user = await security.authenticate(request)
    private = user is not None and (user.role == "admin" or user.user_id == sitter_id)
    async with request.app[POOL].acquire() as conn:
        sitter = await db_users.get_user(conn, sitter_id)
        if sitter is None or sitter.sitter is None:
            raise NotFound("No such sitter")
        if sitter.sitter.status != "approved" and not private:
            raise NotFound("No such sitter")
        zone_name = await db_availability.sitter_zone(conn, sitter_id)
        zone = ZoneInfo(zone_name)
        first = query.from_ or datetime.now(zone).date()
        last = query.to or first + timedelta(days=DEFAULT_WINDOW_DAYS - 1)
        if last < first:
            raise ValidationFailed("to must not be before from", details={"field": "to"})
        if (last - first).days + 1 > MAX_WINDOW_DAYS:
            raise ValidationFailed(
                f"The window is at most {MAX_WINDOW_DAYS} days", details={"field": "to"}
            )
        start = calendar_days.local_instant(first, 0, zone).astimezone(UTC)
        end = calendar_days.local_instant(last, 1440, zone).astimezone(UTC)
        calendar = await db_availability.get_calendar(conn, sitter_id, zone_name, start, end)
    body = {
        "sitter_id": sitter_id,
        "timezone": calendar.timezone,
        "weekly": [_interval_json(i) for i in calendar.weekly],
        "busy": calendar_days.busy(calendar),
        "days": calendar_days.days(calendar, first, last),
    }
    if private:
        body["time_off"] = [
            {"time_off_id": t.time_off_id, "start_time": t.start_time, "end_time": t.end_time}
            for t in calendar.time_off
        ]
    return json_response(body)


@routes.put("/api/sitters/{sitter_id}/availability", name="set_availability")
@endpoint(
    "Set the sitter's time zone and weekly schedule (that sitter); bookings it leaves outside "
    "are kept and listed under conflicts",
    tag="availability",
    body=ScheduleIn,
    response=ScheduleOut,
    roles=("sitter",),
    errors=(ValidationFailed, Unauthorized, Forbidden),
)
async def set_availability(
    request: web.Request, user: db_users.User, body: ScheduleIn
) -> web.Response:
    sitter_id = path_id(request, "sitter_id")
    _own_sitter(user, sitter_id)
    weekly = _intervals(body.weekly)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        conflicts = await db_availability.set_schedule(conn, sitter_id, body.timezone, weekly)
    await events.availability_changed(request.app, sitter_id)
    return json_response(
        {
            "sitter_id": sitter_id,
            "timezone": body.timezone,
            "weekly": [_interval_json(i) for i in weekly],
            "conflicts": conflicts,
        }
    )


@routes.post("/api/sitters/{sitter_id}/time-off", name="add_time_off")
@endpoint(
    "Take time off (that sitter): refused when it overlaps a confirmed booking; the pending "
    "requests it overlaps are declined",
    tag="availability",
    body=TimeOffIn,
    response=TimeOffOut,
    status=201,
    roles=("sitter",),
    errors=(ValidationFailed, Unauthorized, Forbidden, Conflict),
)
async def add_time_off(request: web.Request, user: db_users.User, body: TimeOffIn) -> web.Response:
    sitter_id = path_id(request, "sitter_id")
    _own_sitter(user, sitter_id)
    if body.end_time <= body.start_time:
        raise ValidationFailed("end_time must be after start_time", details={"field": "end_time"})
    if body.end_time - body.start_time > timedelta(days=366):
        raise ValidationFailed("Time off lasts at most 366 days", details={"field": "end_time"})
    async with request.app[POOL].acquire() as conn:
        async with conn.transaction():
            added = await db_availability.add_time_off(
                conn, sitter_id, body.start_time, body.end_time
            )
        if added.time_off is None:
            raise Conflict(
                f"The time off overlaps confirmed booking {added.clash_booking_id}; cancel it "
                "first",
                details={"booking_id": added.clash_booking_id, "field": "start_time"},
            )
        declined = await db_bookings.get_bookings(conn, added.cancelled)
    await bookings_changed(request.app, declined)
    for booking in declined:
        await events.booking_changed(request.app, event_json(booking))
    await events.availability_changed(request.app, sitter_id)
    t = added.time_off
    return json_response(
        {"time_off_id": t.time_off_id, "start_time": t.start_time, "end_time": t.end_time},
        status=201,
    )


@routes.delete("/api/sitters/{sitter_id}/time-off/{time_off_id}", name="delete_time_off")
@endpoint(
    "Withdraw time off (that sitter)",
    tag="availability",
    status=204,
    roles=("sitter",),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
)
async def delete_time_off(request: web.Request, user: db_users.User) -> web.Response:
    sitter_id = path_id(request, "sitter_id")
    time_off_id = path_id(request, "time_off_id")
    _own_sitter(user, sitter_id)
    async with request.app[POOL].acquire() as conn:
        if not await db_availability.delete_time_off(conn, sitter_id, time_off_id):
            raise NotFound("No such time off")
    await events.availability_changed(request.app, sitter_id)
    return web.Response(status=204)
