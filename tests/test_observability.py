"""JSON logs, request ids and /metrics, through the real app."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
import logging
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nanny import logs
from nanny.app import create_app
from nanny.config import ConfigError, load_settings
from nanny.http import metrics as http_metrics
from nanny.keys import METRICS
from tests.chat_support import Server, server_env, worker_pids
from tests.factories import make_owner

TOKEN = "metrics-token-" + "m" * 20


@pytest.fixture
def log_lines():
    """Every log line the app writes during the test, parsed (each must be one JSON object)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.configure("DEBUG", stream=stream)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


async def test_one_json_line_per_request(client, log_lines):
    owner = await make_owner(client)
    resp = await client.get("/api/auth/me", headers=owner.headers | {"X-Request-ID": "trace-42"})
    assert resp.status == 200 and resp.headers["X-Request-ID"] == "trace-42"
    resp = await client.get("/api/auth/me")
    assert resp.status == 401
    generated = resp.headers["X-Request-ID"]
    assert len(generated) == 32

    access = [e for e in log_lines() if e["logger"] == "nanny.access"]
    me_ok = next(e for e in access if e["request_id"] == "trace-42")
    assert me_ok["level"] == "INFO"
    assert me_ok["method"] == "GET" and me_ok["route"] == "/api/auth/me"
    assert me_ok["status"] == 200 and me_ok["user_id"] == owner.user_id
    assert isinstance(me_ok["duration_ms"], float) and me_ok["duration_ms"] >= 0
    assert me_ok["time"].endswith("Z") and me_ok["message"].startswith("GET /api/auth/me 200")
    me_401 = next(e for e in access if e["request_id"] == generated)
    assert me_401["status"] == 401 and me_401["user_id"] is None
    logins = [e for e in access if e["route"] == "/api/auth/login"]
    assert logins and logins[0]["status"] == 200


async def test_route_template_not_raw_path(client, log_lines):
    await client.get("/api/users/12345/nothing-here")
    await client.get("/api/health")
    entries = [e for e in log_lines() if e["logger"] == "nanny.access"]
    missing = next(e for e in entries if e["path"] == "/api/users/12345/nothing-here")
    assert missing["route"] == "<unmatched>" and missing["status"] == 404
    health = next(e for e in entries if e["route"] == "/api/health")
    assert health["level"] == "DEBUG"  # polled every few seconds; not INFO noise


