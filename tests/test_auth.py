"""Every rule and bad input of docs/API.md's Auth section, against the real app and database."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import statistics
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from nanny.config import Settings
from nanny.keys import POOL, USER_CACHE
from tests.conftest import TEST_JWT_SECRET
from tests.factories import (
    PASSWORD,
    login,
    make_admin,
    make_owner,
    make_sitter,
    owner_body,
    sitter_body,
)


def assert_error(data: dict, code: str, field: str | None = None) -> None:
    assert data["code"] == code, data
    assert isinstance(data["error"], str) and data["error"]
    if field is not None:
        assert data["details"]["field"] == field, data


async def test_register_login_me_round_trip(client):
    body = owner_body(email="Round.Trip@Example.kz")
    resp = await client.post("/api/auth/register/owner", json=body)
    assert resp.status == 201
    created = await resp.json()
    assert isinstance(created["user_id"], int) and created["message"]

    data = await login(client, "round.trip@example.KZ")
    assert data["user_id"] == created["user_id"]
    assert data["role"] == "owner"
    assert data["email"] == "round.trip@example.kz"  # stored in its normal form
    assert data["full_name"] == body["full_name"]
    assert data["user"] == {
        "user_id": created["user_id"],
        "full_name": body["full_name"],
        "email": "round.trip@example.kz",
        "phone": body["phone"],
        "role": "owner",
    }
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    assert timedelta(hours=71) < expires - datetime.now(UTC) <= timedelta(hours=72)
    claims = jwt.decode(data["token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(created["user_id"]) and claims["role"] == "owner"

    resp = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {data['token']}"})
    assert resp.status == 200
    me = await resp.json()
    assert me["user_id"] == created["user_id"] and me["phone"] == body["phone"]
    assert "sitter" not in me and "password_hash" not in me


async def test_sitter_registers_pending_with_profile(client):
    sitter = await make_sitter(client, status="pending", location="Astana", experience_years=7)
    resp = await client.get("/api/auth/me", headers=sitter.headers)
    me = await resp.json()
    assert me["role"] == "sitter"
    assert me["sitter"] == {
        "experience_years": 7,
        "certificates": "Pet first aid",
        "preferences": "dogs",
        "location": "Astana",
        "status": "pending",
    }


async def test_duplicate_email_in_another_case_conflicts(client):
    body = owner_body(email="dup@example.kz")
    assert (await client.post("/api/auth/register/owner", json=body)).status == 201
    again = sitter_body(email="DUP@Example.KZ")
    resp = await client.post("/api/auth/register/sitter", json=again)
    assert resp.status == 409
    assert_error(await resp.json(), "conflict", "email")
    count = await client.app[POOL].fetchval(
        "SELECT count(*) FROM users WHERE email = 'dup@example.kz'"
    )
    assert count == 1


async def test_one_normal_form_of_an_email_for_storage_lookup_and_limits(aiohttp_client, settings):
    """PostgreSQL's lower() took "vİctim@…" (U+0130) for "victim@…" while the per-e-mail limit
    counted it apart, so every dotted capital I bought a fresh budget against the account."""
    from nanny.app import create_app
    from nanny.config import RateLimit

    tight = dataclasses.replace(settings, rate_login_per_email=RateLimit(3, 60))
    client = await aiohttp_client(create_app(tight))
    victim = await make_owner(client, email="victim@example.kz")  # one login counted
    for email in ("VICTIM@example.kz", " victim@EXAMPLE.kz "):
        resp = await client.post("/api/auth/login", json={"email": email, "password": "wrong-1"})
        assert resp.status == 401
    # The budget of 3 is spent. A dotted capital I is another address: it reaches no account.
    resp = await client.post(
        "/api/auth/login", json={"email": "v\u0130ctim@example.kz", "password": PASSWORD}
    )
    assert resp.status == 401
    # The account's own budget stays spent, however its address is written.
    for email in ("victim@example.kz", "Victim@Example.KZ", "\uff56ictim@example.kz"):
        resp = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert resp.status == 429, email
    # Stored, returned and unique in the normal form: fullwidth letters and case fold.
    body = owner_body(email="\uff21nn.Stra\u00dfe@Example.KZ")
    resp = await client.post("/api/auth/register/owner", json=body)
    assert resp.status == 201
    again = owner_body(email="ann.strasse@example.kz")
    assert (await client.post("/api/auth/register/owner", json=again)).status == 409
    token = (await login(client, "ANN.STRASSE@example.kz"))["token"]
    status, me = await _me_status(client, token)
    assert status == 200 and me["email"] == "ann.strasse@example.kz"
    assert victim.email == "victim@example.kz"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"password": "short7!"}, "password"),
        ({"password": "é" * 37}, "password"),  # 74 bytes: more than bcrypt reads
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"phone": "8 000 000 00 00"}, "phone"),
        ({"phone": "+7 701 000"}, "phone"),
        ({"full_name": "   "}, "full_name"),
        ({"phone": 77010000001}, "phone"),
        ({"email": None}, "email"),
        ({"location": "Almaty"}, "location"),  # a sitter field that does not apply, not empty
    ],
)
async def test_bad_owner_input_is_refused_and_changes_nothing(client, override, field):
    resp = await client.post("/api/auth/register/owner", json=owner_body(**override))
    assert resp.status == 400
    assert_error(await resp.json(), "validation_error", field)
    assert await client.app[POOL].fetchval("SELECT count(*) FROM users") == 0


async def test_missing_field_is_named(client):
    body = owner_body()
    del body["phone"]
    resp = await client.post("/api/auth/register/owner", json=body)
    assert resp.status == 400
    data = await resp.json()
    assert_error(data, "validation_error", "phone")
    assert "required" in data["error"]


async def test_sitter_experience_must_be_a_number_in_range(client):
    for value, status in (("3", 400), (-1, 400), (81, 400), (True, 400), (0, 201)):
        resp = await client.post(
            "/api/auth/register/sitter", json=sitter_body(experience_years=value)
        )
        assert resp.status == status, (value, await resp.text())


async def test_owner_registration_accepts_the_original_clients_empty_sitter_fields(client):
    body = owner_body(experience_years=0, certificates="", preferences="", location="")
    resp = await client.post("/api/auth/register/owner", json=body | {"role": "owner"})
    assert resp.status == 201


async def test_unknown_field_is_refused(client):
    resp = await client.post("/api/auth/register/owner", json=owner_body(is_admin=True))
    assert resp.status == 400
    data = await resp.json()
    assert_error(data, "validation_error", "is_admin")
    assert "Unknown field" in data["error"]


@pytest.mark.parametrize("path", ["/api/auth/register/owner", "/api/auth/register/sitter"])
async def test_role_field_must_name_the_endpoints_role(client, path):
    make = owner_body if path.endswith("owner") else sitter_body
    resp = await client.post(path, json=make(role="admin"))
    assert resp.status == 403
    assert_error(await resp.json(), "forbidden", "role")
    assert await client.app[POOL].fetchval("SELECT count(*) FROM users") == 0


@pytest.mark.parametrize(
    "raw", [b"{bad json", b"[1, 2]", b"", b"null", b'"text"', b'{"email": "a@b.kz",}']
)
async def test_malformed_body_is_a_json_400(client, raw):
    resp = await client.post(
        "/api/auth/login", data=raw, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert resp.content_type == "application/json"
    assert_error(await resp.json(), "validation_error")


async def test_two_mebibyte_body_is_413(client):
    resp = await client.post(
        "/api/auth/register/owner",
        data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert_error(await resp.json(), "payload_too_large")


async def test_large_body_under_the_limit_is_parsed_off_the_loop(client):
    body = owner_body(full_name="x" * 100) | {"padding": "y" * 200_000}
    resp = await client.post("/api/auth/register/owner", json=body)
    assert resp.status == 400
    assert_error(await resp.json(), "validation_error", "padding")


async def test_wrong_password_and_unknown_email_get_the_same_answer(client):
    owner = await make_owner(client)
    wrong = await client.post(
        "/api/auth/login", json={"email": owner.email, "password": "nope-nope"}
    )
    unknown = await client.post(
        "/api/auth/login", json={"email": "ghost@example.kz", "password": PASSWORD}
    )
    assert wrong.status == unknown.status == 401
    assert await wrong.json() == await unknown.json()
    assert (await wrong.json())["code"] == "unauthorized"


async def test_unknown_email_costs_as_much_as_a_wrong_password(aiohttp_client, settings):
    """At the default bcrypt cost, the medians of eight failed logins for a known and for an
    unknown e-mail are within 25 % of each other (once 4 ms against 350 ms)."""
    from nanny.app import create_app

    default_cost = dataclasses.replace(settings, bcrypt_rounds=Settings().bcrypt_rounds)
    client = await aiohttp_client(create_app(default_cost))
    body = owner_body()
    assert (await client.post("/api/auth/register/owner", json=body)).status == 201
    durations: dict[str, list[float]] = {"known": [], "unknown": []}
    for i in range(8):  # interleaved, so a busy moment of the machine slows both alike
        for kind, email in (("known", body["email"]), ("unknown", f"ghost{i}@example.kz")):
            started = time.perf_counter()
            resp = await client.post(
                "/api/auth/login", json={"email": email, "password": "wrong-password"}
            )
            durations[kind].append(time.perf_counter() - started)
            assert resp.status == 401
    known, unknown = (statistics.median(durations[k]) for k in ("known", "unknown"))
    assert abs(known - unknown) <= 0.25 * max(known, unknown), durations


async def test_overlong_password_at_login_is_just_wrong(client):
    owner = await make_owner(client)
    resp = await client.post("/api/auth/login", json={"email": owner.email, "password": "p" * 100})
    assert resp.status == 401


def _token(claims: dict, secret: str = TEST_JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _me_status(client, token: str) -> tuple[int, dict]:
    resp = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json()


async def test_token_failures_are_401(client):
    owner = await make_owner(client)
    now = datetime.now(UTC)
    base = {"sub": str(owner.user_id), "role": "owner", "iat": now}
    header, payload, signature = owner.token.split(".")
    tampered_payload = _b64({"sub": "999", "role": "admin", "iat": 1, "exp": 4102444800})
    ids = {"jti": "a-token-id", "gen": 0}
    live = _token(base | ids | {"exp": now + timedelta(hours=1)})
    assert (await _me_status(client, live))[0] == 200  # what the cases below differ from
    cases = {
        "expired": _token(base | ids | {"exp": now - timedelta(seconds=1)}),
        "no token id": _token(base | {"gen": 0, "exp": now + timedelta(hours=1)}),
        "no generation": _token(base | {"jti": "x", "exp": now + timedelta(hours=1)}),
        "generation not a number": _token(
            base | ids | {"gen": "0", "exp": now + timedelta(hours=1)}
        ),
        "token id with spaces": _token(
            base | ids | {"jti": "a b", "exp": now + timedelta(hours=1)}
        ),
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong secret": _token(base | {"exp": now + timedelta(hours=1)}, secret="s" * 48),
        "no exp": _token(base),
        "non-numeric sub": _token(base | {"sub": "abc", "exp": now + timedelta(hours=1)}),
        "garbage": "not-a-jwt",
    }
    for name, token in cases.items():
        status, data = await _me_status(client, token)
        assert status == 401, name
        assert_error(data, "unauthorized")
    assert (await _me_status(client, owner.token))[0] == 200


async def test_token_subject_is_ascii_digits_only(client):
    """A signed subject that is not the user id as we write it is a 401: "²" once gave a 500
    and the Arabic-Indic digits of a user's id authenticated as that user."""
    owner = await make_owner(client)
    exp = datetime.now(UTC) + timedelta(hours=1)
    # The id in Arabic-Indic (U+0660...) and fullwidth (U+FF10...) digits, and a superscript two.
    other_digits = [
        "".join(chr(zero + int(d)) for d in str(owner.user_id)) for zero in (0x660, 0xFF10)
    ]
    subjects = [*other_digits, "\u00b2", f" {owner.user_id}", f"+{owner.user_id}"]
    subjects += [f"0{owner.user_id}", f"{owner.user_id}\n", "2147483648", "9" * 30, ""]
    for sub in subjects:
        claims = {"sub": sub, "role": "owner", "iat": datetime.now(UTC), "exp": exp}
        token = _token(claims | {"jti": "t", "gen": 0})
        status, data = await _me_status(client, token)
        assert status == 401, sub
        assert_error(data, "unauthorized")
    claims = {"sub": str(owner.user_id), "role": "owner", "iat": datetime.now(UTC), "exp": exp}
    assert (await _me_status(client, _token(claims | {"jti": "t", "gen": 0})))[0] == 200


