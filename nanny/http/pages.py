"""The browser pages: sign-in forms handled on the server, dashboards rendered as shells that
small scripts in static/ fill from the REST API and the WebSocket.

The session is the `nanny_token` cookie (the API's own JWT). The sign-in forms are protected by a
double-submit token (the `nanny_csrf` cookie echoed in a hidden field) because there is no session
yet to bind one to; once signed in, pages carry `csrf_token_for(token)` in a meta tag and scripts
send it back as X-CSRF-Token, which the API checks on every cookie-authenticated write."""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from pydantic import ValidationError

from nanny.access import is_participant, may_view
from nanny.db import booking_views
from nanny.db import users as db_users
from nanny.errors import Conflict, RateLimited, Unauthorized, ValidationFailed
from nanny.http import auth, security
from nanny.http.endpoint import path_id
from nanny.keys import POOL, SETTINGS

routes = web.RouteTableDef()

CSRF_COOKIE = "nanny_csrf"
HOME_ROUTE = {"owner": "owner_page", "sitter": "sitter_page", "admin": "admin_page"}
ROLE_LABEL = {"owner": "Pet owner", "sitter": "Pet sitter", "admin": "Administrator"}
ARTICLE = {"owner": "a", "sitter": "a", "admin": "an"}


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
    user = await security.current_user(request.app, claims.user_id)
    if user is None:
        return None
    return Session(user, token, security.csrf_token_for(settings, token))


def _cookie_flags(request: web.Request) -> dict[str, Any]:
    return {"path": "/", "httponly": True, "samesite": "Lax", "secure": request.secure}


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    max_age = int(request.app[SETTINGS].jwt_ttl_hours * 3600)
    response.set_cookie(security.TOKEN_COOKIE, token, max_age=max_age, **_cookie_flags(request))


def clear_session_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.set_cookie(security.TOKEN_COOKIE, "", max_age=0, **_cookie_flags(request))


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


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    session: Session | None = None,
    status: int = 200,
) -> web.Response:
    base = {
        "session": session,
        "user": session.user if session else None,
        "csrf_token": session.csrf if session else "",
        "role_label": ROLE_LABEL,
        "page": "",
    }
    response = aiohttp_jinja2.render_template(template, request, base | context, status=status)
    # Pages show private data and carry a CSRF token: never cache them in shared caches.
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(
    request: web.Request,
    status: int,
    title: str,
    message: str,
    *,
    session: Session | None = None,
) -> web.Response:
    context = {"status": status, "title": title, "message": message}
    return render(request, "error.html", context, session=session, status=status)


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
                wanted = " or ".join(ROLE_LABEL[r].lower() + "s" for r in roles)
                return error_page(
                    request,
                    403,
                    "This page is not for your account",
                    f"Only {wanted} can open this page. You are signed in as "
                    f"{ARTICLE[session.user.role]} {ROLE_LABEL[session.user.role].lower()}.",
                    session=session,
                )
            return await handler(request, session)

        return wrapped

    return decorate


# --- sign-in forms ---------------------------------------------------------------------------


