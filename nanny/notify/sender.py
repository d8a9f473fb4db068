"""The background work of notifications, in every process: sending the outbox, writing the
unread-messages digests, and the live `notification` frame.

Polling, not LISTEN/NOTIFY: a transaction that NOTIFYs takes a database-wide lock from its
commit through its WAL flush, which serialised booking creation. The sender claims due rows
every NOTIFY_POLL_SECONDS (and at once again after a full batch), with FOR UPDATE SKIP LOCKED so
two processes never take the same row; the frames' watcher reads, every second, the recent
notifications of the users with sockets on this process and sends each once, so a frame reaches
a user's sockets whichever process wrote it.

Claims are leases (NOTIFY_LEASE_SECONDS): a sender killed mid-send leaves its rows to be claimed
again when the lease ends, and the resent e-mail has the same Message-ID. A 5xx answer fails
the e-mail at once, with the server's words kept in last_error; a connection failure or a 4xx
queues it again after an exponentially growing wait, and after NOTIFY_MAX_ATTEMPTS it fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email.message import Message

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
# How often the frames' watcher looks for new notifications of this process's users, and how
# far back (longer than any transaction that writes one takes to commit).
FRAME_POLL = 1.0
RECENT = 30.0
GIVE_WAY = 4.0
MAX_RETRY_WAIT = 3600.0


def retry_wait(settings: Settings, attempt: int) -> float:
    return min(MAX_RETRY_WAIT, settings.notify_retry_seconds * 2 ** (attempt - 1))


class Notifier:
    def __init__(
        self,
        app: web.Application,
        transport: Transport,
        send_frame: Callable[[int, str], None],
        local_users: Callable[[], list[int]],
        busy: Callable[[], bool] = lambda: False,
    ):
        self._app = app
        self._pool: asyncpg.Pool = app[POOL]
        self._settings: Settings = app[SETTINGS]
        self._transport = transport
        self._send_frame = send_frame
        self._local_users = local_users
        self._busy = busy
        self._tokens = UnsubscribeTokens(self._settings.jwt_secret)
        self._tasks = TaskSet()

    # -- the live frame ----------------------------------------------------------------

    async def watch(self) -> None:
        """Push each new notification of this process's signed-in users to their sockets, as a
        `notification` frame, within FRAME_POLL seconds of its commit (whichever process
        wrote it: the table is the only channel)."""
        loop = asyncio.get_running_loop()
        pushed: dict[int, float] = {}  # notification id -> when, kept for RECENT seconds
        known: set[int] = set()  # the users of the previous look
        looked_at = datetime.now(UTC)  # when the previous look began
        interval = min(FRAME_POLL, self._settings.notify_poll_seconds)
        while True:
            await asyncio.sleep(interval)
            this_look = datetime.now(UTC)
            users = self._local_users()
            if not users:
                known, looked_at = set(), this_look
                continue
            try:
                async with self._pool.acquire() as conn:
                    recent = await db.list_recent(conn, users, RECENT)
            except DATABASE_UNAVAILABLE as exc:
                log.warning("notification frames: %r; trying again", exc)
                continue
            now = loop.time()
            for n in recent:
                if n.notification_id in pushed:
                    continue
                pushed[n.notification_id] = now
                if n.user_id not in known and n.created_at < looked_at:
                    # Written before this user's socket came: the page's list has it. One
                    # written since the previous look may have come after the socket, so it is
                    # pushed (the page drops one its list already shows).
                    continue
                loc = i18n.localizer(self._app, n.locale, n.time_zone)
                frame = {"type": "notification", "notification": content.notification_json(loc, n)}
                self._send_frame(n.user_id, dumps(frame))
            known, looked_at = set(users), this_look
            for notification_id, when in list(pushed.items()):
                if now - when > 2 * RECENT:
                    del pushed[notification_id]

    # -- sending -----------------------------------------------------------------------

    async def run_sender(self) -> None:
        while True:
            try:
                claimed = await self.send_due()
            except DATABASE_UNAVAILABLE as exc:
                log.warning("outbox: %r; trying again", exc)
                claimed = 0
            if claimed < BATCH:
                await asyncio.sleep(self._settings.notify_poll_seconds)

    async def send_due(self) -> int:
        """Claim and send one batch of due e-mails; how many were claimed."""
        settings = self._settings
        async with self._pool.acquire() as conn:
            batch = await db.claim_due(conn, BATCH, settings.notify_lease_seconds)
        outcomes = []
        loop = asyncio.get_running_loop()
        try:
            for n in batch:
                started = loop.time()
                outcomes.append(await self._deliver(n))
                if self._busy():
                    # E-mails can wait a moment, a request cannot: while this process serves
                    # requests, the sender takes at most a fifth of its time.
                    await asyncio.sleep(min(1.0, GIVE_WAY * (loop.time() - started)))
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

    async def _message(self, n: Notification) -> Message:
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
        lambda: list(feeds.by_user),
        app[IN_FLIGHT].busy,
    )
    tasks = [asyncio.create_task(notifier.watch(), name="nanny-notify-frames")]
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
