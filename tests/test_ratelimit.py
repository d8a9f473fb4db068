"""Rate limits: each limit hit through the real app (429 + Retry-After), counts shared between two
app instances through a real Redis, and Redis failure letting requests through."""

from __future__ import annotations

import dataclasses
import ipaddress
import uuid
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import make_mocked_request

from nanny import ratelimit, ratelimit_backends
from nanny.app import create_app
from nanny.config import ConfigError, RateLimit, load_settings
from nanny.errors import RateLimited
from nanny.keys import HEALTH_CHECKS, METRICS, POOL, RATE_LIMITER
from tests.conftest import with_database
from tests.factories import PASSWORD, owner_body
from tests.faults import TcpProxy

ROOMY = RateLimit(1000, 60)


def limited(settings, **limits):
    """Settings with every limit roomy except the ones named."""
    names = [f.name for f in dataclasses.fields(settings) if f.name.startswith("rate_")]
    return dataclasses.replace(settings, **dict.fromkeys(names, ROOMY) | limits)


async def register(client, **over):
    body = owner_body(**over)
    resp = await client.post("/api/auth/register/owner", json=body)
    return resp, body


async def try_login(client, email, password=PASSWORD):
    return await client.post("/api/auth/login", json={"email": email, "password": password})


async def assert_limited(resp, limit: str, window: int) -> None:
    assert resp.status == 429, await resp.text()
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= window
    data = await resp.json()
    assert data["code"] == "rate_limited"
    assert data["details"] == {"limit": limit, "retry_after": retry_after}


async def test_login_per_email(aiohttp_client, settings):
    client = await aiohttp_client(
        create_app(limited(settings, rate_login_per_email=RateLimit(3, 60)))
    )
    _, body = await register(client)
    for _ in range(2):
        assert (await try_login(client, body["email"], "wrong-password-1")).status == 401
    assert (await try_login(client, body["email"])).status == 200
    # The same address in other case counts against the same e-mail.
    await assert_limited(await try_login(client, body["email"].upper()), "login_email", 60)
    # Other accounts from the same address are unaffected.
    _, other = await register(client)
    assert (await try_login(client, other["email"])).status == 200


async def test_login_per_ip(aiohttp_client, settings):
    client = await aiohttp_client(create_app(limited(settings, rate_login_per_ip=RateLimit(2, 60))))
    for _ in range(2):
        resp = await try_login(client, f"nobody-{uuid.uuid4().hex[:6]}@example.kz")
        assert resp.status == 401
    await assert_limited(await try_login(client, "someone@example.kz"), "login_ip", 60)
    metrics = client.app[METRICS].rate_limited.labels("login_ip")._value.get()
    assert metrics == 1


def login_from(client, forwarded_for: str):
    email = f"nobody-{uuid.uuid4().hex[:6]}@example.kz"
    return client.post(
        "/api/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"X-Forwarded-For": forwarded_for},
    )


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    aiohttp_client, settings
):
    client = await aiohttp_client(create_app(limited(settings, rate_login_per_ip=RateLimit(2, 60))))
    # A client cannot pick its own address: every header value counts against the peer.
    assert (await login_from(client, "203.0.113.1")).status == 401
    assert (await login_from(client, "203.0.113.2")).status == 401
    await assert_limited(await login_from(client, "203.0.113.3"), "login_ip", 60)


async def test_login_per_ip_behind_trusted_proxies(aiohttp_client, settings):
    proxies = tuple(ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "10.0.0.0/8"))
    behind = dataclasses.replace(
        limited(settings, rate_login_per_ip=RateLimit(2, 60)), trusted_proxies=proxies
    )
    client = await aiohttp_client(create_app(behind))
    assert (await login_from(client, "203.0.113.5")).status == 401
    # What the client put left of the address our proxies saw is its own invention; a second
    # trusted hop (10.0.0.7) is skipped.
    assert (await login_from(client, "192.0.2.99, 203.0.113.5, 10.0.0.7")).status == 401
    await assert_limited(await login_from(client, "203.0.113.5"), "login_ip", 60)
    # Another customer behind the same proxy has a count of its own.
    assert (await login_from(client, "203.0.113.6")).status == 401
    # Some proxies write the port as well: still the same clients.
    assert (await login_from(client, "203.0.113.6:51234")).status == 401
    await assert_limited(await login_from(client, "203.0.113.6:40000"), "login_ip", 60)
    assert (await login_from(client, "[2001:db8::7]:443")).status == 401
    assert (await login_from(client, "2001:db8::7")).status == 401
    await assert_limited(await login_from(client, "[2001:db8::7]:8443"), "login_ip", 60)
    # Something else where the proxy writes its client's address: no address, one shared count
    # (never the proxy's own address).
    assert (await login_from(client, "not-an-address")).status == 401
    assert (await login_from(client, "192.0.2.1, not-an-address, 10.0.0.8")).status == 401
    await assert_limited(await login_from(client, "also, garbage"), "login_ip", 60)


