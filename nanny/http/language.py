"""The language switcher every page carries, and the scripts' catalogs.

The switcher is a plain form (it works before any script runs): it sets the `nanny_lang`
cookie and, for a signed-in user, saves the choice on the account, which then wins over the
cookie and the browser on every device. A signed-in user's switch must carry the session's CSRF
token; an anonymous one only sets a cookie of this browser, so it needs none."""

from __future__ import annotations

import hmac

from aiohttp import web

from nanny import i18n
from nanny.db import users as db_users
from nanny.http import security
from nanny.http.pages import (
    cookie_flags,
    csrf_refused,
    current_session,
    error_page,
    redirect,
    safe_next,
)
from nanny.i18n import N_
from nanny.keys import CHAT_HUB, I18N, POOL

routes = web.RouteTableDef()

LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
# A catalog's URL carries its content hash, so a browser may keep it until the hash changes.
IMMUTABLE = "public, max-age=31536000, immutable"


@routes.post("/language", name="set_language")
async def set_language(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    locale = form.get("locale")
    session = await current_session(request)
    if locale not in i18n.LOCALES:
        return error_page(
            request,
            400,
            N_("Unknown language"),
            N_("Choose one of the languages offered at the top of the page."),
            session=session,
        )
    if session is not None:
        sent = form.get(security.CSRF_FIELD, "")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
            return csrf_refused(request, session)
        async with request.app[POOL].acquire() as conn:
            await db_users.update_preferences(conn, session.user.user_id, {"locale": locale})
        await request.app[CHAT_HUB].user_changed(session.user.user_id)
    response = redirect(safe_next(str(form.get("next", ""))) or "/")
    response.set_cookie(
        i18n.LANG_COOKIE, locale, max_age=LANG_COOKIE_MAX_AGE, **cookie_flags(request)
    )
    return response


@routes.get("/i18n/{locale}.json", name="script_catalog")
async def script_catalog(request: web.Request) -> web.Response:
    """The scripts' catalog of one language: translations, the plural rule and the formats."""
    catalog = request.app[I18N].catalogs.get(request.match_info["locale"])
    if catalog is None:
        raise web.HTTPNotFound()
    fresh = request.query.get("v") == catalog.version
    return web.Response(
        body=catalog.script_json,
        content_type="application/json",
        charset="utf-8",
        headers={
            "Cache-Control": IMMUTABLE if fresh else "no-cache",
            "ETag": f'"{catalog.version}"',
        },
    )
