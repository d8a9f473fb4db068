"""Prometheus metrics: one registry per app (never the global default, so several apps in one test
process do not clash), the metric objects and the methods other modules call to record events.
GET /metrics (nanny/http/metrics.py) serves them.

With `--workers N` the supervisor gives the processes one directory (`PROMETHEUS_MULTIPROC_DIR`,
prometheus_client's multiprocess mode): each process keeps its values in files there, and a
scrape, whichever process accepts it, sums every process's, those of workers that have exited
included, so counters never go back. The open-WebSocket gauge counts live processes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Set by `nanny serve --workers N` for its processes (read by prometheus_client at import).
from nanny.config import MULTIPROCESS_DIR_ENV  # noqa: F401

# Requests the router matched no route for share one label, so scanners cannot inflate the series.
UNMATCHED_ROUTE = "<unmatched>"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self.request_children.get(key)
        if children is None:
            children = self.request_children[key] = (
                self.requests.labels(method, route, str(status)),
                self.request_seconds.labels(method, route, str(status)),
            )
        children[0].inc()
        if status != 101:  # a WebSocket's "duration" is its whole life, not a latency
            children[1].observe(seconds)

    def websocket_opened(self) -> None:
        self.websockets_open.inc()

    def websocket_closed(self) -> None:
        self.websockets_open.dec()

    def message_stored(self) -> None:
        self.messages_stored.inc()

    def delivered(self, count: int = 1) -> None:
        """`count` chat frames handed to local connections."""
        self.messages_delivered.inc(count)

    def broker_reconnected(self) -> None:
        self.broker_reconnects.inc()

    def expiry_ran(self, *, expired: int = 0, outcome: str = "ok") -> None:
        """One expiry-task interval: outcome 'ok', 'skipped' (another process held the lock) or
        'error'; `expired` is how many bookings it cancelled."""
        self.expiry_runs.labels(outcome).inc()
        if expired:
            self.bookings_expired.inc(expired)

    def limit_hit(self, limit: str) -> None:
        """A request refused by the rate limit `limit`."""
        self.rate_limited.labels(limit).inc()


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
