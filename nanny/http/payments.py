"""Payments of bookings: the owner pays a confirmed or completed booking once; cancelling a paid
booking refunds it (see the cancel transition)."""

from __future__ import annotations

from typing import Literal

import asyncpg
from aiohttp import web
from pydantic import Field

from nanny.access import may_view
from nanny.db import bookings as db_bookings
from nanny.db import payments as db_payments
from nanny.db import users as db_users
from nanny.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from nanny.http.bookings import visible_booking
from nanny.http.endpoint import endpoint, path_id
from nanny.http.responses import json_response, list_response
from nanny.http.schemas import Body, Out, Paging
from nanny.keys import POOL

routes = web.RouteTableDef()

PAYABLE_STATUSES = frozenset({"confirmed", "completed"})


class PaymentCreate(Body):
    method: Literal["card", "cash"]


class PaymentOut(Out):
    payment_id: int
    booking_id: int
    amount: float = Field(description="the booking's total_price, 2 places")
    method: Literal["card", "cash"]
    status: Literal["paid", "refunded", "failed"]
    created_at: str


def payment_json(payment: db_payments.Payment) -> dict:
    return {
        "payment_id": payment.payment_id,
        "booking_id": payment.booking_id,
        "amount": payment.amount,
        "method": payment.method,
        "status": payment.status,
        "created_at": payment.created_at,
    }


@routes.post("/api/bookings/{id}/payments", name="pay_booking")
@endpoint(
    "Pay a confirmed or completed booking (its owner; once)",
    tag="payments",
    body=PaymentCreate,
    response=PaymentOut,
    status=201,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, Conflict),
)
async def pay_booking(
    request: web.Request, user: db_users.User, body: PaymentCreate
) -> web.Response:
    booking_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        try:
            async with conn.transaction():
                # Share lock: a racing cancel either waits and then refunds this payment, or
                # commits first and this request sees the booking cancelled.
                booking = await db_bookings.lock_booking(conn, booking_id)
                if booking is None or not may_view(booking, user.user_id, user.role):
                    raise NotFound("No such booking")
                if user.user_id != booking.owner_id:
                    raise Forbidden("Only the booking's owner may pay it")
                if booking.status not in PAYABLE_STATUSES:
                    raise Conflict(
                        f"The booking is {booking.status}; only a confirmed or completed booking "
                        "can be paid",
                        details={"status": booking.status},
                    )
                payment = await db_payments.insert_payment(
                    conn, booking_id, amount=booking.total_price, method=body.method
                )
        except asyncpg.UniqueViolationError:
            raise Conflict("The booking is already paid") from None
    return json_response(payment_json(payment), status=201)


@routes.get("/api/bookings/{id}/payments", name="booking_payments")
@endpoint(
    "A booking's payments (participants and admins)",
    tag="payments",
    query=Paging,
    response=list[PaymentOut],
    roles=(),
    errors=(ValidationFailed, Unauthorized, NotFound),
    headers={"X-Total-Count": "how many payments the booking has"},
)
async def booking_payments(
    request: web.Request, user: db_users.User, query: Paging
) -> web.Response:
    booking_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        await visible_booking(conn, booking_id, user)
        payments, total = await db_payments.list_payments(
            conn, booking_id, limit=query.limit, offset=query.offset
        )
    return list_response([payment_json(p) for p in payments], total)
