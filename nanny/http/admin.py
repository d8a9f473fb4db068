"""Admin endpoints: sitter approval, users, soft deletion and platform totals.

Deleting a user is a soft delete (see db.admin.soft_delete_user): other people's bookings,
reviews and messages stay, with the user shown as 'Deleted user'. An admin deleting its own
account gets 409 `conflict`: the request is understood and allowed for admins in general, it
conflicts with the state "the platform needs the admin who is acting".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StringConstraints

from nanny.db import admin as db_admin
from nanny.db import bookings as db_bookings
from nanny.db import media as db_media
from nanny.db import notifications as db_notifications
from nanny.db import users as db_users
from nanny.db.users import User
from nanny.encoding import money
from nanny.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from nanny.events import booking_changed
from nanny.http import security
from nanny.http.auth import SitterOut, me_json
from nanny.http.booking_json import event_json
from nanny.http.endpoint import endpoint, path_id
from nanny.http.public import public_changed
from nanny.http.responses import json_response, list_response
from nanny.http.reviews import average
from nanny.http.schemas import Out, Paging
from nanny.keys import CHAT_HUB, MEDIA, POOL

routes = web.RouteTableDef()

ADMIN = ("admin",)
ADMIN_ERRORS = (Unauthorized, Forbidden)


class UsersQuery(Paging):
    role: Literal["owner", "sitter", "admin"] | None = None
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = Field(
        None, description="case-insensitive substring of the full name or e-mail"
    )


class AdminSitterOut(Out):
    user_id: int
    sitter_id: int
    full_name: str
    email: str | None
    phone: str | None
    experience_years: int
    certificates: str
    preferences: str
    location: str
    status: Literal["pending", "approved", "rejected"]
    rating: float = Field(description="average rating, 2 places; 0 without reviews")
    total_reviews: int
    created_at: datetime


class SitterDetailsOut(AdminSitterOut):
    total_services: int
    total_bookings: int
    completed_bookings: int
    average_rating: float


class AdminUserOut(Out):
    user_id: int
    full_name: str
    email: str | None
    phone: str | None
    role: Literal["owner", "sitter", "admin"]
    created_at: datetime
    sitter: SitterOut | None = None


class RoleCounts(Out):
    owner: int
    sitter: int
    admin: int


class SitterCounts(Out):
    pending: int
    approved: int
    rejected: int


class BookingCounts(Out):
    pending: int
    confirmed: int
    completed: int
    cancelled: int


class MediaCounts(Out):
    images: int = Field(description="pets' photos and chat photos")
    files: int = Field(description="files kept (two sizes per image; equal files kept once)")
    bytes: int = Field(description="the files' total size")


class OutboxCounts(Out):
    queued: int = Field(description="notification e-mails waiting to be sent (or retried)")
    sent: int
    failed: int = Field(description="given up: refused (5xx) or too many attempts")
    skipped: int = Field(description="not sent: the user turned that kind off")


class StatsOut(Out):
    users: RoleCounts
    sitters: SitterCounts
    bookings: BookingCounts
    messages_today: int = Field(description="messages sent since 00:00 UTC")
    revenue_paid: float = Field(description="sum of payments in status paid, 2 places")
    media: MediaCounts
    outbox: OutboxCounts


def sitter_json(s: db_admin.SitterRow) -> dict:
    return {
        "user_id": s.user_id,
        "sitter_id": s.user_id,
        "full_name": s.full_name,
        "email": s.email,
        "phone": s.phone,
        "experience_years": s.experience_years,
        "certificates": s.certificates,
        "preferences": s.preferences,
        "location": s.location,
        "status": s.status,
        "rating": average(s.rating_sum, s.rating_count),
        "total_reviews": s.rating_count,
        "created_at": s.created_at,
    }


def user_json(user: User) -> dict:
    # The profile a user sees of itself, with `sitter` always present (null for non-sitters).
    return {"sitter": None} | me_json(user)


@routes.get("/api/admin/sitters/pending", name="admin_pending_sitters")
@endpoint(
    "Sitters waiting for approval, the longest waiting first",
    tag="admin",
    query=Paging,
    response=list[AdminSitterOut],
    roles=ADMIN,
    errors=(ValidationFailed, *ADMIN_ERRORS),
)
async def pending_sitters(request: web.Request, user: User, query: Paging) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        sitters, total = await db_admin.list_pending_sitters(
            conn, limit=query.limit, offset=query.offset
        )
    return list_response([sitter_json(s) for s in sitters], total)


async def _set_status(request: web.Request, status: str) -> web.Response:
    sitter_id = path_id(request, "sitter_id")
    async with request.app[POOL].acquire() as conn:
        sitter = await db_admin.set_sitter_status(conn, sitter_id, status)
    if sitter is None:
        raise NotFound("No such sitter")
    await public_changed(request.app)
    await request.app[CHAT_HUB].user_changed(sitter_id)
    return json_response(sitter_json(sitter))


@routes.post("/api/admin/sitters/{sitter_id}/approve", name="admin_approve_sitter")
@endpoint(
    "Approve a sitter: its services become public (also re-approves a rejected one)",
    tag="admin",
    response=AdminSitterOut,
    roles=ADMIN,
    errors=(ValidationFailed, *ADMIN_ERRORS, NotFound),
)
async def approve_sitter(request: web.Request, user: User) -> web.Response:
    return await _set_status(request, "approved")


@routes.post("/api/admin/sitters/{sitter_id}/reject", name="admin_reject_sitter")
@endpoint(
    "Reject a sitter (also withdraws an approval): its services leave public listings",
    tag="admin",
    response=AdminSitterOut,
    roles=ADMIN,
    errors=(ValidationFailed, *ADMIN_ERRORS, NotFound),
)
async def reject_sitter(request: web.Request, user: User) -> web.Response:
    return await _set_status(request, "rejected")


@routes.get("/api/admin/sitters/{sitter_id}", name="admin_sitter")
@endpoint(
    "A sitter's profile and totals (an admin, or the sitter itself)",
    tag="admin",
    response=SitterDetailsOut,
    roles=(),
    errors=(ValidationFailed, *ADMIN_ERRORS, NotFound),
)
async def sitter_details(request: web.Request, user: User) -> web.Response:
    sitter_id = path_id(request, "sitter_id")
    security.require_self_or_admin(user, sitter_id)
    async with request.app[POOL].acquire() as conn:
        details = await db_admin.get_sitter_details(conn, sitter_id)
    if details is None:
        raise NotFound("No such sitter")
    body = sitter_json(details.sitter) | {
        "total_services": details.total_services,
        "total_bookings": details.total_bookings,
        "completed_bookings": details.completed_bookings,
        "average_rating": average(details.sitter.rating_sum, details.sitter.rating_count),
    }
    return json_response(body)


@routes.get("/api/admin/users", name="admin_users")
@endpoint(
    "Users, newest first; filter by role, search name or e-mail with q",
    tag="admin",
    query=UsersQuery,
    response=list[AdminUserOut],
    roles=ADMIN,
    errors=(ValidationFailed, *ADMIN_ERRORS),
)
async def list_users(request: web.Request, user: User, query: UsersQuery) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        users, total = await db_admin.list_users(
            conn, role=query.role, search=query.q, limit=query.limit, offset=query.offset
        )
    return list_response([user_json(u) for u in users], total)


@routes.get("/api/admin/users/{user_id}", name="admin_user")
@endpoint(
    "A user (deleted users are gone: 404)",
    tag="admin",
    response=AdminUserOut,
    roles=ADMIN,
    errors=(ValidationFailed, *ADMIN_ERRORS, NotFound),
)
async def get_user(request: web.Request, user: User) -> web.Response:
    user_id = path_id(request, "user_id")
    async with request.app[POOL].acquire() as conn:
        found = await db_users.get_user(conn, user_id)
    if found is None:
        raise NotFound("No such user")
    return json_response(user_json(found))


@routes.delete("/api/admin/users/{user_id}", name="admin_delete_user")
@endpoint(
    "Delete a user, keeping the history others rely on (409 for the acting admin itself)",
    tag="admin",
    status=204,
    roles=ADMIN,
    errors=(ValidationFailed, *ADMIN_ERRORS, NotFound, Conflict),
)
async def delete_user(request: web.Request, user: User) -> web.Response:
    user_id = path_id(request, "user_id")
    if user_id == user.user_id:
        raise Conflict("An admin cannot delete its own account", details={"field": "user_id"})
    async with request.app[POOL].acquire() as conn:
        cancelled = await db_admin.soft_delete_user(conn, user_id)
        if cancelled is None:
            raise NotFound("No such user")
        await request.app[MEDIA].collect_garbage(conn)
    await public_changed(request.app)
    await request.app[CHAT_HUB].user_changed(user_id, deleted=True)
    # The same event, with the same JSON, as every other status change of a booking.
    if cancelled:
        async with request.app[POOL].acquire() as conn:
            bookings = await db_bookings.get_bookings(conn, cancelled)
        for booking in bookings:
            await booking_changed(request.app, event_json(booking))
    return web.Response(status=204)


@routes.get("/api/admin/stats", name="admin_stats")
@endpoint(
    "Platform totals (deleted users not counted)",
    tag="admin",
    response=StatsOut,
    roles=ADMIN,
    errors=ADMIN_ERRORS,
)
async def stats(request: web.Request, user: User) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        s = await db_admin.get_stats(conn)
        media = await db_media.media_totals(conn)
        outbox = await db_notifications.outbox_counts(conn)
    return json_response(
        {
            "users": s.users,
            "sitters": s.sitters,
            "bookings": s.bookings,
            "messages_today": s.messages_today,
            "revenue_paid": money(s.revenue_paid),
            "media": {"images": media.images, "files": media.files, "bytes": media.bytes},
            "outbox": outbox,
        }
    )
