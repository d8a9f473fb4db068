"""Helpers for the page tests: signing in through the real forms."""

from __future__ import annotations

import re

from tests.factories import PASSWORD

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def hidden_csrf(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


async def form_csrf(client, path: str = "/login") -> str:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return hidden_csrf(await resp.text())


async def sign_in(client, email: str, password: str = PASSWORD):
    """Sign in through the login form; the client's cookie jar then holds the session."""
    token = await form_csrf(client)
    resp = await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    return resp
