"""Notifications by e-mail, against a real SMTP server (aiosmtpd) started by the test: each kind
arrives once, to the right person, with its subject, link, Message-ID and one-click
unsubscribe; preferences and unsubscribing take effect; an SMTP outage delays e-mails without
losing or doubling one; a 5xx fails an e-mail with the reason kept."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from datetime import UTC, datetime

import pytest

from nanny.app import create_app
from nanny.keys import POOL
from nanny.notify.mail import Letter, build_message, wire_bytes
from tests.factories import make_admin, make_owner, make_sitter
from tests.market import future, make_booking, make_pet, make_service
from tests.smtp_server import SmtpServer


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
        max_pending_per_sitter=10,
    )


@pytest.fixture
async def app_client(notify_settings, aiohttp_client):
    # notify_settings first: the app then stops before its database is dropped.
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


def subjects_to(smtp: SmtpServer, address: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp.to(address)]


async def test_each_kind_reaches_the_right_person_once(app_client, smtp):
    owner, sitter, pet, service = await market(app_client)
    admin = await make_admin(app_client)
    pending = await make_sitter(app_client, status="pending", full_name="New Sitter")
    for action in ("approve",):
        resp = await app_client.post(
            f"/api/admin/sitters/{pending.user_id}/{action}", headers=admin.headers
        )
        assert resp.status == 200
    rejected = await make_sitter(app_client, status="pending")
    resp = await app_client.post(
        f"/api/admin/sitters/{rejected.user_id}/reject", headers=admin.headers
    )
    assert resp.status == 200

    confirmed = await make_booking(app_client, owner, pet, service, future(24))
    resp = await app_client.post(f"/api/bookings/{confirmed}/confirm", headers=sitter.headers)
    assert resp.status == 200
    by_owner = await make_booking(app_client, owner, pet, service, future(72))
    resp = await app_client.post(f"/api/bookings/{by_owner}/cancel", headers=owner.headers)
    assert resp.status == 200
    by_sitter = await make_booking(app_client, owner, pet, service, future(96))
    resp = await app_client.post(f"/api/bookings/{by_sitter}/cancel", headers=sitter.headers)
    assert resp.status == 200
    # Finished, expired and reviewed bookings come from states the API cannot reach in a test's
    # time: the triggers see every path, so the database is changed directly.
    pool = app_client.app[POOL]
    await pool.execute(
        "UPDATE bookings SET status = 'cancelled', cancel_reason = 'expired' WHERE booking_id = $1",
        await make_booking(app_client, owner, pet, service, future(120)),
    )
    from tests.rows import insert_booking

    done = await insert_booking(app_client, owner.user_id, sitter.user_id, status="confirmed")
    await pool.execute("UPDATE bookings SET status = 'completed' WHERE booking_id = $1", done)
    await pool.execute(
        "INSERT INTO reviews (booking_id, owner_id, sitter_id, rating) VALUES ($1, $2, $3, 4)",
        done,
        owner.user_id,
        sitter.user_id,
    )
    await settle(app_client)
    assert subjects_to(smtp, pending.email) == ["Ваш профиль ситтера одобрен"]
    assert subjects_to(smtp, rejected.email) == ["Ваш профиль ситтера не одобрен"]
    assert sorted(subjects_to(smtp, owner.email)) == sorted(
        [
            "Ваше бронирование подтверждено",
            "Бронирование отменено",  # by the sitter
            "Запрос на бронирование истёк",
            "Бронирование завершено",
        ]
    )
    assert sorted(subjects_to(smtp, sitter.email)) == sorted(
        ["Ваш профиль ситтера одобрен"]
        + ["Новый запрос на бронирование"] * 4
        + ["Бронирование отменено", "Запрос на бронирование истёк", "У вас новый отзыв"]
    )
    review = next(m for m in smtp.to(sitter.email) if m["Subject"] == "У вас новый отзыв")
    assert "4 из 5" in review.get_body(("plain",)).get_content()
    ids = [m["Message-ID"] for m in smtp.messages]
    assert len(ids) == len(set(ids))  # no e-mail twice


async def test_emails_speak_the_recipients_language(app_client, smtp):
    owner, sitter, pet, service = await market(app_client)
    resp = await app_client.put("/api/auth/me", json={"locale": "kk"}, headers=sitter.headers)
    assert resp.status == 200
    await make_booking(app_client, owner, pet, service, future(30))
    await settle(app_client)
    assert subjects_to(smtp, sitter.email)[-1] == "Жаңа брондау сұрауы"


@pytest.mark.parametrize("token", ["1.bookings.é", "1.bookings.\u0661", "٢.bookings.x"])
async def test_unsubscribe_tokens_beyond_ascii_are_refused(client, token):
    """A signature (or user) in another script is a bad link like any other, not a 500."""
    for method in ("GET", "POST"):
        resp = await client.request(
            method, "/api/notifications/unsubscribe", params={"token": token}
        )
        assert resp.status == 400, (method, await resp.text())
        assert (await resp.json())["details"] == {"field": "token", "reason": "invalid"}


async def test_preferences_and_one_click_unsubscribe_take_effect(app_client, smtp):
    owner, sitter, pet, service = await market(app_client)
    # The approval's e-mail goes out before the preference changes (it follows `bookings`).
    await settle(app_client)
    resp = await app_client.get("/api/auth/me/notifications", headers=sitter.headers)
    assert await resp.json() == {"email": {"bookings": True, "messages": True, "reviews": True}}
    resp = await app_client.put(
        "/api/auth/me/notifications", json={"email": {"bookings": False}}, headers=sitter.headers
    )
    assert await resp.json() == {"email": {"bookings": False, "messages": True, "reviews": True}}
    await settle(app_client)
    before = len(smtp.to(sitter.email))
    await make_booking(app_client, owner, pet, service, future(30))
    await settle(app_client)
    assert len(smtp.to(sitter.email)) == before  # turned off: not sent
    assert (await outbox(app_client)).get("skipped") == 1
    # In the app it is there all the same.
    resp = await app_client.get("/api/notifications?unread=true", headers=sitter.headers)
    assert (await resp.json())[0]["kind"] == "booking_requested"

    # The owner unsubscribes from booking e-mails through the link of one.
    resp = await app_client.put(
        "/api/auth/me/notifications", json={"email": {"bookings": True}}, headers=sitter.headers
    )
    booking_id = await make_booking(app_client, owner, pet, service, future(50))
    await app_client.post(f"/api/bookings/{booking_id}/confirm", headers=sitter.headers)
    await settle(app_client)
    [msg] = smtp.to(owner.email)
    url = msg["List-Unsubscribe"].strip("<>").removeprefix("https://nanny.test")
    page = await app_client.get(url)
    assert page.status == 200 and 'method="post"' in await page.text()
    # RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" to the link, no cookie.
    resp = await app_client.post(url, data="List-Unsubscribe=One-Click")
    assert resp.status == 200
    prefs = await app_client.get("/api/auth/me/notifications", headers=owner.headers)
    assert (await prefs.json())["email"] == {"bookings": False, "messages": True, "reviews": True}
    await app_client.post(f"/api/bookings/{booking_id}/cancel", headers=sitter.headers)
    await settle(app_client)
    assert len(smtp.to(owner.email)) == 1
    # A forged token changes nothing.
    forged = url.replace("bookings", "messages")
    resp = await app_client.post(forged)
    assert resp.status == 400 and (await resp.json())["code"] == "validation_error"
    prefs = await app_client.get("/api/auth/me/notifications", headers=owner.headers)
    assert (await prefs.json())["email"]["messages"] is True


async def test_bad_preference_bodies_are_refused(app_client):
    owner = await make_owner(app_client)
    for body in ({"email": {"bookings": "yes"}}, {"email": {"sms": True}}, {"mail": {}}, []):
        resp = await app_client.put("/api/auth/me/notifications", json=body, headers=owner.headers)
        assert resp.status == 400, body
        assert (await resp.json())["code"] == "validation_error"


async def test_smtp_down_for_a_while_then_every_email_arrives_once(app_client, smtp):
    owner, sitter, pet, service = await market(app_client)
    await settle(app_client)
    smtp.stop()
    booked = [
        await make_booking(app_client, owner, pet, service, future(30 + 5 * i)) for i in range(3)
    ]
    for _ in range(100):  # until each has failed at least once
        rows = await app_client.app[POOL].fetch(
            "SELECT attempts, email_status, last_error FROM notifications "
            "WHERE kind = 'booking_requested'"
        )
        if len(rows) == 3 and all(r["attempts"] >= 1 and r["last_error"] for r in rows):
            break
        await asyncio.sleep(0.1)
    assert len(rows) == 3
    assert all(r["email_status"] == "queued" and r["attempts"] >= 1 for r in rows)
    assert all(r["last_error"] for r in rows)
    smtp.start()
    await settle(app_client, timeout=20)
    requests = [m for m in smtp.to(sitter.email) if m["Subject"] == "Новый запрос на бронирование"]
    assert len(requests) == 3
    assert len({m["Message-ID"] for m in requests}) == 3
    links = [m.get_body(("plain",)).get_content() for m in requests]
    assert sorted(b for b in booked if any(f"/bookings/{b}/chat" in t for t in links)) == booked


async def test_a_4xx_is_retried_and_a_5xx_fails_with_its_reason(app_client, smtp):
    owner, sitter, pet, service = await market(app_client)
    await settle(app_client)
    smtp.recorder.answer = "451 4.3.0 try again later"
    await make_booking(app_client, owner, pet, service, future(30))
    await asyncio.sleep(0.8)
    row = await app_client.app[POOL].fetchrow(
        "SELECT * FROM notifications WHERE kind = 'booking_requested'"
    )
    assert row["email_status"] == "queued" and "451" in row["last_error"]
    smtp.recorder.answer = "550 5.1.1 no such mailbox"
    await settle(app_client)
    row = await app_client.app[POOL].fetchrow(
        "SELECT * FROM notifications WHERE kind = 'booking_requested'"
    )
    assert row["email_status"] == "failed" and "550" in row["last_error"]
    assert not smtp.to(sitter.email)[1:]


async def test_after_max_attempts_a_deferred_email_fails(notify_settings, smtp, aiohttp_client):
    client = await aiohttp_client(
        create_app(dataclasses.replace(notify_settings, notify_max_attempts=2))
    )
    smtp.recorder.answer = "452 4.2.2 mailbox full"
    await make_sitter(client)  # approved: one e-mail
    await settle(client)
    [row] = await client.app[POOL].fetch("SELECT * FROM notifications")
    assert row["email_status"] == "failed" and row["attempts"] == 2
    assert "gave up after 2 attempts" in row["last_error"]


async def test_without_smtp_url_emails_are_logged_and_the_start_says_so(
    settings, aiohttp_client, caplog
):
    caplog.set_level("INFO", logger="nanny.notify")
    client = await aiohttp_client(
        create_app(dataclasses.replace(settings, notify_poll_seconds=0.2))
    )
    assert "notifications: e-mails go to the log (no SMTP_URL)" in caplog.text
    sitter = await make_sitter(client)  # approved: one e-mail
    await settle(client)
    assert await outbox(client) == {"sent": 1}
    assert f"e-mail not sent (no SMTP_URL): to {sitter.email}" not in caplog.text  # with a name
    assert "e-mail not sent (no SMTP_URL)" in caplog.text and sitter.email in caplog.text
    assert "Ваш профиль ситтера одобрен" in caplog.text


def test_headers_in_any_script_read_back_exactly():
    """Names and subjects in Cyrillic or Kazakh, long enough to be folded, come back from the
    bytes sent exactly as written: no leading space, no mangled characters."""
    name = "Айгерім Сәрсенбайқызы-Тұрсынбекова"
    subject = "Жаңа брондау сұранысы: Тузик, 20–27 желтоқсан, күн сайын серуен"
    unsubscribe = "https://nanny.test/api/notifications/unsubscribe?token=12.bookings." + "x" * 24
    msg = build_message(
        Letter(name, "aigerim@example.kz", subject, "Сәлем!", "<p>Сәлем!</p>", unsubscribe),
        notification_id=7,
        sender="Няня Nanny <no-reply@nanny.test>",
        created_at=datetime(2026, 12, 2, tzinfo=UTC),
    )
    raw = wire_bytes(msg)
    assert raw.isascii() and all(len(line) <= 998 for line in raw.split(b"\r\n"))
    read = email.message_from_bytes(raw, policy=email.policy.default)
    assert read["Subject"] == subject
    assert str(read["To"]) == f"{name} <aigerim@example.kz>"
    assert str(read["From"]) == "Няня Nanny <no-reply@nanny.test>"
    assert read["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert read["Message-ID"] == "<notification-7@nanny.test>"
    assert read.get_body(("plain",)).get_content().strip() == "Сәлем!"
