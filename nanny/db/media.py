"""Images (pets' photos and chat attachments) and the files they use.

A file's row in media_files is its lock: an upload takes it (creating it if need be) before it
writes the file, and the garbage collection takes it before it removes one, so the two never
cross. `refs` is kept by a trigger (migration 0009): a file whose count fell to 0 is garbage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from nanny.db.chat import AttachedImage


@dataclass(frozen=True, slots=True)
class ImageFiles:
    """An image's two files (display size and thumbnail) and what to say about them."""

    content_type: str
    width: int  # of the display size
    height: int
    bytes: int  # of the display size
    full_key: str
    thumb_key: str


@dataclass(frozen=True, slots=True)
class Image(ImageFiles):
    image_id: int
    uploader_id: int
    booking_id: int | None
    pet_id: int | None
    message_id: int | None
    created_at: datetime

    @property
    def attached(self) -> AttachedImage:
        return AttachedImage(self.image_id, self.width, self.height)


_COLUMNS = """image_id, uploader_id, booking_id, pet_id, message_id, content_type, width, height,
    bytes, full_key, thumb_key, created_at"""


async def lock_file(conn: asyncpg.Connection, key: str, size: int) -> None:
    """Take file `key`'s row (made, with no user yet, when new) until the transaction ends.
    Run inside a transaction."""
    await conn.execute(
        """
        INSERT INTO media_files AS f (key, bytes) VALUES ($1, $2)
        ON CONFLICT (key) DO UPDATE SET refs = f.refs
        """,
        key,
        size,
    )


async def insert_image(
    conn: asyncpg.Connection,
    image: ImageFiles,
    *,
    uploader_id: int,
    booking_id: int | None = None,
    pet_id: int | None = None,
) -> Image:
    row = await conn.fetchrow(
        f"""
        INSERT INTO images (uploader_id, booking_id, pet_id, content_type, width, height, bytes,
                            full_key, thumb_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        RETURNING {_COLUMNS}
        """,
        uploader_id,
        booking_id,
        pet_id,
        image.content_type,
        image.width,
        image.height,
        image.bytes,
        image.full_key,
        image.thumb_key,
    )
    return Image(**row)


async def lock_owned_pet(conn: asyncpg.Connection, pet_id: int, owner_id: int) -> bool:
    """Lock the owner's pet until the transaction ends (so two photo changes of one pet go one
    after the other); False when it is not the owner's pet."""
    found = await conn.fetchval(
        "SELECT 1 FROM pets WHERE pet_id = $1 AND owner_id = $2 FOR UPDATE", pet_id, owner_id
    )
    return found is not None


async def delete_pet_photo(conn: asyncpg.Connection, pet_id: int) -> bool:
    deleted = await conn.fetchval("DELETE FROM images WHERE pet_id = $1 RETURNING image_id", pet_id)
    return deleted is not None


async def pet_photos(conn: asyncpg.Connection, pet_ids: list[int]) -> dict[int, AttachedImage]:
    rows = await conn.fetch(
        "SELECT pet_id, image_id, width, height FROM images WHERE pet_id = ANY($1::int[])",
        pet_ids,
    )
    return {r["pet_id"]: AttachedImage(r["image_id"], r["width"], r["height"]) for r in rows}


async def get_image(conn: asyncpg.Connection, image_id: int) -> Image | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM images WHERE image_id = $1", image_id)
    return Image(**row) if row else None


async def delete_unclaimed(conn: asyncpg.Connection, older_than: timedelta) -> int:
    """Delete chat attachments that no message claimed within `older_than` of their upload."""
    deleted = await conn.fetch(
        """
        DELETE FROM images
        WHERE booking_id IS NOT NULL AND message_id IS NULL AND created_at < now() - $1::interval
        RETURNING image_id
        """,
        older_than,
    )
    return len(deleted)


async def delete_user_images(conn: asyncpg.Connection, user_id: int) -> int:
    """Delete every image a user uploaded, and the photos of their pets."""
    deleted = await conn.fetch(
        """
        DELETE FROM images im
        WHERE im.uploader_id = $1
           OR im.pet_id IN (SELECT p.pet_id FROM pets p WHERE p.owner_id = $1)
        RETURNING image_id
        """,
        user_id,
    )
    return len(deleted)


async def take_garbage(conn: asyncpg.Connection, limit: int) -> list[str]:
    """Delete up to `limit` rows of files no image uses, and return their keys; the caller
    removes the files before the transaction commits. Rows an upload holds are skipped."""
    rows = await conn.fetch(
        """
        DELETE FROM media_files f
        USING (SELECT key FROM media_files WHERE refs = 0
               ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED) g
        WHERE f.key = g.key AND f.refs = 0
        RETURNING f.key
        """,
        limit,
    )
    return [r["key"] for r in rows]


@dataclass(frozen=True, slots=True)
class MediaTotals:
    images: int
    files: int
    bytes: int


async def media_totals(conn: asyncpg.Connection) -> MediaTotals:
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM images) AS images,
               count(*) AS files, coalesce(sum(bytes), 0)::bigint AS bytes
        FROM media_files WHERE refs > 0
        """
    )
    return MediaTotals(**row)
