"""JSON responses: a body, a page with its total, and the error envelope."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from nanny.encoding import encode


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=encode(data),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def list_response(items: list[Any], total: int) -> web.Response:
    return encoded_list_response(encode(items), total)


def encoded_list_response(body: bytes, total: int) -> web.Response:
    """A page already encoded as a JSON array."""
    return web.Response(
        body=body,
        headers={"X-Total-Count": str(total)},
        content_type="application/json",
        charset="utf-8",
    )


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"error": message, "code": code}
    if details:
        body["details"] = details
    return json_response(body, status=status)
