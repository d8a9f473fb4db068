"""Registration, login and the caller's own profile."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import BeforeValidator, Field, StringConstraints

from nanny import ratelimit
from nanny.db import users as db_users
from nanny.emails import normalise_email
from nanny.encoding import rfc3339
from nanny.errors import Conflict, Forbidden, RateLimited, Unauthorized, ValidationFailed
from nanny.http import security
from nanny.http.endpoint import endpoint
from nanny.http.pages import clear_session_cookie, set_session_cookie
from nanny.http.responses import json_response
from nanny.http.schemas import Body, Email, FullName, Out, Password, Phone
from nanny.keys import CHAT_HUB, POOL, SETTINGS
from nanny.validation import NOT_BLANK_SCHEMA

routes = web.RouteTableDef()

ProfileText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Location = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NOT_BLANK_SCHEMA
]


def _not_a_bool(value: object) -> object:
    # Literal[0] would take false (false == 0 in Python); the document says integer.
    if isinstance(value, bool):
        raise ValueError("must be 0 or an empty string")
    return value


class RegisterOwner(Body):
    full_name: FullName
    email: Email
    phone: Phone
    password: Password
    role: str | None = Field(None, description="optional; must be 'owner' when sent")
    # The original web client sends the sitter fields empty when registering an owner.
    experience_years: Annotated[Literal[0, ""], BeforeValidator(_not_a_bool)] | None = Field(
        None, description="ignored; empty only"
    )
    certificates: Literal[""] | None = Field(None, description="ignored; empty only")
    preferences: Literal[""] | None = Field(None, description="ignored; empty only")
    location: Literal[""] | None = Field(None, description="ignored; empty only")


class RegisterSitter(Body):
    full_name: FullName
    email: Email
    phone: Phone
    password: Password
    role: str | None = Field(None, description="optional; must be 'sitter' when sent")
    experience_years: int = Field(0, ge=0, le=80)
    certificates: ProfileText = ""
    preferences: ProfileText = ""
    location: Location


class Login(Body):
    email: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=254),
        NOT_BLANK_SCHEMA,
    ]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class Registered(Out):
    user_id: int
    message: str


class SitterOut(Out):
    experience_years: int
    certificates: str
    preferences: str
    location: str
    status: Literal["pending", "approved", "rejected"]


class UserOut(Out):
    user_id: int
    full_name: str
    email: str | None
    phone: str | None
    role: Literal["owner", "sitter", "admin"]


class MeOut(UserOut):
    created_at: str
    locale: Literal["ru", "kk", "en"] | None = Field(description="saved language; null: none")
    time_zone: str | None = Field(description="saved IANA time zone; null: Asia/Almaty")
    sitter: SitterOut | None = None


class LoginOut(Out):
    token: str
    expires_at: str
    user_id: int
    role: str
    email: str
    full_name: str
    user: UserOut


def user_json(user: db_users.User) -> dict:
    return {
        "user_id": user.user_id,
        "full_name": user.full_name,
        "email": user.email,
        "phone": user.phone,
        "role": user.role,
    }


def me_json(user: db_users.User) -> dict:
    body = user_json(user) | {
        "created_at": user.created_at,
        "locale": user.locale,
        "time_zone": user.time_zone,
    }
    if user.sitter is not None:
        s = user.sitter
        body["sitter"] = {
            "experience_years": s.experience_years,
            "certificates": s.certificates,
            "preferences": s.preferences,
            "location": s.location,
            "status": s.status,
        }
    return body


def _check_role_field(sent: str | None, role: str) -> None:
    if sent not in (None, "", role):
        raise Forbidden(
            f"This endpoint registers an account of role '{role}'; 'role' may only be '{role}'",
            details={"field": "role"},
        )


async def register_account(
    request: web.Request, body: RegisterOwner | RegisterSitter, role: str
) -> int:
    """Create the account (and a pending sitter profile). The API and the register page share
    it, so both paths keep the same rules and limits."""
    _check_role_field(body.role, role)
    await ratelimit.check_register_rate(request, body.email)
    password_hash = await security.hash_password(request.app, body.password)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        user_id = await db_users.create_user(
            conn,
            email=body.email,
            phone=body.phone,
            full_name=body.full_name,
            password_hash=password_hash,
            role=role,
        )
        if user_id is None:
            raise Conflict("An account with this e-mail already exists", details={"field": "email"})
        if isinstance(body, RegisterSitter):
            await db_users.create_sitter_profile(
                conn,
                user_id,
                experience_years=body.experience_years,
                certificates=body.certificates,
                preferences=body.preferences,
                location=body.location,
            )
    return user_id


async def _register(request: web.Request, body: RegisterOwner | RegisterSitter, role: str):
    user_id = await register_account(request, body, role)
    message = "Owner registered" if role == "owner" else "Sitter registered; awaiting approval"
    return json_response({"user_id": user_id, "message": message}, status=201)


async def check_credentials(request: web.Request, email: str, password: str) -> db_users.User:
    """The live user with this e-mail and password; the same 401 for either being wrong.
    The API and the login page share it, so both paths keep the same rules and limits."""
    email = normalise_email(email)
    await ratelimit.check_login_rate(request, email)
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        creds = await db_users.get_credentials(conn, email)
    hashed = creds.password_hash if creds else None
    ok = await security.verify_password(request.app, password, hashed)
    if not ok or creds is None:
        raise Unauthorized("Wrong e-mail or password")
    async with pool.acquire() as conn:
        user = await db_users.get_user(conn, creds.user_id)
    if user is None:  # deleted between the two reads
        raise Unauthorized("Wrong e-mail or password")
    return user


@routes.post("/api/auth/register/owner", name="register_owner")
@endpoint(
    "Register a pet owner",
    tag="auth",
    body=RegisterOwner,
    response=Registered,
    status=201,
    errors=(ValidationFailed, Forbidden, Conflict, RateLimited),
)
async def register_owner(request: web.Request, body: RegisterOwner) -> web.Response:
    return await _register(request, body, "owner")


@routes.post("/api/auth/register/sitter", name="register_sitter")
@endpoint(
    "Register a pet sitter (starts pending approval)",
    tag="auth",
    body=RegisterSitter,
    response=Registered,
    status=201,
    errors=(ValidationFailed, Forbidden, Conflict, RateLimited),
)
async def register_sitter(request: web.Request, body: RegisterSitter) -> web.Response:
    return await _register(request, body, "sitter")


@routes.post("/api/auth/login", name="login")
@endpoint(
    "Exchange e-mail and password for a token",
    tag="auth",
    body=Login,
    response=LoginOut,
    errors=(ValidationFailed, Unauthorized, RateLimited),
)
async def login(request: web.Request, body: Login) -> web.Response:
    user = await check_credentials(request, body.email, body.password)
    return json_response(_token_json(request, user, user.token_generation))


def _token_json(request: web.Request, user: db_users.User, generation: int) -> dict:
    token, expires_at = security.issue_token(
        request.app[SETTINGS], user.user_id, user.role, generation
    )
    return {
        "token": token,
        "expires_at": rfc3339(expires_at),
        "user_id": user.user_id,
        "role": user.role,
        "email": user.email,
        "full_name": user.full_name,
        "user": user_json(user),
    }


def _by_cookie(request: web.Request) -> bool:
    found = security.request_token(request)
    return found is not None and found[1] == "cookie"


async def sign_out(app: web.Application, claims: security.TokenClaims) -> None:
    """End the token of `claims`: once this returns, every process refuses it. The API and the
    sign-out form share it."""
    async with app[POOL].acquire() as conn, conn.transaction():
        generation = await db_users.revoke_token(
            conn, claims.user_id, claims.token_id, claims.expires_at
        )
    await app[CHAT_HUB].user_changed(
        claims.user_id, ended_token=claims.token_id, generation=generation
    )


@routes.post("/api/auth/logout", name="api_logout")
@endpoint(
    "End the presented token on the server: from the answer on, every process refuses it",
    tag="auth",
    status=204,
    roles=(),
    errors=(Unauthorized,),
)
async def logout(request: web.Request, user: db_users.User) -> web.Response:
    await sign_out(request.app, request[security.CLAIMS_KEY])
    response = web.Response(status=204)
    if _by_cookie(request):
        clear_session_cookie(request, response)
    return response


class PasswordChange(Body):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    new_password: Password


@routes.post("/api/auth/password", name="change_password")
@endpoint(
    "Change the password: every token of the user issued before ends on every process; the "
    "answer carries a fresh token (and, for the pages, a fresh session cookie)",
    tag="auth",
    body=PasswordChange,
    response=LoginOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, RateLimited),
)
async def change_password(
    request: web.Request, user: db_users.User, body: PasswordChange
) -> web.Response:
    if body.new_password == body.current_password:
        raise ValidationFailed(
            "The new password must differ from the current one", details={"field": "new_password"}
        )
    # Guessing the current password here spends the same budget as guessing it at login.
    await ratelimit.check_login_rate(request, user.email)
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        current = await db_users.get_password_hash(conn, user.user_id)
    if not await security.verify_password(request.app, body.current_password, current):
        raise Forbidden("The current password is wrong", details={"field": "current_password"})
    new_hash = await security.hash_password(request.app, body.new_password)
    async with pool.acquire() as conn:
        generation = await db_users.change_password(conn, user.user_id, new_hash)
    if generation is None:
        raise Unauthorized("The account no longer exists")
    await request.app[CHAT_HUB].user_changed(user.user_id, generation=generation)
    body_json = _token_json(request, user, generation)
    response = json_response(body_json)
    if _by_cookie(request):
        set_session_cookie(request, response, body_json["token"])
    return response


@routes.get("/api/auth/me", name="me")
@endpoint("The caller's own profile", tag="auth", response=MeOut, roles=(), errors=(Unauthorized,))
async def me(request: web.Request, user: db_users.User) -> web.Response:
    return json_response(me_json(user))
