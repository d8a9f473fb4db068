"""Reference-counted subscriptions of one process behind one async context manager, as
encode/broadcaster's `async with broadcast.subscribe(channel)`:

    async with subscriptions.hold(key, *args) as value:
        ...

The first holder of a key opens it (`open(key, *args)`: subscribe to a broker channel, add a
presence entry) and every holder arriving meanwhile waits for that; the last one to leave closes
it (`close(key, value)`), waiting for that unless the key was still opening. Nobody counts by
hand, and a holder cancelled at any point, even while the key is still opening, still leaves.
Opening and closing run as tasks of their own, so a cancelled holder never cuts one short, and a
key opened again while it is closing opens only once the close is done (a channel's UNSUBSCRIBE
never overtakes its next SUBSCRIBE)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

from nanny.tasks import TaskSet

K = TypeVar("K")
V = TypeVar("V")

log = logging.getLogger("nanny.ws")


class _Held(Generic[V]):
    __slots__ = ("count", "opening")

    def __init__(self, opening: asyncio.Task[V]):
        self.count = 0
        self.opening = opening


class Subscriptions(Generic[K, V]):
    def __init__(
        self,
        open: Callable[..., Awaitable[V]],
        close: Callable[[K, V], Awaitable[None]],
        tasks: TaskSet,
    ):
        self._open = open
        self._close = close
        self._tasks = tasks
        self._held: dict[K, _Held[V]] = {}
        self._closing: dict[K, asyncio.Task] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._held

    def __len__(self) -> int:
        return len(self._held)

    def keys(self) -> list[K]:
        """The keys held now, opened or still opening."""
        return list(self._held)

    @contextlib.asynccontextmanager
    async def hold(self, key: K, *args: Any) -> AsyncIterator[V]:
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held(self._tasks.spawn(self._opened(key, args)))
        held.count += 1
        try:
            yield await asyncio.shield(held.opening)
        finally:
            held.count -= 1
            if held.count == 0:
                del self._held[key]
                closing = self._tasks.spawn(self._closed(key, held.opening))
                self._closing[key] = closing
                closing.add_done_callback(lambda task: self._forget_closing(key, task))
                if held.opening.done():  # else it closes once opened, without us waiting
                    await asyncio.shield(closing)

    async def _opened(self, key: K, args: tuple[Any, ...]) -> V:
        previous = self._closing.get(key)
        if previous is not None:
            await asyncio.wait([previous])
        return await self._open(key, *args)

    async def _closed(self, key: K, opening: asyncio.Task[V]) -> None:
        await asyncio.wait([opening])
        if opening.cancelled() or opening.exception() is not None:
            return  # never opened: nothing to close
        try:
            await self._close(key, opening.result())
        except Exception:  # the holder leaving must not fail with it
            log.exception("closing the subscription %r failed", key)

    def _forget_closing(self, key: K, task: asyncio.Task) -> None:
        if self._closing.get(key) is task:
            del self._closing[key]
