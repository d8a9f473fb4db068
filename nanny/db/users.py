"""Users and sitter profiles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class SitterProfile:
    experience_years: int
    certificates: str
    preferences: str
    location: str
    status: str


@dataclass(frozen=True, slots=True)
class User:
    user_id: int
    email: str | None
    phone: str | None
    full_name: str
    role: str
    created_at: datetime
    deleted_at: datetime | None = None
    sitter: SitterProfile | None = None
    locale: str | None = None  # the saved language; None: the browser's
    time_zone: str | None = None  # the saved IANA zone; None: Asia/Almaty
    # Tokens issued with another generation, or listed here (signed out), are ended.
    token_generation: int = 0
    revoked_tokens: frozenset[str] = frozenset()


# Signing out lists the token; past this many listed tokens the user's generation is raised
# instead, ending all of them at once, so the list a user's row carries stays short.
MAX_REVOKED_TOKENS = 100


@dataclass(frozen=True, slots=True)
class Credentials:
    user_id: int
    password_hash: str
    role: str


_USER_COLUMNS = """
    u.user_id, u.email, u.phone, u.full_name, u.role, u.created_at, u.deleted_at,
    u.locale, u.time_zone, s.experience_years, s.certificates, s.preferences, s.location, s.status,
    u.token_generation,
    array(SELECT r.token_id FROM revoked_tokens r
          WHERE r.user_id = u.user_id AND r.expires_at > now()) AS revoked_tokens
"""


def _user(row: asyncpg.Record) -> User:
    sitter = None
    if row["status"] is not None:
        sitter = SitterProfile(
            experience_years=row["experience_years"],
            certificates=row["certificates"],
            preferences=row["preferences"],
            location=row["location"],
            status=row["status"],
        )
    return User(
        user_id=row["user_id"],
        email=row["email"],
        phone=row["phone"],
        full_name=row["full_name"],
        role=row["role"],
        created_at=row["created_at"],
        deleted_at=row["deleted_at"],
        sitter=sitter,
        locale=row["locale"],
        time_zone=row["time_zone"],
        # Lists of users (the admin's) leave out what only authentication needs.
        token_generation=row.get("token_generation", 0),
        revoked_tokens=frozenset(row.get("revoked_tokens") or ()),
    )


async def create_user(
    conn: asyncpg.Connection,
    *,
    email: str,
    phone: str | None,
    full_name: str,
    password_hash: str,
    role: str,
) -> int | None:
    """Insert a user; None when the e-mail is taken. `email` is in nanny.emails' normal form,
    so the unique index on the column compares normal forms."""
    return await conn.fetchval(
        """
        INSERT INTO users (email, phone, full_name, password_hash, role)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (email) WHERE email IS NOT NULL DO NOTHING
        RETURNING user_id
        """,
        email,
        phone,
        full_name,
        password_hash,
        role,
    )


async def create_sitter_profile(
    conn: asyncpg.Connection,
    user_id: int,
    *,
    experience_years: int,
    certificates: str,
    preferences: str,
    location: str,
    status: str = "pending",
) -> None:
    await conn.execute(
        """
        INSERT INTO sitters (user_id, experience_years, certificates, preferences, location, status)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        user_id,
        experience_years,
        certificates,
        preferences,
        location,
        status,
    )


async def get_user(conn: asyncpg.Connection, user_id: int) -> User | None:
    """A live (not deleted) user with its sitter profile, or None."""
    row = await conn.fetchrow(
        f"""
        SELECT {_USER_COLUMNS}
        FROM users u LEFT JOIN sitters s ON s.user_id = u.user_id
        WHERE u.user_id = $1 AND u.deleted_at IS NULL
        """,
        user_id,
    )
    return _user(row) if row else None


PREFERENCES = ("locale", "time_zone")


async def update_preferences(conn: asyncpg.Connection, user_id: int, changes: dict) -> bool:
    """Set the given preferences (some keys of PREFERENCES; None clears one) of a live user;
    False when there is no such user."""
    names = [name for name in PREFERENCES if name in changes]
    sets = ", ".join(f"{name} = ${n}" for n, name in enumerate(names, start=2))
    status = await conn.execute(
        f"UPDATE users SET {sets}, updated_at = now() WHERE user_id = $1 AND deleted_at IS NULL",
        user_id,
        *(changes[name] for name in names),
    )
    return status == "UPDATE 1"


async def get_credentials(conn: asyncpg.Connection, email: str) -> Credentials | None:
    """The live user's credentials by e-mail in nanny.emails' normal form (compared exactly:
    PostgreSQL's lower() depends on the server's locale)."""
    row = await conn.fetchrow(
        """
        SELECT user_id, password_hash, role FROM users
        WHERE email = $1 AND deleted_at IS NULL
        """,
        email,
    )
    return Credentials(**row) if row else None


async def get_password_hash(conn: asyncpg.Connection, user_id: int) -> str | None:
    return await conn.fetchval(
        "SELECT password_hash FROM users WHERE user_id = $1 AND deleted_at IS NULL", user_id
    )


async def revoke_token(
    conn: asyncpg.Connection, user_id: int, token_id: str, expires_at: datetime
) -> int | None:
    """End one token of the user until `expires_at` (when it would have ended anyway). Run in a
    transaction. The user's listed tokens that expired are dropped; past MAX_REVOKED_TOKENS the
    generation is raised instead, which ends every token of the user: then the new generation,
    else None."""
    await conn.execute(
        "DELETE FROM revoked_tokens WHERE user_id = $1 AND expires_at <= now()", user_id
    )
    await conn.execute(
        """
        INSERT INTO revoked_tokens (token_id, user_id, expires_at) VALUES ($2, $1, $3)
        ON CONFLICT (token_id) DO NOTHING
        """,
        user_id,
        token_id,
        expires_at,
    )
    listed = await conn.fetchval("SELECT count(*) FROM revoked_tokens WHERE user_id = $1", user_id)
    if listed > MAX_REVOKED_TOKENS:
        return await end_all_tokens(conn, user_id)
    return None


async def end_all_tokens(conn: asyncpg.Connection, user_id: int) -> int | None:
    """Raise the user's token generation, ending every token issued so far; the new generation,
    or None when the user is gone."""
    generation = await conn.fetchval(
        """
        UPDATE users SET token_generation = token_generation + 1, updated_at = now()
        WHERE user_id = $1 AND deleted_at IS NULL
        RETURNING token_generation
        """,
        user_id,
    )
    await conn.execute("DELETE FROM revoked_tokens WHERE user_id = $1", user_id)
    return generation


async def change_password(conn: asyncpg.Connection, user_id: int, password_hash: str) -> int | None:
    """Set a new password and end every token issued so far, in one transaction; the new
    generation (for the caller's fresh token), or None when the user is gone."""
    async with conn.transaction():
        updated = await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE user_id = $1 AND deleted_at IS NULL",
            user_id,
            password_hash,
        )
        if updated == "UPDATE 0":
            return None
        return await end_all_tokens(conn, user_id)
