"""The public pages: the landing page and the sign-in, registration and sign-out forms, handled
on the server.

The forms are protected by a double-submit token (the `nanny_csrf` cookie echoed in a hidden
field) because there is no session yet to bind one to; signing out, which has a session, checks
the session's own CSRF token."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from nanny.db import users as db_users
from nanny.errors import Conflict, RateLimited, Unauthorized
from nanny.http import auth, security
from nanny.http.pages import (
    clear_session_cookie,
    cookie_flags,
    csrf_refused,
    current_session,
    home_url,
    page_localizer,
    redirect,
    render,
    safe_next,
    set_session_cookie,
    url,
)
from nanny.i18n import N_
from nanny.keys import POOL, SETTINGS

routes = web.RouteTableDef()

CSRF_COOKIE = "nanny_csrf"


def _form_csrf(request: web.Request) -> str:
    """This browser's double-submit token, minted on first sight."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


def _remember_form_csrf(request: web.Request, response: web.StreamResponse, token: str) -> None:
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(CSRF_COOKIE, token, **cookie_flags(request))


def _form_csrf_ok(request: web.Request, form) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(security.CSRF_FIELD, "")
    return bool(cookie) and isinstance(sent, str) and hmac.compare_digest(cookie, sent)


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
    loc = page_localizer(request, None)
    errors = {
        "form": loc.ngettext(
            "Too many attempts. Try again in {n} second.",
            "Too many attempts. Try again in {n} seconds.",
            exc.retry_after,
        )
    }
    response = _render_form(request, template, values=values, errors=errors, status=429)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _signed_in_redirect(request: web.Request, user: db_users.User, target: str | None):
    token, _ = security.issue_token(
        request.app[SETTINGS], user.user_id, user.role, user.token_generation
    )
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
        return csrf_refused(request)
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    loc = page_localizer(request, None)
    errors = {}
    if not email:
        errors["email"] = loc.gettext("Enter your e-mail address")
    if not password:
        errors["password"] = loc.gettext("Enter your password")
    if not errors:
        try:
            user = await auth.check_credentials(request, email, password)
        except Unauthorized:
            errors["form"] = loc.gettext("Wrong e-mail or password")
        except RateLimited as exc:
            return _rate_limited(request, "login.html", {"email": email}, exc)
    if errors:
        status = 401 if "form" in errors else 400
        return _render_form(
            request, "login.html", values={"email": email}, errors=errors, status=status
        )
    return _signed_in_redirect(request, user, safe_next(str(form.get("next", ""))))


_FIELD_HINTS = {
    "full_name": N_("Enter your name"),
    "email": N_("Enter a valid e-mail address, like name@example.kz"),
    "phone": N_("Enter a mobile or landline number, like 8 701 123 45 67 or +7 701 123 45 67"),
    "location": N_("Enter the city or district where you work"),
    "experience_years": N_("Enter a whole number of years from 0 to 80"),
    "certificates": N_("Use at most 2000 characters"),
    "preferences": N_("Use at most 2000 characters"),
}


def _field_errors(loc, exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else "form"
        if name in errors:
            continue
        if name == "password":
            too_short = err["type"] == "string_too_short"
            hint = N_("Use at least 8 characters") if too_short else N_("Use at most 72 bytes")
        else:
            hint = _FIELD_HINTS.get(name, N_("Check this field"))
        errors[name] = loc.gettext(hint)
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
        return csrf_refused(request)
    role = form.get("role")
    values: dict[str, Any] = {
        name: str(form.get(name, "")) for name in (*REGISTER_FIELDS, *SITTER_FIELDS)
    }
    values["experience_years"] = str(form.get("experience_years", "")).strip()
    values["role"] = role
    loc = page_localizer(request, None)
    if role not in ("owner", "sitter"):
        values["role"] = "owner"
        errors = {"role": loc.gettext("Choose whether you own pets or look after them")}
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
        errors = _field_errors(loc, exc)
    except Conflict:
        errors = {
            "email": loc.gettext("An account with this e-mail already exists — sign in instead")
        }
    except RateLimited as exc:
        values.pop("password")
        return _rate_limited(request, "register.html", values, exc)
    else:
        async with request.app[POOL].acquire() as conn:
            # The account keeps the language it was opened in, for pages and e-mails alike.
            await db_users.update_preferences(conn, user_id, {"locale": loc.locale})
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
            return csrf_refused(request)
        # Ended on the server too: a copy of the cookie no longer signs anyone in.
        claims = security.decode_token(request.app[SETTINGS], session.token)
        await auth.sign_out(request.app, claims)
    response = redirect(url(request, "login_page"))
    clear_session_cookie(request, response)
    return response
