"""What a process keeps of the requests it answered (reads, creations, uploads): nothing that
only a full garbage collection frees. The server collects cyclic garbage rarely on purpose
(nanny.cli.tune_gc), so a reference cycle per request keeps every answer of the last seconds
alive, an upload's body with it: a worker serving uncached reviews pages grew from 77 to
240 MiB, and to 81 MiB once the request tracking's cycle was broken."""

from __future__ import annotations

import gc

from aiohttp import web

from nanny import inflight
from tests.factories import make_owner, make_sitter
from tests.market import book, future, make_pet, make_service
from tests.photos import attach
from tests.rows import insert_booking


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
