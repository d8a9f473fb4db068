"""PUT /api/auth/me: the caller's language and time zone, which pages (and e-mails) follow."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import ConfigDict, Field

from nanny.db import users as db_users
from nanny.db.users import User
from nanny.errors import Unauthorized, ValidationFailed
from nanny.http.auth import MeOut, me_json
from nanny.http.endpoint import endpoint
from nanny.http.responses import json_response
from nanny.http.schemas import Body
from nanny.keys import CHAT_HUB, POOL
from nanny.validation import TimeZoneName

routes = web.RouteTableDef()


class Preferences(Body):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["locale"]}, {"required": ["time_zone"]}]}
    )

    # Absent means unchanged; null clears the saved choice.
    locale: Literal["ru", "kk", "en"] | None = Field(
        None, description="the pages' language; null: follow the browser (then Russian)"
    )
    time_zone: TimeZoneName | None = Field(
        None, description="IANA zone times are shown in; null: Asia/Almaty"
    )


@routes.put("/api/auth/me", name="update_me")
@endpoint(
    "Save the caller's language and time zone",
    tag="auth",
    body=Preferences,
    response=MeOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized),
)
async def update_me(request: web.Request, user: User, body: Preferences) -> web.Response:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if not changes:
        raise ValidationFailed("Send 'locale', 'time_zone' or both", details={"field": "body"})
    async with request.app[POOL].acquire() as conn:
        updated = await db_users.update_preferences(conn, user.user_id, changes)
        fresh = await db_users.get_user(conn, user.user_id) if updated else None
    if fresh is None:  # deleted since the token was checked
        raise Unauthorized("The account no longer exists")
    # Every process's cached copy of the user goes, so the next page anywhere speaks the choice.
    await request.app[CHAT_HUB].user_changed(user.user_id)
    return json_response(me_json(fresh))
