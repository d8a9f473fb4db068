"""The pages in a real headless Chromium (Debian's, driven by Playwright) against a live server:
sign-in, live booking status, the booking chat, the admin dashboard, CSRF and XSS, and the
languages (the scripts format as the server does; an owner books in Kazakh).

Screenshots of every main page land in test-output/screenshots/ for a human to look at."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from nanny import PROJECT_ROOT, formats, i18n
from nanny.app import create_app
from nanny.keys import POOL
from tests.factories import PASSWORD, make_admin, make_owner, make_sitter
from tests.faults import TcpProxy
from tests.market import make_pet, make_service
from tests.rows import insert_booking

# Debian's Chromium (`apt-get install chromium`); TEST_CHROMIUM names another binary.
CHROMIUM = os.environ.get("TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = PROJECT_ROOT / "test-output" / "screenshots"
PHONE = {"width": 375, "height": 780}
DESKTOP = {"width": 1280, "height": 860}

try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright
    from playwright.async_api import expect as _expect
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="session", autouse=True)
def chromium_present() -> None:
    """Without Playwright or Chromium these tests skip on a developer's machine, but fail in CI
    (CI=true): there a missing browser must not pass for a green run."""
    if async_playwright is None:
        missing = "the playwright package is not installed (pip install -e '.[test]')"
    elif not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        return
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{missing}; CI runs the browser tests", pytrace=False)
    pytest.skip(missing)


def expect(target):
    return _expect(target)


def has_route(app: web.Application, method: str, path: str) -> bool:
    for route in app.router.routes():
        resource = route.resource
        if route.method in (method, "*") and resource is not None and resource.canonical == path:
            return True
    return False


def needs(app: web.Application, *routes: tuple[str, str, str]) -> None:
    """Skip, naming the missing endpoint and the branch that brings it, until it is merged."""
    for method, path, branch in routes:
        if not has_route(app, method, path):
            pytest.skip(f"needs {method} {path} (branch {branch}), not merged yet")


WS = ("GET", "/api/ws", "chat")

# The policy the pages must live with: only our own files run, nothing inline.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


async def _strict_csp(request: web.Request, response: web.StreamResponse) -> None:
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", STRICT_CSP)


@pytest.fixture
async def server(settings) -> AsyncIterator[TestServer]:
    app = create_app(settings)
    app.on_response_prepare.append(_strict_csp)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


@pytest.fixture
async def api(server) -> AsyncIterator[TestClient]:
    """A plain HTTP client on the same live server, for setting up data through the API."""
    client = TestClient(server)
    await client.start_server()
    yield client
    await client.session.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


class PageErrors(list):
    """Uncaught script errors and Content-Security-Policy violations of the watched pages."""

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda exc: self.append(str(exc)))
        page.on("console", self._console)
        return page

    def _console(self, message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.append(message.text)


@pytest.fixture
def page_errors() -> PageErrors:
    errors = PageErrors()
    yield errors
    assert not errors, f"JavaScript errors on the page: {errors}"


def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def new_context(browser: Browser, viewport=DESKTOP) -> BrowserContext:
    return await browser.new_context(viewport=viewport, locale="en-GB", timezone_id="Asia/Almaty")


async def sign_in(context: BrowserContext, base: str, email: str, errors: PageErrors) -> Page:
    page = errors.watch(await context.new_page())
    await page.goto(f"{base}/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: "/login" not in url)
    return page


async def no_horizontal_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    assert width <= viewport, f"{page.url} is {width}px wide on a {viewport}px screen"


# --- sign-in -----------------------------------------------------------------------------------


async def test_register_and_sign_in_pages(server, api, browser, page_errors):
    base = base_url(server)
    context = await new_context(browser)
    page = page_errors.watch(await context.new_page())
    await page.goto(f"{base}/")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Pet sitters")
    await screenshot(page, "landing")

    await page.goto(f"{base}/register")
    # The sitter fields appear only for sitters (CSS :has, no script needed).
    await expect(page.get_by_label("City or district")).to_be_hidden()
    await page.get_by_text("A pet sitter").click()
    await expect(page.get_by_label("City or district")).to_be_visible()
    await page.get_by_label("Full name").fill("Dana Sitter")
    await page.get_by_label("E-mail").fill("dana@example.kz")
    await page.get_by_label("Phone").fill("8 701 000")
    await page.get_by_label("Password").fill("short")
    await page.get_by_role("button", name="Create account").click()
    # Server-side errors, each next to its field, and the form keeps what was typed.
    await expect(page.locator("#e-phone")).to_contain_text("mobile or landline")
    await expect(page.locator("#e-password")).to_contain_text("at least 8")
    await expect(page.locator("#e-location")).to_contain_text("city")
    await expect(page.get_by_label("Full name")).to_have_value("Dana Sitter")
    await expect(page.get_by_label("City or district")).to_be_visible()
    await screenshot(page, "register-errors")

    await page.get_by_label("Phone").fill("+77010001234")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("City or district").fill("Almaty")
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url(f"{base}/sitter")
    await expect(page.locator("#approval-status")).to_have_text("Pending")
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["nanny_token"]["httpOnly"] and cookies["nanny_token"]["sameSite"] == "Lax"
    assert await page.evaluate("document.cookie.includes('nanny_token')") is False

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{base}/login")
    await page.get_by_label("E-mail").fill("dana@example.kz")
    await page.get_by_label("Password").fill("wrong-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong e-mail or password")
    await screenshot(page, "login-error")
    await context.close()

    phone = await new_context(browser, PHONE)
    page = page_errors.watch(await phone.new_page())
    for path, name in (("/login", "login"), ("/register", "register"), ("/", "landing")):
        await page.goto(f"{base}{path}")
        await no_horizontal_scroll(page)
        await screenshot(page, f"phone-{name}")
    await phone.close()


async def test_wrong_role_sees_a_403_page(server, api, browser, page_errors):
    base = base_url(server)
    owner = await make_owner(api)
    context = await new_context(browser)
    page = await sign_in(context, base, owner.email, page_errors)
    response = await page.goto(f"{base}/admin")
    assert response.status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "This page is not for your account"
    )
    await screenshot(page, "error-403")
    await context.close()


async def test_cross_site_forms_without_the_token_are_refused(server, api, browser, page_errors):
    """Another site (another port on the same host: same-site, so SameSite does not help and the
    token is what refuses) posts our forms in a signed-in browser."""
    base = base_url(server)
    owner = await make_owner(api)
    evil = web.Application()

    async def evil_page(request: web.Request) -> web.Response:
        return web.Response(
            content_type="text/html",
            text=f"""<!doctype html><title>Win a prize</title>
            <form id="out" method="post" action="{base}/logout"><button>Claim</button></form>
            <form id="in" method="post" action="{base}/login">
              <input name="email" value="{owner.email}"><input name="password" value="{PASSWORD}">
              <button>Login</button></form>""",
        )

    evil.router.add_get("/", evil_page)
    evil_server = TestServer(evil, host="127.0.0.1")
    await evil_server.start_server()
    try:
        context = await new_context(browser)
        page = await sign_in(context, base, owner.email, page_errors)
        await page.goto(str(evil_server.make_url("/")))
        async with page.expect_navigation():
            await page.locator("#out button").click()
        assert page.url == f"{base}/logout"
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "This form could not be accepted"
        )
        response = await page.goto(f"{base}/owner")
        assert response.status == 200, "the cross-site post must not have signed the user out"

        await page.goto(str(evil_server.make_url("/")))
        async with page.expect_navigation():
            await page.locator("#in button").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "This form could not be accepted"
        )
        await screenshot(page, "error-csrf")

        if has_route(server.app, "POST", "/api/pets"):
            # The evil site's script writes to the API with the victim's cookie but no token.
            await page.goto(str(evil_server.make_url("/")))
            await page.evaluate(
                """url => fetch(url, {method: 'POST', credentials: 'include', mode: 'no-cors',
                    headers: {'Content-Type': 'text/plain'},
                    body: JSON.stringify({name: 'Evil', type: 'cat', age: 1, notes: ''})})""",
                f"{base}/api/pets",
            )
            async with api.app[POOL].acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM pets") == 0
        await context.close()
    finally:
        await evil_server.close()


# --- owner and sitter --------------------------------------------------------------------------


async def test_owner_books_and_sees_the_sitter_confirm_live(server, api, browser, page_errors):
    needs(
        server.app,
        ("POST", "/api/pets", "market"),
        ("POST", "/api/services", "market"),
        ("GET", "/api/services/search", "market"),
        ("POST", "/api/bookings", "market"),
        WS,
    )
    base = base_url(server)
    owner = await make_owner(api, full_name="Aigerim Owner")
    sitter = await make_sitter(api, full_name="Daniyar Sitter", location="Almaty")

    # The sitter publishes a service on the dashboard, which then stays open.
    sitter_ctx = await new_context(browser)
    sitter_page = await sign_in(sitter_ctx, base, sitter.email, page_errors)
    await expect(sitter_page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(sitter_page.locator("#bookings-empty")).to_be_visible()
    await sitter_page.get_by_role("button", name="Add a service").click()
    await sitter_page.get_by_label("Service", exact=True).select_option("home-care")
    await sitter_page.get_by_role("button", name="Save service").click()
    price_error = sitter_page.locator('[data-error-for="price_per_hour"]')
    await expect(price_error).to_be_visible()
    await sitter_page.get_by_label("Price per hour (₸)").fill("2500")
    await sitter_page.get_by_label("Description").fill("Long park walks")
    await sitter_page.get_by_role("button", name="Save service").click()
    service = sitter_page.locator("#service-list .service")
    await expect(service).to_contain_text("Home care")
    await service.get_by_role("button", name="Edit").click()
    await sitter_page.get_by_label("Service", exact=True).select_option("walking")
    await sitter_page.get_by_role("button", name="Save service").click()
    await expect(service).to_contain_text("Walking")
    await expect(service).to_contain_text("₸2,500")

    owner_ctx = await new_context(browser)
    page = await sign_in(owner_ctx, base, owner.email, page_errors)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")

    # A pet, through the page's form (a server-side error first, shown next to the field).
    await page.get_by_role("button", name="Add a pet").click()
    await page.get_by_label("Name").fill("Rex")
    await page.get_by_label("Age (years)").fill("99")
    await page.get_by_role("button", name="Save pet").click()
    await expect(page.locator('[data-error-for="age"]')).to_be_visible()
    await page.get_by_label("Age (years)").fill("4")
    await page.get_by_role("button", name="Save pet").click()
    await expect(page.locator("#pet-list")).to_contain_text("Rex")
    # A second pet, edited, then deleted after a confirmation step.
    await page.get_by_role("button", name="Add a pet").click()
    await page.get_by_label("Name").fill("Tom")
    await page.get_by_label("Kind").select_option("cat")
    await page.get_by_role("button", name="Save pet").click()
    await page.get_by_role("button", name="Edit Tom").click()
    await page.get_by_label("Age (years)").fill("7")
    await page.get_by_role("button", name="Save pet").click()
    await expect(page.locator(".pet", has_text="Tom")).to_contain_text("Cat · 7 years")
    await page.get_by_role("button", name="Delete Tom").click()
    await page.locator("#confirm-dialog").get_by_role("button", name="Delete pet").click()
    await expect(page.locator(".pet")).to_have_count(1)

    await page.get_by_label("Location").fill("alma")
    await page.get_by_role("button", name="Search").click()
    result = page.locator(".service", has_text="Daniyar Sitter")
    await expect(result).to_contain_text("₸2,500")
    await screenshot(page, "owner-dashboard")
    await result.get_by_role("button", name="Book").click()
    day = (date.today() + timedelta(days=60)).isoformat()  # within the booking horizon
    await page.get_by_label("Starts").fill(f"{day}T10:00")
    await page.get_by_label("Ends").fill(f"{day}T13:30")
    # The price is computed and shown before confirming.
    await expect(page.locator("#book-price")).to_have_text("₸8,750")
    await screenshot(page, "owner-book-dialog")
    await page.get_by_role("button", name="Confirm booking").click()
    card = page.locator(".booking").first
    await expect(card.locator(".badge")).to_have_text("Pending")
    await expect(card).to_contain_text("₸8,750")

    # The new booking arrives on the sitter's open page, without a reload.
    incoming = sitter_page.locator(".booking").first
    await expect(incoming.locator(".badge")).to_have_text("Pending")
    await expect(incoming).to_contain_text("Walking for Rex")
    await expect(incoming).to_contain_text("Aigerim Owner")
    await screenshot(sitter_page, "sitter-dashboard")
    await incoming.get_by_role("button", name="Confirm").click()
    await expect(incoming.locator(".badge")).to_have_text("Confirmed")

    # The owner's page was never reloaded either: the WebSocket brought the confirmation.
    await expect(card.locator(".badge")).to_have_text("Confirmed", timeout=5000)
    await screenshot(page, "owner-confirmed-live")
    await card.get_by_role("button", name="Pay").click()
    await expect(page.locator("#pay-amount")).to_have_text("₸8,750")
    await page.get_by_role("button", name="Pay now").click()
    await expect(card).to_contain_text("Paid.")
    await expect(card.get_by_role("button", name="Pay")).to_have_count(0)

    # The owner cancels; the sitter sees it live.
    await card.get_by_role("button", name="Cancel").click()
    await page.locator("#confirm-dialog").get_by_role("button", name="Cancel booking").click()
    await expect(card.locator(".badge")).to_have_text("Cancelled")
    await expect(incoming.locator(".badge")).to_have_text("Cancelled", timeout=5000)

    phone = await new_context(browser, PHONE)
    for account, path, name in ((owner, "/owner", "owner"), (sitter, "/sitter", "sitter")):
        p = await sign_in(phone, base, account.email, page_errors)
        await p.goto(f"{base}{path}")
        await expect(p.locator("body")).to_have_attribute("data-ready", "true")
        await no_horizontal_scroll(p)
        await screenshot(p, f"phone-{name}-dashboard")
        await p.close()
        await phone.clear_cookies()
    for ctx in (owner_ctx, sitter_ctx, phone):
        await ctx.close()


async def test_owner_reviews_a_completed_booking(server, api, browser, page_errors):
    needs(
        server.app,
        ("POST", "/api/reviews", "admin"),
        ("GET", "/api/bookings/{booking_id}/review", "admin"),
        ("GET", "/api/owners/{owner_id}/bookings", "market"),
    )
    base = base_url(server)
    owner, sitter, booking_id = await _booking_between(api)
    async with api.app[POOL].acquire() as conn:
        await conn.execute(
            "UPDATE bookings SET status = 'completed', start_time = now() - interval '3 hours',"
            " end_time = now() - interval '1 hour' WHERE booking_id = $1",
            booking_id,
        )
    context = await new_context(browser)
    page = await sign_in(context, base, owner.email, page_errors)
    card = page.locator(f'.booking[data-booking-id="{booking_id}"]')
    await expect(card.locator(".badge")).to_have_text("Completed")
    await card.get_by_role("button", name="Leave a review").click()
    await page.locator('label[for="rate-4"]').click()
    await page.get_by_label("Comment").fill("Rex came back happy")
    await screenshot(page, "owner-review-dialog")
    await page.get_by_role("button", name="Publish review").click()
    await expect(card).to_contain_text("Reviewed")
    await expect(card.get_by_role("button", name="Leave a review")).to_have_count(0)
    async with api.app[POOL].acquire() as conn:
        row = await conn.fetchrow(
            "SELECT rating, comment FROM reviews WHERE booking_id = $1", booking_id
        )
    assert tuple(row) == (4, "Rex came back happy")
    await page.reload()
    await expect(card).to_contain_text("Reviewed")
    del sitter
    await context.close()


# --- chat --------------------------------------------------------------------------------------


async def _booking_between(api: TestClient):
    owner = await make_owner(api, full_name="Aigerim Owner")
    sitter = await make_sitter(api, full_name="Daniyar Sitter")
    booking_id = await insert_booking(api.app[POOL], owner.user_id, sitter.user_id, pet_name="Rex")
    return owner, sitter, booking_id


async def test_owner_and_sitter_chat_live(server, api, browser, page_errors):
    needs(server.app, WS, ("GET", "/api/bookings/{id}/messages", "chat"))
    base = base_url(server)
    owner, sitter, booking_id = await _booking_between(api)
    # Many old messages, so the history loads in pages as the reader scrolls up.
    for n in range(1, 61):
        who = owner if n % 2 else sitter
        resp = await api.post(
            f"/api/bookings/{booking_id}/messages",
            json={"content": f"old message {n}"},
            headers=who.headers,
        )
        assert resp.status == 201, await resp.text()

    # The sitter reaches the server through a proxy that the test can cut.
    proxy = TcpProxy(host="127.0.0.1", port=server.port)
    await proxy.start()
    sitter_base = f"http://127.0.0.1:{proxy.port}"
    chat = f"/bookings/{booking_id}/chat"

    owner_ctx = await new_context(browser)
    sitter_ctx = await new_context(browser)
    o = await sign_in(owner_ctx, base, owner.email, page_errors)
    s = await sign_in(sitter_ctx, sitter_base, sitter.email, page_errors)
    await o.goto(f"{base}{chat}")
    await s.goto(f"{sitter_base}{chat}")
    for p in (o, s):
        await expect(p.locator("body")).to_have_attribute("data-ready", "true")
        await expect(p.locator(".msg").last).to_contain_text("old message 60")
    await expect(o.locator("#presence-label")).to_have_text("online")
    await expect(s.locator("#presence-label")).to_have_text("online")

    # Older history arrives on scroll.
    assert await o.locator(".msg", has_text="old message 1").count() == 0
    for _ in range(10):
        await o.locator("#chat-log").evaluate("el => { el.scrollTop = 0; }")
        if await o.locator(".msg").filter(has_text="old message 1").count():
            break
        await asyncio.sleep(0.3)
    await expect(o.locator(".msg-bubble", has_text="old message 1").first).to_be_attached()
    await expect(o.locator("#history-status")).to_contain_text("beginning")

    # Typing, a live message, and "seen" both ways.
    await o.locator("#composer-input").press_sequentially("Hello, can you walk Rex at 10?")
    await expect(s.locator("#typing")).to_have_text("Aigerim Owner is typing…")
    await o.locator("#composer-input").press("Enter")
    await expect(s.locator(".msg").last).to_contain_text("Hello, can you walk Rex at 10?")
    await expect(o.locator(".msg.mine").last.locator(".msg-status")).to_have_text("Seen")

    await s.locator("#composer-input").press_sequentially("Sure, see you then")
    await expect(o.locator("#typing")).to_have_text("Daniyar Sitter is typing…")
    await s.get_by_role("button", name="Send").click()
    await expect(o.locator(".msg").last).to_contain_text("Sure, see you then")
    await expect(s.locator(".msg.mine").last.locator(".msg-status")).to_have_text("Seen")
    await expect(o.locator("#typing")).to_have_text("")

    # Stored XSS: markup in a message is shown as text on both sides.
    payload = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    await o.locator("#composer-input").fill(payload)
    await o.locator("#composer-input").press("Enter")
    for p in (o, s):
        await expect(p.locator(".msg-bubble").last).to_have_text(payload)
        assert await p.evaluate("window.pwned") is None
        assert await p.locator(".messages img, .messages script").count() == 0
    await screenshot(o, "chat-owner")

    # The sitter drops off the network; the owner keeps writing, and sees the sitter offline.
    await proxy.cut()
    await expect(o.locator("#presence-label")).to_have_text("offline", timeout=10000)
    for n in range(1, 4):
        await o.locator("#composer-input").fill(f"while you were away {n}")
        await o.locator("#composer-input").press("Enter")
    # The sitter writes while offline: the message waits and is retried with its client_id.
    await s.locator("#composer-input").fill("sent while offline")
    await s.locator("#composer-input").press("Enter")
    await expect(s.locator(".msg.pending")).to_have_count(1)
    await expect(s.locator("#live-indicator")).to_have_attribute("data-state", "offline")
    await expect(s.locator("#presence-label")).to_have_text("waiting for connection…")
    await screenshot(s, "chat-sitter-offline")

    await proxy.restore()
    await expect(s.locator("#presence-label")).to_have_text("online", timeout=15000)
    await expect(s.locator(".msg.pending")).to_have_count(0, timeout=15000)
    texts = await s.locator(".msg-bubble").all_inner_texts()
    missed = [t for t in texts if t.startswith("while you were away")]
    assert missed == [f"while you were away {n}" for n in range(1, 4)], texts
    seqs = [
        int(x)
        for x in await s.locator("#messages .msg").evaluate_all(
            "els => els.map(e => e.dataset.seq)"
        )
    ]
    assert seqs == sorted(set(seqs)), "no duplicates, in order"
    await expect(o.locator(".msg").last).to_contain_text("sent while offline")
    await expect(o.locator(".msg-bubble", has_text="sent while offline")).to_have_count(1)
    await expect(o.locator(".msg.mine").last.locator(".msg-status")).to_have_text("Seen")
    async with api.app[POOL].acquire() as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE content = 'sent while offline'"
        )
    assert stored == 1, "the retried message is stored once"
    await screenshot(s, "chat-sitter")

    phone = await new_context(browser, PHONE)
    p = await sign_in(phone, base, owner.email, page_errors)
    await p.goto(f"{base}{chat}")
    await expect(p.locator("body")).to_have_attribute("data-ready", "true")
    await no_horizontal_scroll(p)
    await screenshot(p, "phone-chat")
    for ctx in (owner_ctx, sitter_ctx, phone):
        await ctx.close()
    await proxy.cut()


async def test_booking_status_changes_appear_in_the_chat(server, api, browser, page_errors):
    needs(server.app, WS, ("POST", "/api/bookings/{id}/confirm", "market"))
    base = base_url(server)
    owner, sitter, booking_id = await _booking_between(api)
    context = await new_context(browser)
    page = await sign_in(context, base, owner.email, page_errors)
    await page.goto(f"{base}/bookings/{booking_id}/chat")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    resp = await api.post(f"/api/bookings/{booking_id}/confirm", headers=sitter.headers)
    assert resp.status == 200, await resp.text()
    await expect(page.locator("#booking-status")).to_have_text("Confirmed")
    await expect(page.locator(".sys-line")).to_contain_text("Booking: Confirmed")
    await context.close()


# --- admin -------------------------------------------------------------------------------------


async def test_admin_approves_a_pending_sitter_and_the_counters_change(
    server, api, browser, page_errors
):
    needs(
        server.app,
        ("GET", "/api/admin/stats", "admin"),
        ("GET", "/api/admin/sitters/pending", "admin"),
        ("POST", "/api/admin/sitters/{sitter_id}/approve", "admin"),
        ("GET", "/api/admin/users", "admin"),
    )
    base = base_url(server)
    admin = await make_admin(api)
    for n in range(12):
        await make_owner(api, full_name=f"Owner Number {n:02d}")
    pending = await make_sitter(
        api, status="pending", full_name="Pending Pavel", location="Shymkent"
    )
    owner, sitter, _ = await _booking_between(api)

    context = await new_context(browser)
    page = await sign_in(context, base, admin.email, page_errors)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    pending_count = page.locator('[data-stat="sitters.pending"]')
    approved_count = page.locator('.stat-parts [data-stat="sitters.approved"]')
    await expect(pending_count).to_have_text("1")
    await expect(approved_count).to_have_text("1")
    await expect(page.locator("#bookings-chart svg rect.bar")).to_have_count(30)
    await expect(page.locator("#bookings-chart svg rect.bar").last).to_have_attribute(
        "data-count", "1"
    )
    await screenshot(page, "admin-dashboard")

    row = page.locator(".pending-sitter", has_text="Pending Pavel")
    await row.get_by_role("button", name="Approve").click()
    await expect(row).to_have_count(0)
    await expect(pending_count).to_have_text("0")
    await expect(approved_count).to_have_text("2")

    # Counters also follow changes made elsewhere (polled every 5 s).
    await make_sitter(api, status="pending", full_name="Late Lena")
    await expect(pending_count).to_have_text("1", timeout=8000)

    # Users: search, role filter, pagination, details and deletion with a confirmation step.
    await page.get_by_label("Search").fill("pavel")
    await expect(page.locator("#users-body tr")).to_have_count(1)
    await expect(page.locator("#users-body")).to_contain_text("Pending Pavel")
    await page.get_by_label("Search").fill("")
    await page.get_by_label("Role").select_option("owner")
    await expect(page.locator("#users-range")).to_contain_text("of 13")
    await page.locator("#users-next").click()
    await expect(page.locator("#users-range")).to_contain_text("11\u201313 of 13")
    await page.locator("#users-prev").click()
    await expect(page.locator("#users-range")).to_contain_text("1\u201310 of 13")
    target = page.locator("#users-body tr").first
    name = (await target.locator("strong").inner_text()).strip()
    await target.get_by_role("button", name="Details").click()
    dialog = page.locator("#user-dialog")
    await expect(dialog.locator("#user-title")).to_have_text(name)
    await dialog.get_by_role("button", name="Delete user…").click()
    await expect(dialog.locator("#user-confirm")).to_be_visible()
    await screenshot(page, "admin-user-delete")
    await dialog.get_by_role("button", name="Yes, delete").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#users-range")).to_contain_text("of 12")
    del pending, owner, sitter

    phone = await new_context(browser, PHONE)
    p = await sign_in(phone, base, admin.email, page_errors)
    await expect(p.locator("body")).to_have_attribute("data-ready", "true")
    await no_horizontal_scroll(p)
    await screenshot(p, "phone-admin")
    for ctx in (context, phone):
        await ctx.close()


# --- API docs ----------------------------------------------------------------------------------


async def test_api_docs_page_tries_out_the_health_check(server, browser, page_errors):
    base = base_url(server)
    context = await new_context(browser)
    page = page_errors.watch(await context.new_page())
    loaded: list[str] = []
    page.on("request", lambda request: loaded.append(request.url))
    await page.goto(f"{base}/api/docs")
    health = page.locator("#operations-meta-health")
    await health.locator(".opblock-summary").click()
    await health.get_by_role("button", name="Try it out").click()
    await health.get_by_role("button", name="Execute").click()
    live = health.locator(".live-responses-table")
    await expect(live.locator("tr.response .response-col_status")).to_have_text("200")
    await expect(live).to_contain_text('"status": "ok"')
    await screenshot(page, "api-docs")
    # Swagger UI, its start-up script, the document and the request: all from our own origin.
    assert f"{base}/api/openapi.json" in loaded and f"{base}/api/health" in loaded
    assert [url for url in loaded if not url.startswith(f"{base}/")] == []
    await context.close()


# --- languages ---------------------------------------------------------------------------------

INSTANTS = [
    "2031-05-10T23:30:00Z",  # the next day in Almaty
    "2031-01-01T00:00:00Z",
    "2030-12-31T18:59:00Z",  # the last minute of the year in Almaty
    "2031-02-28T19:00:00Z",
    "2031-09-07T06:05:00Z",
]
RANGES = [
    ("2031-05-10T23:30:00Z", "2031-05-11T01:00:00Z"),
    ("2031-05-10T18:30:00Z", "2031-05-10T19:30:00Z"),  # across midnight in Almaty
]
AMOUNTS = ["2500.00", "8750.5", "0.5", "1234567.89", "100", "0"]
FORMS = ("datetime", "date", "time", "day", "daymonth")
ZONES = ("Asia/Almaty", "Europe/London")

# In the page: the same i18n.js the dashboards use, loaded afresh with the zone set first.
SCRIPT_FORMATS = """async ([zone, instants, ranges, amounts, forms]) => {
  document.body.dataset.timeZone = zone;
  const m = await import(`/static/js/i18n.js?zone=${zone}`);
  return {
    times: instants.map((iso) => forms.map((form) => m.formatTime(iso, form))),
    ranges: ranges.map(([a, b]) => m.formatRange(a, b)),
    money: amounts.map((a) => m.money(a)),
    years: Array.from({ length: 131 }, (_, n) => m.ngettext('{n} year', '{n} years', n)),
    days: ['2031-05-11', '2031-12-31'].map((d) => m.formatDay(d, 'day')),
    typed: m.fromLocalInput('2031-05-10T10:00').rfc3339,
  };
}"""


async def test_scripts_write_times_money_and_plurals_as_the_server_does(
    server, browser, page_errors
):
    base = base_url(server)
    context = await browser.new_context(locale="en-US", timezone_id="America/New_York")
    page = page_errors.watch(await context.new_page())
    for locale in i18n.LOCALES:
        await context.add_cookies([{"name": i18n.LANG_COOKIE, "value": locale, "url": base}])
        await page.goto(f"{base}/login")
        assert await page.get_attribute("html", "lang") == locale
        loc = i18n.localizer(server.app, locale)
        for zone in ZONES:
            got = await page.evaluate(
                SCRIPT_FORMATS, [zone, INSTANTS, RANGES, AMOUNTS, list(FORMS)]
            )
            moments = [datetime.fromisoformat(t) for t in INSTANTS]
            assert got["times"] == [
                [formats.format_time(t, locale, zone, form) for form in FORMS] for t in moments
            ], (locale, zone)
            assert got["ranges"] == [
                formats.format_range(
                    datetime.fromisoformat(a), datetime.fromisoformat(b), locale, zone
                )
                for a, b in RANGES
            ], (locale, zone)
            offset = "+05:00" if zone == "Asia/Almaty" else "+01:00"
            assert got["typed"] == f"2031-05-10T10:00:00{offset}"
        assert got["money"] == [formats.format_money(a, locale) for a in AMOUNTS], locale
        assert got["years"] == [loc.ngettext("{n} year", "{n} years", n) for n in range(131)]
        assert got["days"] == [
            formats.format_time(datetime(2031, 5, 11, 12, tzinfo=UTC), locale, "UTC", "day"),
            formats.format_time(datetime(2031, 12, 31, 12, tzinfo=UTC), locale, "UTC", "day"),
        ]
    await context.close()


# Latin text the Kazakh dashboard may show: the brand, the English language's own name in the
# switcher, e-mail addresses.
ALLOWED_LATIN = re.compile(r"Nanny|English|Eng|[\w.+-]+@[\w-]+(\.[\w-]+)+")


async def test_owner_switches_the_dashboard_to_kazakh_and_books_a_sitter(
    server, api, browser, page_errors
):
    base = base_url(server)
    owner = await make_owner(api, full_name="Айгерим Сапарова")
    sitter = await make_sitter(api, full_name="Данияр Ахметов", location="Алматы")
    await make_pet(api, owner, name="Барсик", type="dog", age=4, notes="")
    await make_service(api, sitter, price_per_hour="2500.00", description="Саябақта серуен")

    # An English browser in another zone: what the page shows and sends must not follow it.
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="UTC")
    page = await sign_in(context, base, owner.email, page_errors)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Айгерим")

    # The switcher: a menu in the top bar, each language named in its own words.
    await page.get_by_label("Language: English").click()
    await page.get_by_role("button", name="Қазақша").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Сәлеметсіз бе, Айгерим")
    await expect(page.locator("html")).to_have_attribute("lang", "kk")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(page.get_by_label("Тіл: Қазақша")).to_have_text("Қаз")
    await expect(page.locator(".lang-options [aria-current]")).to_have_text("Қазақша")
    me = await (await api.get("/api/auth/me", headers=owner.headers)).json()
    assert me["locale"] == "kk"

    await page.get_by_label("Қала, аудан").fill("алма")
    await page.get_by_role("button", name="Іздеу").click()
    result = page.locator(".service", has_text="Данияр Ахметов")
    await expect(result).to_contain_text("Серуендету")
    await expect(result).to_contain_text("2\xa0500\xa0₸ / сағ")
    await result.get_by_role("button", name="Брондау: Серуендету, қараушы Данияр Ахметов").click()

    dialog = page.locator("#book-dialog")
    await expect(dialog.get_by_role("heading")).to_have_text("Қызметті брондау")
    day = date.today() + timedelta(days=60)  # within the booking horizon
    await page.get_by_label("Басталуы").fill(f"{day.isoformat()}T10:00")
    await page.get_by_label("Аяқталуы").fill(f"{day.isoformat()}T13:30")
    await expect(page.locator("#book-hours")).to_have_text("3,5 сағ \u00d7 2\xa0500\xa0₸")
    await expect(page.locator("#book-price")).to_have_text("8\xa0750\xa0₸")
    await page.get_by_role("button", name="Брондауды растау").click()

    await expect(page.locator("#toasts")).to_contain_text("Брондалды! 8\xa0750\xa0₸")
    card = page.locator(".booking").first
    await expect(card.locator(".badge")).to_have_text("Күтуде")
    await expect(card).to_contain_text("Серуендету, үй жануары: Барсик")
    await expect(card).to_contain_text("Қараушы: Данияр Ахметов")
    start = datetime(day.year, day.month, day.day, 5, 0, tzinfo=UTC)  # 10:00 in Almaty
    end = datetime(day.year, day.month, day.day, 8, 30, tzinfo=UTC)
    await expect(card).to_contain_text(formats.format_range(start, end, "kk"))
    row = await api.app[POOL].fetchrow(
        "SELECT start_time, end_time, total_price FROM bookings WHERE owner_id = $1",
        owner.user_id,
    )
    assert (row["start_time"], row["end_time"], str(row["total_price"])) == (start, end, "8750.00")
    await expect(card.get_by_role("button", name="Бас тарту")).to_be_visible()

    # Nothing on the page is left in English (the browser's language) or unmarked.
    text = await page.evaluate("document.body.innerText")
    left = re.findall(r"[A-Za-z]{2,}", ALLOWED_LATIN.sub("", text))
    assert left == [], left
    await screenshot(page, "owner-kk")

    phone = await browser.new_context(viewport=PHONE, locale="ru-RU", timezone_id="UTC")
    phone_page = await sign_in_ru(phone, base, owner.email, page_errors)
    await expect(phone_page.locator("html")).to_have_attribute("lang", "kk")  # the saved choice
    await expect(phone_page.locator("body")).to_have_attribute("data-ready", "true")
    await no_horizontal_scroll(phone_page)
    await screenshot(phone_page, "owner-kk-phone")
    await phone.close()
    await context.close()


async def sign_in_ru(context, base: str, email: str, errors):
    """Sign in on a Russian login page (the browser asks for Russian)."""
    page = errors.watch(await context.new_page())
    await page.goto(f"{base}/login")
    await expect(page.locator("html")).to_have_attribute("lang", "ru")
    await page.get_by_label("Эл. почта").fill(email)
    await page.get_by_label("Пароль").fill(PASSWORD)
    await page.get_by_role("button", name="Войти").click()
    await page.wait_for_url(lambda url: "/login" not in url)
    return page


# --- photos ------------------------------------------------------------------------------------

_RECORD_PROGRESS = """() => {
  window.progressSeen = [];
  new MutationObserver((changes) => {
    for (const c of changes) {
      if (c.target.tagName === 'PROGRESS') window.progressSeen.push(Number(c.target.value));
    }
  }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['value'] });
}"""


async def _loaded(locator) -> int:
    """The natural width of an <img> once it has loaded (0 when it failed)."""
    await expect(locator).to_be_visible()
    return await locator.evaluate(
        "img => img.complete ? img.naturalWidth : new Promise((ok) => {"
        " img.onload = () => ok(img.naturalWidth); img.onerror = () => ok(0); })"
    )


async def test_a_photo_sent_from_one_browser_arrives_in_the_other(
    server, api, browser, page_errors
):
    from tests.photos import encode, jpeg_with_gps, picture

    base = base_url(server)
    owner, sitter, booking_id = await _booking_between(api)
    admin = await make_admin(api)
    chat = f"{base}/bookings/{booking_id}/chat"
    owner_ctx = await new_context(browser)
    sitter_ctx = await new_context(browser)
    o = await sign_in(owner_ctx, base, owner.email, page_errors)
    s = await sign_in(sitter_ctx, base, sitter.email, page_errors)
    for p in (o, s):
        await p.goto(chat)
        await expect(p.locator("body")).to_have_attribute("data-ready", "true")

    # The sitter picks two photos, sees them before sending, removes one and sends the other.
    walk = {"name": "walk.jpg", "mimeType": "image/jpeg", "buffer": jpeg_with_gps((1200, 900))}
    extra = {"name": "extra.png", "mimeType": "image/png", "buffer": encode(picture(), "PNG")}
    await s.set_input_files("#composer-file", [walk, extra])
    strip = s.locator("#composer-photos img")
    await expect(strip).to_have_count(2)
    assert await _loaded(strip.first) == 1200  # the preview is the chosen file itself
    await s.get_by_role("button", name="Remove extra.png").click()
    await expect(strip).to_have_count(1)
    await s.evaluate(_RECORD_PROGRESS)
    await s.locator("#composer-input").fill("Rex at the park")
    await s.locator("#composer-input").press("Enter")
    await expect(s.locator("#composer-photos")).to_be_hidden()
    sent = s.locator("#messages .msg.mine").last
    await expect(sent.locator(".msg-photo img")).to_have_count(1)
    await expect(sent.locator(".msg-status")).to_have_text(re.compile("Sent|Seen|✓"))
    assert 100 in await s.evaluate("window.progressSeen"), "the upload's progress was shown"

    # The owner's browser gets it live: text and a thumbnail that opens the full size.
    received = o.locator("#messages .msg").last
    await expect(received.locator(".msg-bubble")).to_have_text("Rex at the park")
    thumb = received.locator(".msg-photo img")
    assert await _loaded(thumb) == 320
    await thumb.click()
    viewer = o.locator("#photo-viewer")
    await expect(viewer).to_be_visible()
    assert await _loaded(viewer.locator("img")) == 1200
    await screenshot(o, "chat-photo-viewer")
    await o.keyboard.press("Escape")
    await expect(viewer).to_be_hidden()

    # A photo without text, from the owner, arrives in the sitter's browser.
    await o.set_input_files(
        "#composer-file",
        [
            {
                "name": "cat.jpg",
                "mimeType": "image/jpeg",
                "buffer": encode(picture((500, 400)), "JPEG"),
            }
        ],
    )
    await o.get_by_role("button", name="Send").click()
    await expect(s.locator("#messages .msg")).to_have_count(2)
    last = s.locator("#messages .msg").last
    await expect(last.locator(".msg-photo img")).to_have_count(1)
    assert await last.locator(".msg-bubble").count() == 0
    await screenshot(s, "chat-photos")

    # The owner gives the pet a photo on the dashboard.
    await o.goto(f"{base}/owner")
    await expect(o.locator("body")).to_have_attribute("data-ready", "true")
    await o.get_by_role("button", name="Edit Rex").click()
    await o.set_input_files(
        "#pet-photo-file",
        [
            {
                "name": "rex.png",
                "mimeType": "image/png",
                "buffer": encode(picture((900, 900)), "PNG"),
            }
        ],
    )
    assert await _loaded(o.locator("#pet-photo-preview")) == 900
    await o.get_by_role("button", name="Save pet").click()
    await expect(o.locator("#pet-form")).to_be_hidden()
    avatar = o.locator(".pet", has_text="Rex").locator("img.pet-photo")
    assert await _loaded(avatar) == 320

    # The admin dashboard counts the stored photos: two in the chat, one of the pet.
    admin_ctx = await new_context(browser)
    a = await sign_in(admin_ctx, base, admin.email, page_errors)
    await expect(a.locator("body")).to_have_attribute("data-ready", "true")
    await expect(a.locator('[data-stat="media.images"]')).to_have_text("3")
    await expect(a.locator('[data-stat="media.bytes"]')).to_contain_text("KB")

    # Removing the pet's photo brings the letter back.
    await o.get_by_role("button", name="Edit Rex").click()
    await expect(o.locator("#pet-photo-preview")).to_be_visible()
    await o.get_by_role("button", name="Remove photo").click()
    await o.get_by_role("button", name="Save pet").click()
    await expect(o.locator(".pet", has_text="Rex").locator(".pet-icon")).to_have_text("R")
    await expect(a.locator('[data-stat="media.images"]')).to_have_text("2", timeout=8000)
    for ctx in (owner_ctx, sitter_ctx, admin_ctx):
        await ctx.close()


# --- availability calendar ----------------------------------------------------------------------


async def test_sitter_keeps_a_calendar_and_owner_books_by_dates(server, api, browser, page_errors):
    from zoneinfo import ZoneInfo

    base = base_url(server)
    almaty = ZoneInfo("Asia/Almaty")
    today = datetime.now(almaty).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 + 7)
    away_monday = monday + timedelta(days=7)
    owner = await make_owner(api, full_name="Calendar Owner")
    sitter = await make_sitter(api, full_name="Calendar Sitter", location="Almaty")
    await make_service(api, sitter, type="walking", price_per_hour="2000.00")
    pet = await make_pet(api, owner, name="Rex", type="dog")
    assert pet["pet_id"]

    # The sitter works Mondays 09:00-18:00 and takes the Monday after next off.
    sitter_ctx = await new_context(browser)
    sitter_page = await sign_in(sitter_ctx, base, sitter.email, page_errors)
    await expect(sitter_page.locator("body")).to_have_attribute("data-ready", "true")
    await expect(sitter_page.locator("#week-grid .week-day")).to_have_count(7)
    await expect(sitter_page.locator("#sitter-month .day-free")).to_have_count(30)
    monday_row = sitter_page.locator('.week-day[data-weekday="0"]')
    await monday_row.get_by_role("button", name="Add hours").click()
    await expect(monday_row.locator(".interval")).to_have_count(1)
    await sitter_page.get_by_role("button", name="Save schedule").click()
    await expect(sitter_page.locator("#sitter-month .day-off").first).to_be_visible()
    saved = await (await api.get(f"/api/sitters/{sitter.user_id}/availability")).json()
    assert saved["weekly"] == [{"weekday": 0, "start": "09:00", "end": "18:00"}]
    # An inverted interval is refused with the page's own words, nothing saved.
    await monday_row.locator(".interval-end").fill("08:00")
    await sitter_page.get_by_role("button", name="Save schedule").click()
    await expect(sitter_page.locator("#schedule-error")).to_be_visible()
    await monday_row.locator(".interval-end").fill("18:00")

    await sitter_page.get_by_label("Starts").fill(f"{away_monday.isoformat()}T00:00")
    await sitter_page.get_by_label("Ends").fill(f"{(away_monday + timedelta(1)).isoformat()}T00:00")
    await sitter_page.get_by_role("button", name="Add time off").click()
    await expect(sitter_page.locator("#time-off-list .time-off")).to_have_count(1)
    if (away_monday - today).days < 30:
        day = sitter_page.locator(f'#sitter-month .day[data-date="{away_monday.isoformat()}"]')
        await expect(day).to_have_attribute("data-state", "off")
    await screenshot(sitter_page, "sitter-calendar")

    # The owner searches by dates: free on the first Monday, away on the second, no Tuesday.
    owner_ctx = await new_context(browser)
    page = await sign_in(owner_ctx, base, owner.email, page_errors)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    result = page.locator(".service", has_text="Calendar Sitter")
    for day, hours, found in (
        (away_monday, ("10:00", "11:00"), False),
        (monday + timedelta(1), ("10:00", "11:00"), False),
        (monday, ("17:30", "18:30"), False),
        (monday, ("10:00", "11:30"), True),
    ):
        await page.get_by_label("From", exact=True).fill(f"{day.isoformat()}T{hours[0]}")
        await page.get_by_label("Until", exact=True).fill(f"{day.isoformat()}T{hours[1]}")
        await page.get_by_role("button", name="Search").click()
        await expect(result).to_have_count(1 if found else 0)
    # Booking from the result: the range is prefilled and the sitter's month is shown first.
    await result.get_by_role("button", name="Book").click()
    await expect(page.get_by_label("Starts")).to_have_value(f"{monday.isoformat()}T10:00")
    await expect(page.get_by_label("Ends")).to_have_value(f"{monday.isoformat()}T11:30")
    await expect(page.locator("#book-month .day").first).to_be_visible()
    await expect(page.locator("#book-month .day-off").first).to_be_visible()
    await expect(page.locator("#book-price")).to_have_text("₸3,000")
    await screenshot(page, "owner-book-with-calendar")
    # Outside the sitter's hours the page says so in its own words.
    await page.get_by_label("Ends").fill(f"{monday.isoformat()}T19:00")
    await page.get_by_role("button", name="Confirm booking").click()
    await expect(page.locator('#book-form [data-error-for="form"]')).to_contain_text(
        "does not work at these hours"
    )
    await page.get_by_label("Ends").fill(f"{monday.isoformat()}T11:30")
    await page.get_by_role("button", name="Confirm booking").click()
    card = page.locator(".booking").first
    await expect(card.locator(".badge")).to_have_text("Pending")
    # The sitter's open page hears of it and its month marks the day partly booked.
    if (monday - today).days < 30:
        day = sitter_page.locator(f'#sitter-month .day[data-date="{monday.isoformat()}"]')
        await expect(day).to_have_attribute("data-state", "partly_booked")
    phone = await new_context(browser, PHONE)
    p = await sign_in(phone, base, sitter.email, page_errors)
    await expect(p.locator("body")).to_have_attribute("data-ready", "true")
    await no_horizontal_scroll(p)
    for ctx in (owner_ctx, sitter_ctx, phone):
        await ctx.close()
