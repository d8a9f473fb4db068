"""Pets: an owner's animals. Private: only the owner, a sitter holding a booking for the pet and
admins see one; to anyone else a pet does not exist (404, never 403)."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import AfterValidator, Field, StringConstraints

from nanny.db import media as db_media
from nanny.db import pets as db_pets
from nanny.db import users as db_users
from nanny.db.chat import AttachedImage
from nanny.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    ValidationFailed,
)
from nanny.http import security
from nanny.http.endpoint import endpoint, path_id
from nanny.http.media import FILE_FIELD, ImageOut, uploaded_image
from nanny.http.responses import json_response, list_response
from nanny.http.schemas import Body, Out, Paging, Text
from nanny.keys import CHAT_HUB, MEDIA, MEDIA_URLS, POOL
from nanny.media.urls import MediaUrls
from nanny.validation import NOT_BLANK_SCHEMA, no_nul

routes = web.RouteTableDef()


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


PetName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=100),
    AfterValidator(_not_blank),
    AfterValidator(no_nul),
    NOT_BLANK_SCHEMA,
]

PetType = Literal["cat", "dog", "rodent"]
PetAge = Annotated[int, Field(ge=0, le=50, description="years")]
OWNER_ID_DOC = "optional, redundant: when sent it must be the caller's user_id (else 403)"


class PetCreate(Body):
    name: PetName
    type: PetType
    age: PetAge = 0
    notes: Text = ""
    owner_id: int | None = Field(None, description=OWNER_ID_DOC)


class PetUpdate(Body):
    """Full or partial: only the fields sent change; `null` is not a value."""

    # Defaults of None outside the declared type: a missing field is "unchanged", while an
    # explicit null fails validation.
    name: PetName = None
    type: PetType = None
    age: PetAge = None
    notes: Text = None
    owner_id: int | None = Field(None, description=OWNER_ID_DOC)


class PetOut(Out):
    pet_id: int
    owner_id: int
    name: str
    type: PetType
    age: int
    notes: str
    photo: ImageOut | None


def pet_json(pet: db_pets.Pet, photo: AttachedImage | None, urls: MediaUrls) -> dict:
    """A pet as its owner, its sitters and admins see it (nobody else is shown one): the photo's
    URLs are signed for them."""
    return {
        "pet_id": pet.pet_id,
        "owner_id": pet.owner_id,
        "name": pet.name,
        "type": pet.type,
        "age": pet.age,
        "notes": pet.notes,
        "photo": urls.image_json(photo.image_id, photo.width, photo.height) if photo else None,
    }


async def pets_json(request: web.Request, conn, pets: list[db_pets.Pet]) -> list[dict]:
    photos = await db_media.pet_photos(conn, [p.pet_id for p in pets])
    urls = request.app[MEDIA_URLS]
    return [pet_json(p, photos.get(p.pet_id), urls) for p in pets]


def check_redundant_owner(sent: int | None, user: db_users.User) -> None:
    """The original web client sends owner_id; it may only name the caller."""
    if sent is not None and sent != user.user_id:
        raise Forbidden("owner_id must be your own user_id", details={"field": "owner_id"})


async def _pet_for_owner_write(conn, pet_id: int, user: db_users.User) -> None:
    """Explain why the caller may not change pet `pet_id`: 404 when it cannot see it, else 403."""
    visible = await db_pets.get_visible_pet(conn, pet_id, user.user_id, admin=user.role == "admin")
    if visible is None:
        raise NotFound("No such pet")
    raise Forbidden("Only the pet's owner may change it")


@routes.post("/api/pets", name="create_pet")
@endpoint(
    "Register a pet of the caller",
    tag="pets",
    body=PetCreate,
    response=PetOut,
    status=201,
    roles=("owner",),
    errors=(ValidationFailed, Unauthorized, Forbidden),
)
async def create_pet(request: web.Request, user: db_users.User, body: PetCreate) -> web.Response:
    check_redundant_owner(body.owner_id, user)
    async with request.app[POOL].acquire() as conn:
        pet = await db_pets.create_pet(
            conn, user.user_id, name=body.name, type=body.type, age=body.age, notes=body.notes
        )
    return json_response(pet_json(pet, None, request.app[MEDIA_URLS]), status=201)


@routes.get("/api/pets/{id}", name="get_pet")
@endpoint(
    "A pet (its owner, a sitter with a booking for it, or an admin; 404 to anyone else)",
    tag="pets",
    response=PetOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized, NotFound),
)
async def get_pet(request: web.Request, user: db_users.User) -> web.Response:
    pet_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        pet = await db_pets.get_visible_pet(conn, pet_id, user.user_id, admin=user.role == "admin")
        if pet is None:
            raise NotFound("No such pet")
        [shown] = await pets_json(request, conn, [pet])
    return json_response(shown)


@routes.put("/api/pets/{id}", name="update_pet")
@endpoint(
    "Change a pet (full or partial body); only its owner",
    tag="pets",
    body=PetUpdate,
    response=PetOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
)
async def update_pet(request: web.Request, user: db_users.User, body: PetUpdate) -> web.Response:
    pet_id = path_id(request)
    check_redundant_owner(body.owner_id, user)
    changes = body.model_dump(exclude_unset=True, exclude={"owner_id"})
    async with request.app[POOL].acquire() as conn:
        pet = await db_pets.update_pet(conn, pet_id, user.user_id, changes)
        if pet is None:
            await _pet_for_owner_write(conn, pet_id, user)
        [shown] = await pets_json(request, conn, [pet])
    return json_response(shown)


@routes.delete("/api/pets/{id}", name="delete_pet")
@endpoint(
    "Delete a pet; only its owner, and not while it has a pending or confirmed booking (409)",
    tag="pets",
    status=204,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, Conflict),
)
async def delete_pet(request: web.Request, user: db_users.User) -> web.Response:
    pet_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        async with conn.transaction():
            deleted = await db_pets.delete_unbooked_pet(conn, pet_id, user.user_id)
        if deleted is None:
            await _pet_for_owner_write(conn, pet_id, user)
        if not deleted:
            raise Conflict("The pet has a pending or confirmed booking; cancel it first")
        # Its photo went with it (a cascade); now its files.
        await request.app[MEDIA].collect_garbage(conn)
    # Its past bookings no longer name it (pet_id null).
    await request.app[CHAT_HUB].bookings_changed([user.user_id])
    return web.Response(status=204)


@routes.get("/api/owners/{owner_id}/pets", name="owner_pets")
@endpoint(
    "An owner's pets (that owner or an admin)",
    tag="pets",
    query=Paging,
    response=list[PetOut],
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
    headers={"X-Total-Count": "how many pets the owner has"},
)
async def owner_pets(request: web.Request, user: db_users.User, query: Paging) -> web.Response:
    owner_id = path_id(request, "owner_id")
    security.require_self_or_admin(user, owner_id)
    async with request.app[POOL].acquire() as conn:
        if owner_id != user.user_id and await db_users.get_user(conn, owner_id) is None:
            raise NotFound("No such user")
        pets, total = await db_pets.list_owner_pets(
            conn, owner_id, limit=query.limit, offset=query.offset
        )
        shown = await pets_json(request, conn, pets)
    return list_response(shown, total)


async def _require_pet_owner(request: web.Request, pet_id: int, user: db_users.User) -> None:
    async with request.app[POOL].acquire() as conn:
        pet = await db_pets.get_visible_pet(conn, pet_id, user.user_id, admin=user.role == "admin")
    if pet is None:
        raise NotFound("No such pet")
    if pet.owner_id != user.user_id:
        raise Forbidden("Only the pet's owner may change its photo")


@routes.put("/api/pets/{id}/photo", name="put_pet_photo")
@endpoint(
    "Set or replace a pet's photo (multipart/form-data, field 'file'); only its owner",
    tag="pets",
    upload=FILE_FIELD,
    response=PetOut,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound, PayloadTooLarge),
)
async def put_pet_photo(request: web.Request, user: db_users.User) -> web.Response:
    pet_id = path_id(request)
    # Before the body is read: a stranger's upload is never looked at.
    await _require_pet_owner(request, pet_id, user)
    async with uploaded_image(request) as processed:
        image = await request.app[MEDIA].set_pet_photo(
            processed, pet_id=pet_id, owner_id=user.user_id
        )
    if image is None:  # deleted meanwhile
        raise NotFound("No such pet")
    async with request.app[POOL].acquire() as conn:
        pet = await db_pets.get_visible_pet(conn, pet_id, user.user_id)
    if pet is None:  # pragma: no cover - deleted between the two statements
        raise NotFound("No such pet")
    return json_response(pet_json(pet, image.attached, request.app[MEDIA_URLS]))


@routes.delete("/api/pets/{id}/photo", name="delete_pet_photo")
@endpoint(
    "Remove a pet's photo (204 also when it had none); only its owner",
    tag="pets",
    status=204,
    roles=(),
    errors=(ValidationFailed, Unauthorized, Forbidden, NotFound),
)
async def delete_pet_photo(request: web.Request, user: db_users.User) -> web.Response:
    pet_id = path_id(request)
    await _require_pet_owner(request, pet_id, user)
    if not await request.app[MEDIA].remove_pet_photo(pet_id=pet_id, owner_id=user.user_id):
        raise NotFound("No such pet")
    return web.Response(status=204)
