"""A small per-process cache for read-mostly answers (service search, signed-in users).

Entries live `ttl` seconds; concurrent misses for one key share a single load, so a popular
query reaching its expiry costs one database round trip, not one per waiting request. Writes
clear it (`forget`, `clear`); the users' and the public reads' caches are cleared on every
process before a change is answered (nanny.ws.hub)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Iterable
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

    def discard(self, key: Hashable) -> None:
        """Drop one entry that should not have been kept (loads under way stay)."""
        self._entries.pop(key, None)

    def forget(self, key: Hashable) -> None:
        """Drop one entry; a load already under way must not bring it back, nor hand what it
        read before the change to a request that comes after it."""
        self._entries.pop(key, None)
        self._loading.pop(key, None)
        self._generation += 1

    def abandon_loads(self) -> None:
        """Keep the entries, but let no load under way store its answer or serve a later
        request."""
        self._loading.clear()
        self._generation += 1

    def clear(self) -> None:
        self._entries.clear()
        self.abandon_loads()


class PartyCache:
    """A per-process cache of answers that show users' bookings: a booking by id, a user's
    booking lists. Every change of a booking names its parties (`changed`), which outdates
    every entry showing a booking of theirs: a list is keyed by its user's version, a booking
    remembers both parties' versions and is reloaded once either moved. A load under way when
    a change arrives serves its waiters but is not kept, and later requests start afresh.

    Bounded: at most `max_entries` answers (a list page is up to a hundred bookings, some tens
    of KiB), and the versions of at most `max_users` users, past which everything is dropped
    and counting starts again (a long-running process would otherwise keep one per user whose
    bookings ever changed)."""

    def __init__(self, ttl: float, max_entries: int = 4096, max_users: int = 100_000):
        self._entries = TtlCache(ttl, max_entries)
        self._versions: dict[int, int] = {}
        self._max_users = max_users

    @property
    def ttl(self) -> float:
        return self._entries.ttl

    async def get_or_load(
        self,
        key: Hashable,
        load: Callable[[], Awaitable[Any]],
        parties: Callable[[Any], tuple[int, ...]],
    ) -> Any:
        """`load`'s value for `key`, reused while none of `parties(value)` changed. A None
        value (nothing found) is not kept: what is created next has parties of its own."""

        async def versioned() -> tuple[Any, tuple[int, ...]]:
            value = await load()
            # No await since the read returned: had a change come meanwhile, the entries'
            # generation moved and this is not kept (TtlCache._load).
            return value, () if value is None else self._versions_of(parties(value))

        while True:
            value, versions = await self._entries.get_or_load(key, versioned)
            if value is None:
                self._entries.discard(key)
                return None
            if versions == self._versions_of(parties(value)):
                return value
            self._entries.forget(key)

    def _versions_of(self, user_ids: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(self._versions.get(u, 0) for u in user_ids)

    def changed(self, user_ids: Iterable[int]) -> None:
        """The bookings of these users changed: what shows them is outdated."""
        if len(self._versions) >= self._max_users:
            self.clear()
        for user_id in user_ids:
            self._versions[user_id] = self._versions.get(user_id, 0) + 1
        self._entries.abandon_loads()

    def clear(self) -> None:
        self._versions.clear()
        self._entries.clear()

    def loads(self) -> list[asyncio.Task]:
        return self._entries.loads()
