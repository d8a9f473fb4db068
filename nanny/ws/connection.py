"""One WebSocket connection: who it is, its rooms, and the only task that writes to it.

Every frame for a client goes through `send`, which appends it to a bounded queue drained by the
connection's writer task; nothing else calls `ws.send_*`. A client that stops reading lets the
queue fill up and is then cut off, so its memory is freed instead of buffered forever."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import deque
from contextlib import AsyncExitStack
from datetime import datetime

from aiohttp import web

from nanny.ws.limits import WsLimits

log = logging.getLogger("nanny.ws")

# Close codes of API.md.
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_UNAUTHORIZED = 4001


# Frames written together in one system call, at most.
_MAX_COALESCED = 64
# How often a sender waiting for queue space looks whether the peer is still there.
_PEER_CHECK_SECONDS = 0.5


def text_frames(texts: list[str]) -> bytes:
    """Unmasked, uncompressed WebSocket text frames (RFC 6455 5.2: server frames are not
    masked; RFC 7692 lets an uncompressed message through even where deflate was negotiated)."""
    parts = []
    for text in texts:
        payload = text.encode()
        size = len(payload)
        if size < 126:
            parts.append(bytes((0x81, size)))
        elif size < 65536:
            parts.append(struct.pack("!BBH", 0x81, 126, size))
        else:
            parts.append(struct.pack("!BBQ", 0x81, 127, size))
        parts.append(payload)
    return b"".join(parts)


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str):
        self.code = code
        self.reason = reason


class TokenBucket:
    """The frame rate limit of a connection: `frames_per_second` sustained, `frame_burst` at
    once."""

    __slots__ = ("burst", "rate", "stamp", "strikes", "tokens")

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.strikes = 0

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            # A client that calmed down gets its slate cleaned.
            if self.tokens >= self.burst / 2:
                self.strikes = 0
            return True
        self.strikes += 1
        return False


class Connection:
    __slots__ = (
        "__weakref__",
        "_close_deadline",
        "_expiry",
        "_queue",
        "_space",
        "_transport",
        "_wakeup",
        "_writer",
        "busy",
        "closing",
        "cursors",
        "limits",
        "memberships",
        "rate",
        "role",
        "shutdown_requested",
        "token_generation",
        "token_id",
        "user_id",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, limits: WsLimits):
        self.ws = ws
        self.limits = limits
        self.user_id: int = 0
        self.role: str = ""
        # The token the connection is signed in with (its jti and gen): ending it closes us.
        self.token_id: str = ""
        self.token_generation: int = 0
        # booking_id -> the highest seq this connection has been sent in that room
        self.cursors: dict[int, int] = {}
        # booking_id -> what the connection's subscription to that room holds (nanny/ws/rooms.py)
        self.memberships: dict[int, AsyncExitStack] = {}
        self.rate = TokenBucket(limits.frames_per_second, limits.frame_burst)
        self.busy = False
        self.shutdown_requested = False
        self.closing = False
        self._queue: deque[str | _Close] = deque()
        self._wakeup = asyncio.Event()
        self._space: asyncio.Event | None = None
        self._transport = request.transport
        self._expiry: asyncio.TimerHandle | None = None
        self._close_deadline: asyncio.TimerHandle | None = None
        self._writer = asyncio.create_task(self._write(), name="nanny-ws-writer")

    def send(self, text: str) -> None:
        """Queue a frame; a client whose queue is full is disconnected."""
        if self.closing:
            return
        if len(self._queue) >= self.limits.send_queue_frames:
            log.info("dropping user %s: send queue full (client not reading)", self.user_id)
            self.abort()
            return
        self._queue.append(text)
        self._wakeup.set()

    async def send_paced(self, text: str) -> bool:
        """Queue a frame, first waiting while the queue is more than half full: for long
        replays the client asked for, which must not trip the slow-reader cut-off. False, and
        nothing queued, once the connection is ending or the server stopping: the caller stops
        sending."""
        half = self.limits.send_queue_frames // 2
        while len(self._queue) >= half and not self._ending():
            if self._peer_gone():
                self._stop()
                break
            if self._space is None:
                self._space = asyncio.Event()
            self._space.clear()
            # The transport can be closed under us (a heartbeat timeout) without any write
            # failing or space appearing: look again now and then.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._space.wait(), _PEER_CHECK_SECONDS)
        if self._ending():
            return False
        self.send(text)
        return True

    def _ending(self) -> bool:
        return self.closing or self.shutdown_requested

    def _peer_gone(self) -> bool:
        transport = self._transport
        return self.ws.closed or transport is None or transport.is_closing()

    def request_shutdown(self) -> None:
        """The server is stopping: the frame in hand is finished (a replay stops early), then
        the hub closes the connection."""
        self.shutdown_requested = True
        if self._space is not None:
            self._space.set()

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued; later frames are dropped. A peer that does
        not take the close within `close_timeout` (it stopped reading) is cut off."""
        if self.closing:
            return
        self.closing = True
        self._queue.append(_Close(code, reason))
        self._wakeup.set()
        if self._space is not None:
            self._space.set()
        loop = asyncio.get_running_loop()
        self._close_deadline = loop.call_later(self.limits.close_timeout, self.abort)

    def abort(self) -> None:
        """Cut the connection at once, discarding what is queued."""
        self._stop()
        self._writer.cancel()
        if self._transport is not None:
            self._transport.abort()

    def _stop(self) -> None:
        """Nothing more goes out: what is queued is dropped, a sender waiting for space stops,
        the token's expiry and the close's deadline are off."""
        self.closing = True
        self._queue.clear()
        if self._space is not None:
            self._space.set()
        self.cancel_expiry()
        if self._close_deadline is not None:
            self._close_deadline.cancel()
            self._close_deadline = None

    def signed_in_with(self, token_id: str, generation: int, expires_at: datetime) -> None:
        """The connection now holds this token (first sign-in or a `refresh`)."""
        self.token_id = token_id
        self.token_generation = generation
        self.expire_at(expires_at)

    def holds_ended_token(self, token_id: str | None, generation: int | None) -> bool:
        """Whether its token is `token_id` (signed out) or of another generation than the
        user's `generation` now (the password changed)."""
        return (token_id is not None and self.token_id == token_id) or (
            generation is not None and self.token_generation != generation
        )

    def expire_at(self, expires_at: datetime) -> None:
        """Close with 4001 when the token expires (a `refresh` moves the moment)."""
        self.cancel_expiry()
        loop = asyncio.get_running_loop()
        delay = max(0.0, expires_at.timestamp() - time.time())
        self._expiry = loop.call_later(delay, self.close, CLOSE_UNAUTHORIZED, "token expired")

    def cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    async def _write(self) -> None:
        ws = self.ws
        queue = self._queue
        try:
            while True:
                while not queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                item = queue.popleft()
                if self._space is not None and len(queue) < self.limits.send_queue_frames // 2:
                    self._space.set()
                if isinstance(item, _Close):
                    await ws.close(code=item.code, message=item.reason.encode())
                    return
                transport = self._transport
                if (
                    queue
                    and isinstance(queue[0], str)
                    and transport is not None
                    and not transport.is_closing()
                    and transport.get_write_buffer_size() == 0
                ):
                    # Several frames waiting (an ack and its message, a burst) and the socket
                    # keeping up: one write for all of them. Otherwise send_str, which waits
                    # for a slow reader to drain.
                    batch = [item]
                    while queue and isinstance(queue[0], str) and len(batch) < _MAX_COALESCED:
                        batch.append(queue.popleft())
                    transport.write(text_frames(batch))
                    continue
                await ws.send_str(item)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the peer went away mid-write
            log.debug("writer for user %s stopped: %r", self.user_id, exc)
            self._stop()
            if self._transport is not None:
                self._transport.abort()

    async def finish(self) -> None:
        """Stop the writer once the handler is done reading."""
        if self.closing and not self._writer.done() and not self._peer_gone():
            # Our close frame is out or queued: let the writer finish the closing handshake
            # (the close's deadline cuts a peer that does not take it).
            await asyncio.wait([self._writer], timeout=self.limits.close_timeout)
        self._stop()
        transport = self._transport
        if not self._writer.done():
            self._writer.cancel()
            if transport is not None and transport.get_write_buffer_size():
                # Stuck writing to a peer that does not read: cut the socket now rather than
                # leave it (and what it holds) to the kernel's retries.
                transport.abort()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._writer
