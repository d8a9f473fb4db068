"""Tokens ended on the server: signing out ends the presented token, changing the password ends
every token of the user, and the session cookie is Secure over HTTPS, behind a trusted proxy
that says so, and always where COOKIE_SECURE (production's default) asks for it."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from nanny.app import create_app
from nanny.config import load_settings
from nanny.db.users import MAX_REVOKED_TOKENS
from nanny.keys import POOL
from tests.chat_support import recv
from tests.factories import PASSWORD, login, make_owner
from tests.page_helpers import hidden_csrf, sign_in
from tests.test_pages import meta_csrf, set_cookie


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me_status(client, token: str) -> int:
    return (await client.get("/api/auth/me", headers=bearer(token))).status


async def test_logout_ends_the_presented_token_only(client):
    owner = await make_owner(client)
    phone = (await login(client, owner.email))["token"]  # the same user on another device
    resp = await client.post("/api/auth/logout", headers=owner.headers)
    assert resp.status == 204
    assert await me_status(client, owner.token) == 401
    data = await (await client.get("/api/auth/me", headers=owner.headers)).json()
    assert data["code"] == "unauthorized" and "signed out" in data["error"]
    assert (await client.post("/api/auth/logout", headers=owner.headers)).status == 401
    assert await me_status(client, phone) == 200
    # The ended token cannot open a WebSocket either.
    resp = await client.get("/api/ws", headers=owner.headers)
    assert resp.status == 401
    ws = await client.ws_connect("/api/ws")
    await ws.send_json({"type": "auth", "token": owner.token})
    msg = await ws.receive(timeout=5)
    assert ws.close_code == 4001 or msg.data == 4001
    ws = await client.ws_connect("/api/ws", headers=bearer(phone))
    await ws.send_json({"type": "ping"})
    assert await recv(ws) == {"type": "pong"}
    await ws.close()


async def test_many_sign_outs_end_every_token_at_once(client):
    """The user's row carries its listed tokens; past the bound the generation moves instead."""
    owner = await make_owner(client)
    other = (await login(client, owner.email))["token"]
    await client.app[POOL].execute(
        """
        INSERT INTO revoked_tokens (token_id, user_id, expires_at)
        SELECT 'old-' || n, $1, now() + interval '1 hour' FROM generate_series(1, $2) AS n
        """,
        owner.user_id,
        MAX_REVOKED_TOKENS,
    )
    assert (await client.post("/api/auth/logout", headers=owner.headers)).status == 204
    assert await me_status(client, other) == 401
    listed = await client.app[POOL].fetchval(
        "SELECT count(*) FROM revoked_tokens WHERE user_id = $1", owner.user_id
    )
    assert listed == 0
    assert await me_status(client, (await login(client, owner.email))["token"]) == 200


async def test_password_change_ends_every_other_token(client):
    owner = await make_owner(client)
    phone = (await login(client, owner.email))["token"]
    new = "a-brand-new-pass"

    async def change(current: str, new_password: str, token: str = owner.token):
        body = {"current_password": current, "new_password": new_password}
        return await client.post("/api/auth/password", json=body, headers=bearer(token))

    resp = await change("not-the-password", new)
    assert resp.status == 403 and (await resp.json())["details"]["field"] == "current_password"
    resp = await change(PASSWORD, PASSWORD)
    assert resp.status == 400 and (await resp.json())["details"]["field"] == "new_password"
    resp = await change(PASSWORD, "short")
    assert resp.status == 400
    assert await me_status(client, phone) == 200  # nothing changed so far

    resp = await change(PASSWORD, new)
    assert resp.status == 200
    fresh = await resp.json()
    assert fresh["user_id"] == owner.user_id and fresh["user"]["email"] == owner.email
    assert await me_status(client, fresh["token"]) == 200
    assert await me_status(client, owner.token) == 401
    assert await me_status(client, phone) == 401
    wrong = await client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert wrong.status == 401
    assert await me_status(client, (await login(client, owner.email, new))["token"]) == 200


async def test_signing_out_of_the_pages_ends_the_cookie_token(client):
    owner = await make_owner(client)
    resp = await sign_in(client, owner.email)
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))["nanny_token"].value
    page = await (await client.get("/owner")).text()
    resp = await client.post("/logout", data={"csrf_token": meta_csrf(page)}, allow_redirects=False)
    assert resp.status == 303
    assert await me_status(client, token) == 401  # a copy of the cookie signs nobody in


async def test_api_sign_out_with_the_cookie_clears_it(client):
    owner = await make_owner(client)
    await sign_in(client, owner.email)
    page = await (await client.get("/owner")).text()
    resp = await client.post("/api/auth/logout", headers={"X-CSRF-Token": meta_csrf(page)})
    assert resp.status == 204
    assert "Max-Age=0" in set_cookie(resp, "nanny_token")


@pytest.mark.parametrize(
    ("cookie_secure", "proxies", "proto", "secure"),
    [
        (False, (), None, False),
        (False, (), "https", False),  # the header from anyone but a trusted proxy is ignored
        (False, ("127.0.0.1/32",), "https", True),
        (False, ("127.0.0.1/32",), "http", False),
        (False, ("10.0.0.0/8",), "https", False),  # the peer is not that proxy
        (True, (), None, True),
    ],
)
async def test_session_cookie_is_secure_over_https(
    aiohttp_client, settings, cookie_secure, proxies, proto, secure
):
    networks = tuple(ipaddress.ip_network(p) for p in proxies)
    app = create_app(
        dataclasses.replace(settings, cookie_secure=cookie_secure, trusted_proxies=networks)
    )
    client = await aiohttp_client(app)
    owner = await make_owner(client)
    headers = {"X-Forwarded-Proto": proto} if proto else {}
    form = await client.get("/login", headers=headers)
    csrf_cookie = set_cookie(form, "nanny_csrf")
    assert ("Secure" in csrf_cookie) is secure
    # By hand: a cookie jar keeps Secure cookies from a plain-HTTP test server.
    cookie = csrf_cookie.split(";")[0]
    resp = await client.post(
        "/login",
        data={
            "email": owner.email,
            "password": PASSWORD,
            "csrf_token": hidden_csrf(await form.text()),
        },
        headers=headers | {"Cookie": cookie},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert ("Secure" in set_cookie(resp, "nanny_token")) is secure


def test_cookie_secure_defaults_to_production(tmp_path):
    production = {"NANNY_ENV": "production", "JWT_SECRET": "s" * 40}
    assert load_settings(production).cookie_secure is True
    assert load_settings(production | {"COOKIE_SECURE": "false"}).cookie_secure is False
    assert load_settings({"NANNY_DATA_DIR": str(tmp_path)}).cookie_secure is False
