"""Every way a connection ends frees it, even while its handler is in the middle of a replay the
client stopped reading: a heartbeat timeout, the token's expiry and shutdown each end the
handler, free its queue and take the user out of the room within seconds. (Client closes and
resets, on real server processes: tests/test_ws_churn.py; a reader too slow for live traffic:
tests/test_ws_protocol.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from bench.raw_ws import stalled_subscriber
from nanny.app import create_app
from nanny.http.security import issue_token
from nanny.keys import CHAT_HUB, POOL, WS_LIMITS
from tests.chat_support import add_history
from tests.factories import make_owner, make_sitter
from tests.rows import insert_booking

HISTORY = 1_100


@pytest.fixture
async def stuck(aiohttp_client, settings, request):
    """An app with the given WebSocket limits, a room with a long history, and a socket of the
    owner's (signed in with a token of 2 to 3 s when asked) whose replay of it is stuck: the
    client reads nothing. (client, conn, booking)"""
    limits, short_token = request.param
    app = create_app(settings)
    app[WS_LIMITS] = dataclasses.replace(app[WS_LIMITS], close_timeout=1.0, **limits)
    client = await aiohttp_client(app)
    owner, sitter = await make_owner(client), await make_sitter(client)
    booking_id = await insert_booking(client.app[POOL], owner.user_id, sitter.user_id)
    await add_history(client.app[POOL], booking_id, sitter.user_id, HISTORY)
    token = owner.token
    if short_token:  # whole seconds, "now" truncated: it lives 2 to 3 s
        short = dataclasses.replace(settings, jwt_ttl_hours=3 / 3600)
        token, _ = issue_token(short, owner.user_id, "owner")
    sock = await stalled_subscriber(client.port, token, booking_id)
    hub = client.app[CHAT_HUB]
    half = client.app[WS_LIMITS].send_queue_frames // 2
    deadline = time.monotonic() + 10
    while not any(len(c._queue) >= half for c in hub.connections):  # the replay waits
        assert time.monotonic() < deadline, "the replay never filled the queue"
        await asyncio.sleep(0.02)
    [conn] = hub.connections
    yield client, conn, booking_id
    sock.close()


async def _freed(client, conn, booking_id: int, within: float) -> float:
    """Seconds until the connection is gone: out of the hub, the room and presence."""
    hub = client.app[CHAT_HUB]
    started = time.monotonic()
    while conn in hub.connections or hub.rooms.get(booking_id) is not None:
        assert time.monotonic() - started < within, "the connection was not freed"
        await asyncio.sleep(0.05)
    assert not conn._queue and conn._writer.done()
    online = await hub.broker.presence_online([booking_id])
    assert online == {booking_id: set()}
    return time.monotonic() - started


@pytest.mark.parametrize("stuck", [({"heartbeat": 1.0}, False)], indirect=True)
async def test_a_heartbeat_timeout_ends_a_stuck_replay(stuck):
    # The client answers no ping: the heartbeat closes the transport under the waiting replay.
    await _freed(*stuck, within=5)


@pytest.mark.parametrize("stuck", [({}, True)], indirect=True)
async def test_token_expiry_ends_a_stuck_replay(stuck):
    # The 4001 cannot get past the unread replay: the close's deadline cuts the socket.
    await _freed(*stuck, within=6)


@pytest.mark.parametrize("stuck", [({}, False)], indirect=True)
async def test_shutdown_ends_a_stuck_replay_at_once(stuck):
    client, conn, booking_id = stuck
    started = time.monotonic()
    await client.app[CHAT_HUB].shutdown()
    # The replay stops, 1001 is queued behind what the client never read, and the close's
    # deadline cuts it: not the shutdown grace of 10 s.
    assert time.monotonic() - started < 3
    await _freed(client, conn, booking_id, within=1)
