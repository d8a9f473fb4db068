"""GET /api/openapi.json: an OpenAPI 3.1 document generated from the `@endpoint` declarations
of every route on the app, so a route added anywhere appears without touching this module.

The document is built on the first request for it, in the CPU executor (pydantic's schema work
takes some 60 ms), encoded once and served from memory: the router is frozen by then (routes
cannot change while the app runs), and a worker that is never asked for the document never holds
it. One build per process serves every app with the same routes.
"""

from __future__ import annotations

import asyncio
import re
import typing
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from nanny.encoding import encode
from nanny.errors import NannyError, Unauthorized, Unavailable, ValidationFailed
from nanny.http.endpoint import SPEC_ATTR, EndpointSpec
from nanny.http.public import HEADERS_DOC, NOT_MODIFIED_DOC
from nanny.http.schemas import ErrorOut
from nanny.keys import CPU_EXECUTOR
from nanny.validation import Id

routes = web.RouteTableDef()

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_METHODS = ("get", "put", "post", "delete", "patch")

# path_id accepts exactly the range of Id; anything else is a 400.
PATH_ID_SCHEMA = TypeAdapter(Id).json_schema()

DESCRIPTION = """Nanny: pet owners in Kazakhstan book approved pet sitters, chat live about each
booking, pay and review. Errors are `{"error", "code", "details"}` (see ErrorOut). Lists answer a
JSON array with the total count in the `X-Total-Count` header. Authenticate with
`Authorization: Bearer <JWT>` from POST /api/auth/login (browser pages use the `nanny_token`
cookie, whose state-changing requests must carry `X-CSRF-Token`)."""


def _list_item(response: Any) -> type[BaseModel] | None:
    """The item model when `response` is list[Model]."""
    if typing.get_origin(response) is list:
        (item,) = typing.get_args(response)
        return item
    return None


def _operations(app: web.Application):
    """(path, method, handler name, spec) for every declared route, in registration order."""
    for route in app.router.routes():
        method = route.method.lower()
        spec: EndpointSpec | None = getattr(route.handler, SPEC_ATTR, None)
        if spec is None or method not in _METHODS:
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if path:
            yield _PATH_PARAM.sub(r"{\1}", path), method, route.handler.__name__, spec


