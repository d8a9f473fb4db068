"""A list of bookings, encoded straight from its rows, says of each booking exactly what GET
/api/bookings/{id} says to the same viewer: fields, their order, times and money, and the
parties' contacts only to participants once confirmed."""

from __future__ import annotations

from tests.factories import make_admin, make_owner, make_sitter
from tests.rows import insert_booking


async def test_each_listed_booking_is_the_booking_as_its_viewer_sees_it(client):
    owner, sitter, admin = (
        await make_owner(client),
        await make_sitter(client),
        await make_admin(client),
    )
    for status in ("pending", "confirmed", "completed", "cancelled"):
        await insert_booking(client, owner.user_id, sitter.user_id, status=status)
    lists = [
        (owner, f"/api/owners/{owner.user_id}/bookings"),
        (sitter, f"/api/sitters/{sitter.user_id}/bookings"),
        (admin, f"/api/owners/{owner.user_id}/bookings"),
    ]
    for viewer, path in lists:
        resp = await client.get(path, headers=viewer.headers)
        assert resp.status == 200
        listed = await resp.json()
        assert len(listed) == 4
        for item in listed:
            one = await client.get(f"/api/bookings/{item['booking_id']}", headers=viewer.headers)
            single = await one.json()
            assert item == single
            assert list(item) == list(single)
            assert list(item["owner"]) == list(single["owner"])
        contacts = {b["status"]: "email" in b["owner"] for b in listed}
        participant = viewer is not admin
        assert contacts == {
            "pending": False,
            "confirmed": participant,
            "completed": participant,
            "cancelled": False,
        }
