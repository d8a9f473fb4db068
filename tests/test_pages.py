"""The pages without a browser: redirects, 403 pages, the session cookie, CSRF, logout, forms,
and the admin chart endpoint."""

from __future__ import annotations

import html
import re
import shutil
import ssl
import subprocess
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from nanny.app import create_app
from nanny.http.security import csrf_token_for
from nanny.keys import POOL
from tests.factories import PASSWORD, make_admin, make_owner, make_sitter, owner_body
from tests.page_helpers import form_csrf, hidden_csrf, sign_in
from tests.rows import insert_booking

PAGES = ("/owner", "/sitter", "/admin", "/bookings/1/chat")
ENGLISH = {"Accept-Language": "en"}


@pytest.fixture
async def client(aiohttp_client, settings):
    # These tests read the pages' English wording; test_i18n covers the languages.
    return await aiohttp_client(create_app(settings), headers=ENGLISH)


def set_cookie(resp, name: str) -> str | None:
    for header in resp.headers.getall("Set-Cookie", []):
        if header.startswith(f"{name}="):
            return header
    return None


def meta_csrf(page: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]*)">', page)
    assert match
    return match.group(1)


def field_error(page: str, name: str) -> str:
    """The text of the error shown next to field `name` ('' when hidden)."""
    match = re.search(rf'<p class="field-error" id="e-{name}"( hidden)?>([^<]*)</p>', page)
    assert match, f"no error slot for {name}"
    return "" if match.group(1) else html.unescape(match.group(2))


@pytest.mark.parametrize("path", PAGES)
async def test_anonymous_visitors_are_sent_to_login_and_back(client, path):
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/login?next=" + path.replace("/", "%2F")