def test_trusted_proxies_setting(tmp_path):
    base = {"NANNY_DATA_DIR": str(tmp_path)}
    assert load_settings(base).trusted_proxies == ()
    s = load_settings(base | {"TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8"})
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "fd00::/8"]
    with pytest.raises(ConfigError, match=r"^TRUSTED_PROXIES must be a comma-separated list"):
        load_settings(base | {"TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"})


async def test_register_per_ip_and_per_email(aiohttp_client, settings):
    client = await aiohttp_client(
        create_app(
            limited(
                settings,
                rate_register_per_ip=RateLimit(3, 3600),
                rate_register_per_email=RateLimit(1, 3600),
            )
        )
    )
    resp, body = await register(client)
    assert resp.status == 201
    # A second attempt for the same e-mail is limited before it could learn that it is taken.
    resp, _ = await register(client, email=body["email"])
    await assert_limited(resp, "register_email", 3600)
    resp, _ = await register(client)
    assert resp.status == 201
    resp, _ = await register(client)
    await assert_limited(resp, "register_ip", 3600)
    count = await client.app[POOL].fetchval("SELECT count(*) FROM users")
    assert count == 2  # the refused requests wrote nothing


async def test_booking_and_websocket_limits(aiohttp_client, settings):
    client = await aiohttp_client(
        create_app(
            limited(
                settings,
                rate_bookings_per_owner=RateLimit(2, 3600),
                rate_ws_connect_per_user=RateLimit(1, 60),
            )
        )
    )
    request = make_mocked_request("POST", "/api/bookings", app=client.app)
    await ratelimit.check_booking_rate(request, 41)
    await ratelimit.check_booking_rate(request, 41)
    with pytest.raises(RateLimited) as err:
        await ratelimit.check_booking_rate(request, 41)
    assert err.value.status == 429 and 1 <= err.value.retry_after <= 3600
    await ratelimit.check_booking_rate(request, 42)  # another owner has its own count

    await ratelimit.check_ws_connect_rate(client.app, 7)
    with pytest.raises(RateLimited) as err:
        await ratelimit.check_ws_connect_rate(client.app, 7)
    assert err.value.details["limit"] == "ws_connect_user"
    await ratelimit.check_ws_connect_rate(client.app, 8)


async def test_redis_counts_are_shared_between_app_instances(
    aiohttp_client, settings, redis_server_url
):
    shared = limited(settings, redis_url=redis_server_url, rate_login_per_email=RateLimit(3, 60))
    first = await aiohttp_client(create_app(shared))
    second = await aiohttp_client(create_app(shared))
    assert isinstance(first.app[RATE_LIMITER], ratelimit_backends.RedisRateLimiter)
    _, body = await register(first)
    assert (await try_login(first, body["email"])).status == 200
    assert (await try_login(second, body["email"])).status == 200
    assert (await try_login(first, body["email"])).status == 200
    await assert_limited(await try_login(second, body["email"]), "login_email", 60)
    await assert_limited(await try_login(first, body["email"]), "login_email", 60)
    resp = await second.get("/api/health")
    assert (await resp.json())["redis"] == "ok"

    # Another deployment (another database) sharing the Redis keeps its own counts.
    name = urlsplit(shared.database_url).path.lstrip("/")
    other_db = dataclasses.replace(
        shared, database_url=with_database(shared.database_url, name + "_other")
    )
    limiter = ratelimit_backends.RedisRateLimiter(
        first.app[RATE_LIMITER]._redis,  # same connection pool, other namespace
        ratelimit.deployment_namespace(other_db.database_url),
        prefix=shared.redis_prefix,
    )
    email_key = ratelimit._email_key(body["email"])
    assert await limiter.hit(f"login_email:{email_key}", RateLimit(3, 60)) == 0


async def test_redis_keys_carry_the_redis_prefix(aiohttp_client, settings, redis_server_url):
    prefix = f"rl-test-{uuid.uuid4().hex[:8]}"
    app = create_app(dataclasses.replace(settings, redis_url=redis_server_url, redis_prefix=prefix))
    client = await aiohttp_client(app)
    _, body = await register(client)
    assert (await try_login(client, body["email"])).status == 200
    redis = client.app[RATE_LIMITER]._redis
    namespace = ratelimit.deployment_namespace(settings.database_url)
    ours = [k async for k in redis.scan_iter(match=f"{prefix}:rl:{namespace}:*")]
    limits = {key.decode().split(":")[3] for key in ours}
    assert {"register_ip", "register_email", "login_ip", "login_email"} <= limits
    assert [k async for k in redis.scan_iter(match=f"nanny:rl:{namespace}:*")] == []


async def test_redis_down_lets_requests_through(aiohttp_client, settings, redis_server_url, caplog):
    parts = urlsplit(redis_server_url)
    proxy = TcpProxy(host=parts.hostname, port=parts.port)
    await proxy.start()
    try:
        url = f"redis://127.0.0.1:{proxy.port}{parts.path}"
        tight = limited(settings, redis_url=url, rate_login_per_email=RateLimit(1, 60))
        client = await aiohttp_client(create_app(tight))
        _, body = await register(client)
        assert (await try_login(client, body["email"])).status == 200
        await proxy.cut()
        # Over the limit, but the counter cannot be read: allowed, and said so in the log.
        assert (await try_login(client, body["email"])).status == 200
        assert (await try_login(client, body["email"])).status == 200
        warnings = [r for r in caplog.records if "rate limits not enforced" in r.getMessage()]
        assert len(warnings) == 1  # once per outage, not once per request
        assert (await client.get("/api/health")).status == 503
        await client.app[HEALTH_CHECKS]["db"]()  # the database is fine
    finally:
        await proxy.close()