async def test_missing_or_malformed_authorization_header(client):
    resp = await client.get("/api/auth/me")
    assert resp.status == 401
    assert_error(await resp.json(), "unauthorized")
    resp = await client.get("/api/auth/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert resp.status == 401


async def test_deleted_users_token_is_refused(client):
    owner = await make_owner(client)
    await client.app[POOL].execute(
        "UPDATE users SET deleted_at = now(), email = NULL WHERE user_id = $1", owner.user_id
    )
    status, data = await _me_status(client, owner.token)
    assert status == 401
    assert_error(data, "unauthorized")
    resp = await client.post("/api/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert resp.status == 401


async def test_cookie_authenticates_reads(client):
    owner = await make_owner(client)
    resp = await client.get("/api/auth/me", headers={"Cookie": f"nanny_token={owner.token}"})
    assert resp.status == 200
    assert (await resp.json())["user_id"] == owner.user_id


async def test_concurrent_logins_all_succeed(client):
    owner = await make_owner(client)
    body = {"email": owner.email, "password": PASSWORD}
    logins = [client.post("/api/auth/login", json=body) for _ in range(10)]
    results = await asyncio.gather(*logins)
    assert all(r.status == 200 for r in results)


async def test_admin_role_is_reported(client):
    admin = await make_admin(client)
    status, data = await _me_status(client, admin.token)
    assert status == 200 and data["role"] == "admin" and data["phone"] is None


async def test_user_rows_are_reused_briefly_and_local_changes_apply_at_once(client):
    """A deletion the service was not told about (made in the database) takes effect once the
    per-process cache expires; a deletion through the API takes effect at once. (Across
    processes: tests/test_ws_cluster.py.)"""
    client.app[USER_CACHE].ttl = 0.3  # AUTH_CACHE_SECONDS, shortened for the test
    owner = await make_owner(client)
    other = await make_owner(client)
    admin = await make_admin(client)
    assert (await _me_status(client, owner.token))[0] == 200
    await client.app[POOL].execute(
        "UPDATE users SET deleted_at = now(), email = NULL WHERE user_id = $1", owner.user_id
    )
    assert (await _me_status(client, owner.token))[0] == 200  # still cached
    await asyncio.sleep(0.35)
    assert (await _me_status(client, owner.token))[0] == 401

    assert (await _me_status(client, other.token))[0] == 200
    resp = await client.delete(f"/api/admin/users/{other.user_id}", headers=admin.headers)
    assert resp.status == 204
    assert (await _me_status(client, other.token))[0] == 401
