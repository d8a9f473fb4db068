"""Registration, login and the caller's own profile."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StringConstraints

from nanny import ratelimit
from nanny.db import users as db_users
from nanny.emails import normalise_email
from nanny.errors import Conflict, Forbidden, RateLimited, Unauthorized, ValidationFailed
from nanny.http import security
from nanny.http.endpoint import endpoint
from nanny.http.responses import json_response, rfc3339
from nanny.http.schemas import Body, Email, FullName, Out, Password, Phone
from nanny.keys import POOL, SETTINGS

routes = web.RouteTableDef()

ProfileText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Location = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class RegisterOwner(Body):
    full_name: FullName
    email: Email
    phone: Phone
    password: Password
    role: str | None = Field(None, description="optional; must be 'owner' when sent")
    # The original web client sends the sitter fields empty when registering an owner.
    experience_years: Literal[0, ""] | None = Field(None, description="ignored; empty only")
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
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=254)]
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
    body = user_json(user) | {"created_at": user.created_at}
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
    token, expires_at = security.issue_token(request.app[SETTINGS], user.user_id, user.role)
    return json_response(
        {
            "token": token,
            "expires_at": rfc3339(expires_at),
            "user_id": user.user_id,
            "role": user.role,
            "email": user.email,
            "full_name": user.full_name,
            "user": user_json(user),
        }
    )


@routes.get("/api/auth/me", name="me")
@endpoint("The caller's own profile", tag="auth", response=MeOut, roles=(), errors=(Unauthorized,))
async def me(request: web.Request, user: db_users.User) -> web.Response:
    return json_response(me_json(user))
