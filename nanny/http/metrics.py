"""GET /metrics: the Prometheus text of every server process, readable only from the configured
networks or with the metrics token."""

from __future__ import annotations

import asyncio
import hmac
import os

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from nanny.client_address import client_address, parse_ip
from nanny.errors import Forbidden
from nanny.http.endpoint import endpoint
from nanny.keys import METRICS, SETTINGS
from nanny.metrics import MULTIPROCESS_DIR_ENV

routes = web.RouteTableDef()


def _may_read_metrics(request: web.Request) -> bool:
    settings = request.app[SETTINGS]
    token = settings.metrics_token
    header = request.headers.get("Authorization", "")
    scheme, _, sent = header.partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(sent.strip().encode(), token.encode())
    ):
        return True
    # Behind a trusted proxy, the client's address: the proxy's own would admit everyone.
    address = parse_ip(client_address(request))
    if address is None:  # a Unix socket has no address
        return False
    return any(address in network for network in settings.metrics_allow)


def _all_processes(directory: str) -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


@routes.get("/metrics", name="metrics")
@endpoint(
    "Prometheus metrics of every server process (configured networks or the metrics token only)",
    tag="meta",
    response=str,
    errors=(Forbidden,),
)
async def metrics_page(request: web.Request) -> web.Response:
    if not _may_read_metrics(request):
        raise Forbidden("Metrics are readable only from the configured networks or with the token")
    directory = os.environ.get(MULTIPROCESS_DIR_ENV)
    if directory:  # files of every process: read off the loop
        body = await asyncio.to_thread(_all_processes, directory)
    else:
        body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
