"""The generated OpenAPI document: valid, complete, and true of the live server (schemathesis)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from nanny import PROJECT_ROOT
from nanny.app import create_app
from nanny.errors import Conflict
from nanny.http.endpoint import SPEC_ATTR, endpoint
from nanny.http.headers import PAGE_CSP
from nanny.http.schemas import Body, Out
from tests.conftest import TEST_JWT_SECRET, free_port

# Routes that are not REST operations and are documented elsewhere (the document itself, the
# page rendering it, the WebSocket upgrade).
UNDOCUMENTED = {"/api/openapi.json", "/api/docs", "/api/ws"}

API_MD = PROJECT_ROOT / "docs" / "API.md"
# How docs/API.md declares an endpoint: a bullet opening with `METHOD /path` in one code span.
ENDPOINT_BULLET = re.compile(r"^- `(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)`", re.MULTILINE)


async def get_document(client) -> dict:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return await resp.json()


async def test_document_is_valid_openapi_3_1(client):
    doc = await get_document(client)
    assert doc["openapi"] == "3.1.0"
    validate(doc)


async def test_every_route_is_documented(client):
    doc = await get_document(client)
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    expected = set()
    for route in client.app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*"):
            continue
        info = route.resource.get_info()
        # Static file routes (the pages' /static/) have a prefix instead of a path.
        path = info.get("formatter") or info.get("path") or info.get("prefix", "")
        if not (path.startswith("/api/") or path == "/metrics") or path in UNDOCUMENTED:
            continue
        assert getattr(route.handler, SPEC_ATTR, None) is not None, (
            f"{route.method} {path} has no @endpoint declaration"
        )
        expected.add((path, route.method.lower()))
    assert documented == expected
    assert ("/api/reviews", "post") in documented and ("/api/admin/stats", "get") in documented


def api_md_endpoints() -> set[tuple[str, str]]:
    text = API_MD.read_text(encoding="utf-8")
    # A bullet that looks like an endpoint but does not parse would silently drop out.
    for line in text.splitlines():
        if re.match(r"- `[A-Z]+ /", line):
            assert ENDPOINT_BULLET.match(line), f"docs/API.md: endpoint not parseable: {line}"
    return {(path, method.lower()) for method, path in ENDPOINT_BULLET.findall(text)}


async def test_api_md_and_the_document_list_the_same_endpoints(client):
    doc = await get_document(client)
    operations = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    in_markdown = api_md_endpoints()
    not_operations = {(path, "get") for path in UNDOCUMENTED}
    assert not_operations <= in_markdown, "docs/API.md must describe the non-REST routes too"
    assert operations - in_markdown == set(), "operations missing from docs/API.md"
    assert in_markdown - not_operations - operations == set(), "not in the OpenAPI document"
    assert len(operations) > 40


async def test_docs_page_loads_swagger_ui_from_our_own_origin(client):
    resp = await client.get("/api/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert resp.headers["Content-Security-Policy"] == PAGE_CSP
    page = await resp.text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) and "style=" not in page
    assert 'data-openapi-url="/api/openapi.json"' in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any("swagger-ui-bundle.js" in a for a in assets) and len(assets) == 5
    for asset in assets:
        assert asset.startswith("/static/"), asset
        got = await client.get(asset)
        assert got.status == 200, asset
        # With nosniff, a browser runs a script or applies a sheet only under its own type.
        kinds = ("text/css", "text/javascript", "application/javascript", "image/svg+xml")
        assert got.content_type in kinds, asset
        assert len(await got.read()) > 100


async def test_operations_carry_their_declarations(client):
    doc = await get_document(client)
    paths, schemas = doc["paths"], doc["components"]["schemas"]

    create = paths["/api/reviews"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReviewCreate"
    }
    assert set(create["responses"]) == {"201", "400", "401", "403", "404", "409", "413", "503"}
    assert create["security"] == [{"bearerAuth": []}, {"cookieAuth": []}]
    assert "owner" in create["description"]
    error = create["responses"]["409"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorOut"}
    assert set(schemas["ErrorOut"]["required"]) == {"error", "code"}
    assert schemas["ReviewCreate"]["additionalProperties"] is False
    rating = schemas["ReviewCreate"]["properties"]["rating"]
    assert (rating["minimum"], rating["maximum"]) == (1, 5)

    listing = paths["/api/sitters/{sitter_id}/reviews"]["get"]
    assert "security" not in listing  # public
    params = {(p["name"], p["in"]): p for p in listing["parameters"]}
    assert params[("sitter_id", "path")]["required"] is True
    assert params[("sitter_id", "path")]["schema"]["type"] == "integer"
    assert params[("limit", "query")]["schema"]["maximum"] == 200
    assert params[("offset", "query")]["required"] is False
    ok = listing["responses"]["200"]
    assert "X-Total-Count" in ok["headers"]
    assert ok["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/ReviewOut"},
    }

    users = paths["/api/admin/users"]["get"]
    names = {p["name"] for p in users["parameters"]}
    assert names == {"role", "q", "limit", "offset"}

    delete = paths["/api/admin/users/{user_id}"]["delete"]
    assert "content" not in delete["responses"]["204"]
    assert "409" in delete["responses"]

    health = paths["/api/health"]["get"]
    assert "security" not in health and "503" in health["responses"]
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }


class Widget(Body):
    name: str
    nickname: str = None  # absent means "none"; an explicit null is refused


class WidgetOut(Out):
    widget_id: int


async def test_routes_added_anywhere_appear(aiohttp_client, settings):
    """A route declared in some other module shows up without touching the generator."""
    extra = web.RouteTableDef()

    @extra.post("/api/widgets/{widget_id}/copies")
    @endpoint(
        "Copy a widget",
        tag="widgets",
        body=Widget,
        response=WidgetOut,
        status=201,
        roles=("sitter",),
        errors=(Conflict,),
    )
    async def copy_widget(request, user, body):  # pragma: no cover - never called
        raise AssertionError

    @extra.get("/api/widgets/{widget_id}")
    async def undeclared(request):  # pragma: no cover - never called
        raise AssertionError

    app = create_app(settings)
    app.add_routes(extra)
    client = await aiohttp_client(app)
    doc = await get_document(client)
    validate(doc)
    op = doc["paths"]["/api/widgets/{widget_id}/copies"]["post"]
    assert op["operationId"] == "copy_widget" and op["tags"] == ["widgets"]
    widget = doc["components"]["schemas"]["Widget"]
    assert widget["properties"]["nickname"] == {
        "title": "Nickname",
        "type": "string",
        "pattern": "^[^\\x00]*$",
    }
    assert op["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WidgetOut"
    }
    assert {"400", "401", "409", "413", "503"} <= set(op["responses"])
    # A route without a declaration is left out rather than described wrongly.
    assert "/api/widgets/{widget_id}" not in doc["paths"]


def _http(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def live_server(database_url, tmp_path):
    """`nanny serve` as a real process on 127.0.0.1, over a database holding the demo set."""
    import asyncio

    from nanny import seed

    with open(os.devnull, "w") as devnull:
        asyncio.run(seed.run(database_url, bcrypt_rounds=4, out=devnull, progress=lambda _: 0))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env |= {
        "PYTHONPATH": str(PROJECT_ROOT),
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "BCRYPT_ROUNDS": "4",
        "NANNY_DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "WARNING",
    }
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nanny", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _http("GET", f"{base}/api/health")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# The rules the document cannot state, and the operations they are answered for.
SCHEMATHESIS_CONFIG = PROJECT_ROOT / "tests" / "schemathesis.toml"

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def _schemathesis(
    base: str,
    token: str,
    cwd,
    *extra: str,
    checks: str = CHECKS,
    max_examples: str = "20",
    seed: str | None = "20261124",
) -> str:
    """seed None: deterministic generation (no seed, no example database)."""
    seeding = (
        ["--seed", seed, "--generation-database", "none"]
        if seed
        else ["--generation-deterministic"]
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(SCHEMATHESIS_CONFIG),
            "run",
            f"{base}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            checks,
            # Bounded: boundary values of every parameter, then 20 generated cases per
            # operation (the app has no explicit examples to replay). One worker: schemathesis
            # workers are threads, and hypothesis's source inspection is not thread-safe on
            # Python 3.11 ("AST constructor recursion depth mismatch").
            "--phases",
            "coverage,fuzzing",
            "--max-examples",
            max_examples,
            "--workers",
            "1",
            *seeding,
            "--request-timeout",
            "10",
            "--no-color",
            *extra,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert summary and summary[1] == summary[2], result.stdout[-3000:]
    return result.stdout


def test_schemathesis_finds_no_server_errors_or_schema_violations(live_server, tmp_path):
    """Every operation with an owner's token, then the admin operations with an admin's."""
    from nanny import seed

    started = time.monotonic()
    tokens = {}
    for who in ("madina", "admin"):
        tokens[who] = _http(
            "POST",
            f"{live_server}/api/auth/login",
            {"email": f"{who}@demo.nanny.kz", "password": seed.DEMO_PASSWORD},
        )["token"]
    out = _schemathesis(live_server, tokens["madina"], tmp_path)
    assert re.search(r"Tested: (\d+)", out)[1] == re.search(r"Selected: (\d+)/\1", out)[1]
    _schemathesis(live_server, tokens["admin"], tmp_path, "--include-tag", "admin")
    took = time.monotonic() - started
    server_log = (tmp_path / "server.log").read_text()
    # aiohttp's own parser logs the probe with a NUL in a header (it answers 400); our error
    # middleware logs anything unexpected as "unhandled error".
    assert "unhandled error" not in server_log, server_log[-3000:]
    assert took < 90, f"schemathesis took {took:.1f}s"


# Operations that end the token they are called with: run apart, each with a token of its own.
TOKEN_ENDING = ("change_password", "logout")
# Examples per operation: with the boundary values of the coverage phase, every operation gets
# a few hundred cases in all, which keeps the three roles' runs within a minute or so.
MAX_EXAMPLES = "5"


def _schemathesis_all_checks(base: str, token: str, cwd, *extra: str) -> str:
    """As _schemathesis, with every check and a few examples per operation, deterministic."""
    return _schemathesis(
        base, token, cwd, *extra, checks="all", max_examples=MAX_EXAMPLES, seed=None
    )


@pytest.mark.timeout(300)  # about 30 s each on an idle machine; several times that under load
@pytest.mark.parametrize("who", ["madina", "dmitry", "admin"], ids=["owner", "sitter", "admin"])
def test_schemathesis_finds_nothing(live_server, tmp_path, who):
    """schemathesis with all its checks, over every operation, with an owner's, a sitter's and
    an admin's token: the document describes exactly what the server accepts and answers."""
    from nanny import seed

    def token(email_key: str) -> str:
        return _http(
            "POST",
            f"{live_server}/api/auth/login",
            {"email": f"{email_key}@demo.nanny.kz", "password": seed.DEMO_PASSWORD},
        )["token"]

    keep_token = ("--exclude-operation-id-regex", f"^({'|'.join(TOKEN_ENDING)})$")
    out = _schemathesis_all_checks(live_server, token(who), tmp_path, *keep_token)
    tested, selected = re.search(r"Selected: (\d+)/(\d+)", out).groups()
    assert int(tested) == int(selected) - len(TOKEN_ENDING), out[-3000:]
    # No token ended under the run: no operation answered only 401 (those of other roles answer
    # only 403, which schemathesis lists apart).
    assert not re.search(r"^\s*401 [A-Za-z ]+\(\d+ operations?\)", out, re.M), out[-3000:]
    if who == "madina":
        for op in TOKEN_ENDING:
            timur = token("timur")
            _schemathesis_all_checks(live_server, timur, tmp_path, "--include-operation-id", op)
    server_log = (tmp_path / "server.log").read_text()
    # aiohttp's own parser logs the probe with a NUL in a header (it answers 400); our error
    # middleware logs anything unexpected as "unhandled error".
    assert "unhandled error" not in server_log, server_log[-3000:]


