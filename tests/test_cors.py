"""CORS for the configured origins and the security headers, through the real app."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from nanny.app import create_app
from nanny.http.headers import PAGE_CSP

SITE = "https://app.nanny.kz"
OTHER = "https://evil.example"


async def cors_client(aiohttp_client, settings, origins):
    return await aiohttp_client(
        create_app(dataclasses.replace(settings, cors_origins=tuple(origins)))
    )


def preflight_headers(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, x-csrf-token",
    }


async def test_preflight_for_a_listed_origin(aiohttp_client, settings):
    client = await cors_client(aiohttp_client, settings, [SITE])
    resp = await client.options("/api/auth/login", headers=preflight_headers(SITE))
    assert resp.status == 204
    h = resp.headers
    assert h["Access-Control-Allow-Origin"] == SITE
    assert h["Access-Control-Allow-Credentials"] == "true"
    methods = {m.strip() for m in h["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "DELETE"} <= methods
    allowed = {x.strip().lower() for x in h["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-csrf-token", "x-request-id"} <= allowed
    assert int(h["Access-Control-Max-Age"]) > 0
    assert "Origin" in h["Vary"]
    assert h["X-Request-ID"]


async def test_preflight_for_an_unlisted_origin_is_refused(aiohttp_client, settings):
    client = await cors_client(aiohttp_client, settings, [SITE])
    resp = await client.options("/api/auth/login", headers=preflight_headers(OTHER))
    assert resp.status == 403
    assert (await resp.json())["code"] == "forbidden"
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Access-Control-Allow-Credentials" not in resp.headers


async def test_actual_requests(aiohttp_client, settings):
    client = await cors_client(aiohttp_client, settings, [SITE])
    resp = await client.get("/api/health", headers={"Origin": SITE})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == SITE
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    exposed = {x.strip() for x in resp.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"X-Total-Count", "X-Request-ID", "Retry-After"}
    assert resp.headers["Vary"] == "Origin"

    # Errors carry the same headers, so a browser client can read the JSON error.
    resp = await client.post("/api/auth/login", json={}, headers={"Origin": SITE})
    assert resp.status == 400
    assert resp.headers["Access-Control-Allow-Origin"] == SITE

    resp = await client.get("/api/health", headers={"Origin": OTHER})
    assert resp.status == 200  # CORS is the browser's check; the server just does not grant it
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Access-Control-Allow-Credentials" not in resp.headers
    assert resp.headers["Vary"] == "Origin"


async def test_wildcard_never_grants_credentials(aiohttp_client, settings):
    client = await cors_client(aiohttp_client, settings, ["*", SITE])
    resp = await client.options("/api/auth/me", headers=preflight_headers(OTHER, "GET"))
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in resp.headers
    resp = await client.get("/api/health", headers={"Origin": OTHER})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in resp.headers
    # A listed origin still gets its own name echoed, with credentials.
    resp = await client.get("/api/health", headers={"Origin": SITE})
    assert resp.headers["Access-Control-Allow-Origin"] == SITE
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"


async def test_no_cors_configured(client):
    resp = await client.get("/api/health", headers={"Origin": SITE})
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert "Vary" not in resp.headers
    resp = await client.options("/api/auth/login", headers=preflight_headers(SITE))
    assert resp.status == 403
    # A plain OPTIONS (not a preflight) is still a 405 naming the allowed methods.
    resp = await client.options("/api/auth/login")
    assert resp.status == 405 and "POST" in resp.headers["Allow"]


async def test_security_headers_on_every_response(client):
    for resp in (
        await client.get("/api/health"),
        await client.get("/no/such/page"),
        await client.post("/api/auth/login", data=b"{"),
    ):
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "Content-Security-Policy" not in resp.headers  # JSON is not a page


async def test_pages_get_a_strict_csp(aiohttp_client, settings):
    app = create_app(dataclasses.replace(settings, cors_origins=(SITE,)))

    async def page(request: web.Request) -> web.Response:
        # Stands in for the HTML pages, which another module serves.
        return web.Response(text="<!doctype html><title>x</title>", content_type="text/html")

    app.router.add_get("/page-for-test", page)
    client = await aiohttp_client(app)
    resp = await client.get("/page-for-test", headers={"Origin": SITE})
    csp = resp.headers["Content-Security-Policy"]
    assert csp == PAGE_CSP
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no CDN
    assert "unsafe" not in csp
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"] == "'self' ws: wss:"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Vary"] == "Origin"
