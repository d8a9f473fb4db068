"""The background work of notifications, in every process: sending the outbox, writing the
unread-messages digests, and the live `notification` frame.

Wake-up: nanny_notify (and the digests) announce each new row with pg_notify on
`nanny_notifications` ("user_id:notification_id"), delivered at commit to every process's
listening connection. Each process then (1) wakes its sender, which claims due rows with FOR
UPDATE SKIP LOCKED (so two processes never take the same row), and (2) if the user has sockets
here, reads the notification and sends them the frame: every process hears every announcement,
so the frame reaches the user's sockets wherever they are, with no broker in between. A poll
every NOTIFY_POLL_SECONDS covers a lost listening connection and the retries that fall due.

Claims are leases (NOTIFY_LEASE_SECONDS): a sender killed mid-send leaves its rows to be claimed
again when the lease ends, and the resent e-mail has the same Message-ID. A 5xx answer fails
the e-mail at once, with the server's words kept in last_error; a connection failure or a 4xx
queues it again after an exponentially growing wait, and after NOTIFY_MAX_ATTEMPTS it fails."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
from aiohttp import web

from nanny import i18n
from nanny.config import Settings
from nanny.db import notifications as db
from nanny.db.notifications import EmailStatus, Kind, Notification
from nanny.db.pool import DATABASE_UNAVAILABLE
from nanny.encoding import dumps
from nanny.keys import CHAT_HUB, IN_FLIGHT, POOL, SETTINGS
from nanny.notify import content
from nanny.notify.mail import (
    Letter,
    PermanentFailure,
    TransientFailure,
    Transport,
    UnsubscribeTokens,
    build_message,
    make_transport,
)
from nanny.tasks import TaskSet

log = logging.getLogger("nanny.notify")

# E-mails claimed at once: their sending must end well within NOTIFY_LEASE_SECONDS.
BATCH = 20
GIVE_WAY = 4.0
MAX_RETRY_WAIT = 3600.0


def _resolve(future: asyncio.Future, *_: Any) -> None:
    if not future.done():
        future.set_result(None)


def retry_wait(settings: Settings, attempt: int) -> float:
    return min(MAX_RETRY_WAIT, settings.notify_retry_seconds * 2 ** (attempt - 1))


class Notifier:
    def __init__(
        self,
        app: web.Application,
        transport: Transport,
        send_frame: Callable[[int, str], None],
        has_sockets: Callable[[int], bool],
        busy: Callable[[], bool] = lambda: False,
    ):
        self._app = app
        self._pool: asyncpg.Pool = app[POOL]
        self._settings: Settings = app[SETTINGS]
        self._transport = transport
        self._send_frame = send_frame
        self._has_sockets = has_sockets
        self._busy = busy
        self._tokens = UnsubscribeTokens(self._settings.jwt_secret)
        self._wake = asyncio.Event()
        self._tasks = TaskSet()

    # -- the live frame ----------------------------------------------------------------

    def announced(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._wake.set()
        user, _, notification = payload.partition(":")
        if user.isdigit() and notification.isdigit() and self._has_sockets(int(user)):
            self._tasks.spawn(self._push(int(user), int(notification)))

    async def _push(self, user_id: int, notification_id: int) -> None:
        try:
            async with self._pool.acquire() as conn:
                n = await db.get_notification(conn, notification_id)
        except DATABASE_UNAVAILABLE as exc:
            log.warning("notification %d not pushed: %r", notification_id, exc)
            return
        if n is None or n.user_id != user_id:
            return
        loc = i18n.localizer(self._app, n.locale, n.time_zone)
        frame = dumps({"type": "notification", "notification": content.notification_json(loc, n)})
        self._send_frame(user_id, frame)

    async def listen(self) -> None:
        """Keep a connection listening to the announcements, reconnecting after a loss."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._settings.database_url)
                lost = asyncio.get_running_loop().create_future()
                conn.add_termination_listener(functools.partial(_resolve, lost))
                await conn.add_listener(db.NOTIFY_CHANNEL, self.announced)
                self._wake.set()  # rows announced while nobody listened
                await lost
            except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("notifications listener: %r; reconnecting", exc)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(self._settings.notify_poll_seconds)

    # -- sending -----------------------------------------------------------------------

    async def run_sender(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                claimed = await self.send_due()
            except DATABASE_UNAVAILABLE as exc:
                log.warning("outbox: %r; trying again", exc)
                claimed = 0
            if claimed and self._busy():
                # E-mails can wait a moment, a request cannot: while this process serves
                # requests, the sender takes at most a fifth of its time.
                await asyncio.sleep(min(1.0, GIVE_WAY * (loop.time() - started)))
            if claimed < BATCH:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.notify_poll_seconds)

    async def send_due(self) -> int:
        """Claim and send one batch of due e-mails; how many were claimed."""
        settings = self._settings
        async with self._pool.acquire() as conn:
            batch = await db.claim_due(conn, BATCH, settings.notify_lease_seconds)
        outcomes = []
        try:
            for n in batch:
                outcomes.append(await self._deliver(n))
        finally:  # what was sent is recorded even when the rest is cancelled
            if outcomes:
                async with self._pool.acquire() as conn:
                    await db.record_outcomes(conn, outcomes)
        return len(batch)

    async def _deliver(self, n: Notification) -> db.Outcome:
        attempt = n.attempts + 1  # the claim counted this one
        if not n.email_wanted or not n.email:
            return db.Outcome(n.notification_id, EmailStatus.SKIPPED)
        try:
            await self._transport.send(await self._message(n))
        except PermanentFailure as exc:
            log.warning("e-mail of notification %d refused: %s", n.notification_id, exc)
            return db.Outcome(n.notification_id, EmailStatus.FAILED, str(exc))
        except TransientFailure as exc:
            log.warning(
                "e-mail of notification %d, attempt %d: %s", n.notification_id, attempt, exc
            )
            if attempt >= self._settings.notify_max_attempts:
                error = f"gave up after {attempt} attempts: {exc}"
                return db.Outcome(n.notification_id, EmailStatus.FAILED, error)
            wait = retry_wait(self._settings, attempt)
            return db.Outcome(n.notification_id, EmailStatus.QUEUED, str(exc), wait)
        return db.Outcome(n.notification_id, EmailStatus.SENT)

    async def _message(self, n: Notification):
        loc = i18n.localizer(self._app, n.locale, n.time_zone)
        messages: list[db.DigestMessage] = []
        if n.kind is Kind.UNREAD_MESSAGES and n.booking_id is not None:
            async with self._pool.acquire() as conn:
                messages = await db.digest_messages(
                    conn, n.booking_id, n.user_id, n.from_seq or 0, n.to_seq or 0
                )
        base = self._settings.public_url
        token = self._tokens.make(n.user_id, db.CATEGORY_OF[n.kind])
        context = {
            "name": n.full_name,
            "title": content.title(loc, n),
            "body": content.body(loc, n),
            "link": base + content.link_path(n),
            "messages": messages,
            "unsubscribe_url": f"{base}/api/notifications/unsubscribe?token={token}",
        }
        letter = Letter(
            to_name=n.full_name,
            to_address=n.email or "",
            subject=context["title"],
            text=i18n.render(self._app, "emails/notification.txt", loc, context),
            html=i18n.render(self._app, "emails/notification.html", loc, context),
            unsubscribe_url=context["unsubscribe_url"],
        )
        return build_message(
            letter,
            notification_id=n.notification_id,
            sender=self._settings.smtp_from,
            created_at=n.created_at,
        )

    # -- digests -----------------------------------------------------------------------

    async def run_digests(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    written = await db.write_digests(conn, self._settings.notify_unread_minutes)
                if written:
                    log.info("unread-messages digests written: %d", len(written))
            except DATABASE_UNAVAILABLE as exc:
                log.warning("digests: %r; trying again", exc)
            await asyncio.sleep(self._settings.notify_poll_seconds)

    async def stop(self) -> None:
        await self._tasks.cancel_all()
        await self._transport.close()


async def notify_ctx(app: web.Application) -> AsyncIterator[None]:
    """The notifier's three loops for the app's lifetime (none with notifications off)."""
    settings = app[SETTINGS]
    if not settings.notifications_enabled:
        yield
        return
    transport = make_transport(settings.smtp_url)
    log.info("notifications: e-mails go to %s", transport.description)
    feeds = app[CHAT_HUB].feeds
    notifier = Notifier(
        app,
        transport,
        feeds.send,
        lambda user_id: bool(feeds.connections(user_id)),
        app[IN_FLIGHT].busy,
    )
    tasks = [asyncio.create_task(notifier.listen(), name="nanny-notify-listen")]
    if settings.notify_sender:
        tasks.append(asyncio.create_task(notifier.run_sender(), name="nanny-notify-send"))
        tasks.append(asyncio.create_task(notifier.run_digests(), name="nanny-notify-digests"))
    else:
        log.info("notifications: this process sends no e-mails (NOTIFY_SENDER=false)")
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await notifier.stop()
