"""Tokens, passwords and the role/ownership checks every resource module uses."""

from __future__ import annotations

import asyncio
import functools
import hmac
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import bcrypt
import jwt
from aiohttp import web

from nanny.config import Settings
from nanny.db import users as db_users
from nanny.errors import Forbidden, Unauthorized
from nanny.inflight import waiting_for_cpu
from nanny.keys import CHAT_HUB, CPU_EXECUTOR, DUMMY_HASH, POOL, SETTINGS, USER_CACHE
from nanny.validation import MAX_ID

ALGORITHM = "HS256"
TOKEN_COOKIE = "nanny_token"
USER_KEY = web.RequestKey("nanny_user", db_users.User)
# A user id as issue_token writes it: ASCII digits, no sign, space or leading zero, and within
# PostgreSQL's integer (str.isdigit would take "²", which int() refuses, and "٢", which it reads
# as 2).
_SUBJECT = re.compile(r"[1-9][0-9]{0,9}")

# A token's id as issue_token writes it (secrets.token_urlsafe), or any other short one.
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    role: str
    expires_at: datetime
    # The token's own id (jti): signing out lists it among the user's revoked tokens.
    token_id: str
    # The user's token generation when it was issued (gen): changing the password raises the
    # user's, ending every token issued before.
    generation: int


# The verified claims of the request's token, beside its user.
CLAIMS_KEY = web.RequestKey("nanny_token_claims", TokenClaims)


def issue_token(
    settings: Settings, user_id: int, role: str, generation: int = 0
) -> tuple[str, datetime]:
    """A token for the user; `generation` is the user's token_generation (0 for an account
    that never changed its password)."""
    now = datetime.now(UTC).replace(microsecond=0)
    expires_at = now + timedelta(hours=settings.jwt_ttl_hours)
    claims = {
        "sub": str(user_id),
        "role": role,
        "iat": now,
        "exp": expires_at,
        "jti": secrets.token_urlsafe(16),
        "gen": generation,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM), expires_at


def _whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@functools.lru_cache(maxsize=8192)
def _verified_claims(secret: str, token: str) -> TokenClaims | None:
    """Signature and shape checked once per token (pinned HS256); None when invalid. Expiry is
    checked by the caller on every use, so a cached token still stops working on time."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "iat", "jti", "gen"], "verify_exp": False},
        )
    except jwt.PyJWTError:
        return None
    sub, role, exp = claims.get("sub"), claims.get("role"), claims.get("exp")
    token_id, generation = claims.get("jti"), claims.get("gen")
    if not (isinstance(sub, str) and _SUBJECT.fullmatch(sub) and isinstance(role, str)):
        return None
    if int(sub) > MAX_ID:
        return None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return None
    if not (isinstance(token_id, str) and _TOKEN_ID.fullmatch(token_id)):
        return None
    if not (_whole_number(generation) and 0 <= generation <= MAX_ID):
        return None
    return TokenClaims(int(sub), role, datetime.fromtimestamp(exp, UTC), token_id, generation)


def decode_token(settings: Settings, token: str) -> TokenClaims:
    claims = _verified_claims(settings.jwt_secret, token)
    if claims is None:
        raise Unauthorized("The token is invalid")
    if claims.expires_at <= datetime.now(UTC):
        raise Unauthorized("The token has expired")
    return claims


async def dummy_hash_ctx(app: web.Application) -> AsyncIterator[None]:
    """A hash at the configured cost, made once at start in the CPU executor: a login for an
    unknown e-mail is checked against it, so it costs the same bcrypt work as a wrong password
    and the answer's timing does not tell which addresses have accounts."""
    rounds = app[SETTINGS].bcrypt_rounds
    app[DUMMY_HASH] = await asyncio.get_running_loop().run_in_executor(
        app[CPU_EXECUTOR], bcrypt.hashpw, b"not-a-real-password", bcrypt.gensalt(rounds)
    )
    yield


async def hash_password(app: web.Application, password: str) -> str:
    rounds = app[SETTINGS].bcrypt_rounds

    def work() -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()

    with waiting_for_cpu():
        return await asyncio.get_running_loop().run_in_executor(app[CPU_EXECUTOR], work)