async def test_login_sets_the_session_cookie_and_the_page_carries_its_csrf_token(client, settings):
    owner = await make_owner(client)
    resp = await client.get("/login")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    csrf_cookie = set_cookie(resp, "nanny_csrf")
    assert csrf_cookie and "HttpOnly" in csrf_cookie and "SameSite=Lax" in csrf_cookie
    token = hidden_csrf(await resp.text())

    resp = await client.post(
        "/login",
        data={"email": owner.email, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/owner"
    cookie = set_cookie(resp, "nanny_token")
    assert cookie is not None
    flags = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert "httponly" in flags and "secure" not in flags
    assert flags["samesite"].strip() == "SameSite=Lax"
    assert flags["max-age"].strip() == f"Max-Age={72 * 3600}"
    assert flags["path"].strip() == "Path=/"
    session = client.session.cookie_jar.filter_cookies(client.make_url("/"))["nanny_token"].value

    resp = await client.get("/owner")
    assert resp.status == 200
    page = await resp.text()
    assert meta_csrf(page) == csrf_token_for(settings, session)
    assert 'data-role="owner"' in page and f'data-user-id="{owner.user_id}"' in page
    # A signed-in visitor of /login goes straight to the dashboard.
    resp = await client.get("/login", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/owner"


async def test_login_returns_to_a_local_next_only(client):
    owner = await make_owner(client)
    token = await form_csrf(client)
    for sent, expected in (
        ("/bookings/5/chat", "/bookings/5/chat"),
        ("//evil.example/x", "/owner"),
        ("https://evil.example/", "/owner"),
        ("/\\evil.example", "/owner"),
    ):
        resp = await client.post(
            "/login",
            data={"email": owner.email, "password": PASSWORD, "csrf_token": token, "next": sent},
            allow_redirects=False,
        )
        assert resp.headers["Location"] == expected, sent


async def test_wrong_password_is_shown_on_the_form_and_sets_no_session(client):
    owner = await make_owner(client)
    token = await form_csrf(client)
    resp = await client.post(
        "/login",
        data={"email": owner.email, "password": "not-the-password", "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 401
    page = await resp.text()
    assert "Wrong e-mail or password" in page
    assert f'value="{owner.email}"' in page  # the e-mail is kept, the password is not
    assert set_cookie(resp, "nanny_token") is None

    resp = await client.post(
        "/login", data={"email": "", "password": "", "csrf_token": token}, allow_redirects=False
    )
    assert resp.status == 400
    page = await resp.text()
    assert field_error(page, "email") == "Enter your e-mail address"
    assert field_error(page, "password") == "Enter your password"


@pytest.mark.parametrize(
    "data, cookie",
    [
        ({}, None),  # a cross-site form: no token, no cookie (SameSite keeps it home)
        ({"csrf_token": "guessed"}, None),
        ({"csrf_token": "guessed"}, "other"),
        ({}, "present"),
    ],
)
async def test_sign_in_forms_without_a_matching_csrf_token_are_refused(
    aiohttp_client, settings, data, cookie
):
    client = await aiohttp_client(create_app(settings), headers=ENGLISH)
    owner = await make_owner(client)
    client.session.cookie_jar.clear()
    if cookie:
        client.session.cookie_jar.update_cookies({"nanny_csrf": cookie})
    for path in ("/login", "/register"):
        body = {"email": owner.email, "password": PASSWORD, "role": "owner"} | data
        resp = await client.post(
            path, data=body, headers={"Origin": "https://evil.example"}, allow_redirects=False
        )
        assert resp.status == 403
        assert "security token" in await resp.text()
        assert set_cookie(resp, "nanny_token") is None
    async with client.app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 1


async def test_register_owner_signs_in_and_lands_on_the_dashboard(client):
    token = await form_csrf(client, "/register")
    body = owner_body() | {"role": "owner", "csrf_token": token}
    resp = await client.post("/register", data=body, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/owner"
    assert set_cookie(resp, "nanny_token") is not None
    resp = await client.get("/owner")
    assert resp.status == 200
    assert body["full_name"] in await resp.text()
    async with client.app[POOL].acquire() as conn:
        row = await conn.fetchrow("SELECT role FROM users WHERE email = $1", body["email"])
    assert row["role"] == "owner"


async def test_register_sitter_starts_pending(client):
    token = await form_csrf(client, "/register")
    body = owner_body(email="new.sitter@example.kz") | {
        "role": "sitter",
        "csrf_token": token,
        "location": "Astana",
        "experience_years": "4",
        "certificates": "",
        "preferences": "cats",
    }
    resp = await client.post("/register", data=body, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/sitter"
    page = await (await client.get("/sitter")).text()
    assert "reviewing your profile" in page and "Astana" in page
    async with client.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            "SELECT s.status, s.experience_years FROM sitters s JOIN users u USING (user_id)"
            " WHERE u.email = 'new.sitter@example.kz'"
        )
    assert tuple(row) == ("pending", 4)


async def test_register_errors_are_shown_next_to_their_fields(client):
    token = await form_csrf(client, "/register")
    body = {
        "role": "sitter",
        "csrf_token": token,
        "full_name": "Aida",
        "email": "not-an-email",
        "phone": "8701",
        "password": "short",
        "location": "",
        "experience_years": "many",
    }
    resp = await client.post("/register", data=body, allow_redirects=False)
    assert resp.status == 400
    page = await resp.text()
    assert field_error(page, "email").startswith("Enter a valid e-mail address")
    assert field_error(page, "phone").startswith("Enter a mobile or landline number")
    assert field_error(page, "password") == "Use at least 8 characters"
    assert field_error(page, "full_name") == ""
    assert 'id="f-email" name="email" type="email" value="not-an-email"' in page
    assert 'aria-invalid="true"' in page
    assert 'value="short"' not in page  # the password is never echoed
    # experience and location are checked too once the rest is right
    body |= {"email": "aida@example.kz", "phone": "+77010009999", "password": PASSWORD}
    page = await (await client.post("/register", data=body)).text()
    assert field_error(page, "experience_years").startswith("Enter a whole number")
    assert field_error(page, "location").startswith("Enter the city")
    body["role"] = "admin"
    resp = await client.post("/register", data=body)
    assert resp.status == 400 and "Choose whether you own pets" in await resp.text()
    async with client.app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0


async def test_register_with_a_taken_email_says_so(client):
    owner = await make_owner(client)
    token = await form_csrf(client, "/register")
    body = owner_body(email=owner.email.upper()) | {"role": "owner", "csrf_token": token}
    resp = await client.post("/register", data=body, allow_redirects=False)
    assert resp.status == 400
    assert "already exists" in field_error(await resp.text(), "email")


async def test_wrong_role_gets_a_403_page(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    await sign_in(client, owner.email)
    for path in ("/sitter", "/admin"):
        resp = await client.get(path)
        assert resp.status == 403
        page = await resp.text()
        assert "not for your account" in page and "text/html" in resp.headers["Content-Type"]
    client.session.cookie_jar.clear()
    await sign_in(client, sitter.email)
    assert (await client.get("/owner")).status == 403
    assert (await client.get("/sitter")).status == 200


async def test_logout_needs_the_page_token_and_clears_the_cookie(client):
    owner = await make_owner(client)
    await sign_in(client, owner.email)
    page = await (await client.get("/owner")).text()

    resp = await client.post("/logout", data={}, allow_redirects=False)
    assert resp.status == 403  # a cross-site form cannot sign the user out
    assert (await client.get("/owner", allow_redirects=False)).status == 200

    resp = await client.post("/logout", data={"csrf_token": meta_csrf(page)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    cleared = set_cookie(resp, "nanny_token")
    assert cleared is not None and "Max-Age=0" in cleared
    resp = await client.get("/owner", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")


async def test_an_expired_or_forged_cookie_counts_as_signed_out(client, settings):
    import jwt

    owner = await make_owner(client)
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = jwt.encode(
        {
            "sub": str(owner.user_id),
            "role": "owner",
            "iat": past - timedelta(hours=2),
            "exp": past,
            "jti": "expired-token",
            "gen": 0,
        },
        settings.jwt_secret,
        algorithm="HS256",
    )
    for value in (expired, "not-a-jwt"):
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({"nanny_token": value})
        resp = await client.get("/owner", allow_redirects=False)
        assert resp.status == 303
        assert "Max-Age=0" in set_cookie(resp, "nanny_token")


async def test_https_sign_in_sets_a_secure_cookie(settings, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a throwaway TLS certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*openssl, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = TestServer(create_app(settings))
    await server.start_server(ssl=context)
    connector = aiohttp.TCPConnector(ssl=False)
    client = TestClient(server, connector=connector)
    await client.start_server()
    try:
        owner = await make_owner(client)
        resp = await sign_in(client, owner.email)
        assert "Secure" in set_cookie(resp, "nanny_token")
    finally:
        await client.close()


async def test_chat_page_for_participants_and_admins_only(client):
    owner = await make_owner(client, full_name="Aigerim <b>Owner</b>")
    sitter = await make_sitter(client, full_name="Daniyar Sitter")
    stranger = await make_owner(client)
    admin = await make_admin(client)
    booking_id = await insert_booking(
        client.app[POOL], owner.user_id, sitter.user_id, pet_name="Rex"
    )

    await sign_in(client, owner.email)
    resp = await client.get(f"/bookings/{booking_id}/chat")
    assert resp.status == 200
    page = await resp.text()
    assert f'data-booking-id="{booking_id}"' in page
    assert f'data-other-id="{sitter.user_id}"' in page and "Daniyar Sitter" in page
    assert "Walking for Rex" in page

    client.session.cookie_jar.clear()
    await sign_in(client, sitter.email)
    page = await (await client.get(f"/bookings/{booking_id}/chat")).text()
    # The owner's name is data: escaped, never markup.
    assert "Aigerim &lt;b&gt;Owner&lt;/b&gt;" in page and "<b>Owner</b>" not in page

    client.session.cookie_jar.clear()
    await sign_in(client, admin.email)
    assert (await client.get(f"/bookings/{booking_id}/chat")).status == 200

    client.session.cookie_jar.clear()
    await sign_in(client, stranger.email)
    for path in (f"/bookings/{booking_id}/chat", "/bookings/999999/chat", "/bookings/x/chat"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert "Conversation not found" in await resp.text()


async def test_static_files_are_served_with_versioned_urls(client):
    page = await (await client.get("/login")).text()
    css = re.search(r'href="(/static/css/app\.css\?v=[^"]+)"', page)
    assert css, "the stylesheet URL carries a content version"
    resp = await client.get(html.unescape(css.group(1)))
    assert resp.status == 200 and "--brand" in await resp.text()
    resp = await client.get("/static/js/chat.js")
    assert resp.status == 200
    assert "innerHTML" not in await resp.text()
    resp = await client.get("/static/../nanny/config.py")
    assert resp.status in (403, 404)


async def test_no_page_has_inline_script_or_style(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    admin = await make_admin(client)
    booking_id = await insert_booking(
        client.app[POOL], owner.user_id, sitter.user_id, pet_name="Rex"
    )
    pages = [await (await client.get(p)).text() for p in ("/", "/login", "/register")]
    for account, path in (
        (owner, "/owner"),
        (owner, f"/bookings/{booking_id}/chat"),
        (sitter, "/sitter"),
        (admin, "/admin"),
    ):
        client.session.cookie_jar.clear()
        await sign_in(client, account.email)
        resp = await client.get(path)
        assert resp.status == 200, path
        pages.append(await resp.text())
    for page in pages:
        # script-src 'self': every script is a file; no inline code, handlers or styles.
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
        assert not re.search(r"\son[a-z]+=", page)
        assert "style=" not in page and "<style" not in page


async def test_bookings_per_day_counts_each_utc_day(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    admin = await make_admin(client)
    pool = client.app[POOL]
    now = datetime.now(UTC)
    for days_ago in (0, 0, 3, 29, 30):
        await insert_booking(
            pool,
            owner.user_id,
            sitter.user_id,
            pet_name="Rex",
            created_at=now - timedelta(days=days_ago),
        )

    resp = await client.get("/api/admin/stats/bookings-per-day", headers=admin.headers)
    assert resp.status == 200
    series = await resp.json()
    assert len(series) == 30
    today = now.date()
    assert [d["day"] for d in series] == [
        (today - timedelta(days=n)).isoformat() for n in range(29, -1, -1)
    ]
    counts = {d["day"]: d["count"] for d in series}
    assert counts[today.isoformat()] == 2
    assert counts[(today - timedelta(days=3)).isoformat()] == 1
    assert counts[(today - timedelta(days=29)).isoformat()] == 1
    assert sum(counts.values()) == 4  # 30 days ago is outside the window

    resp = await client.get("/api/admin/stats/bookings-per-day?days=7", headers=admin.headers)
    assert len(await resp.json()) == 7
    for bad in ("0", "367", "x"):
        resp = await client.get(
            f"/api/admin/stats/bookings-per-day?days={bad}", headers=admin.headers
        )
        assert resp.status == 400
        assert (await resp.json())["details"]["field"] == "days"
    resp = await client.get("/api/admin/stats/bookings-per-day", headers=owner.headers)
    assert resp.status == 403
    client.session.cookie_jar.clear()
    resp = await client.get("/api/admin/stats/bookings-per-day")
    assert resp.status == 401


async def test_signed_in_visitors_skip_the_public_pages(client):
    sitter = await make_sitter(client)
    await sign_in(client, sitter.email)
    for path in ("/", "/register", "/login?next=%0d%0aSet-Cookie:x"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/sitter", path


async def test_a_deleted_account_is_signed_out(client):
    owner = await make_owner(client)
    await sign_in(client, owner.email)
    async with client.app[POOL].acquire() as conn:
        await conn.execute("UPDATE users SET deleted_at = now() WHERE user_id = $1", owner.user_id)
    resp = await client.get("/owner", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")


async def test_anonymous_landing_and_a_too_long_password(client):
    page = await (await client.get("/")).text()
    assert "Pet sitters you can trust" in page and 'href="/register?role=sitter"' in page
    page = await (await client.get("/register?role=sitter")).text()
    assert 'value="sitter" id="role-sitter" checked' in page
    token = hidden_csrf(page)
    body = owner_body(password="é" * 40) | {"role": "owner", "csrf_token": token}
    resp = await client.post("/register", data=body)
    assert resp.status == 400
    assert field_error(await resp.text(), "password") == "Use at most 72 bytes"


async def test_the_forms_share_the_api_rate_limits(aiohttp_client, settings):
    """Limits count per e-mail and IP whichever path a sign-in takes; the forms say so politely."""
    from dataclasses import replace

    from nanny.config import RateLimit

    limited = replace(
        settings,
        rate_login_per_email=RateLimit(2, 60),
        rate_register_per_ip=RateLimit(1, 3600),
    )
    client = await aiohttp_client(create_app(limited), headers=ENGLISH)
    owner = await make_owner(client)  # one login through the API
    await sign_in(client, owner.email)  # the second, through the form
    client.session.cookie_jar.clear()
    token = await form_csrf(client)
    resp = await client.post(
        "/login",
        data={"email": owner.email, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert "Too many attempts" in await resp.text()
    assert set_cookie(resp, "nanny_token") is None

    token = await form_csrf(client, "/register")
    body = owner_body() | {"role": "owner", "csrf_token": token}
    resp = await client.post("/register", data=body, allow_redirects=False)
    assert resp.status == 429  # the API registration above used the IP's one
    page = await resp.text()
    assert "Too many attempts" in page and f'value="{body["email"]}"' in page
    async with client.app[POOL].acquire() as conn:
        taken = await conn.fetchval("SELECT count(*) FROM users WHERE email = $1", body["email"])
    assert taken == 0