def _allows_null(schema: dict) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_allows_null(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _drop_impossible_defaults(node: Any) -> None:
    """Remove `"default": null` where the schema refuses null. Models write `field: T = None`
    for "absent means unchanged" while refusing an explicit null; the default is not a value
    a client may send, and JSON Schema requires a default to be valid."""
    if isinstance(node, dict):
        if "default" in node and node["default"] is None and not _allows_null(node):
            del node["default"]
        for value in node.values():
            _drop_impossible_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _drop_impossible_defaults(value)


# Text is stored in PostgreSQL, which cannot hold NUL: every string the API reads refuses it
# (nanny/http/endpoint.py), and none it answers can carry one.
NO_NUL = "^[^\\x00]*$"
_CONSTRAINED = {"pattern", "format", "enum", "const"}


def _describe_no_nul(node: Any) -> None:
    """Say so in every string schema that does not already constrain its characters."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not node.keys() & {
            "pattern",
            "format",
            "enum",
            "const",
        }:
            node["pattern"] = NO_NUL
        for value in node.values():
            _describe_no_nul(value)
    elif isinstance(node, list):
        for value in node:
            _describe_no_nul(value)


def _error_response(status: int, codes: list[str]) -> dict:
    return {
        "description": f"error: {', '.join(sorted(set(codes)))}",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorOut")}}},
    }


def _errors(spec: EndpointSpec, has_path_params: bool) -> dict[int, list[str]]:
    declared: list[type[NannyError]] = list(spec.errors)
    # Statuses the shared machinery can answer whatever the handler declares.
    if spec.body or spec.query or has_path_params:
        declared.append(ValidationFailed)
    if spec.roles is not None:
        declared.append(Unauthorized)
    declared.append(Unavailable)
    by_status: dict[int, list[str]] = {}
    for error in declared:
        by_status.setdefault(error.status, []).append(error.code)
    if spec.upload is not None:
        declared.append(ValidationFailed)
    if spec.body is not None or spec.upload is not None:
        by_status[413] = ["payload_too_large"]
    return by_status


def build_document(app: web.Application) -> dict:
    operations = list(_operations(app))
    models: set[tuple[type[BaseModel], str]] = {(ErrorOut, "serialization")}
    for _, _, _, spec in operations:
        if spec.body is not None:
            models.add((spec.body, "validation"))
        response = _list_item(spec.response) or spec.response
        if isinstance(response, type) and issubclass(response, BaseModel):
            models.add((response, "serialization"))
    ordered = sorted(models, key=lambda m: (m[0].__module__, m[0].__qualname__, m[1]))
    refs, top = models_json_schema(ordered, ref_template=REF)
    components: dict[str, Any] = dict(top.get("$defs", {}))

    paths: dict[str, dict] = {}
    operation_ids: set[str] = set()
    for path, method, name, spec in operations:
        op_id = name if name not in operation_ids else f"{name}_{method}"
        operation_ids.add(op_id)
        path_names = _PATH_PARAM.findall(path)
        operation: dict[str, Any] = {
            "operationId": op_id,
            "summary": spec.summary,
            "tags": [spec.tag],
        }
        parameters = [
            {"name": p, "in": "path", "required": True, "schema": dict(PATH_ID_SCHEMA)}
            for p in path_names
        ]
        if spec.query is not None:
            parameters += _query_parameters(spec.query, components)
        if spec.public:
            parameters.append(
                {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": False,
                    "description": "an ETag of this answer; 304 without a body while it is current",
                    "schema": {"type": "string"},
                }
            )
        if parameters:
            operation["parameters"] = parameters
        if spec.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(spec.body, "validation")]}},
            }
        elif spec.upload is not None:
            operation["requestBody"] = _upload_body(spec.upload)
        operation["responses"] = _responses(spec, refs, bool(path_names))
        if spec.roles is not None:
            operation["security"] = [{"bearerAuth": []}, {"cookieAuth": []}]
            if spec.roles:
                operation["description"] = f"Roles: {', '.join(spec.roles)}."
        paths.setdefault(path, {})[method] = operation

    document = {
        "openapi": "3.1.0",
        "info": {"title": "Nanny API", "version": "1.0.0", "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "nanny_token"},
            },
        },
    }
    _drop_impossible_defaults(document)
    _describe_no_nul(document)
    return document


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict]:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop["description"]
        param["schema"] = prop
        params.append(param)
    return params


def _upload_body(field: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {field: {"type": "string", "format": "binary"}},
        "required": [field],
    }
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _file_responses(spec: EndpointSpec) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        str(spec.status): {
            "description": "the file",
            "headers": {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in spec.headers.items()
            },
            "content": {media_type: binary for media_type in spec.produces},
        },
        "304": {"description": "not modified: the ETag sent in If-None-Match is current"},
    }


def _responses(spec: EndpointSpec, refs: dict, has_path_params: bool) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    item = _list_item(spec.response)
    if spec.produces:
        responses.update(_file_responses(spec))
    elif spec.status == 204:
        responses["204"] = {"description": "done; no body"}
    elif item is not None:
        responses[str(spec.status)] = {
            "description": "a page of results",
            "headers": {
                "X-Total-Count": {
                    "description": "the number of results across all pages",
                    "schema": {"type": "integer", "minimum": 0},
                }
            },
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": refs[(item, "serialization")]}
                }
            },
        }
    elif spec.response is str:
        responses[str(spec.status)] = {
            "description": "success",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    else:
        response = spec.response
        if isinstance(response, type) and issubclass(response, BaseModel):
            schema = refs[(response, "serialization")]
        else:
            schema = {"type": "object"}
        responses[str(spec.status)] = {
            "description": "success",
            "content": {"application/json": {"schema": schema}},
        }
    if spec.public:
        success = responses[str(spec.status)]
        success.setdefault("headers", {}).update(
            {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in HEADERS_DOC.items()
            }
        )
        responses["304"] = {"description": NOT_MODIFIED_DOC}
    for status, codes in sorted(_errors(spec, has_path_params).items()):
        responses[str(status)] = _error_response(status, codes)
    return responses


# One document per set of declared routes: every app a process makes (a test run makes hundreds)
# has the same routes, and shares the document built for the first.
_BUILT: dict[tuple, bytes] = {}


def _encoded_document(app: web.Application) -> bytes:
    routes_key = tuple((p, m, name, id(spec)) for p, m, name, spec in _operations(app))
    body = _BUILT.get(routes_key)
    if body is None:
        body = _BUILT[routes_key] = encode(build_document(app))
    return body


class Document:
    """An app's OpenAPI document, built once, when it is first asked for."""

    def __init__(self) -> None:
        self._built: asyncio.Future[bytes] | None = None

    async def body(self, app: web.Application) -> bytes:
        if self._built is None:
            loop = asyncio.get_running_loop()
            self._built = loop.run_in_executor(app[CPU_EXECUTOR], _encoded_document, app)
        # Shielded: a client going away must not cancel the build others wait for.
        return await asyncio.shield(self._built)


OPENAPI_DOCUMENT = web.AppKey("openapi_document", Document)


# Not an @endpoint: the OpenAPI document is described by the OpenAPI specification itself.
@routes.get("/api/openapi.json", name="openapi")
async def openapi(request: web.Request) -> web.Response:
    body = await request.app[OPENAPI_DOCUMENT].body(request.app)
    return web.Response(body=body, content_type="application/json", charset="utf-8")
