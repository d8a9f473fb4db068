"""Series for the admin dashboard's charts."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from nanny.db import booking_views
from nanny.db.users import User
from nanny.errors import Forbidden, Unauthorized, ValidationFailed
from nanny.http.endpoint import endpoint
from nanny.http.responses import json_response
from nanny.http.schemas import Out, Query
from nanny.keys import POOL

routes = web.RouteTableDef()


class DaysQuery(Query):
    days: int = Field(30, ge=1, le=366, description="how many UTC days, today included")


class DayCountOut(Out):
    day: str = Field(description="UTC date, YYYY-MM-DD")
    count: int


@routes.get("/api/admin/stats/bookings-per-day", name="admin_bookings_per_day")
@endpoint(
    "Bookings created per UTC day over the last `days` days, oldest first, zero days included",
    tag="admin",
    query=DaysQuery,
    response=list[DayCountOut],
    roles=("admin",),
    errors=(ValidationFailed, Unauthorized, Forbidden),
)
async def bookings_per_day(request: web.Request, user: User, query: DaysQuery) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        series = await booking_views.bookings_per_day(conn, query.days)
    return json_response([{"day": d.day.isoformat(), "count": d.count} for d in series])
