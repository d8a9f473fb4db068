"""The notifications menu of the pages, in headless Chromium: the unread badge and the list,
marking all read, and a new notification arriving live on a page with a socket."""

from __future__ import annotations

from tests.factories import make_owner, make_sitter
from tests.rows import insert_booking
from tests.test_browser import (  # noqa: F401 - fixtures
    api,
    base_url,
    browser,
    chromium_present,
    expect,
    new_context,
    page_errors,
    server,
    sign_in,
)


async def test_badge_list_mark_read_and_live_arrival(server, api, browser, page_errors):  # noqa: F811
    base = base_url(server)
    owner = await make_owner(api)
    sitter = await make_sitter(api, full_name="Dana Sitter")  # approved: one notification
    booking_id = await insert_booking(api, owner.user_id, sitter.user_id)  # a request: two
    context = await new_context(browser)
    page = await sign_in(context, base, sitter.email, page_errors)
    badge = page.locator("#notify-badge")
    await expect(badge).to_have_text("2")
    await page.locator("#notify-menu summary").click()
    items = page.locator("#notify-list li")
    await expect(items).to_have_count(2)
    await expect(items.first).to_contain_text("New booking request")
    await expect(items.nth(1)).to_contain_text("Your sitter profile is approved")
    await page.get_by_role("button", name="Mark all read").click()
    await expect(badge).to_be_hidden()

    # On the chat page (it holds a socket) a new one arrives as a frame, no reload.
    await page.goto(f"{base}/bookings/{booking_id}/chat")
    await expect(page.locator("#live-indicator")).to_have_attribute("data-state", "online")
    await insert_booking(api, owner.user_id, sitter.user_id)
    await expect(badge).to_have_text("1", timeout=8000)
    await context.close()