def test_money_and_not_blank_patterns_say_what_the_validators_do():
    """The document's patterns for money strings and for names that must not be blank accept
    exactly what the server's validators accept (strings of the patterns' own alphabets)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from pydantic import TypeAdapter, ValidationError

    from nanny.http.pets import PetName
    from nanny.http.schemas import MONEY_PATTERN, Money
    from nanny.validation import NOT_BLANK

    def accepts(adapter: TypeAdapter, value: str) -> bool:
        try:
            adapter.validate_python(value)
        except ValidationError:
            return False
        return True

    money, name = TypeAdapter(Money), TypeAdapter(PetName)
    decimal_like = st.from_regex(r"^[+-]?0*[0-9]{0,8}\.?[0-9]{0,3}0*$", fullmatch=True)
    spaced = st.text(st.sampled_from(" \t\n\x1c\x1f\x85\xa0\u3000\ufeffab\x00"), max_size=6)

    @settings(max_examples=400, deadline=None, database=None)
    @given(decimal_like | st.from_regex(MONEY_PATTERN, fullmatch=True))
    def money_agrees(value: str) -> None:
        assert accepts(money, value) == bool(re.match(MONEY_PATTERN, value)), value

    @settings(max_examples=400, deadline=None, database=None)
    @given(spaced)
    def names_agree(value: str) -> None:
        assert accepts(name, value) == bool(re.match(NOT_BLANK, value)), repr(value)

    money_agrees()
    names_agree()
    assert not accepts(money, "٢") and accepts(money, "2")
