"""Who may read and write a booking's chat: its participants read and write, admins only read,
and to anyone else the booking does not exist (404, as for the booking itself)."""

from __future__ import annotations

import asyncpg

from nanny.access import is_participant, may_view
from nanny.db import chat as db_chat
from nanny.db.chat import ChatAccess
from nanny.errors import Forbidden, NotFound


def require_writer(role: str) -> None:
    """Admins may watch any chat but take no part in it."""
    if role == "admin":
        raise Forbidden("Admins may read chats but not write in them")


def no_such_booking(booking_id: int) -> NotFound:
    return NotFound(f"Booking {booking_id} does not exist")


async def chat_access(pool: asyncpg.Pool, booking_id: int) -> ChatAccess:
    async with pool.acquire() as conn:
        access = await db_chat.get_chat_access(conn, booking_id)
    if access is None:
        raise no_such_booking(booking_id)
    return access


async def require_participant(pool: asyncpg.Pool, user_id: int, booking_id: int) -> ChatAccess:
    access = await chat_access(pool, booking_id)
    if not is_participant(access, user_id):
        raise no_such_booking(booking_id)
    return access


async def require_reader(
    pool: asyncpg.Pool, user_id: int, role: str, booking_id: int
) -> ChatAccess:
    access = await chat_access(pool, booking_id)
    if not may_view(access, user_id, role):
        raise no_such_booking(booking_id)
    return access
