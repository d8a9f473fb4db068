"""Liveness of the parts the service needs; 503 names the failing one, the process stays up."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from aiohttp import web

from nanny.errors import Unavailable
from nanny.http.endpoint import endpoint
from nanny.http.responses import json_response
from nanny.http.schemas import Out
from nanny.keys import HEALTH_CHECKS

routes = web.RouteTableDef()
log = logging.getLogger("nanny.health")

CHECK_TIMEOUT = 2.0


class HealthOut(Out):
    status: Literal["ok", "unavailable"]
    db: str
    redis: str


async def _probe(name: str, check) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("health check %s failed: %r", name, exc)
        return "down"
    return "ok"


@routes.get("/api/health", name="health")
@endpoint(
    "Database and broker health",
    tag="meta",
    response=HealthOut,
    errors=(Unavailable,),
)
async def health(request: web.Request) -> web.Response:
    checks = request.app[HEALTH_CHECKS]
    names = list(checks)
    results = await asyncio.gather(*(_probe(n, checks[n]) for n in names))
    parts = dict(zip(names, results, strict=True))
    body = {"db": parts.get("db", "down"), "redis": parts.get("redis", "disabled")}
    healthy = all(r == "ok" for r in results)
    body = {"status": "ok" if healthy else "unavailable"} | body
    return json_response(body, status=200 if healthy else 503)
