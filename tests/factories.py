"""Small factories: each call makes fresh, uniquely named data through the real API."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import asyncpg

_counter = itertools.count(1)
PASSWORD = "correct-horse-9"


@dataclass(frozen=True)
class Account:
    user_id: int
    email: str
    token: str
    role: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}{next(_counter)}@example.kz"


def unique_phone() -> str:
    return f"+7701{next(_counter):07d}"


def owner_body(**over) -> dict:
    body = {
        "full_name": "Aigerim Owner",
        "email": unique_email("owner"),
        "phone": unique_phone(),
        "password": PASSWORD,
    }
    return body | over


def sitter_body(**over) -> dict:
    body = {
        "full_name": "Daniyar Sitter",
        "email": unique_email("sitter"),
        "phone": unique_phone(),
        "password": PASSWORD,
        "experience_years": 3,
        "certificates": "Pet first aid",
        "preferences": "dogs",
        "location": "Almaty",
    }
    return body | over


async def login(client, email: str, password: str = PASSWORD) -> dict:
    resp = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def make_owner(client, **over) -> Account:
    body = owner_body(**over)
    resp = await client.post("/api/auth/register/owner", json=body)
    assert resp.status == 201, await resp.text()
    data = await login(client, body["email"], body["password"])
    return Account(data["user_id"], body["email"], data["token"], "owner")


async def make_sitter(client, *, status: str = "approved", **over) -> Account:
    body = sitter_body(**over)
    resp = await client.post("/api/auth/register/sitter", json=body)
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["user_id"]
    if status != "pending":
        await set_sitter_status(client, user_id, status)
    data = await login(client, body["email"], body["password"])
    return Account(user_id, body["email"], data["token"], "sitter")


async def make_admin(client) -> Account:
    import bcrypt

    from nanny.db import users as db_users
    from nanny.keys import POOL

    email = unique_email("admin")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    async with client.app[POOL].acquire() as conn:
        user_id = await db_users.create_user(
            conn, email=email, phone=None, full_name="Admin", password_hash=hashed, role="admin"
        )
    data = await login(client, email)
    return Account(user_id, email, data["token"], "admin")


async def set_sitter_status(client, user_id: int, status: str) -> None:
    from nanny.keys import POOL

    pool: asyncpg.Pool = client.app[POOL]
    await pool.execute("UPDATE sitters SET status = $2 WHERE user_id = $1", user_id, status)