def test_formatter_keeps_extras_and_exceptions():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("nanny.test-formatter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("ws closed: %s", "going away", extra={"reason": 1001, "user_id": 3})
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "ws closed: going away" and entry["level"] == "ERROR"
    assert entry["reason"] == 1001 and entry["user_id"] == 3
    assert "ValueError: boom" in entry["exception"]


async def test_unhandled_error_is_logged_with_request_id(aiohttp_client, settings, log_lines):
    app = create_app(settings)

    async def broken(request):
        raise RuntimeError("bug")

    app.router.add_get("/broken-for-test", broken)
    client = await aiohttp_client(app)
    resp = await client.get("/broken-for-test", headers={"X-Request-ID": "rid-500"})
    assert resp.status == 500
    error = next(e for e in log_lines() if e["level"] == "ERROR")
    assert error["request_id"] == "rid-500" and "RuntimeError: bug" in error["exception"]


def _sample(text: str, name: str, **labels) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


async def test_metrics_count_requests_by_route_and_status(client):
    owner = await make_owner(client)
    for _ in range(3):
        await client.get("/api/auth/me", headers=owner.headers)
    await client.get("/api/auth/me")
    await client.get("/api/no/such/thing")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    req = "nanny_http_requests_total"
    assert _sample(text, req, method="GET", route="/api/auth/me", status="200") == 3
    assert _sample(text, req, method="GET", route="/api/auth/me", status="401") == 1
    assert _sample(text, req, method="GET", route="<unmatched>", status="404") == 1
    hist = "nanny_http_request_duration_seconds_count"
    assert _sample(text, hist, method="GET", route="/api/auth/me", status="200") == 3
    assert "nanny_http_request_duration_seconds_bucket{" in text


async def test_metric_functions_other_modules_call(client):
    app = client.app
    recorded = app[METRICS]
    recorded.websocket_opened()
    recorded.websocket_opened()
    recorded.websocket_closed()
    recorded.message_stored()
    recorded.delivered(4)
    recorded.broker_reconnected()
    recorded.expiry_ran(expired=3)
    recorded.expiry_ran(outcome="skipped")
    text = await (await client.get("/metrics")).text()
    assert _sample(text, "nanny_websockets_open") == 1
    assert _sample(text, "nanny_chat_messages_stored_total") == 1
    assert _sample(text, "nanny_chat_messages_delivered_total") == 4
    assert _sample(text, "nanny_broker_reconnects_total") == 1
    assert _sample(text, "nanny_expiry_runs_total", outcome="ok") == 1
    assert _sample(text, "nanny_expiry_runs_total", outcome="skipped") == 1
    assert _sample(text, "nanny_bookings_expired_total") == 3


async def test_each_app_has_its_own_registry(aiohttp_client, settings):
    first = await aiohttp_client(create_app(settings))
    second = await aiohttp_client(create_app(settings))
    first.app[METRICS].message_stored()
    text = await (await second.get("/metrics")).text()
    assert _sample(text, "nanny_chat_messages_stored_total") == 0


async def test_metrics_access_by_network_or_token(aiohttp_client, settings):
    closed = dataclasses.replace(
        settings, metrics_allow=(ipaddress.ip_network("10.0.0.0/8"),), metrics_token=TOKEN
    )
    client = await aiohttp_client(create_app(closed))
    resp = await client.get("/metrics")
    assert resp.status == 403 and (await resp.json())["code"] == "forbidden"
    resp = await client.get("/metrics", headers={"Authorization": "Bearer wrong-token-xxxxxxxx"})
    assert resp.status == 403
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200 and "nanny_http_requests_total" in await resp.text()

    no_token = dataclasses.replace(closed, metrics_token="")
    client = await aiohttp_client(create_app(no_token))
    resp = await client.get("/metrics", headers={"Authorization": "Bearer "})
    assert resp.status == 403


async def test_behind_a_trusted_proxy_metrics_and_logs_see_the_client(
    aiohttp_client, settings, log_lines
):
    proxies = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    behind = dataclasses.replace(settings, trusted_proxies=proxies)
    client = await aiohttp_client(create_app(behind))
    # The proxy itself (an allowed address) may read; a customer it forwards may not.
    assert (await client.get("/metrics")).status == 200
    outside = {"X-Forwarded-For": "198.51.100.23", "X-Request-ID": "from-outside"}
    assert (await client.get("/metrics", headers=outside)).status == 403
    # What the proxy wrote is no address: refused, not taken for the proxy.
    garbled = {"X-Forwarded-For": "unknown"}
    assert (await client.get("/metrics", headers=garbled)).status == 403
    entry = next(e for e in log_lines() if e.get("request_id") == "from-outside")
    assert entry["remote"] == "198.51.100.23"


def test_metrics_settings(tmp_path):
    base = {"NANNY_DATA_DIR": str(tmp_path)}
    s = load_settings(base)
    assert [str(n) for n in s.metrics_allow] == ["127.0.0.1/32", "::1/128"]
    assert s.metrics_token == ""
    s = load_settings(base | {"METRICS_ALLOW": "10.0.0.0/8, 172.16.0.0/12", "METRICS_TOKEN": TOKEN})
    assert [str(n) for n in s.metrics_allow] == ["10.0.0.0/8", "172.16.0.0/12"]
    assert s.metrics_token == TOKEN and TOKEN not in repr(s)
    assert load_settings(base | {"METRICS_ALLOW": "none"}).metrics_allow == ()
    for env, name in (
        ({"METRICS_ALLOW": "10.0.0.0/33"}, "METRICS_ALLOW"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
        ({"STARTUP_TIMEOUT_SECONDS": "0"}, "STARTUP_TIMEOUT_SECONDS"),
        ({"SHUTDOWN_TIMEOUT_SECONDS": "x"}, "SHUTDOWN_TIMEOUT_SECONDS"),
    ):
        with pytest.raises(ConfigError) as err:
            load_settings(base | env)
        assert str(err.value).startswith(name)


async def test_redirects_are_logged_with_their_status(aiohttp_client, settings, log_lines):
    from aiohttp import web

    app = create_app(settings)

    async def moved(request):
        raise web.HTTPFound("/api/health")

    app.router.add_get("/moved-for-test/{id}", moved)
    client = await aiohttp_client(app)
    resp = await client.get("/moved-for-test/9", allow_redirects=False)
    assert resp.status == 302
    entry = next(e for e in log_lines() if e.get("route") == "/moved-for-test/{id}")
    assert entry["status"] == 302 and entry["path"] == "/moved-for-test/9"


async def test_metrics_address_rules(client):
    from aiohttp.test_utils import make_mocked_request

    base = make_mocked_request("GET", "/metrics", app=client.app)
    assert http_metrics._may_read_metrics(base.clone(remote="127.0.0.1"))
    assert http_metrics._may_read_metrics(
        base.clone(remote="::ffff:127.0.0.1")
    )  # dual-stack socket
    assert http_metrics._may_read_metrics(base.clone(remote="::1"))
    assert not http_metrics._may_read_metrics(base.clone(remote="192.0.2.7"))
    assert not http_metrics._may_read_metrics(base.clone(remote=""))  # a Unix socket peer


async def test_a_request_the_client_abandons_is_logged_as_499(aiohttp_client, settings, log_lines):
    import asyncio

    import aiohttp

    app = create_app(settings)
    started = asyncio.Event()

    async def slow(request):
        started.set()
        await asyncio.sleep(30)

    app.router.add_get("/slow-for-test", slow)
    client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    with pytest.raises(asyncio.TimeoutError):
        await client.get("/slow-for-test", timeout=aiohttp.ClientTimeout(total=0.3))
    for _ in range(50):
        if any(e.get("route") == "/slow-for-test" for e in log_lines()):
            break
        await asyncio.sleep(0.05)
    entry = next(e for e in log_lines() if e.get("route") == "/slow-for-test")
    assert entry["status"] == 499 and entry["duration_ms"] >= 250


def _fetch(url: str) -> str:
    # A new connection for each request, so the kernel spreads them over the workers.
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def _health_answers(server: Server) -> float:
    text = _fetch(f"{server.url}/metrics")
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == "nanny_http_requests"
        for s in family.samples
        if s.name.endswith("_total") and s.labels["route"] == "/api/health"
    )


def _wait_for_workers(server: Server, count: int, but_not: int | None = None) -> set[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = worker_pids(server.proc.pid) - {but_not}
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} workers after 30 s")


def test_a_scrape_sums_every_worker_and_keeps_a_dead_ones_counts(database_url, redis_server_url):
    server = Server(server_env(database_url, redis_server_url), workers=2).start()
    try:
        server.wait_healthy(60)
        workers = _wait_for_workers(server, 2)
        metrics_dir = Path(
            dict(
                item.split("=", 1)
                for item in Path(f"/proc/{min(workers)}/environ").read_text().split("\0")
                if "=" in item
            )["PROMETHEUS_MULTIPROC_DIR"]
        )
        before = _health_answers(server)
        for _ in range(40):
            _fetch(f"{server.url}/api/health")
        # Whichever worker takes the scrape, it counts both workers' answers.
        assert {_health_answers(server) for _ in range(8)} == {before + 40}

        os.kill(min(workers), signal.SIGKILL)
        _wait_for_workers(server, 2, but_not=min(workers))
        server.wait_healthy(30)
        # The dead worker's answers stay counted: a counter never goes back.
        assert _health_answers(server) >= before + 41
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=40) == 0
        assert not metrics_dir.exists()
    finally:
        server.kill()
