"""A small per-process cache for read-mostly answers (service search, signed-in users).

Entries live `ttl` seconds; concurrent misses for one key share a single load, so a popular
query reaching its expiry costs one database round trip, not one per waiting request. Writes
clear it (`forget`, `clear`); the users' and the public reads' caches are cleared on every
process before a change is answered (nanny.ws.hub)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class TtlCache:
    def __init__(self, ttl: float, max_entries: int = 2048):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._loading: dict[Hashable, asyncio.Task] = {}
        # Bumped by clear(): a load that started before a write must not store its old answer.
        self._generation = 0

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[Any]]) -> Any:
        if self.ttl <= 0:
            return await load()
        loop = asyncio.get_running_loop()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > loop.time():
            return hit[1]
        task = self._loading.get(key)
        if task is None:
            # A context of its own: the load serves every waiter, not the request that began it
            # (nanny.inflight must not count its database use as that request's).
            task = loop.create_task(
                self._load(key, load, self._generation), context=contextvars.Context()
            )
            # Retrieve a failure even when every waiter was cancelled.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._loading[key] = task
        # A cancelled request must not cancel the load other requests wait on.
        return await asyncio.shield(task)

    async def _load(self, key: Hashable, load, generation: int) -> Any:
        try:
            value = await load()
        finally:
            if self._loading.get(key) is asyncio.current_task():  # not a newer load
                del self._loading[key]
        if generation == self._generation:
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (asyncio.get_running_loop().time() + self.ttl, value)
        return value

    def loads(self) -> list[asyncio.Task]:
        """The loads under way (a shutdown lets them end before the pool closes)."""
        return list(self._loading.values())

    def forget(self, key: Hashable) -> None:
        """Drop one entry; a load already under way must not bring it back, nor hand what it
        read before the change to a request that comes after it."""
        self._entries.pop(key, None)
        self._loading.pop(key, None)
        self._generation += 1

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()
        self._generation += 1
