"""The browser pages of signed-in users, and what every page shares: the session, rendering,
redirects and the role guard. The dashboards are shells that small scripts in static/ fill from
the REST API and the WebSocket; the public pages and sign-in forms are in sign_in.py.

The session is the `nanny_token` cookie (the API's own JWT). Once signed in, pages carry
`csrf_token_for(token)` in a meta tag and scripts send it back as X-CSRF-Token, which the API
checks on every cookie-authenticated write."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from nanny import i18n
from nanny.access import is_participant, may_view
from nanny.client_address import came_over_https
from nanny.db import booking_views
from nanny.db import users as db_users
from nanny.errors import Unauthorized, ValidationFailed
from nanny.http import security
from nanny.http.endpoint import path_id
from nanny.i18n import N_
from nanny.keys import I18N, POOL, SETTINGS

routes = web.RouteTableDef()

HOME_ROUTE = {"owner": "owner_page", "sitter": "sitter_page", "admin": "admin_page"}
ROLE_LABEL = {"owner": N_("Pet owner"), "sitter": N_("Pet sitter"), "admin": N_("Administrator")}
ROLE_AS = {
    "owner": N_("a pet owner"),
    "sitter": N_("a pet sitter"),
    "admin": N_("an administrator"),
}
ROLE_PAGE = {
    "owner": N_("This page is for pet owners."),
    "sitter": N_("This page is for pet sitters."),
    "admin": N_("This page is for administrators."),
}


@dataclass(frozen=True, slots=True)
class Session:
    user: db_users.User
    token: str
    csrf: str


async def current_session(request: web.Request) -> Session | None:
    """The signed-in user behind the cookie; None when absent, expired, invalid or deleted."""
    token = request.cookies.get(security.TOKEN_COOKIE)
    if not token:
        return None
    settings = request.app[SETTINGS]
    try:
        claims = security.decode_token(settings, token)
    except Unauthorized:
        return None
    try:
        user = await security.user_for_claims(request.app, claims)
    except Unauthorized:
        return None
    return Session(user, token, security.csrf_token_for(settings, token))


def cookie_flags(request: web.Request) -> dict[str, Any]:
    # Secure always with COOKIE_SECURE (production's default), else when the client used HTTPS.
    secure = request.app[SETTINGS].cookie_secure or came_over_https(request)
    return {"path": "/", "httponly": True, "samesite": "Lax", "secure": secure}


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    max_age = int(request.app[SETTINGS].jwt_ttl_hours * 3600)
    response.set_cookie(security.TOKEN_COOKIE, token, max_age=max_age, **cookie_flags(request))


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.set_cookie(security.TOKEN_COOKIE, "", max_age=0, **cookie_flags(request))


def redirect(location: str) -> web.Response:
    # 303 so the browser follows a form POST with a GET.
    return web.Response(status=303, headers={"Location": location})


def url(request: web.Request, name: str, **parts: str) -> str:
    return str(request.app.router[name].url_for(**parts))


def safe_next(value: str | None) -> str | None:
    """A local path to return to after signing in; anything that could leave the site is dropped."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    if any(ch in value for ch in "\r\n\t\\") or len(value) > 500:
        return None
    return value


def home_url(request: web.Request, user: db_users.User) -> str:
    return url(request, HOME_ROUTE[user.role])


def page_localizer(request: web.Request, user: db_users.User | None) -> i18n.Localizer:
    """The page's language (the user's saved choice, the cookie, the browser's, Russian) and
    time zone (the user's, else Almaty)."""
    locale = i18n.negotiate(
        user.locale if user else None,
        request.cookies.get(i18n.LANG_COOKIE),
        request.headers.get("Accept-Language"),
    )
    return i18n.localizer(request.app, locale, user.time_zone if user else None)


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    session: Session | None = None,
    status: int = 200,
) -> web.Response:
    user = session.user if session else None
    loc = page_localizer(request, user)
    catalog = request.app[I18N].catalogs[loc.locale]
    base = {
        "session": session,
        "user": user,
        "csrf_token": session.csrf if session else "",
        "role_label": {role: loc.gettext(label) for role, label in ROLE_LABEL.items()},
        "page": "",
        "here": request.path_qs,
        "languages": [
            (code, i18n.LANGUAGE_SHORT[code], i18n.LANGUAGE_NAMES[code]) for code in i18n.LOCALES
        ],
        "catalog_url": url(request, "script_catalog", locale=loc.locale) + f"?v={catalog.version}",
    }
    body = i18n.render(request.app, template, loc, base | context)
    response = web.Response(text=body, status=status, content_type="text/html")
    # Pages show private data and carry a CSRF token: never cache them in shared caches.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = loc.locale
    return response


