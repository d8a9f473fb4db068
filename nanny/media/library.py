"""The photo use cases: store an upload as an image of a booking or a pet, serve a variant, and
remove files nothing uses any more.

Storing is all or nothing. In one transaction: each file's row is taken (nanny/db/media.py),
the files missing from storage are written (atomically: temp file and rename), and the image
row is inserted. If anything fails, the files written by this upload are removed before the
rollback lets go of their rows: no file and no row are left behind. Files are removed the same
way round: their rows are deleted first, and the files before the commit."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from nanny.db import media as db_media
from nanny.media.images import Encoded, Processed
from nanny.media.processing import ImageProcessor
from nanny.media.storage import MediaStorage, content_key

GARBAGE_BATCH = 500


@dataclass(frozen=True, slots=True)
class ImageFile:
    key: str
    content_type: str
    etag: str


class MediaLibrary:
    def __init__(self, pool: asyncpg.Pool, storage: MediaStorage, processor: ImageProcessor):
        self.pool = pool
        self.storage = storage
        self.processor = processor

    async def add_attachment(
        self, processed: Processed, *, booking_id: int, uploader_id: int
    ) -> db_media.Image:
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._store(
                conn, processed, uploader_id=uploader_id, booking_id=booking_id
            )

    async def set_pet_photo(
        self, processed: Processed, *, pet_id: int, owner_id: int
    ) -> db_media.Image | None:
        """The pet's new photo, replacing its old one; None when it is not the owner's pet."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                if not await db_media.lock_owned_pet(conn, pet_id, owner_id):
                    return None
                replaced = await db_media.delete_pet_photo(conn, pet_id)
                image = await self._store(conn, processed, uploader_id=owner_id, pet_id=pet_id)
            if replaced:
                await self.collect_garbage(conn)
        return image

    async def remove_pet_photo(self, *, pet_id: int, owner_id: int) -> bool:
        """False when it is not the owner's pet; True (whether it had a photo or not) else."""
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                if not await db_media.lock_owned_pet(conn, pet_id, owner_id):
                    return False
                removed = await db_media.delete_pet_photo(conn, pet_id)
            if removed:
                await self.collect_garbage(conn)
        return True

    async def _store(
        self,
        conn: asyncpg.Connection,
        processed: Processed,
        *,
        uploader_id: int,
        booking_id: int | None = None,
        pet_id: int | None = None,
    ) -> db_media.Image:
        files: dict[str, Encoded] = {}
        for encoded in (processed.full, processed.thumb):
            files.setdefault(content_key(encoded.data), encoded)
        # Sorted: two uploads sharing files take their rows in the same order.
        for key in sorted(files):
            await db_media.lock_file(conn, key, len(files[key].data))
        written: list[str] = []
        try:
            for key in sorted(files):
                if await self.storage.put(key, files[key].data):
                    written.append(key)
            full, thumb = processed.full, processed.thumb
            new = db_media.ImageFiles(
                content_type=full.content_type,
                width=full.width,
                height=full.height,
                bytes=len(full.data),
                full_key=content_key(full.data),
                thumb_key=content_key(thumb.data),
            )
            return await db_media.insert_image(
                conn, new, uploader_id=uploader_id, booking_id=booking_id, pet_id=pet_id
            )
        except BaseException:
            # Still holding the rows: nobody can have started to use these files.
            for key in written:
                await self.storage.delete(key)
            raise

    async def locate(self, image_id: int, variant: str) -> ImageFile | None:
        """Where a variant of an image is kept, or None when there is no such image."""
        async with self.pool.acquire() as conn:
            image = await db_media.get_image(conn, image_id)
        if image is None:
            return None
        key = image.thumb_key if variant == "thumb" else image.full_key
        return ImageFile(key, image.content_type, f'"{key[:32]}"')

    async def collect_garbage(self, conn: asyncpg.Connection | None = None) -> int:
        """Remove every file no image uses (rows first, files before the commit); how many."""
        if conn is None:
            async with self.pool.acquire() as conn:
                return await self.collect_garbage(conn)
        removed = 0
        while True:
            async with conn.transaction():
                keys = await db_media.take_garbage(conn, GARBAGE_BATCH)
                for key in keys:
                    await self.storage.delete(key)
            removed += len(keys)
            if len(keys) < GARBAGE_BATCH:
                return removed
