"""What a process keeps of the requests it answered (reads, creations, uploads): nothing that
only a full garbage collection frees. The server collects cyclic garbage rarely on purpose
(nanny.cli.tune_gc), so a reference cycle per request keeps every answer of the last seconds
alive, an upload's body with it: a worker serving uncached reviews pages grew from 77 to
240 MiB, and to 81 MiB once the request tracking's cycle was broken."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap

from aiohttp import web

from nanny import inflight
from tests.factories import make_owner, make_sitter
from tests.market import book, future, make_pet, make_service
from tests.photos import attach
from tests.rows import insert_booking
from tests.test_cli import _env


def _of_a_request(thing: object) -> bool:
    # aiohttp's exception of an unmatched route stays in a small cycle with its route object,
    # holding neither the request nor a body.
    if isinstance(thing, web.HTTPException):
        return False
    return isinstance(thing, inflight.Request | web.BaseRequest | web.StreamResponse)


async def test_answered_requests_leave_no_reference_cycle(client):
    owner, sitter = await make_owner(client), await make_sitter(client)
    pet, service = await make_pet(client, owner), await make_service(client, sitter)
    booking_id = await insert_booking(client, owner.user_id, sitter.user_id, status="completed")
    other = await make_sitter(client)
    open_booking = await insert_booking(client, owner.user_id, other.user_id)
    reads = [
        (f"/api/bookings/{booking_id}", owner.headers),
        (f"/api/owners/{owner.user_id}/bookings", owner.headers),
        (f"/api/sitters/{sitter.user_id}/reviews", {}),
        ("/api/services/search?type=walking", {}),
        ("/api/bookings/999999", owner.headers),  # a 404 of ours
        ("/api/no-such-path", {}),  # and aiohttp's
    ]
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds stays in gc.garbage to be seen
    try:
        for hours in (30, 33):  # two: at most two requests wait for one sitter
            for path, headers in reads:
                await (await client.get(path, headers=headers)).read()
            created = await book(client, owner, pet, service, future(hours))
            assert created.status == 201, await created.text()
            await attach(client, owner, open_booking)  # an upload: its body must not stay
        gc.collect()
        kept = [o for o in gc.garbage if _of_a_request(o)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert kept == []


# A server process started on its own, asked for nothing, then for a page and the document.
_STARTED_IDLE = textwrap.dedent(
    """
    import asyncio, json, sys
    from aiohttp.test_utils import TestClient, TestServer
    from babel import localedata
    from nanny.app import create_app
    from nanny.config import load_settings
    from nanny.http import openapi

    def held():
        return {
            "cldr": sorted(localedata._cache),
            "openapi": len(openapi._BUILT),
            "phonenumbers": "phonenumbers" in sys.modules,
        }

    async def main():
        async with TestClient(TestServer(create_app(load_settings()))) as client:
            idle = held()
            page = await client.get("/login", headers={"Accept-Language": "kk"})
            document = await client.get("/api/openapi.json")
            account = {"email": "a@example.kz", "password": "correct-horse-9",
                       "full_name": "Aigerim", "phone": "8 701 123 45 67"}
            registered = await client.post("/api/auth/register/owner", json=account)
            assert page.status == 200 and document.status == 200
            assert registered.status == 201, await registered.text()
            assert (await document.json())["openapi"].startswith("3.1")
            print(json.dumps({"idle": idle, "used": held()}))

    asyncio.run(main())
    """
)


def test_an_idle_process_holds_no_language_data_nor_the_api_document(database_url, tmp_path):
    """The languages' CLDR data (7 MiB with Babel's root locale), the OpenAPI document and the
    phone number tables are loaded by the first page of a language, the first request for the
    document and the first number read, not at start-up."""
    done = subprocess.run(
        [sys.executable, "-c", _STARTED_IDLE],
        env=_env(DATABASE_URL=database_url, NANNY_DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    held = json.loads(done.stdout.strip().splitlines()[-1])
    assert held["idle"] == {"cldr": [], "openapi": 0, "phonenumbers": False}
    used = held["used"]
    assert "kk" in used["cldr"] and used["openapi"] == 1 and used["phonenumbers"]