def _form_csrf(request: web.Request) -> str:
    """This browser's double-submit token, minted on first sight."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def _remember_form_csrf(request: web.Request, response: web.StreamResponse, token: str) -> None:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, **_cookie_flags(request))


def _form_csrf_ok(request: web.Request, form) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(security.CSRF_FIELD, "")
    return bool(cookie) and isinstance(sent, str) and hmac.compare_digest(cookie, sent)


def _csrf_refused(request: web.Request) -> web.Response:
    return error_page(
        request,
        403,
        "This form could not be accepted",
        "The form was sent without a valid security token — it may have expired or come from "
        "another site. Reload the page and try again.",
    )


def _render_form(
    request: web.Request,
    template: str,
    *,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    token = _form_csrf(request)
    context = {
        "values": values,
        "errors": errors or {},
        "form_csrf": token,
        "next": safe_next(request.query.get("next")) or "",
    }
    response = render(request, template, context, status=status)
    _remember_form_csrf(request, response, token)
    return response


def _rate_limited(
    request: web.Request, template: str, values: dict[str, Any], exc: RateLimited
) -> web.Response:
    errors = {"form": f"Too many attempts. Try again in {exc.retry_after} seconds."}
    response = _render_form(request, template, values=values, errors=errors, status=429)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _signed_in_redirect(request: web.Request, user: db_users.User, target: str | None):
    token, _ = security.issue_token(request.app[SETTINGS], user.user_id, user.role)
    response = redirect(target or home_url(request, user))
    set_session_cookie(request, response, token)
    return response


@routes.get("/", name="home")
async def home(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    if session is not None:
        return redirect(home_url(request, session.user))
    return render(request, "home.html", {})


@routes.get("/login", name="login_page")
async def login_page(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    if session is not None:
        return redirect(safe_next(request.query.get("next")) or home_url(request, session.user))
    return _render_form(request, "login.html", values={})


@routes.post("/login", name="login_submit")
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if not _form_csrf_ok(request, form):
        return _csrf_refused(request)
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    errors = {}
    if not email:
        errors["email"] = "Enter your e-mail address"
    if not password:
        errors["password"] = "Enter your password"
    if not errors:
        try:
            user = await auth.check_credentials(request, email, password)
        except Unauthorized:
            errors["form"] = "Wrong e-mail or password"
        except RateLimited as exc:
            return _rate_limited(request, "login.html", {"email": email}, exc)
    if errors:
        status = 401 if "form" in errors else 400
        return _render_form(
            request, "login.html", values={"email": email}, errors=errors, status=status
        )
    return _signed_in_redirect(request, user, safe_next(str(form.get("next", ""))))


_FIELD_HINTS = {
    "full_name": "Enter your name",
    "email": "Enter a valid e-mail address, like name@example.kz",
    "phone": "Enter the phone number in international format, like +77010000001",
    "location": "Enter the city or district where you work",
    "experience_years": "Enter a whole number of years from 0 to 80",
}


def _field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else "form"
        if name in errors:
            continue
        if name == "password":
            too_short = err["type"] == "string_too_short"
            errors[name] = "Use at least 8 characters" if too_short else "Use at most 72 bytes"
        else:
            errors[name] = _FIELD_HINTS.get(name, err["msg"])
    return errors


REGISTER_FIELDS = ("full_name", "email", "phone", "password")
SITTER_FIELDS = ("certificates", "preferences", "location")


@routes.get("/register", name="register_page")
async def register_page(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    if session is not None:
        return redirect(home_url(request, session.user))
    role = request.query.get("role")
    return _render_form(
        request, "register.html", values={"role": role if role == "sitter" else "owner"}
    )


@routes.post("/register", name="register_submit")
async def register_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    if not _form_csrf_ok(request, form):
        return _csrf_refused(request)
    role = form.get("role")
    values: dict[str, Any] = {
        name: str(form.get(name, "")) for name in (*REGISTER_FIELDS, *SITTER_FIELDS)
    }
    values["experience_years"] = str(form.get("experience_years", "")).strip()
    values["role"] = role
    if role not in ("owner", "sitter"):
        values["role"] = "owner"
        errors = {"role": "Choose whether you own pets or look after them"}
        return _render_form(request, "register.html", values=values, errors=errors, status=400)

    data: dict[str, Any] = {name: values[name] for name in REGISTER_FIELDS}
    model: type[auth.RegisterOwner | auth.RegisterSitter] = auth.RegisterOwner
    if role == "sitter":
        model = auth.RegisterSitter
        data |= {name: values[name] for name in SITTER_FIELDS}
        years = values["experience_years"] or "0"
        data["experience_years"] = int(years) if years.isdigit() and len(years) < 4 else years
    try:
        body = model.model_validate(data)
        user_id = await auth.register_account(request, body, role)
    except ValidationError as exc:
        errors = _field_errors(exc)
    except Conflict:
        errors = {"email": "An account with this e-mail already exists — sign in instead"}
    except RateLimited as exc:
        values.pop("password")
        return _rate_limited(request, "register.html", values, exc)
    else:
        async with request.app[POOL].acquire() as conn:
            user = await db_users.get_user(conn, user_id)
        return _signed_in_redirect(request, user, None)
    values.pop("password")
    return _render_form(request, "register.html", values=values, errors=errors, status=400)


@routes.post("/logout", name="logout")
async def logout(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    session = await current_session(request)
    if session is not None:
        sent = form.get(security.CSRF_FIELD, "")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
            return _csrf_refused(request)
    response = redirect(url(request, "login_page"))
    clear_session_cookie(request, response)
    return response


# --- dashboards ------------------------------------------------------------------------------


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
        "Conversation not found",
        "There is no booking with this number among yours.",
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
