"""Phone numbers as people in Kazakhstan write them: normalised to E.164 by the API and the
registration form, refused when not a valid mobile or fixed-line number, and rewritten in
existing rows by migration 0011."""

from __future__ import annotations

import asyncpg
import pytest
from yoyo import read_migrations

from nanny.db.migrate import MIGRATIONS_DIR, apply_migrations, connect_backend
from nanny.phones import display_phone, normalise_phone
from tests.factories import login, owner_body, sitter_body
from tests.market import assert_error

KAZAKH_WRITINGS = ["87011234567", "+7 701 123 45 67", "8 (701) 123-45-67", "7011234567"]
REFUSED = [
    "12345",  # too short for any plan
    "+7 701 123",  # cut off
    "8 (000) 000-00-00",  # no such range
    "8-701-ABC-4567",  # letters are not mapped to digits
    "+7 800 080 00 00",  # toll-free: not a person's line
    "8 701 123 45 67 8",  # one digit too many
    "",
    "+" + "7" * 40,
]


@pytest.mark.parametrize("written", KAZAKH_WRITINGS)
def test_kazakh_numbers_as_people_write_them_are_one_number(written):
    assert normalise_phone(written) == "+77011234567"


def test_fixed_lines_and_other_countries_are_kept_with_their_code():
    assert normalise_phone("8 (727) 250-00-00") == "+77272500000"  # Almaty landline
    assert normalise_phone("+7 916 123-45-67") == "+79161234567"  # Russian mobile
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"
    assert display_phone("+77011234567") == "+7 701 123 45 67"
    assert display_phone("8 701 garbled") == "8 701 garbled" and display_phone(None) == ""
    assert display_phone("+99912345678") == "+99912345678"  # no such country code


@pytest.mark.parametrize("written", REFUSED)
def test_what_is_not_a_personal_number_is_refused(written):
    assert normalise_phone(written) is None


@pytest.mark.parametrize("written", KAZAKH_WRITINGS[:3])
async def test_registration_stores_and_returns_e164(client, written):
    body = owner_body(phone=written)
    resp = await client.post("/api/auth/register/owner", json=body)
    assert resp.status == 201, await resp.text()
    data = await login(client, body["email"])
    assert data["user"]["phone"] == "+77011234567"
    headers = {"Authorization": f"Bearer {data['token']}"}
    me = await (await client.get("/api/auth/me", headers=headers)).json()
    assert me["phone"] == "+77011234567"


@pytest.mark.parametrize("written", REFUSED)
@pytest.mark.parametrize("role", ["owner", "sitter"])
async def test_registration_refuses_invalid_numbers_naming_the_field(client, written, role):
    body = (owner_body if role == "owner" else sitter_body)(phone=written)
    resp = await client.post(f"/api/auth/register/{role}", json=body)
    assert resp.status == 400
    assert_error(await resp.json(), "validation_error", "phone")
    resp = await client.post("/api/auth/login", json={"email": body["email"], "password": "x"})
    assert resp.status == 401  # no account was made


async def test_the_migration_rewrites_stored_numbers_and_keeps_unreadable_ones(
    empty_database_url,
):
    migrations = read_migrations(str(MIGRATIONS_DIR))
    backend = connect_backend(empty_database_url)
    try:
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0011")))
    finally:
        backend.connection.close()
    stored = {
        "a@example.kz": "8 (701) 123-45-67",
        "b@example.kz": "87017654321",
        "c@example.kz": "+77010000001",  # already E.164
        "d@example.kz": "call after 6pm",  # kept as it was
        "e@example.kz": None,
    }
    conn = await asyncpg.connect(empty_database_url)
    try:
        for email, phone in stored.items():
            await conn.execute(
                "INSERT INTO users (email, phone, full_name, password_hash, role)"
                " VALUES ($1, $2, 'Someone', 'x', 'owner')",
                email,
                phone,
            )
        assert apply_migrations(empty_database_url) >= 1
        rows = dict(await conn.fetch("SELECT email, phone FROM users"))
        locales = await conn.fetch("SELECT DISTINCT locale, time_zone FROM users")
    finally:
        await conn.close()
    assert rows == {
        "a@example.kz": "+77011234567",
        "b@example.kz": "+77017654321",
        "c@example.kz": "+77010000001",
        "d@example.kz": "call after 6pm",
        "e@example.kz": None,
    }
    assert [tuple(r) for r in locales] == [(None, None)]
