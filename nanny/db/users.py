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


@dataclass(frozen=True, slots=True)
class Credentials:
    user_id: int
    password_hash: str
    role: str


_USER_COLUMNS = """
    u.user_id, u.email, u.phone, u.full_name, u.role, u.created_at, u.deleted_at,
    s.experience_years, s.certificates, s.preferences, s.location, s.status
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
