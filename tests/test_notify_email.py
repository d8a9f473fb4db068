"""Notifications by e-mail, against a real SMTP server (aiosmtpd) started by the test: each kind
arrives once, to the right person, with its subject, link, Message-ID and one-click
unsubscribe; preferences and unsubscribing take effect; an SMTP outage delays e-mails without
losing or doubling one; a 5xx fails an e-mail with the reason kept."""

from __future__ import annotations

import asyncio
import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest

from nanny.app import create_app
from nanny.keys import POOL
from tests.factories import make_admin, make_owner, make_sitter
from tests.market import future, make_booking, make_pet, make_service
from tests.smtp_server import SmtpServer


@pytest.fixture
def smtp():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def notify_settings(settings, smtp):
    return dataclasses.replace(
        settings,
        smtp_url=smtp.url,
        smtp_from="Nanny <no-reply@nanny.test>",
        public_url="https://nanny.test",
        notify_poll_seconds=0.2,
        notify_retry_seconds=0.2,
        notify_lease_seconds=5.0,
    )


@pytest.fixture
async def app_client(aiohttp_client, notify_settings):
    return await aiohttp_client(create_app(notify_settings))


async def outbox(client) -> dict[str, int]:
    rows = await client.app[POOL].fetch(
        "SELECT email_status, count(*) AS n FROM notifications GROUP BY 1"
    )
    return {r["email_status"]: r["n"] for r in rows}


async def settle(client, timeout: float = 15.0) -> None:
    """Wait until no e-mail is queued."""
    for _ in range(int(timeout / 0.05)):
        if not (await outbox(client)).get("queued"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox still has queued e-mails: {await outbox(client)}")


async def market(client):
    owner = await make_owner(client, full_name="Aigerim Owner")
    sitter = await make_sitter(client, full_name="Dana Sitter")
    pet = await make_pet(client, owner, name="Tuzik")
    service = await make_service(client, sitter)
    return owner, sitter, pet, service


async def test_a_booking_request_reaches_its_sitter_once(app_client, smtp):
    owner, sitter, pet, service = await market(app_client)
    await settle(app_client)
    before = len(smtp.messages)  # the sitter's approval
    booking_id = await make_booking(app_client, owner, pet, service, future(48))
    await settle(app_client)
    new = smtp.messages[before:]
    assert [str(m["To"]) for m in new] == [f"Dana Sitter <{sitter.email}>"]
    msg = new[0]
    assert msg["Subject"] == "Новый запрос на бронирование"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Aigerim Owner" in text and "Tuzik" in text
    link = f"https://nanny.test/bookings/{booking_id}/chat"
    assert link in text and f'href="{link}"' in html
    notification_id = await app_client.app[POOL].fetchval(
        "SELECT notification_id FROM notifications WHERE kind = 'booking_requested'"
    )
    assert msg["Message-ID"] == f"<notification-{notification_id}@nanny.test>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<https://nanny.test/api/notifications/unsubscribe?")
    await asyncio.sleep(0.5)  # nothing more comes
    assert len(smtp.messages) == before + 1
