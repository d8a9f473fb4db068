"""The endpoint declaration: one decorator states a handler's body, query, response, roles and
errors. It validates requests with those declarations and the OpenAPI document reads them."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from nanny.errors import NannyError, ValidationFailed
from nanny.http import security
from nanny.inflight import waiting_for_cpu
from nanny.keys import CPU_EXECUTOR
from nanny.validation import MAX_ID, validation_error

# Parsing a body this large is done in a worker thread so the loop keeps serving.
_OFFLOAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class EndpointSpec:
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    roles: tuple[str, ...] | None = None  # None: public; () any authenticated user
    errors: tuple[type[NannyError], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    # The body is multipart/form-data with this file field, read by the handler as a stream.
    upload: str | None = None
    # The success response is a file of one of these types, not JSON.
    produces: tuple[str, ...] = ()
    # A public read (nanny/http/public.py): ETag, Cache-Control and 304 on If-None-Match.
    public: bool = False


SPEC_ATTR = "__nanny_endpoint__"

Handler = Callable[..., Awaitable[web.StreamResponse]]


def endpoint(
    summary: str,
    *,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    roles: tuple[str, ...] | None = None,
    errors: tuple[type[NannyError], ...] = (),
    headers: dict[str, str] | None = None,
    upload: str | None = None,
    produces: tuple[str, ...] = (),
    public: bool = False,
) -> Callable[[Handler], Handler]:
    """Declare an endpoint. The handler receives `user` (when roles is not None), `body` and
    `query` as keyword arguments, already authenticated and validated."""
    spec = EndpointSpec(
        summary=summary,
        tag=tag,
        body=body,
        query=query,
        response=response,
        status=status,
        roles=roles,
        errors=errors,
        headers=headers or {},
        upload=upload,
        produces=produces,
        public=public,
    )

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            kwargs: dict[str, Any] = {}
            if roles is not None:
                kwargs["user"] = await security.require_user(request, roles)
            if query is not None:
                kwargs["query"] = parse_query(request, query)
            if body is not None:
                kwargs["body"] = await parse_body(request, body)
            return await handler(request, **kwargs)

        setattr(wrapped, SPEC_ATTR, spec)
        return wrapped

    return decorate


def _nul_field(value: Any, path: str) -> str | None:
    """The dotted path of the first string holding a NUL character, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nul_field(key, path or "body") or _nul_field(
            item, f"{path}.{key}" if path else str(key)
        )
        if found:
            return found
    return None


def _refuse_nul(field: str) -> ValidationFailed:
    # PostgreSQL text cannot hold NUL; refusing it here beats a 500 from the database.
    return ValidationFailed(
        f"Invalid '{field}': must not contain NUL characters",
        details={"field": field, "reason": "nul_character"},
    )


_INT64 = 2**63


def _whole(value: Any) -> tuple[Any, bool]:
    """`value` with every float that is a whole number (13.0, 1e3) as an int; whether any was."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _INT64:
        return int(value), True
    if isinstance(value, dict):
        pairs = [(k, *_whole(v)) for k, v in value.items()]
        return {k: v for k, v, _ in pairs}, any(c for _, _, c in pairs)
    if isinstance(value, list):
        items = [_whole(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    return value, False


def _whole_floats_as_ints(raw: bytes) -> bytes:
    """JSON (and so the OpenAPI document) says 13.0 is the integer 13; the bodies' strict
    models would refuse it as a float. Whole floats become ints before validation (a float
    field takes an int), so what the document allows is what is accepted."""
    if not any(c in raw for c in (b".", b"e", b"E")):
        return raw
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw  # the model's own parse names the problem
    value, changed = _whole(parsed)
    return orjson.dumps(value) if changed else raw


async def parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.read()
    if not raw.strip():
        raise ValidationFailed("The request body must be a JSON object", details={"field": "body"})
    raw = _whole_floats_as_ints(raw)
    try:
        if len(raw) > _OFFLOAD_BYTES:
            loop = asyncio.get_running_loop()
            with waiting_for_cpu():
                parsed = await loop.run_in_executor(
                    request.app[CPU_EXECUTOR], model.model_validate_json, raw
                )
        else:
            parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None
    if b"\\u0000" in raw or b"\x00" in raw:
        field = _nul_field(parsed.model_dump(), "")
        if field:
            raise _refuse_nul(field)
    return parsed


def parse_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    for name, value in request.query.items():
        if "\x00" in name or "\x00" in value:
            raise _refuse_nul(name.replace("\x00", ""))
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_error(exc, "query") from None


def path_id(request: web.Request, name: str = "id") -> int:
    """A positive integer id from the path; anything else is a 400 naming the parameter."""
    raw = request.match_info[name]
    if raw.isascii() and raw.isdigit() and 0 < len(raw) <= 10:
        value = int(raw)
        if 1 <= value <= MAX_ID:
            return value
    raise ValidationFailed(
        f"Path parameter '{name}' must be a positive integer", details={"field": name}
    )
