"""A notification's e-mail: the message (plain text and HTML from templates/emails/, a
Message-ID made from the notification id, so a resent copy is recognisably the same e-mail;
RFC 8058 one-click unsubscribe), the signed unsubscribe tokens, and the two ways of sending:
SMTP (aiosmtplib, one connection kept open and reopened after a failure) or, with no SMTP_URL,
the log."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
from dataclasses import dataclass
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib

from nanny.db.notifications import CATEGORIES

log = logging.getLogger("nanny.notify")


# -- unsubscribe tokens ------------------------------------------------------------------


class UnsubscribeTokens:
    """`user_id.category.signature`: turns one category of one user's e-mails off, with no
    login (the link is in their e-mail). HMAC-SHA256 of the rest under a key of its own,
    derived from the JWT secret."""

    def __init__(self, secret: str):
        self._key = hashlib.sha256(b"nanny-unsubscribe:" + secret.encode()).digest()

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def make(self, user_id: int, category: str) -> str:
        payload = f"{user_id}.{category}"
        return f"{payload}.{self._sign(payload)}"

    def read(self, token: str) -> tuple[int, str] | None:
        """(user_id, category) of a genuine token, else None."""
        user, _, rest = token.partition(".")
        category, _, signature = rest.partition(".")
        if not (user.isascii() and user.isdigit()) or len(user) > 10 or category not in CATEGORIES:
            return None
        # As bytes: compare_digest refuses str beyond ASCII (a TypeError, so a 500).
        expected = self._sign(f"{user}.{category}").encode()
        if not hmac.compare_digest(signature.encode(), expected):
            return None
        return int(user), category


# -- the message ---------------------------------------------------------------------------


def message_id(notification_id: int, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "nanny.localhost"
    return f"<notification-{notification_id}@{domain}>"


@dataclass(frozen=True, slots=True)
class Letter:
    to_name: str
    to_address: str
    subject: str
    text: str
    html: str
    unsubscribe_url: str


# compat32 folds a long header by starting its value on the next line; the encoded words
# below are folded already, and nothing else comes near RFC 5322's 998 characters.
_POLICY = compat32.clone(max_line_length=998)
_WIRE = _POLICY.clone(linesep="\r\n")


def _encoded(text: str) -> str:
    """`text` as a header value: RFC 2047 encoded words of at most 75 characters, folded."""
    return text if text.isascii() else Header(text, "utf-8").encode()


def _mailbox(name: str, address: str) -> str:
    """`Name <address>`; a name beyond ASCII as one encoded word, since parsers put a space
    between the folded words of an address's name."""
    return formataddr((name, address), charset="utf-8")


def build_message(letter: Letter, *, notification_id: int, sender: str, created_at) -> Message:
    """The e-mail, plain text and HTML alternatives. Built with the email package's compat32
    classes: a fifth of the CPU of EmailMessage's header registry (about 1 ms instead of 5,
    built and flattened), which the sender pays on the event loop for every e-mail."""
    msg = MIMEMultipart("alternative", policy=_POLICY)
    msg["From"] = _mailbox(*parseaddr(sender))  # SMTP_FROM may carry a name in any script
    msg["To"] = _mailbox(letter.to_name, letter.to_address)
    msg["Subject"] = _encoded(letter.subject)
    msg["Date"] = format_datetime(created_at)
    msg["Message-ID"] = message_id(notification_id, sender)
    msg["List-Unsubscribe"] = f"<{letter.unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg.attach(MIMEText(letter.text, "plain", "utf-8"))
    msg.attach(MIMEText(letter.html, "html", "utf-8"))
    return msg


def wire_bytes(msg: Message) -> bytes:
    """The message as sent: CRLF line ends, and the headers as build_message folded them
    (aiosmtplib's own flattening would fold them again, starting a value on a line of its own,
    which parsers read with a leading space)."""
    return msg.as_bytes(policy=_WIRE)


def plain_text(msg: Message) -> str:
    """The plain-text part of a message made by build_message."""
    part = msg.get_payload(0)
    return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")


# -- sending -------------------------------------------------------------------------------


class PermanentFailure(Exception):
    """The server refused the e-mail for good (5xx): sending it again would not help."""


class TransientFailure(Exception):
    """The server could not be reached, or answered 4xx: worth another attempt later."""


def _code_of(exc: Exception) -> int | None:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return exc.recipients[0].code
    return getattr(exc, "code", None) if isinstance(exc, aiosmtplib.SMTPResponseException) else None


class SmtpTransport:
    def __init__(self, url: str, *, timeout: float = 30.0):
        parts = urlsplit(url)
        self._tls = parts.scheme == "smtps"
        self._options = {
            "hostname": parts.hostname or "localhost",
            "port": parts.port or (465 if self._tls else 587),
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None,
            "use_tls": self._tls,
            # smtp://: STARTTLS when the server offers it (required with credentials).
            "start_tls": None,
            "timeout": timeout,
        }
        self.description = f"SMTP {self._options['hostname']}:{self._options['port']}"
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    async def send(self, msg: Message) -> None:
        async with self._lock:
            try:
                if self._client is None or not self._client.is_connected:
                    client = aiosmtplib.SMTP(**self._options)
                    await client.connect()
                    self._client = client
                await self._client.sendmail(
                    parseaddr(msg["From"])[1], [parseaddr(msg["To"])[1]], wire_bytes(msg)
                )
            except aiosmtplib.SMTPResponseException as exc:
                code = _code_of(exc)
                if code is not None and 500 <= code < 600:
                    raise PermanentFailure(f"{code} {getattr(exc, 'message', exc)}") from None
                if code == 421 or code is None:
                    await self._drop()
                raise TransientFailure(f"{code} {getattr(exc, 'message', exc)}") from None
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                await self._drop()
                raise TransientFailure(f"{type(exc).__name__}: {exc}") from None

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        async with self._lock:
            if self._client is not None and self._client.is_connected:
                with contextlib.suppress(TimeoutError, aiosmtplib.SMTPException, OSError):
                    await asyncio.wait_for(self._client.quit(), 5)
            await self._drop()


class LogTransport:
    """No SMTP_URL (development): each e-mail is written to the log instead of sent."""

    description = "the log (no SMTP_URL)"

    async def send(self, msg: Message) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        log.info(
            "e-mail not sent (no SMTP_URL): to %s, subject %r, %s\n%s",
            msg["To"],
            str(make_header(decode_header(msg["Subject"]))),
            msg["Message-ID"],
            plain_text(msg),
        )

    async def close(self) -> None:
        pass


Transport = SmtpTransport | LogTransport


def make_transport(smtp_url: str | None) -> Transport:
    return SmtpTransport(smtp_url) if smtp_url else LogTransport()
