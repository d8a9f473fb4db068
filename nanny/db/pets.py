"""Pets."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from nanny.db import page_total


@dataclass(frozen=True, slots=True)
class Pet:
    pet_id: int
    owner_id: int
    name: str
    type: str
    age: int
    notes: str


_COLUMNS = "pet_id, owner_id, name, type, age, notes"


def _pet(row: asyncpg.Record | None) -> Pet | None:
    return Pet(**row) if row else None


async def create_pet(
    conn: asyncpg.Connection, owner_id: int, *, name: str, type: str, age: int, notes: str
) -> Pet:
    row = await conn.fetchrow(
        f"""
        INSERT INTO pets (owner_id, name, type, age, notes) VALUES ($1, $2, $3, $4, $5)
        RETURNING {_COLUMNS}
        """,
        owner_id,
        name,
        type,
        age,
        notes,
    )
    return _pet(row)


async def get_visible_pet(
    conn: asyncpg.Connection, pet_id: int, viewer_id: int, *, admin: bool = False
) -> Pet | None:
    """The pet if `viewer_id` may see it: its owner, a sitter holding a booking for it (in any
    status: the sitter was shown the pet when asked to take it), or an admin."""
    row = await conn.fetchrow(
        f"""
        SELECT {_COLUMNS} FROM pets p
        WHERE p.pet_id = $1
          AND (p.owner_id = $2 OR $3
               OR EXISTS (SELECT 1 FROM bookings b WHERE b.pet_id = p.pet_id AND b.sitter_id = $2))
        """,
        pet_id,
        viewer_id,
        admin,
    )
    return _pet(row)


async def update_pet(
    conn: asyncpg.Connection, pet_id: int, owner_id: int, changes: dict[str, object]
) -> Pet | None:
    """Apply `changes` (column -> value, columns from a fixed set) to the owner's pet."""
    allowed = ("name", "type", "age", "notes")
    columns = [c for c in allowed if c in changes]
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=3))
    row = await conn.fetchrow(
        f"""
        UPDATE pets SET {assignments + ", " if assignments else ""}updated_at = now()
        WHERE pet_id = $1 AND owner_id = $2
        RETURNING {_COLUMNS}
        """,
        pet_id,
        owner_id,
        *(changes[c] for c in columns),
    )
    return _pet(row)


async def delete_unbooked_pet(conn: asyncpg.Connection, pet_id: int, owner_id: int) -> bool | None:
    """Delete the owner's pet unless it has a pending or confirmed booking.
    None: no such pet of this owner; False: it is booked; True: deleted.
    Run inside a transaction: the row lock makes a booking being created for the pet finish
    first, and the check after it then sees that booking."""
    locked = await conn.fetchval(
        "SELECT 1 FROM pets WHERE pet_id = $1 AND owner_id = $2 FOR UPDATE", pet_id, owner_id
    )
    if locked is None:
        return None
    deleted = await conn.fetchval(
        """
        DELETE FROM pets p WHERE p.pet_id = $1
          AND NOT EXISTS (SELECT 1 FROM bookings b
                          WHERE b.pet_id = p.pet_id AND b.status IN ('pending', 'confirmed'))
        RETURNING 1
        """,
        pet_id,
    )
    return deleted is not None


async def list_owner_pets(
    conn: asyncpg.Connection, owner_id: int, *, limit: int, offset: int
) -> tuple[list[Pet], int]:
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, count(*) OVER () AS total FROM pets
        WHERE owner_id = $1 ORDER BY pet_id LIMIT $2 OFFSET $3
        """,
        owner_id,
        limit,
        offset,
    )
    total = await page_total(
        conn, rows, offset, "SELECT count(*) FROM pets WHERE owner_id = $1", owner_id
    )
    return [Pet(**{k: r[k] for k in Pet.__slots__}) for r in rows], total
