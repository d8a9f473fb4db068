"""`nanny seed-demo`: idempotent demo data, and the bulk mode's counts and aggregates."""

from __future__ import annotations

import io
import os

import asyncpg
import pytest

from nanny import bulk_seed, seed
from nanny.cli import main
from nanny.config import Settings

TABLES = ("users", "sitters", "pets", "services", "bookings", "reviews", "payments", "chats",
          "messages")  # fmt: skip


async def counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
    finally:
        await conn.close()


async def inconsistencies(database_url: str) -> list:
    """Sitters whose aggregates differ from their reviews, and chats whose last_seq is not
    their newest message."""
    conn = await asyncpg.connect(database_url)
    try:
        sitters = await conn.fetch(
            """
            SELECT s.user_id FROM sitters s
            LEFT JOIN (SELECT sitter_id, count(*) AS n, sum(rating) AS total
                       FROM reviews GROUP BY sitter_id) r ON r.sitter_id = s.user_id
            WHERE s.rating_count <> coalesce(r.n, 0) OR s.rating_sum <> coalesce(r.total, 0)
            """
        )
        chats = await conn.fetch(
            """
            SELECT c.chat_id FROM chats c
            WHERE c.last_seq <> coalesce((SELECT max(seq) FROM messages m
                                          WHERE m.chat_id = c.chat_id), 0)
            """
        )
        return list(sitters) + list(chats)
    finally:
        await conn.close()


async def run_seed(database_url: str, scale: int = 0) -> tuple[str, list[str]]:
    out, lines = io.StringIO(), []
    await seed.run(database_url, scale=scale, bcrypt_rounds=4, out=out, progress=lines.append)
    return out.getvalue(), lines


async def test_demo_seed_is_idempotent_and_believable(database_url, aiohttp_client, tmp_path):
    printed, _ = await run_seed(database_url)
    assert "demo data loaded" in printed
    assert seed.ADMIN_EMAIL in printed and seed.DEMO_PASSWORD in printed
    first = await counts(database_url)
    assert first["users"] == 1 + len(seed.DEMO_SITTERS) + len(seed.DEMO_OWNERS)
    assert first["bookings"] == first["chats"] == len(seed.DEMO_BOOKINGS)
    assert first["reviews"] == 5 and first["messages"] == 6 and first["payments"] == 7

    printed, _ = await run_seed(database_url)
    assert "already present; nothing changed" in printed
    assert await counts(database_url) == first
    assert await inconsistencies(database_url) == []

    conn = await asyncpg.connect(database_url)
    try:
        statuses = {r[0] for r in await conn.fetch("SELECT DISTINCT status FROM bookings")}
        types = {r[0] for r in await conn.fetch("SELECT DISTINCT type FROM services")}
        cities = await conn.fetchval(
            """SELECT array_agg(DISTINCT split_part(location, ',', 1)) FROM sitters
               WHERE status = 'approved'"""
        )
        sitter_states = {r[0] for r in await conn.fetch("SELECT DISTINCT status FROM sitters")}
    finally:
        await conn.close()
    assert statuses == {"pending", "confirmed", "completed", "cancelled"}
    assert types == {"walking", "boarding", "home-care"}
    assert sorted(cities) == ["Almaty", "Astana"]
    assert sitter_states == {"pending", "approved", "rejected"}

    # The printed logins work against the real app, and the data reads back through the API.
    from nanny.app import create_app

    settings = Settings(database_url=database_url, jwt_secret="s" * 40, data_dir=tmp_path)
    client = await aiohttp_client(create_app(settings))
    tokens = {}
    for email in (seed.ADMIN_EMAIL, "madina@demo.nanny.kz", "aigerim@demo.nanny.kz"):
        resp = await client.post(
            "/api/auth/login", json={"email": email, "password": seed.DEMO_PASSWORD}
        )
        assert resp.status == 200, email
        tokens[email] = (await resp.json())["token"]
    resp = await client.get(
        "/api/admin/stats", headers={"Authorization": f"Bearer {tokens[seed.ADMIN_EMAIL]}"}
    )
    stats = await resp.json()
    assert stats["users"] == {"owner": 5, "sitter": 7, "admin": 1}
    assert stats["bookings"] == {"pending": 2, "confirmed": 2, "completed": 5, "cancelled": 2}
    assert stats["revenue_paid"] > 0


async def test_bulk_scale_one(database_url):
    printed, progress = await run_seed(database_url, scale=1)
    assert "bulk: loaded 1 block(s)" in printed
    assert "  bookings: 10,300 done" in progress and "  reviews: 10,000 done" in progress
    assert any(line.startswith("  users: ") and "/" in line for line in progress)
    demo = 1 + len(seed.DEMO_SITTERS) + len(seed.DEMO_OWNERS)
    first = await counts(database_url)
    assert first["users"] == demo + 1100
    assert first["sitters"] == len(seed.DEMO_SITTERS) + 100
    assert first["bookings"] == first["chats"] == len(seed.DEMO_BOOKINGS) + 10_300
    assert first["reviews"] == 5 + 10_000
    assert first["services"] == len(seed.DEMO_SERVICES) + 300
    assert first["pets"] == len(seed.DEMO_PETS) + 1200
    assert await inconsistencies(database_url) == []

    printed, _ = await run_seed(database_url, scale=1)
    assert "already at --scale 1; nothing changed" in printed
    assert await counts(database_url) == first

    conn = await asyncpg.connect(database_url)
    try:
        # One password hash for every bulk account, and it is the demo password's.
        hashes = await conn.fetchval(
            "SELECT count(DISTINCT password_hash) FROM users WHERE email LIKE '%@bulk.nanny.kz'"
        )
        # Ids were reserved from the sequences: the API's next insert does not collide.
        new_id = await conn.fetchval(
            """INSERT INTO users (email, full_name, password_hash, role)
               VALUES ('after@bulk.test', 'After', 'x', 'owner') RETURNING user_id"""
        )
        max_before = await conn.fetchval(
            "SELECT max(user_id) FROM users WHERE user_id <> $1", new_id
        )
    finally:
        await conn.close()
    assert hashes == 1
    assert new_id > max_before


async def test_bulk_adds_only_missing_blocks(database_url):
    await run_seed(database_url, scale=1)
    one = await counts(database_url)
    printed, _ = await run_seed(database_url, scale=2)
    assert "bulk: loaded 1 block(s)" in printed
    two = await counts(database_url)
    assert two["bookings"] - one["bookings"] == 10_300
    assert two["users"] - one["users"] == 1100
    assert await inconsistencies(database_url) == []


def test_cli_seed_demo(database_url, capsys):
    os.environ["DATABASE_URL"] = database_url
    os.environ["BCRYPT_ROUNDS"] = "4"
    try:
        assert main(["seed-demo"]) == 0
        assert "admin@demo.nanny.kz" in capsys.readouterr().out
        assert main(["seed-demo", "--scale", "-1"]) == 2
        assert "--scale" in capsys.readouterr().err
    finally:
        del os.environ["DATABASE_URL"], os.environ["BCRYPT_ROUNDS"]


@pytest.mark.parametrize("line", ["  users: 10/20", "  users: 20 done"])
def test_progress_lines(capsys, line):
    bulk_seed.stderr_progress(line)
    err = capsys.readouterr().err
    assert line in err and err.startswith("\r")
    assert err.endswith("\n") == line.endswith("done")
