"""Prometheus metrics: one registry per app (never the global default, so several apps in one test
process do not clash), the metric objects, the small functions other modules call to record
events, and GET /metrics, which only configured networks or the metrics token may read.

With `--workers N` the supervisor gives the processes one directory (`PROMETHEUS_MULTIPROC_DIR`,
prometheus_client's multiprocess mode): each process keeps its values in files there, and a
scrape, whichever process accepts it, sums every process's, those of workers that have exited
included, so counters never go back. The open-WebSocket gauge counts live processes only.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from nanny.errors import Forbidden
from nanny.http.client_address import client_address, parse_ip
from nanny.http.endpoint import endpoint
from nanny.keys import METRICS, SETTINGS

routes = web.RouteTableDef()

# Requests the router matched no route for share one label, so scanners cannot inflate the series.
UNMATCHED_ROUTE = "<unmatched>"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Set by `nanny serve --workers N` for its processes (read by prometheus_client at import).
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    request_seconds: Histogram
    websockets_open: Gauge
    messages_stored: Counter
    messages_delivered: Counter
    broker_reconnects: Counter
    expiry_runs: Counter
    bookings_expired: Counter
    rate_limited: Counter
    # (method, route, status) -> the labelled request counter and histogram: looking labels up
    # in prometheus_client takes a lock and builds a tuple on every request.
    request_children: dict[tuple[str, str, int], tuple] = field(default_factory=dict)


def create_metrics() -> Metrics:
    registry = CollectorRegistry(auto_describe=True)
    return Metrics(
        registry=registry,
        requests=Counter(
            "nanny_http_requests",
            "HTTP requests by method, route template and status",
            ("method", "route", "status"),
            registry=registry,
        ),
        request_seconds=Histogram(
            "nanny_http_request_duration_seconds",
            "HTTP request latency by method, route template and status (no WebSockets)",
            ("method", "route", "status"),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        websockets_open=Gauge(
            "nanny_websockets_open",
            "WebSocket connections open",
            multiprocess_mode="livesum",
            registry=registry,
        ),
        messages_stored=Counter(
            "nanny_chat_messages_stored",
            "Chat messages committed to the database",
            registry=registry,
        ),
        messages_delivered=Counter(
            "nanny_chat_messages_delivered",
            "Chat frames handed to local WebSocket connections",
            registry=registry,
        ),
        broker_reconnects=Counter(
            "nanny_broker_reconnects",
            "Reconnections of the Redis broker listener",
            registry=registry,
        ),
        expiry_runs=Counter(
            "nanny_expiry_runs",
            "Runs of the stale-booking expiry task by outcome",
            ("outcome",),
            registry=registry,
        ),
        bookings_expired=Counter(
            "nanny_bookings_expired", "Bookings cancelled by the expiry task", registry=registry
        ),
        rate_limited=Counter(
            "nanny_rate_limited",
            "Requests refused by a rate limit, by limit",
            ("limit",),
            registry=registry,
        ),
    )


def observe_request(
    app: web.Application, method: str, route: str, status: int, seconds: float
) -> None:
    m = app[METRICS]
    key = (method, route, status)
    children = m.request_children.get(key)
    if children is None:
        children = m.request_children[key] = (
            m.requests.labels(method, route, str(status)),
            m.request_seconds.labels(method, route, str(status)),
        )
    children[0].inc()
    if status != 101:  # a WebSocket's "duration" is its whole life, not a latency
        children[1].observe(seconds)


def websocket_opened(app: web.Application) -> None:
    app[METRICS].websockets_open.inc()


def websocket_closed(app: web.Application) -> None:
    app[METRICS].websockets_open.dec()


def message_stored(app: web.Application) -> None:
    app[METRICS].messages_stored.inc()


def messages_delivered(app: web.Application, count: int = 1) -> None:
    app[METRICS].messages_delivered.inc(count)


def broker_reconnected(app: web.Application) -> None:
    app[METRICS].broker_reconnects.inc()


def expiry_ran(app: web.Application, *, expired: int = 0, outcome: str = "ok") -> None:
    """One expiry-task interval: outcome 'ok', 'skipped' (another process held the lock) or
    'error'; `expired` is how many bookings it cancelled."""
    m = app[METRICS]
    m.expiry_runs.labels(outcome).inc()
    if expired:
        m.bookings_expired.inc(expired)


def rate_limited(app: web.Application, limit: str) -> None:
    app[METRICS].rate_limited.labels(limit).inc()


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
