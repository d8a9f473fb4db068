"""Reviews of completed bookings and the sitter ratings they add up to.

Reviews are public (they are what a future owner reads before booking); writing one is for the
booking's owner only. A booking that is not the caller's answers 404 on POST, as GET
/api/bookings/{id} does, so review attempts cannot probe which booking ids exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import ConfigDict, Field, StringConstraints

from nanny.db import reviews as db_reviews
from nanny.db.users import User
from nanny.encoding import encode
from nanny.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from nanny.http.endpoint import endpoint, path_id
from nanny.http.public import PublicAnswer, cached, public_answer, public_changed, respond
from nanny.http.responses import json_response
from nanny.http.schemas import Body, Out, Paging
from nanny.keys import POOL
from nanny.validation import Id

routes = web.RouteTableDef()

Stars = Annotated[int, Field(ge=1, le=5, description="1 to 5 stars")]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class ReviewCreate(Body):
    booking_id: Id
    rating: Stars
    comment: Comment = ""
    owner_id: Id | None = Field(None, description="optional; must be the caller when sent")
    sitter_id: Id | None = Field(None, description="optional; must be the booking's sitter")


class ReviewUpdate(Body):
    # At least one of the two must come; the schema says so for the OpenAPI document.
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["rating"]}, {"required": ["comment"]}]}
    )

    # Absent means unchanged; an explicit null is refused.
    rating: Stars = None
    comment: Comment = None
    owner_id: Id | None = Field(None, description="optional; must be the caller when sent")
    sitter_id: Id | None = Field(None, description="optional; must be the review's sitter")


class ReviewOut(Out):
    review_id: int
    booking_id: int
    owner_id: int
    sitter_id: int
    owner_name: str = Field(description="'Deleted user' once the author's account is deleted")
    rating: int = Field(ge=1, le=5)
    comment: str
    created_at: datetime
    updated_at: datetime


class RatingOut(Out):
    sitter_id: int
    average_rating: float = Field(description="2 decimal places; 0 when there are no reviews")
    total_reviews: int
    review_count: int = Field(description="the same as total_reviews (the original's name)")


def review_json(review: db_reviews.Review) -> dict:
    return {
        "review_id": review.review_id,
        "booking_id": review.booking_id,
        "owner_id": review.owner_id,
        "sitter_id": review.sitter_id,
        "owner_name": review.owner_name,
        "rating": review.rating,
        "comment": review.comment,
        "created_at": review.created_at,
        "updated_at": review.updated_at,
    }


def average(rating_sum: int, rating_count: int) -> float:
    return round(rating_sum / rating_count, 2) if rating_count else 0.0


def _check_redundant_ids(body: ReviewCreate | ReviewUpdate, owner_id: int, sitter_id: int):
    # The original web client sends these; they are accepted only when they state the truth.
    if body.owner_id is not None and body.owner_id != owner_id:
        raise Forbidden("'owner_id' must be your own user id", details={"field": "owner_id"})
    if body.sitter_id is not None and body.sitter_id != sitter_id:
        raise Forbidden(
            "'sitter_id' must be the sitter of the reviewed booking",
            details={"field": "sitter_id"},
        )


@routes.post("/api/reviews", name="create_review")
@endpoint(
    "Review a completed booking (its owner only; one review per booking)",
    tag="reviews",
    body=ReviewCreate,
    response=ReviewOut,
    status=201,
    roles=("owner",),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, Conflict),
)
async def create_review(request: web.Request, user: User, body: ReviewCreate) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        target = await db_reviews.get_review_target(conn, body.booking_id)
        if target is None or target.owner_id != user.user_id:
            raise NotFound("No such booking", details={"field": "booking_id"})
        _check_redundant_ids(body, user.user_id, target.sitter_id)
        if target.status != "completed":
            raise Conflict(
                f"Only a completed booking can be reviewed; this one is {target.status}",
                details={"status": target.status},
            )
        review = await db_reviews.create_review(
            conn,
            booking_id=body.booking_id,
            owner_id=user.user_id,
            rating=body.rating,
            comment=body.comment,
        )
    if review is None:  # reviewed already, possibly by a concurrent request
        raise Conflict("This booking has already been reviewed", details={"field": "booking_id"})
    await public_changed(request.app)
    return json_response(review_json(review), status=201)


@routes.get("/api/reviews/{id}", name="review")
@endpoint("A review", tag="reviews", response=ReviewOut, errors=(ValidationFailed, NotFound))
async def get_review(request: web.Request) -> web.Response:
    review_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        review = await db_reviews.get_review(conn, review_id)
    if review is None:
        raise NotFound("No such review")
    return json_response(review_json(review))


@routes.put("/api/reviews/{id}", name="update_review")
@endpoint(
    "Change a review's rating or comment (its author only)",
    tag="reviews",
    body=ReviewUpdate,
    response=ReviewOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
)
async def update_review(request: web.Request, user: User, body: ReviewUpdate) -> web.Response:
    review_id = path_id(request)
    if body.rating is None and body.comment is None:
        raise ValidationFailed("Send 'rating', 'comment' or both", details={"field": "body"})
    async with request.app[POOL].acquire() as conn:
        review = await db_reviews.get_review(conn, review_id)
        if review is None:
            raise NotFound("No such review")
        if review.owner_id != user.user_id:
            raise Forbidden("Only the review's author may change it")
        _check_redundant_ids(body, user.user_id, review.sitter_id)
        updated = await db_reviews.update_review(
            conn, review_id, rating=body.rating, comment=body.comment
        )
    if updated is None:  # deleted meanwhile
        raise NotFound("No such review")
    await public_changed(request.app)
    return json_response(review_json(updated))


@routes.delete("/api/reviews/{id}", name="delete_review")
@endpoint(
    "Delete a review (its author or an admin)",
    tag="reviews",
    status=204,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
)
async def delete_review(request: web.Request, user: User) -> web.Response:
    review_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        review = await db_reviews.get_review(conn, review_id)
        if review is None:
            raise NotFound("No such review")
        if user.role != "admin" and review.owner_id != user.user_id:
            raise Forbidden("Only the review's author or an admin may delete it")
        if not await db_reviews.delete_review(conn, review_id):
            raise NotFound("No such review")
    await public_changed(request.app)
    return web.Response(status=204)


@routes.get("/api/sitters/{sitter_id}/reviews", name="sitter_reviews")
@endpoint(
    "A sitter's reviews, newest first",
    tag="reviews",
    query=Paging,
    response=list[ReviewOut],
    errors=(ValidationFailed, NotFound),
    public=True,
)
async def sitter_reviews(request: web.Request, query: Paging) -> web.Response:
    sitter_id = path_id(request, "sitter_id")

    async def load() -> PublicAnswer | None:
        async with request.app[POOL].acquire() as conn:
            page = await db_reviews.sitter_reviews_page(
                conn, sitter_id, limit=query.limit, offset=query.offset
            )
        return None if page is None else public_answer(*page)

    answer = await cached(request, ("sitter_reviews", sitter_id, query.limit, query.offset), load)
    if answer is None:
        raise NotFound("No such sitter")
    return respond(request, answer)


@routes.get("/api/sitters/{sitter_id}/rating", name="sitter_rating")
@endpoint(
    "A sitter's average rating and number of reviews",
    tag="reviews",
    response=RatingOut,
    errors=(ValidationFailed, NotFound),
    public=True,
)
async def sitter_rating(request: web.Request) -> web.Response:
    sitter_id = path_id(request, "sitter_id")

    async def load() -> PublicAnswer | None:
        async with request.app[POOL].acquire() as conn:
            rating = await db_reviews.get_rating(conn, sitter_id)
        if rating is None:
            return None
        body = {
            "sitter_id": sitter_id,
            "average_rating": average(rating.rating_sum, rating.rating_count),
            "total_reviews": rating.rating_count,
            "review_count": rating.rating_count,
        }
        return public_answer(encode(body))

    answer = await cached(request, ("sitter_rating", sitter_id), load)
    if answer is None:
        raise NotFound("No such sitter")
    return respond(request, answer)


@routes.get("/api/bookings/{booking_id}/review", name="booking_review")
@endpoint(
    "The review of a booking, or 404 when it has none",
    tag="reviews",
    response=ReviewOut,
    errors=(ValidationFailed, NotFound),
)
async def booking_review(request: web.Request) -> web.Response:
    booking_id = path_id(request, "booking_id")
    async with request.app[POOL].acquire() as conn:
        review = await db_reviews.get_booking_review(conn, booking_id)
    if review is None:
        raise NotFound("This booking has no review")
    return json_response(review_json(review))
