"""The availability calendar against real PostgreSQL: schedules and time off through
the API, the booking rules in the database (Almaty day boundaries, a week wrapping Sunday to
Monday), races, the search by dates agreeing with the booking rule, and the live events."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from nanny.app import create_app
from nanny.keys import POOL
from tests.chat_support import recv
from tests.factories import make_admin, make_owner, make_sitter
from tests.market import assert_error, book, booking_status, iso, make_pet, make_service

ALMATY = ZoneInfo("Asia/Almaty")
MONDAY, SUNDAY, SATURDAY = 0, 6, 5


def next_weekday(weekday: int, *, weeks_ahead: int = 1) -> date:
    """A local Almaty date on `weekday`, at least a week from now (inside the horizon)."""
    today = datetime.now(ALMATY).date()
    return today + timedelta(days=(weekday - today.weekday()) % 7 + 7 * weeks_ahead)


def at(day: date, hour: int, minute: int = 0, zone: ZoneInfo = ALMATY) -> datetime:
    return datetime.combine(day, time(hour, minute), zone)


async def put_schedule(client, sitter, weekly, timezone="Asia/Almaty"):
    return await client.put(
        f"/api/sitters/{sitter.user_id}/availability",
        json={"timezone": timezone, "weekly": weekly},
        headers=sitter.headers,
    )


async def schedule(client, sitter, weekly, timezone="Asia/Almaty") -> dict:
    resp = await put_schedule(client, sitter, weekly, timezone)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def take_off(client, sitter, start: datetime, end: datetime):
    return await client.post(
        f"/api/sitters/{sitter.user_id}/time-off",
        json={"start_time": iso(start), "end_time": iso(end)},
        headers=sitter.headers,
    )


def every_day(start: str, end: str) -> list[dict]:
    return [{"weekday": d, "start": start, "end": end} for d in range(7)]


@pytest.fixture
async def client(aiohttp_client, settings):
    """The app with room for many requests of one owner to one sitter (the caps are not what
    these tests are about)."""
    roomy = dataclasses.replace(settings, max_pending_per_sitter=50, rate_limit_enabled=False)
    return await aiohttp_client(create_app(roomy))


@pytest.fixture
async def market(client):
    owner = await make_owner(client)
    sitter = await make_sitter(client)
    pet = await make_pet(client, owner)
    walking = await make_service(client, sitter, type="walking")
    boarding = await make_service(client, sitter, type="boarding")
    return owner, sitter, pet, walking, boarding


async def test_schedule_is_validated_and_only_the_sitter_sets_it(client, market):
    owner, sitter, *_ = market
    other = await make_sitter(client)
    cases = [
        (
            [
                {"weekday": 0, "start": "09:00", "end": "12:00"},
                {"weekday": 0, "start": "11:00", "end": "13:00"},
            ],
            "Asia/Almaty",
            "weekly",
        ),
        ([{"weekday": 1, "start": "12:00", "end": "09:00"}], "Asia/Almaty", "weekly[0]"),
        ([{"weekday": 1, "start": "10:00", "end": "10:00"}], "Asia/Almaty", "weekly[0]"),
        ([{"weekday": 1, "start": "9:00", "end": "10:00"}], "Asia/Almaty", "weekly[0]"),
        ([{"weekday": 1, "start": "09:00", "end": "24:01"}], "Asia/Almaty", "weekly[0]"),
        ([{"weekday": 7, "start": "09:00", "end": "10:00"}], "Asia/Almaty", None),
        ([], "Mars/Olympus", None),
        ([], "localtime", None),
        ([], "../../etc/passwd", None),
    ]
    for weekly, zone, field in cases:
        resp = await put_schedule(client, sitter, weekly, zone)
        assert resp.status == 400, (weekly, zone, await resp.text())
        assert_error(await resp.json(), "validation_error", field)
    assert (
        await client.app[POOL].fetchval(
            "SELECT count(*) FROM sitter_schedule WHERE sitter_id = $1", sitter.user_id
        )
        == 0
    )
    # Touching intervals do not overlap; 24:00 ends the day.
    done = await schedule(
        client,
        sitter,
        [
            {"weekday": 0, "start": "09:00", "end": "12:00"},
            {"weekday": 0, "start": "12:00", "end": "24:00"},
        ],
        "Europe/Berlin",
    )
    assert done["timezone"] == "Europe/Berlin" and done["conflicts"] == []
    assert [i["end"] for i in done["weekly"]] == ["12:00", "24:00"]
    for who in (owner, other):
        resp = await put_schedule(client, sitter if who is None else who, [], "Asia/Almaty")
        # Putting onto another sitter's path is refused whoever the caller is.
        resp = await client.put(
            f"/api/sitters/{sitter.user_id}/availability",
            json={"timezone": "Asia/Almaty", "weekly": []},
            headers=who.headers,
        )
        assert resp.status == 403
    resp = await client.post(
        f"/api/sitters/{sitter.user_id}/time-off",
        json={"start_time": iso(at(next_weekday(0), 9)), "end_time": iso(at(next_weekday(0), 10))},
        headers=other.headers,
    )
    assert resp.status == 403


async def test_walks_fit_one_interval_in_almaty_hours(client, market):
    owner, sitter, pet, walking, _ = market
    # Monday 00:00-02:00 in Almaty is Sunday evening in UTC.
    await schedule(
        client,
        sitter,
        [
            {"weekday": MONDAY, "start": "00:00", "end": "02:00"},
            {"weekday": SUNDAY, "start": "22:00", "end": "24:00"},
        ],
    )
    monday = next_weekday(MONDAY)
    sunday = monday - timedelta(days=1)
    assert at(monday, 0).astimezone(UTC).weekday() == SUNDAY
    # Across local midnight: in two intervals, but not one; refused.
    resp = await book(client, owner, pet, walking, at(sunday, 23), at(monday, 1))
    assert resp.status == 409
    data = await resp.json()
    assert_error(data, "unavailable")
    assert data["details"]["reason"] == "outside_schedule"
    # Ending exactly at local midnight fits the interval ending at 24:00.
    resp = await book(client, owner, pet, walking, at(sunday, 22, 30), at(monday, 0))
    assert resp.status == 201, await resp.text()
    # Monday 00:30-01:30 local (Sunday UTC) fits.
    resp = await book(client, owner, pet, walking, at(monday, 0, 30), at(monday, 1, 30))
    assert resp.status == 201, await resp.text()
    # Monday 01:30-02:30 spills past the interval.
    resp = await book(client, owner, pet, walking, at(monday, 1, 30), at(monday, 2, 30))
    assert (await resp.json())["details"]["reason"] == "outside_schedule"
    # The same UTC hours read in another zone are another local day: refused after the change.
    await schedule(client, sitter, [{"weekday": MONDAY, "start": "00:00", "end": "02:00"}], "UTC")
    resp = await book(client, owner, pet, walking, at(monday, 1, 45), at(monday, 1, 55))
    assert (await resp.json())["details"]["reason"] == "outside_schedule"


async def test_boarding_needs_every_local_day_and_wraps_sunday_to_monday(client, market):
    owner, sitter, pet, _, boarding = market
    await schedule(
        client,
        sitter,
        [
            {"weekday": SUNDAY, "start": "10:00", "end": "11:00"},
            {"weekday": MONDAY, "start": "10:00", "end": "11:00"},
        ],
    )
    monday = next_weekday(MONDAY)
    sunday, saturday = monday - timedelta(days=1), monday - timedelta(days=2)
    # Hours are not checked for boarding: Sunday evening to Monday morning (the week wraps).
    resp = await book(client, owner, pet, boarding, at(sunday, 20), at(monday, 8))
    assert resp.status == 201, await resp.text()
    # Ending at Tuesday's local midnight touches Sunday and Monday only.
    resp = await book(client, owner, pet, boarding, at(monday, 9), at(monday + timedelta(1), 0))
    assert resp.status == 201, await resp.text()
    # Saturday has no interval.
    resp = await book(client, owner, pet, boarding, at(saturday, 20), at(sunday, 8))
    assert (await resp.json())["details"]["reason"] == "outside_schedule"
    # 23:30 Sunday UTC+0 ... in Almaty that is already Monday: fits, while a boarding that is
    # Saturday in Almaty is refused even though it is Saturday-to-Sunday evening in UTC.
    resp = await book(client, owner, pet, boarding, at(saturday, 23), at(saturday, 23, 30))
    assert (await resp.json())["details"]["reason"] == "outside_schedule"
    # A week or more touches every weekday.
    await schedule(client, sitter, every_day("09:00", "10:00")[:6])  # no Sunday
    resp = await book(
        client, owner, pet, boarding, at(monday + timedelta(7), 9), at(monday + timedelta(13), 9)
    )
    assert (await resp.json())["details"]["reason"] == "outside_schedule"


async def test_no_schedule_means_any_time_as_before(client, market):
    owner, sitter, pet, walking, boarding = market
    monday = next_weekday(MONDAY)
    for service, start, end in (
        (walking, at(monday, 3), at(monday, 4)),
        (boarding, at(monday, 23), at(monday + timedelta(3), 5)),
    ):
        resp = await book(client, owner, pet, service, start, end)
        assert resp.status == 201, await resp.text()
    resp = await client.get(f"/api/sitters/{sitter.user_id}/availability")
    data = await resp.json()
    assert data["weekly"] == [] and data["timezone"] == "Asia/Almaty"
    assert len(data["days"]) == 30 and "time_off" not in data
    # Only the days the boarding fills are taken.
    taken = {d["date"] for d in data["days"] if not d["available"]}
    assert taken == {(monday + timedelta(n)).isoformat() for n in (1, 2)}
    # An empty schedule is no schedule.
    await schedule(client, sitter, [])
    resp = await book(client, owner, pet, walking, at(monday, 5), at(monday, 6))
    assert resp.status == 201


async def test_time_off_refuses_bookings_declines_pending_and_yields_to_confirmed(client, market):
    owner, sitter, pet, walking, _ = market
    day = next_weekday(2)
    pending = await book(client, owner, pet, walking, at(day, 9), at(day, 10))
    confirmed = await book(client, owner, pet, walking, at(day, 14), at(day, 15))
    pending_id = (await pending.json())["booking_id"]
    confirmed_id = (await confirmed.json())["booking_id"]
    resp = await client.post(f"/api/bookings/{confirmed_id}/confirm", headers=sitter.headers)
    assert resp.status == 200
    owner_ws = await client.ws_connect("/api/ws", headers=owner.headers)
    sitter_ws = await client.ws_connect("/api/ws", headers=sitter.headers)
    # Overlapping the confirmed booking: refused, naming it, changing nothing.
    resp = await take_off(client, sitter, at(day, 8), at(day, 16))
    assert resp.status == 409
    data = await resp.json()
    assert data["details"]["booking_id"] == confirmed_id
    assert await booking_status(client, pending_id) == "pending"
    # Bad ranges are 400.
    resp = await take_off(client, sitter, at(day, 12), at(day, 11))
    assert_error(await resp.json(), "validation_error", "end_time")
    # Only the pending request: it is declined and the owner hears it live.
    resp = await take_off(client, sitter, at(day, 8), at(day, 12))
    assert resp.status == 201, await resp.text()
    off = await resp.json()
    frame = await recv(owner_ws, "booking")
    assert frame["booking"]["booking_id"] == pending_id
    assert frame["booking"]["status"] == "cancelled"
    assert frame["booking"]["cancel_reason"] == "sitter_unavailable"
    assert (await recv(sitter_ws, "availability"))["sitter_id"] == sitter.user_id
    # The owner is told; the sitter, who took the time off, is not.
    for who, told in ((owner, True), (sitter, False)):
        listed = await (await client.get("/api/notifications", headers=who.headers)).json()
        declined = [
            n for n in listed if n["kind"] == "booking_cancelled" and n["booking_id"] == pending_id
        ]
        assert len(declined) == (1 if told else 0)
    resp = await book(client, owner, pet, walking, at(day, 11), at(day, 13))
    assert resp.status == 409
    assert (await resp.json())["details"]["reason"] == "time_off"
    # Others see it as busy, the sitter and admins see the entry.
    public = await (await client.get(f"/api/sitters/{sitter.user_id}/availability")).json()
    assert "time_off" not in public
    busy = [
        (datetime.fromisoformat(b["start_time"]), datetime.fromisoformat(b["end_time"]))
        for b in public["busy"]
    ]
    assert (at(day, 8), at(day, 12)) in busy and (at(day, 14), at(day, 15)) in busy
    admin = await make_admin(client)
    for who in (sitter, admin):
        mine = await (
            await client.get(f"/api/sitters/{sitter.user_id}/availability", headers=who.headers)
        ).json()
        assert [t["time_off_id"] for t in mine["time_off"]] == [off["time_off_id"]]
    # Withdrawn: bookable again; a second delete is 404.
    path = f"/api/sitters/{sitter.user_id}/time-off/{off['time_off_id']}"
    assert (await client.delete(path, headers=sitter.headers)).status == 204
    assert (await recv(sitter_ws, "availability"))["sitter_id"] == sitter.user_id
    assert (await client.delete(path, headers=sitter.headers)).status == 404
    resp = await book(client, owner, pet, walking, at(day, 11), at(day, 13))
    assert resp.status == 201
    await owner_ws.close()
    await sitter_ws.close()


async def test_schedule_change_lists_bookings_it_leaves_outside(client, market):
    owner, sitter, pet, walking, boarding = market
    monday = next_weekday(MONDAY)
    inside = await book(client, owner, pet, walking, at(monday, 10), at(monday, 11))
    outside = await book(client, owner, pet, boarding, at(monday, 20), at(monday + timedelta(1), 8))
    ids = [(await r.json())["booking_id"] for r in (inside, outside)]
    done = await schedule(client, sitter, [{"weekday": MONDAY, "start": "09:00", "end": "12:00"}])
    assert done["conflicts"] == [ids[1]]
    # Accepted: both bookings stand.
    assert [await booking_status(client, i) for i in ids] == ["pending", "pending"]


async def test_days_show_free_partly_booked_booked_and_off(client, market):
    owner, sitter, pet, walking, _ = market
    await schedule(
        client, sitter, [{"weekday": d, "start": "09:00", "end": "11:00"} for d in range(5)]
    )
    monday = next_weekday(MONDAY)
    assert (await book(client, owner, pet, walking, at(monday, 9), at(monday, 11))).status == 201
    tue = monday + timedelta(1)
    assert (await book(client, owner, pet, walking, at(tue, 9), at(tue, 10))).status == 201
    wed = monday + timedelta(2)
    assert (await take_off(client, sitter, at(wed, 0), at(wed + timedelta(1), 0))).status == 201
    resp = await client.get(
        f"/api/sitters/{sitter.user_id}/availability",
        params={"from": monday.isoformat(), "to": (monday + timedelta(6)).isoformat()},
    )
    days = {d["date"]: (d["state"], d["available"]) for d in (await resp.json())["days"]}
    assert list(days.values()) == [
        ("booked", False),
        ("partly_booked", True),
        ("off", False),
        ("free", True),
        ("free", True),
        ("off", False),
        ("off", False),
    ]
    for params in (
        {"from": "2027-01-10", "to": "2027-01-09"},
        {"from": "2027-01-01", "to": "2027-04-03"},
        {"from": "soon"},
    ):
        resp = await client.get(f"/api/sitters/{sitter.user_id}/availability", params=params)
        assert resp.status == 400, params
    assert (await client.get("/api/sitters/999999/availability")).status == 404


async def _search(client, **params) -> list[dict]:
    resp = await client.get("/api/services/search", params={"limit": "200", **params})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_search_by_dates_agrees_with_the_booking_rule(client, market):
    owner, sitter, pet, walking, boarding = market
    await schedule(
        client,
        sitter,
        [
            {"weekday": MONDAY, "start": "09:00", "end": "12:00"},
            {"weekday": SUNDAY, "start": "18:00", "end": "20:00"},
        ],
    )
    free = await make_sitter(client)  # no schedule: always there
    free_walk = await make_service(client, free, type="walking")
    monday = next_weekday(MONDAY)
    tue = monday + timedelta(1)
    assert (await take_off(client, sitter, at(tue, 0), at(tue, 6))).status == 201
    windows = [
        (at(monday, 9), at(monday, 10)),  # walk fits; boarding fits (Monday has hours)
        (at(monday, 11), at(monday, 13)),  # walk spills out
        (at(monday - timedelta(1), 19), at(monday, 6)),  # Sunday to Monday: boarding only
        (at(monday - timedelta(2), 9), at(monday - timedelta(2), 10)),  # Saturday: neither
        (at(tue, 1), at(tue, 2)),  # time off (and Tuesday has no hours anyway)
        (at(monday, 7, 15), at(monday, 7, 45)),  # taken by the booking below
    ]
    assert (await book(client, owner, pet, boarding, at(monday, 7), at(monday, 8))).status == 201
    expected_counts = []
    for start, end in windows:
        found = {
            r["service_id"] for r in await _search(client, start_time=iso(start), end_time=iso(end))
        }
        assert free_walk["service_id"] in found
        ours = {s["service_id"] for s in (walking, boarding)} & found
        # The booking rule, asked of a fresh owner, agrees with search for each service.
        other = await make_owner(client)
        other_pet = await make_pet(client, other)
        for service in (walking, boarding):
            resp = await book(client, other, other_pet, service, start, end)
            fits = resp.status == 201
            assert fits == (service["service_id"] in ours), (
                start,
                service["type"],
                await resp.text(),
            )
            if fits:
                bid = (await resp.json())["booking_id"]
                await client.post(f"/api/bookings/{bid}/cancel", headers=other.headers)
        expected_counts.append(len(ours))
    assert expected_counts == [2, 1, 1, 0, 0, 0]
    # Both or neither; a window the wrong way round; plain search unchanged.
    for params in (
        {"start_time": iso(at(monday, 9))},
        {"end_time": iso(at(monday, 9))},
        {"start_time": iso(at(monday, 9)), "end_time": iso(at(monday, 8))},
    ):
        resp = await client.get("/api/services/search", params=params)
        assert resp.status == 400
        assert (await resp.json())["code"] == "validation_error"
    plain = {r["service_id"] for r in await _search(client)}
    assert {walking["service_id"], boarding["service_id"], free_walk["service_id"]} <= plain


async def test_a_booking_and_time_off_for_the_same_hours_one_wins(client, market):
    owner, sitter, pet, walking, _ = market
    day = next_weekday(3)
    for round_ in range(6):
        start, end = at(day, 8 + 2 * round_), at(day, 9 + 2 * round_)
        booking, off = await asyncio.gather(
            book(client, owner, pet, walking, start, end), take_off(client, sitter, start, end)
        )
        # Either the time off came first (the booking meets it) or the booking did (pending,
        # then declined by the time off); never a booking that stands inside time off.
        assert off.status == 201, await off.text()
        if booking.status == 201:
            bid = (await booking.json())["booking_id"]
            assert await booking_status(client, bid) == "cancelled"
        else:
            assert (await booking.json())["details"]["reason"] == "time_off"
    standing = await client.app[POOL].fetchval(
        """SELECT count(*) FROM bookings b JOIN time_off t ON t.sitter_id = b.sitter_id
           WHERE b.sitter_id = $1 AND b.status IN ('pending', 'confirmed')
             AND tstzrange(b.start_time, b.end_time) && tstzrange(t.start_time, t.end_time)""",
        sitter.user_id,
    )
    assert standing == 0


async def test_confirmed_booking_and_time_off_race_one_wins(client, market):
    owner, sitter, pet, walking, _ = market
    day = next_weekday(4)
    for round_ in range(8):
        start, end = at(day, 6 + 2 * round_), at(day, 7 + 2 * round_)
        resp = await book(client, owner, pet, walking, start, end)
        bid = (await resp.json())["booking_id"]
        confirm, off = await asyncio.gather(
            client.post(f"/api/bookings/{bid}/confirm", headers=sitter.headers),
            take_off(client, sitter, start, end),
        )
        # Confirmation does not take the calendar lock; the time off locks the overlapping
        # rows before it reads them, so exactly one of the two holds.
        assert (confirm.status == 200) != (off.status == 201), (confirm.status, off.status)
        expected = "confirmed" if confirm.status == 200 else "cancelled"
        assert await booking_status(client, bid) == expected


async def test_twenty_concurrent_bookings_into_one_free_slot_one_wins(aiohttp_client, settings):
    client = await aiohttp_client(
        create_app(dataclasses.replace(settings, rate_limit_enabled=False, db_pool_max=20))
    )
    sitter = await make_sitter(client)
    walking = await make_service(client, sitter, type="walking")
    monday = next_weekday(MONDAY)
    await schedule(client, sitter, [{"weekday": MONDAY, "start": "09:00", "end": "10:00"}])
    owners = [await make_owner(client) for _ in range(20)]
    pets = [await make_pet(client, o) for o in owners]
    answers = await asyncio.gather(
        *(
            book(client, o, p, walking, at(monday, 9), at(monday, 10))
            for o, p in zip(owners, pets, strict=True)
        )
    )
    assert sorted(r.status for r in answers) == [201] + [409] * 19
    # The schedule refuses the rest of the day.
    resp = await book(client, owners[0], pets[0], walking, at(monday, 10), at(monday, 11))
    assert (await resp.json())["details"]["reason"] == "outside_schedule"
