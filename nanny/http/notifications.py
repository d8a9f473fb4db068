"""The caller's notifications (GET /api/notifications, POST /api/notifications/read), their
e-mail preferences (GET/PUT /api/auth/me/notifications) and the one-click unsubscribe of the
e-mails' links (RFC 8058: a GET shows a button, a POST turns the category off, no login)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field, model_validator

from nanny import i18n
from nanny.db import notifications as db
from nanny.db.users import User
from nanny.errors import Unauthorized, ValidationFailed
from nanny.http.endpoint import endpoint
from nanny.http.pages import page_localizer
from nanny.http.responses import json_response, list_response
from nanny.http.schemas import Body, Out, Paging, Query
from nanny.keys import POOL, SETTINGS
from nanny.notify.content import notification_json
from nanny.notify.mail import UnsubscribeTokens

routes = web.RouteTableDef()


class NotificationOut(Out):
    notification_id: int
    kind: db.Kind
    booking_id: int | None
    title: str = Field(description="in the caller's language")
    body: str
    created_at: datetime
    read_at: datetime | None


class NotificationQuery(Paging):
    unread: bool = Field(False, description="only the unread ones")


class ReadBody(Body):
    ids: list[int] | None = Field(None, max_length=1000, description="these notifications")
    all: bool | None = Field(None, description="true: every notification of the caller")

    @model_validator(mode="after")
    def _one_of(self):
        if (self.ids is None) == (self.all is not True):
            raise ValueError("send either 'ids' or 'all': true")
        return self


@routes.get("/api/notifications", name="list_notifications")
@endpoint(
    "The caller's notifications, newest first (X-Total-Count)",
    tag="notifications",
    query=NotificationQuery,
    response=list[NotificationOut],
    roles=(),
    errors=(ValidationFailed, Unauthorized),
)
async def list_notifications(
    request: web.Request, user: User, query: NotificationQuery
) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        items, total = await db.list_notifications(
            conn, user.user_id, unread=query.unread, limit=query.limit, offset=query.offset
        )
    loc = page_localizer(request, user)
    return list_response([notification_json(loc, n) for n in items], total)


@routes.post("/api/notifications/read", name="read_notifications")
@endpoint(
    "Mark the caller's notifications read: {ids} or {all: true}",
    tag="notifications",
    body=ReadBody,
    status=204,
    roles=(),
    errors=(ValidationFailed, Unauthorized),
)
async def read_notifications(request: web.Request, user: User, body: ReadBody) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        await db.mark_read(conn, user.user_id, None if body.all else body.ids)
    return web.Response(status=204)


class EmailChoices(Out):
    bookings: bool = Field(description="booking requests and changes, sitter approval")
    messages: bool = Field(description="digests of unread chat messages")
    reviews: bool = Field(description="new reviews of the sitter")


class EmailChoicesIn(Body):
    bookings: bool | None = None
    messages: bool | None = None
    reviews: bool | None = None


class NotificationPreferences(Out):
    email: EmailChoices


class NotificationPreferencesIn(Body):
    email: EmailChoicesIn


@routes.get("/api/auth/me/notifications", name="get_notification_preferences")
@endpoint(
    "The caller's e-mail notification choices (in-app notifications are always on)",
    tag="auth",
    response=NotificationPreferences,
    roles=(),
    errors=(Unauthorized,),
)
async def get_preferences(request: web.Request, user: User) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        choices = await db.get_email_preferences(conn, user.user_id)
    if choices is None:
        raise Unauthorized("The account no longer exists")
    return json_response({"email": choices})


@routes.put("/api/auth/me/notifications", name="update_notification_preferences")
@endpoint(
    "Save the caller's e-mail notification choices (absent ones unchanged)",
    tag="auth",
    body=NotificationPreferencesIn,
    response=NotificationPreferences,
    roles=(),
    errors=(ValidationFailed, Unauthorized),
)
async def update_preferences(
    request: web.Request, user: User, body: NotificationPreferencesIn
) -> web.Response:
    changes = {
        name: getattr(body.email, name)
        for name in body.email.model_fields_set
        if getattr(body.email, name) is not None
    }
    async with request.app[POOL].acquire() as conn, conn.transaction():
        if not await db.set_email_preferences(conn, user.user_id, changes):
            raise Unauthorized("The account no longer exists")
        choices = await db.get_email_preferences(conn, user.user_id)
    return json_response({"email": choices})


class UnsubscribeQuery(Query):
    token: str = Field(max_length=200, description="from the e-mail's link")


def _read_token(request: web.Request, token: str) -> tuple[int, str]:
    found = UnsubscribeTokens(request.app[SETTINGS].jwt_secret).read(token)
    if found is None:
        raise ValidationFailed(
            "Invalid 'token': not a link of ours", details={"field": "token", "reason": "invalid"}
        )
    return found


def _page(request: web.Request, token: str, done: bool) -> web.Response:
    loc = page_localizer(request, None)
    html = i18n.render(request.app, "unsubscribe.html", loc, {"token": token, "done": done})
    return web.Response(text=html, content_type="text/html", charset="utf-8")


@routes.get("/api/notifications/unsubscribe", name="unsubscribe_page")
@endpoint(
    "The page of an e-mail's unsubscribe link: a button that confirms (nothing changes yet)",
    tag="notifications",
    query=UnsubscribeQuery,
    produces=("text/html",),
    errors=(ValidationFailed,),
)
async def unsubscribe_page(request: web.Request, query: UnsubscribeQuery) -> web.Response:
    _read_token(request, query.token)
    return _page(request, query.token, done=False)


@routes.post("/api/notifications/unsubscribe", name="unsubscribe")
@endpoint(
    "One-click unsubscribe (RFC 8058): turn off the link's kind of e-mails, no login",
    tag="notifications",
    query=UnsubscribeQuery,
    produces=("text/html",),
    errors=(ValidationFailed,),
)
async def unsubscribe(request: web.Request, query: UnsubscribeQuery) -> web.Response:
    user_id, category = _read_token(request, query.token)
    async with request.app[POOL].acquire() as conn:
        await db.set_email_preferences(conn, user_id, {category: False})
    return _page(request, query.token, done=True)
