"""Services sitters offer, and the public search over them.

Public reads show only services of approved sitters (the sitter itself and admins also see the
others) and never a sitter's e-mail or phone."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AfterValidator, Field, StringConstraints, model_validator

from nanny.db import services as db_services
from nanny.db import users as db_users
from nanny.encoding import dumps, encode
from nanny.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from nanny.http import security
from nanny.http.endpoint import endpoint, path_id
from nanny.http.public import PublicAnswer, cached, public_answer, public_changed, respond
from nanny.http.responses import json_response
from nanny.http.schemas import Body, Money, Out, Paging, Text
from nanny.keys import CHAT_HUB, POOL, SEARCH_CACHE
from nanny.validation import Timestamp, decimal_parameter, no_nul

routes = web.RouteTableDef()

ServiceType = Literal["walking", "boarding", "home-care"]
SITTER_ID_DOC = "optional, redundant: when sent it must be the caller's user_id (else 403)"


class ServiceCreate(Body):
    type: ServiceType
    price_per_hour: Money
    description: Text = ""
    sitter_id: int | None = Field(None, description=SITTER_ID_DOC)


class ServiceUpdate(Body):
    """Full or partial: only the fields sent change; `null` is not a value."""

    # Defaults of None outside the declared type: missing means unchanged, null is refused.
    type: ServiceType = None
    price_per_hour: Money = None
    description: Text = None
    sitter_id: int | None = Field(None, description=SITTER_ID_DOC)


class ServiceOut(Out):
    service_id: int
    sitter_id: int
    type: ServiceType
    price_per_hour: float = Field(description="2 decimal places")
    description: str


class SearchRowOut(ServiceOut):
    """A search result: the service with public facts about its sitter (no contact details)."""

    sitter_name: str
    location: str
    rating: float = Field(description="average review rating, 2 places; 0 when none")
    total_reviews: int


PriceParameter = decimal_parameter(0, 1_000_000)
RatingParameter = decimal_parameter(0, 5)


class SearchQuery(Paging):
    type: ServiceType | None = None
    location: (
        Annotated[
            str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(no_nul)
        ]
        | None
    ) = Field(None, description="case-insensitive substring of the sitter's location")
    min_price: PriceParameter | None = None
    max_price: PriceParameter | None = None
    min_rating: RatingParameter | None = None
    start_time: Timestamp | None = Field(
        None, description="with end_time: only services whose sitter a booking then would fit"
    )
    end_time: Timestamp | None = Field(None, description="with start_time, after it")
    sort: Literal["price", "-price", "rating", "-rating"] = Field(
        "-rating", description="'-' for descending; ties are broken by service_id"
    )

    @model_validator(mode="after")
    def _both_times(self) -> SearchQuery:
        if (self.start_time is None) != (self.end_time is None):
            raise ValueError("start_time and end_time go together: send both or neither")
        if self.start_time is not None:
            if self.end_time <= self.start_time:
                raise ValueError("end_time must be after start_time")
            if self.end_time - self.start_time > timedelta(days=31):
                raise ValueError("a search window lasts at most 31 days")
        return self


def service_json(service: db_services.Service) -> dict:
    return {
        "service_id": service.service_id,
        "sitter_id": service.sitter_id,
        "type": service.type,
        "price_per_hour": service.price_per_hour,
        "description": service.description,
    }


def _may_see(user: db_users.User | None, sitter_id: int, sitter_status: str) -> bool:
    if sitter_status == "approved":
        return True
    return user is not None and (user.role == "admin" or user.user_id == sitter_id)


def check_redundant_sitter(sent: int | None, user: db_users.User) -> None:
    if sent is not None and sent != user.user_id:
        raise Forbidden("sitter_id must be your own user_id", details={"field": "sitter_id"})


async def _explain_write_refusal(conn, service_id: int, user: db_users.User) -> None:
    service = await db_services.get_service(conn, service_id)
    if service is None or not _may_see(user, service.sitter_id, service.sitter_status):
        raise NotFound("No such service")
    raise Forbidden("Only the service's sitter may change it")


@routes.get("/api/services/search", name="search_services")
@endpoint(
    "Search services of approved sitters",
    tag="services",
    query=SearchQuery,
    response=list[SearchRowOut],
    errors=(ValidationFailed,),
    headers={"X-Total-Count": "how many services match the filters"},
)
async def search_services(request: web.Request, query: SearchQuery) -> web.Response:
    async def load() -> tuple[str, int]:
        async with request.app[POOL].acquire() as conn:
            rows, total = await db_services.search_services(
                conn,
                type=query.type,
                location=query.location or None,
                min_price=query.min_price,
                max_price=query.max_price,
                min_rating=query.min_rating,
                start_time=query.start_time,
                end_time=query.end_time,
                sort=query.sort,
                limit=query.limit,
                offset=query.offset,
            )
        return dumps(rows), total

    # Search is public and identical for everyone: repeated queries are answered from memory
    # (encoded once) for up to SEARCH_CACHE_SECONDS.
    text, total = await request.app[SEARCH_CACHE].get_or_load(query, load)
    return web.Response(
        text=text, content_type="application/json", headers={"X-Total-Count": str(total)}
    )


@routes.get("/api/services/{id}", name="get_service")
@endpoint(
    "A service (public when its sitter is approved)",
    tag="services",
    response=ServiceOut,
    errors=(ValidationFailed, Unauthorized, NotFound),
    public=True,
)
async def get_service(request: web.Request) -> web.Response:
    service_id = path_id(request)

    async def load() -> db_services.Service | PublicAnswer | None:
        async with request.app[POOL].acquire() as conn:
            service = await db_services.get_service(conn, service_id)
        if service is None or service.sitter_status != "approved":
            return service
        return public_answer(encode(service_json(service)))

    found = await cached(request, ("service", service_id), load)
    if isinstance(found, PublicAnswer):
        return respond(request, found)
    if found is None:
        raise NotFound("No such service")
    # Not public: for its sitter and admins only, and never kept by a shared cache.
    user = await security.authenticate(request)
    if not _may_see(user, found.sitter_id, found.sitter_status):
        raise NotFound("No such service")
    return json_response(service_json(found))


@routes.get("/api/sitters/{sitter_id}/services", name="sitter_services")
@endpoint(
    "A sitter's services (public when the sitter is approved)",
    tag="services",
    query=Paging,
    response=list[ServiceOut],
    errors=(ValidationFailed, Unauthorized, NotFound),
    headers={"X-Total-Count": "how many services the sitter offers"},
    public=True,
)
async def sitter_services(request: web.Request, query: Paging) -> web.Response:
    sitter_id = path_id(request, "sitter_id")

    async def load() -> PublicAnswer | str | None:
        async with request.app[POOL].acquire() as conn:
            status = await db_services.get_sitter_status(conn, sitter_id)
            if status != "approved":
                return status
            return await _services_page(conn, sitter_id, query)

    found = await cached(request, ("sitter_services", sitter_id, query.limit, query.offset), load)
    if isinstance(found, PublicAnswer):
        return respond(request, found)
    if found is None:
        raise NotFound("No such sitter")
    user = await security.authenticate(request)
    if not _may_see(user, sitter_id, found):
        raise NotFound("No such sitter")
    async with request.app[POOL].acquire() as conn:
        page = await _services_page(conn, sitter_id, query)
    return web.Response(
        body=page.body,
        content_type="application/json",
        charset="utf-8",
        headers={"X-Total-Count": str(page.total)},
    )


async def _services_page(conn, sitter_id: int, query: Paging) -> PublicAnswer:
    services, total = await db_services.list_sitter_services(
        conn, sitter_id, limit=query.limit, offset=query.offset
    )
    return public_answer(encode([service_json(s) for s in services]), total)


@routes.post("/api/services", name="create_service")
@endpoint(
    "Offer a service (approved sitters)",
    tag="services",
    body=ServiceCreate,
    response=ServiceOut,
    status=201,
    roles=("sitter",),
    errors=(ValidationFailed, Unauthorized, Forbidden),
)
async def create_service(
    request: web.Request, user: db_users.User, body: ServiceCreate
) -> web.Response:
    security.require_approved_sitter(user)
    check_redundant_sitter(body.sitter_id, user)
    async with request.app[POOL].acquire() as conn:
        service = await db_services.create_service(
            conn,
            user.user_id,
            type=body.type,
            price_per_hour=body.price_per_hour,
            description=body.description,
        )
    await public_changed(request.app)
    return json_response(service_json(service), status=201)


@routes.put("/api/services/{id}", name="update_service")
@endpoint(
    "Change a service (full or partial body); only its sitter. Existing bookings keep their price",
    tag="services",
    body=ServiceUpdate,
    response=ServiceOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
)
async def update_service(
    request: web.Request, user: db_users.User, body: ServiceUpdate
) -> web.Response:
    service_id = path_id(request)
    check_redundant_sitter(body.sitter_id, user)
    changes = body.model_dump(exclude_unset=True, exclude={"sitter_id"})
    async with request.app[POOL].acquire() as conn:
        service = await db_services.update_service(conn, service_id, user.user_id, changes)
        if service is None:
            await _explain_write_refusal(conn, service_id, user)
    await public_changed(request.app)
    return json_response(service_json(service))


@routes.delete("/api/services/{id}", name="delete_service")
@endpoint(
    "Withdraw a service; only its sitter, and not while it has pending or confirmed bookings",
    tag="services",
    status=204,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, Conflict),
)
async def delete_service(request: web.Request, user: db_users.User) -> web.Response:
    service_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        async with conn.transaction():
            deleted = await db_services.delete_unbooked_service(conn, service_id, user.user_id)
        if deleted is None:
            await _explain_write_refusal(conn, service_id, user)
    if not deleted:
        raise Conflict("The service has pending or confirmed bookings; settle them first")
    await public_changed(request.app)
    # Its past bookings, of any owner, no longer name it (service_id null).
    await request.app[CHAT_HUB].bookings_changed(None)
    return web.Response(status=204)