def error_page(
    request: web.Request,
    status: int,
    title: str,
    message: str,
    *,
    session: Session | None = None,
    **params: Any,
) -> web.Response:
    """An error page; `title` and `message` are catalog strings, translated here with `params`."""
    loc = page_localizer(request, session.user if session else None)
    context = {
        "status": status,
        "title": loc.gettext(title, **params),
        "message": loc.gettext(message, **params),
    }
    return render(request, "error.html", context, session=session, status=status)


def csrf_refused(request: web.Request, session: Session | None = None) -> web.Response:
    return error_page(
        request,
        403,
        N_("This form could not be accepted"),
        N_(
            "The form was sent without a valid security token — it may have expired or come "
            "from another site. Reload the page and try again."
        ),
        session=session,
    )


PageHandler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


def page(*roles: str) -> Callable[[PageHandler], Callable[[web.Request], Awaitable]]:
    """A page for signed-in users holding one of `roles` (any role when empty): anonymous
    visitors are sent to the login page and come back afterwards; other roles get a 403 page."""

    def decorate(handler: PageHandler):
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = await current_session(request)
            if session is None:
                target = url(request, "login_page") + "?" + urlencode({"next": request.path_qs})
                response = redirect(target)
                if security.TOKEN_COOKIE in request.cookies:
                    clear_session_cookie(request, response)
                return response
            if roles and session.user.role not in roles:
                loc = page_localizer(request, session.user)
                signed_in_as = loc.gettext(
                    "You are signed in as {role}.", role=loc.gettext(ROLE_AS[session.user.role])
                )
                return error_page(
                    request,
                    403,
                    N_("This page is not for your account"),
                    " ".join([*(loc.gettext(ROLE_PAGE[r]) for r in roles), signed_in_as]),
                    session=session,
                )
            return await handler(request, session)

        return wrapped

    return decorate


@routes.get("/owner", name="owner_page")
@page("owner")
async def owner_page(request: web.Request, session: Session) -> web.StreamResponse:
    return render(request, "owner.html", {"page": "owner"}, session=session)


@routes.get("/sitter", name="sitter_page")
@page("sitter")
async def sitter_page(request: web.Request, session: Session) -> web.StreamResponse:
    return render(request, "sitter.html", {"page": "sitter"}, session=session)


@routes.get("/admin", name="admin_page")
@page("admin")
async def admin_page(request: web.Request, session: Session) -> web.StreamResponse:
    return render(request, "admin.html", {"page": "admin"}, session=session)


@routes.get("/bookings/{id}/chat", name="chat_page")
@page()
async def chat_page(request: web.Request, session: Session) -> web.StreamResponse:
    not_found = error_page(
        request,
        404,
        N_("Conversation not found"),
        N_("There is no booking with this number among yours."),
        session=session,
    )
    try:
        booking_id = path_id(request)
    except ValidationFailed:
        return not_found
    async with request.app[POOL].acquire() as conn:
        booking = await booking_views.get_booking_header(conn, booking_id)
    user = session.user
    # 404 rather than 403: whether someone else's booking exists is none of the caller's business.
    if booking is None or not may_view(booking, user.user_id, user.role):
        return not_found
    if user.user_id == booking.sitter_id:
        other_id, other_name = booking.owner_id, booking.owner_name
    else:
        other_id, other_name = booking.sitter_id, booking.sitter_name
    context = {
        "page": "chat",
        "booking": booking,
        "other_id": other_id,
        "other_name": other_name,
        "participant": is_participant(booking, user.user_id),
    }
    return render(request, "chat.html", context, session=session)
