"""Requests in flight, so that a shutdown answers each of them within SHUTDOWN_TIMEOUT_SECONDS.

SIGTERM stops the listener at once, but what was accepted still has to be answered. Under load
most requests in flight are queued rather than working: waiting for a database connection (a
pool of ten serves a backlog of thousands in turn) or for a bcrypt thread. aiohttp waited the
whole timeout for them, then cut them off unanswered and waited the timeout again (racing their
ends, it logged InvalidStateError tracebacks), so a worker took twice the timeout and more.

A shutdown here (`InFlight.drain`, the last `on_shutdown` hook):

1. answers every request that arrives from then on (on a kept-alive connection) with 503
   `unavailable`, and closes each connection after its answer;
2. lets the requests in flight run for GRACE_SHARE of the timeout;
3. then refuses, with 503 `unavailable` ("nothing was done"), those that are still only
   waiting and have changed nothing: the ones that have had no database connection yet, and
   the ones waiting for CPU work (bcrypt, done before any write in every handler that uses it);
4. lets the rest (at most one per pool connection, each inside its statements) run until
   CUT_SHARE of the timeout, and cuts off any still running then, with one warning line;
5. leaves the rest of the timeout to aiohttp, the WebSockets, the broker and the pool.

A request learns that it has had a database connection from the pool's `setup` hook
(`mark_database_use`), which asyncpg runs in the acquiring task, through the context variable
the middleware sets for the request."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator

log = logging.getLogger("nanny.shutdown")

GRACE_SHARE = 0.3
CUT_SHARE = 0.8


class Request:
    __slots__ = ("refusable", "refused", "task", "token", "used_database", "waiting_for_cpu")

    def __init__(self, task: asyncio.Task, refusable: bool):
        self.task = task
        self.token: contextvars.Token | None = None
        # A WebSocket's handler is answered already; shutdown closes it with 1001 instead.
        self.refusable = refusable
        self.used_database = False
        self.waiting_for_cpu = False
        self.refused = False

    @property
    def changed_nothing_yet(self) -> bool:
        return self.refusable and (not self.used_database or self.waiting_for_cpu)


_CURRENT: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "nanny_request", default=None
)


class InFlight:
    """This process's requests being handled, and whether it is shutting down."""

    def __init__(self) -> None:
        self.draining = False
        self._requests: set[Request] = set()

    def enter(self, *, refusable: bool) -> Request:
        """Track the current task's request until `leave`."""
        request = Request(asyncio.current_task(), refusable)
        self._requests.add(request)
        request.token = _CURRENT.set(request)
        return request

    def leave(self, request: Request) -> None:
        """In the task that entered: it no longer counts. The task's context lets go of the
        request, which holds the task: left in place, that cycle kept every finished
        request's task, and so its response, until a full garbage collection (rare on
        purpose, nanny.cli.tune_gc): a worker grew from 77 to 240 MiB serving uncached
        reviews pages, 81 MiB with the cycle broken."""
        self._requests.discard(request)
        if request.token is not None:
            _CURRENT.reset(request.token)
            request.token = None

    def busy(self) -> bool:
        """Whether a request is being handled (background work may give way)."""
        return bool(self._requests)

    async def _settle(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while self._requests and (left := deadline - loop.time()) > 0:
            await asyncio.wait([r.task for r in self._requests], timeout=left)

    async def drain(self, budget: float, also: Callable[[], list[asyncio.Task]]) -> None:
        """Finish or refuse every request within CUT_SHARE of `budget` seconds, and let the
        tasks `also` lists (loads that refused requests were waiting for) end within it too."""
        self.draining = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._settle(started + GRACE_SHARE * budget)
        waiting = [r for r in self._requests if r.changed_nothing_yet]
        for request in waiting:
            request.refused = True
            request.task.cancel()
        if waiting:
            log.info("shutdown: refused %d requests still waiting to start", len(waiting))
        await self._settle(started + CUT_SHARE * budget)
        # They go on for the requests still waiting; they end before the pool closes, or the
        # pool would open a connection for them while the loop stops.
        loads = also()
        left = started + CUT_SHARE * budget - loop.time()
        if loads and left > 0:
            await asyncio.wait(loads, timeout=left)
        if not self._requests:
            return
        log.warning(
            "shutdown: cutting off %d requests still running after %.1f s",
            len(self._requests),
            loop.time() - started,
        )
        for request in self._requests:
            request.task.cancel()
        await self._settle(started + (1 + CUT_SHARE) / 2 * budget)


def was_refused() -> bool:
    """In the handler's task, after a CancelledError: whether it was this module's refusal,
    which the error middleware answers (the cancellation is then withdrawn)."""
    request = _CURRENT.get()
    if request is None or not request.refused:
        return False
    asyncio.current_task().uncancel()
    return True


async def mark_database_use(connection: object) -> None:
    """The pool's setup hook: the acquiring request has had a database connection, and may
    have changed something from here on."""
    request = _CURRENT.get()
    if request is not None:
        request.used_database = True


@contextlib.contextmanager
def waiting_for_cpu() -> Iterator[None]:
    """Around waiting for CPU work done before the request changes anything: a shutdown may
    refuse the request meanwhile."""
    request = _CURRENT.get()
    if request is None:
        yield
        return
    request.waiting_for_cpu = True
    try:
        yield
    finally:
        request.waiting_for_cpu = False


def leftover_timeout(timeout: float) -> float:
    """What the server itself may wait for once `finish_requests` returned."""
    return (1 - CUT_SHARE) * timeout