async def test_in_process_window_resets_and_prunes():
    now = [1_000_000.0]
    limiter = ratelimit_backends.InProcessRateLimiter(clock=lambda: now[0])
    limit = RateLimit(2, 60)
    assert await limiter.hit("k", limit) == 0
    assert await limiter.hit("k", limit) == 0
    assert await limiter.hit("k", limit) == 60 - (1_000_000 % 60)
    now[0] += 60
    assert await limiter.hit("k", limit) == 0
    for i in range(10_000):
        await limiter.hit(f"burst-{i}", limit)
    now[0] += 120
    await limiter.hit("after", limit)
    for i in range(10_000):
        await limiter.hit(f"again-{i}", limit)
    # Finished windows were swept, so the table holds only live keys.
    assert len(limiter._counts) <= 10_002
    await limiter.close()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10/minute", RateLimit(10, 60)),
        ("100/15m", RateLimit(100, 900)),
        ("5 / hour", RateLimit(5, 3600)),
        ("3/30s", RateLimit(3, 30)),
        ("1000/day", RateLimit(1000, 86400)),
    ],
)
def test_rate_limit_values_are_parsed(tmp_path, raw, expected):
    s = load_settings({"NANNY_DATA_DIR": str(tmp_path), "RATE_LOGIN_PER_EMAIL": raw})
    assert s.rate_login_per_email == expected
    assert str(expected).endswith("s")


@pytest.mark.parametrize("raw", ["ten/minute", "10", "10/fortnight", "0/minute", "10/2d", "10/0s"])
def test_bad_rate_limit_names_the_variable(tmp_path, raw):
    with pytest.raises(ConfigError) as err:
        load_settings({"NANNY_DATA_DIR": str(tmp_path), "RATE_BOOKINGS_PER_OWNER": raw})
    assert str(err.value).startswith("RATE_BOOKINGS_PER_OWNER") and raw in str(err.value)


def test_default_limits(tmp_path):
    s = load_settings({"NANNY_DATA_DIR": str(tmp_path)})
    assert s.rate_login_per_email == RateLimit(20, 60)
    assert s.rate_login_per_ip == RateLimit(60, 60)
    assert s.rate_bookings_per_owner == RateLimit(60, 3600)


async def test_limits_can_be_switched_off_for_load_tests(aiohttp_client, settings, tmp_path):
    off = dataclasses.replace(
        settings, rate_limit_enabled=False, rate_login_per_email=RateLimit(1, 60)
    )
    client = await aiohttp_client(create_app(off))
    _, body = await register(client)
    for _ in range(3):
        assert (await try_login(client, body["email"])).status == 200
    base = {"NANNY_DATA_DIR": str(tmp_path)}
    assert load_settings(base).rate_limit_enabled
    assert not load_settings(base | {"RATE_LIMIT_ENABLED": "false"}).rate_limit_enabled
    assert load_settings(base | {"RATE_LIMIT_ENABLED": "Yes"}).rate_limit_enabled
    with pytest.raises(ConfigError, match=r"^RATE_LIMIT_ENABLED must be true or false"):
        load_settings(base | {"RATE_LIMIT_ENABLED": "maybe"})


async def test_often_counted_keys_reach_redis_in_batches_and_exactly_near_the_limit(
    redis_server_url,
):
    """hit_often (the chat budget): a key far from its limit is counted in this process and sent
    in one round trip per FLUSH_INTERVAL; from half its limit on every hit goes to Redis, so two
    processes (two limiters on one Redis) together stop the key exactly at its limit."""
    prefix = f"rl-often-{uuid.uuid4().hex[:8]}"
    clients = [aioredis.Redis.from_url(redis_server_url) for _ in range(2)]
    one, two = (ratelimit_backends.RedisRateLimiter(c, "often", prefix=prefix) for c in clients)
    try:
        roomy = RateLimit(10_000, 3600)
        for _ in range(200):
            assert await one.hit_often("chat:1", roomy) == 0
        assert one.round_trips == 1  # the first, to learn the count; the rest wait in memory
        await one.flush()
        assert one.round_trips == 2
        stored = [v async for v in clients[0].scan_iter(match=f"{prefix}:rl:often:chat:1:*")]
        assert [int(await clients[0].get(k)) for k in stored] == [200]

        tight = RateLimit(10, 3600)
        allowed = 0
        for i in range(16):  # alternating processes, as a user's REST and socket could
            allowed += await (one if i % 2 else two).hit_often("chat:2", tight) == 0
        assert allowed == 10
        retry_after = await one.hit_often("chat:2", tight)
        assert 1 <= retry_after <= 3600
    finally:
        for limiter in (one, two):
            await limiter.close()
