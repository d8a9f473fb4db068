"""Public reads answered from memory: search, a sitter's reviews, rating and services, a service.

Their answers are the same for everyone, so each process keeps them, encoded once, in the
public-read cache (`SEARCH_CACHE`, a `TtlCache` of SEARCH_CACHE_SECONDS). Every write that
changes one calls `public_changed`, which empties the cache in every process before it returns
(the hub waits for each process's receipt), so no process answers from before a change that
was already answered. The answers carry an `ETag` (a hash of the body) and `Cache-Control:
public, max-age=<the cache's seconds>`, and a request whose `If-None-Match` names the current
ETag gets 304 without a body, so a browser or a CDN in front may keep them as long as we do."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from aiohttp import web

from nanny.keys import CHAT_HUB, SEARCH_CACHE

# What the OpenAPI document says of these answers' headers (nanny/http/openapi.py).
HEADERS_DOC = {
    "ETag": "a hash of the body; send it back in If-None-Match to get 304 while it is current",
    "Cache-Control": "public, max-age=<SEARCH_CACHE_SECONDS>: any cache may keep the answer",
}
NOT_MODIFIED_DOC = "not modified: the ETag sent in If-None-Match is current; no body"


@dataclass(frozen=True, slots=True)
class PublicAnswer:
    """An encoded public answer with its validator; `total` is a page's X-Total-Count."""

    body: bytes
    etag: str
    total: int | None = None


def public_answer(body: bytes, total: int | None = None) -> PublicAnswer:
    digest = hashlib.blake2b(body, digest_size=12)
    if total is not None:
        digest.update(b"\n%d" % total)
    return PublicAnswer(body, f'"{digest.hexdigest()}"', total)


async def cached(
    request: web.Request, key: Hashable, load: Callable[[], Awaitable[object]]
) -> object:
    """The cached value for `key`, loaded (once for concurrent misses) when missing."""
    return await request.app[SEARCH_CACHE].get_or_load(key, load)


def _matches(if_none_match: str | None, etag: str) -> bool:
    # If-None-Match compares weakly: W/"x" matches "x"; "*" matches any current answer.
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def respond(request: web.Request, answer: PublicAnswer) -> web.Response:
    """200 with the body, or 304 when the client holds the current answer."""
    max_age = int(request.app[SEARCH_CACHE].ttl)
    headers = {"ETag": answer.etag, "Cache-Control": f"public, max-age={max_age}"}
    if answer.total is not None:
        headers["X-Total-Count"] = str(answer.total)
    if _matches(request.headers.get("If-None-Match"), answer.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=answer.body, headers=headers, content_type="application/json", charset="utf-8"
    )


async def public_changed(app: web.Application) -> None:
    """A write changed what a public read shows (services, reviews, ratings, a sitter's
    approval, a name): every process forgets its cached answers before this returns."""
    await app[CHAT_HUB].public_changed()