async def verify_password(app: web.Application, password: str, hashed: str | None) -> bool:
    dummy = app[DUMMY_HASH]

    def work() -> bool:
        candidate = password.encode()
        if hashed is None or len(candidate) > 72:
            bcrypt.checkpw(b"x", dummy)
            return False
        return bcrypt.checkpw(candidate, hashed.encode())

    with waiting_for_cpu():
        return await asyncio.get_running_loop().run_in_executor(app[CPU_EXECUTOR], work)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def csrf_token_for(settings: Settings, session_token: str) -> str:
    """The CSRF token bound to a session cookie: pages embed it, cookie-authenticated writes
    send it back. Stateless, and useless to a site that cannot read our pages."""
    digest = hmac.new(settings.jwt_secret.encode(), b"csrf:" + session_token.encode(), "sha256")
    return digest.hexdigest()


def check_csrf(request: web.Request, settings: Settings, session_token: str) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent, csrf_token_for(settings, session_token)):
        raise Forbidden("Missing or invalid CSRF token", details={"field": CSRF_HEADER})


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'")
    return token.strip()


def request_token(request: web.Request) -> tuple[str, str] | None:
    """The caller's token and where it came from ('bearer' or 'cookie'), or None."""
    token = bearer_token(request)
    if token is not None:
        return token, "bearer"
    cookie = request.cookies.get(TOKEN_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None


async def current_user(app: web.Application, user_id: int) -> db_users.User | None:
    """The live user, read at most once per AUTH_CACHE_SECONDS per process: every authenticated
    request needs it, and a second round trip per request halves what a process serves. A
    change to a user (approval, rejection, deletion, revoked tokens) is forgotten by every
    process before it is answered (`ChatHub.user_changed` waits for their receipts); a process
    that cannot hear the others (Redis away) reads users from the database until it can."""

    async def load() -> db_users.User | None:
        async with app[POOL].acquire() as conn:
            return await db_users.get_user(conn, user_id)

    if not app[CHAT_HUB].broker.connected:
        # Deaf to other processes' changes (Redis is away): trust only the database.
        return await load()
    return await app[USER_CACHE].get_or_load(user_id, load)


def token_is_live(user: db_users.User, claims: TokenClaims) -> bool:
    """Whether the user has not ended this token: signed out with it, or changed the password
    since it was issued. (The later check of an open WebSocket against a changed user reads
    the same two facts, which the cached user row carries.)"""
    return claims.generation == user.token_generation and claims.token_id not in user.revoked_tokens


async def user_for_claims(app: web.Application, claims: TokenClaims) -> db_users.User:
    """The live user behind verified claims; 401 when the account is gone or the token ended."""
    user = await current_user(app, claims.user_id)
    if user is None:
        raise Unauthorized("The account no longer exists")
    if not token_is_live(user, claims):
        raise Unauthorized("The token was ended (signed out, or the password changed)")
    return user


async def authenticate(request: web.Request) -> db_users.User | None:
    """The live user behind the request's token; None without a token; 401 for a bad one."""
    if USER_KEY in request:
        return request[USER_KEY]
    found = request_token(request)
    if found is None:
        return None
    token, source = found
    settings = request.app[SETTINGS]
    claims = decode_token(settings, token)
    if source == "cookie" and request.method not in SAFE_METHODS:
        check_csrf(request, settings, token)
    user = await user_for_claims(request.app, claims)
    request[USER_KEY] = user
    request[CLAIMS_KEY] = claims
    return user


async def require_user(request: web.Request, roles: tuple[str, ...] = ()) -> db_users.User:
    """The authenticated caller, who must hold one of `roles` (any role when empty)."""
    user = await authenticate(request)
    if user is None:
        raise Unauthorized("Authentication required")
    if roles and user.role not in roles:
        raise Forbidden(f"This action needs the {' or '.join(roles)} role")
    return user


def require_approved_sitter(user: db_users.User) -> None:
    if user.role != "sitter" or user.sitter is None or user.sitter.status != "approved":
        raise Forbidden("Only approved sitters may do this")


def require_self_or_admin(user: db_users.User, user_id: int) -> None:
    if user.role != "admin" and user.user_id != user_id:
        raise Forbidden("You may only access your own records")
