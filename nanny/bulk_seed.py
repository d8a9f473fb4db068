"""The bulk data set for benchmarks (`nanny seed-demo --scale N`): blocks of 100 sitters, 1,000
owners and 10,000 bookings with reviews. `--scale N` loads the blocks that are missing up to N,
so `--scale 1` then `--scale 10` adds nine blocks and a repeated run adds nothing.

Rows go in with COPY (ids reserved from the tables' sequences first, so the rows can refer to
each other), one password hash is shared by every bulk account, and the sitters' rating
aggregates are computed from the very reviews being loaded.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from nanny.db import bookings as db_bookings
from nanny.seed_calendar import bulk_schedule

BULK_DOMAIN = "bulk.nanny.kz"
# One bulk load at a time per database: it counts the blocks there before writing.
BULK_LOCK = 0x6E616E6E79_626B  # "nanny" "bk"

SITTERS_PER_BLOCK = 100
OWNERS_PER_BLOCK = 1000
BOOKINGS_PER_BLOCK = 10_000
COPY_CHUNK = 20_000

Progress = Callable[[str], None]


def stderr_progress(line: str) -> None:
    sys.stderr.write("\r" + line.ljust(60))
    if line.endswith("done"):
        sys.stderr.write("\n")
    sys.stderr.flush()


FIRST_NAMES = [
    "Aigerim",
    "Aruzhan",
    "Dana",
    "Zhanna",
    "Madina",
    "Saule",
    "Gulnara",
    "Aliya",
    "Dinara",
    "Olga",
    "Anna",
    "Yelena",
    "Natalia",
    "Irina",
    "Daniyar",
    "Yerlan",
    "Nurlan",
    "Timur",
    "Arman",
    "Askar",
    "Bauyrzhan",
    "Dmitry",
    "Sergey",
    "Alexey",
    "Igor",
    "Maxim",
    "Ruslan",
]
LAST_NAMES = [
    "Nurlanuly",
    "Seitkali",
    "Abenov",
    "Akhmetov",
    "Kassymov",
    "Omarova",
    "Zhaksylykova",
    "Tulegenova",
    "Bekova",
    "Sadykova",
    "Ivanov",
    "Smirnova",
    "Kovalev",
    "Pak",
    "Kim",
    "Volkova",
    "Petrov",
    "Sokolova",
    "Iskakov",
    "Mukhametov",
]
CITIES = [
    "Almaty",
    "Almaty",
    "Almaty",
    "Almaty",
    "Astana",
    "Astana",
    "Astana",
    "Shymkent",
    "Karaganda",
    "Aktobe",
]
PET_NAMES = ["Barsik", "Murka", "Rex", "Tuzik", "Sharik", "Pushok", "Aktos", "Bars", "Luna"]
SERVICE_TYPES = ("walking", "boarding", "home-care")


@dataclass(frozen=True)
class BulkResult:
    blocks_before: int
    blocks_loaded: int
    rows: dict[str, int]


async def _reserve_ids(conn: asyncpg.Connection, table: str, column: str, n: int) -> list[int]:
    if n == 0:
        return []
    rows = await conn.fetch(
        "SELECT nextval(pg_get_serial_sequence($1, $2)) AS id FROM generate_series(1, $3)",
        table,
        column,
        n,
    )
    return [r["id"] for r in rows]


async def _copy(
    conn: asyncpg.Connection,
    table: str,
    columns: Sequence[str],
    records: list[tuple[Any, ...]],
    progress: Progress,
) -> int:
    # COPY takes explicit values even for GENERATED ALWAYS identity columns.
    for start in range(0, len(records), COPY_CHUNK):
        chunk = records[start : start + COPY_CHUNK]
        await conn.copy_records_to_table(table, records=chunk, columns=list(columns))
        progress(f"  {table}: {start + len(chunk):,}/{len(records):,}")
    progress(f"  {table}: {len(records):,} done")
    return len(records)


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def bulk_email(kind: str, block: int, i: int) -> str:
    return f"{kind}{block}-{i}@{BULK_DOMAIN}"


_PHONE_PREFIX = {"sitter": "+7702", "owner": "+7705"}


def _user_row(
    uid: int, role: str, block: int, i: int, rng: random.Random, pw: str, created: datetime
) -> tuple[Any, ...]:
    """A users row for COPY: id, e-mail, phone, name, password hash, role, created_at."""
    phone = f"{_PHONE_PREFIX[role]}{block:03d}{i:04d}"
    return (uid, bulk_email(role, block, i), phone, _name(rng), pw, role, created)


async def seed_bulk(
    conn: asyncpg.Connection, scale: int, password_hash: str, progress: Progress
) -> BulkResult:
    """Load the missing blocks up to `scale` in one transaction."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", BULK_LOCK)
        have = await conn.fetchval(
            "SELECT count(*) FROM users WHERE role = 'sitter' AND email LIKE $1",
            f"sitter%@{BULK_DOMAIN}",
        )
        before = have // SITTERS_PER_BLOCK
        blocks = list(range(before + 1, scale + 1))
        if not blocks:
            return BulkResult(before, 0, {})
        rows = await _write_bulk(conn, blocks, password_hash, progress)
    return BulkResult(before, len(blocks), rows)


async def _write_bulk(
    conn: asyncpg.Connection, blocks: list[int], pw: str, progress: Progress
) -> dict[str, int]:
    nb = len(blocks)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    user_ids = await _reserve_ids(
        conn, "users", "user_id", nb * (SITTERS_PER_BLOCK + OWNERS_PER_BLOCK)
    )
    ids = iter(user_ids)
    users, sitters, services, pets = [], [], [], []
    service_ids = iter(await _reserve_ids(conn, "services", "service_id", nb * 300))
    # Every owner has a pet, every fifth a second one.
    pet_ids = iter(await _reserve_ids(conn, "pets", "pet_id", nb * 1200))
    per_sitter = BOOKINGS_PER_BLOCK // SITTERS_PER_BLOCK
    # Per sitter: the completed history plus one pending, one confirmed, one cancelled ahead.
    booking_ids = iter(
        await _reserve_ids(
            conn, "bookings", "booking_id", nb * SITTERS_PER_BLOCK * (per_sitter + 3)
        )
    )
    bookings, chats, reviews, payments = [], [], [], []
    schedules, time_off = [], []
    for block in blocks:
        rng = random.Random(block)
        block_sitters = []
        for i in range(1, SITTERS_PER_BLOCK + 1):
            uid = next(ids)
            users.append(_user_row(uid, "sitter", block, i, rng, pw, now - timedelta(days=400)))
            city = rng.choice(CITIES)
            svc = []
            for type_ in SERVICE_TYPES:
                sid = next(service_ids)
                price = Decimal(rng.randrange(1500, 6001, 100))
                services.append((sid, uid, type_, price, f"{type_.title()} in {city}"))
                svc.append((sid, price))
            block_sitters.append((uid, city, rng.randrange(0, 15), svc))
        block_owners = []
        for i in range(1, OWNERS_PER_BLOCK + 1):
            uid = next(ids)
            users.append(_user_row(uid, "owner", block, i, rng, pw, now - timedelta(days=300)))
            owned = []
            for _ in range(2 if i % 5 == 0 else 1):
                pid = next(pet_ids)
                type_ = rng.choice(("cat", "dog", "dog", "rodent"))
                pets.append((pid, uid, rng.choice(PET_NAMES), type_, rng.randrange(0, 15)))
                owned.append(pid)
            block_owners.append((uid, owned))

        # Each sitter's history is a run of consecutive days, one booking a day, so no two of
        # its bookings overlap; the ones ahead sit on days of their own.
        history_start = now - timedelta(days=per_sitter + 10)
        n = 0
        for s_index, (sitter_id, city, years, svc) in enumerate(block_sitters):
            count = total = 0
            for day in range(per_sitter + 3):
                owner_id, owned = block_owners[n % OWNERS_PER_BLOCK]
                n += 1
                service_id, price = svc[day % 3]
                hours = 1 + (day + s_index) % 4
                if day < per_sitter:
                    status = "completed"
                    start = history_start + timedelta(days=day, hours=9)
                else:
                    status = ("pending", "confirmed", "cancelled")[day - per_sitter]
                    start = now + timedelta(days=3 + 2 * (day - per_sitter), hours=9)
                end = start + timedelta(hours=hours)
                bid = next(booking_ids)
                amount = price * hours
                bookings.append(
                    (
                        bid,
                        owner_id,
                        sitter_id,
                        owned[0],
                        service_id,
                        start,
                        end,
                        status,
                        "owner" if status == "cancelled" else None,  # cancel_reason
                        amount,
                        start - timedelta(days=2),
                        end if status == "completed" else now,
                    )
                )
                chats.append((bid,))
                if status == "completed":
                    rating = rng.choices((5, 4, 3, 2, 1), weights=(50, 30, 10, 5, 5))[0]
                    count += 1
                    total += rating
                    reviews.append(
                        (bid, owner_id, sitter_id, rating, "", end + timedelta(hours=20))
                    )
                    payments.append((bid, amount, "card", "paid", end))
                elif status == "confirmed":
                    payments.append((bid, amount, "cash", "paid", now))
            weekly, days, off = bulk_schedule(sitter_id, rng, now.date())
            schedules += weekly
            time_off += off
            sitters.append(
                (
                    sitter_id,
                    years,
                    "",
                    "",
                    city,
                    "approved",
                    count,
                    total,
                    now - timedelta(days=400),
                    days,
                )
            )

    # In the order the foreign keys need.
    tables = [
        (
            "users",
            ("user_id", "email", "phone", "full_name", "password_hash", "role", "created_at"),
            users,
        ),
        (
            "sitters",
            (
                "user_id",
                "experience_years",
                "certificates",
                "preferences",
                "location",
                "status",
                "rating_count",
                "rating_sum",
                "created_at",
                "schedule_days",
            ),
            sitters,
        ),
        ("sitter_schedule", ("sitter_id", "weekday", "start_minute", "end_minute"), schedules),
        ("time_off", ("sitter_id", "start_time", "end_time"), time_off),
        (
            "services",
            ("service_id", "sitter_id", "type", "price_per_hour", "description"),
            services,
        ),
        ("pets", ("pet_id", "owner_id", "name", "type", "age"), pets),
        ("bookings", db_bookings.BOOKING_COLUMNS, bookings),
        ("chats", ("booking_id",), chats),
        (
            "reviews",
            ("booking_id", "owner_id", "sitter_id", "rating", "comment", "created_at"),
            reviews,
        ),
        ("payments", ("booking_id", "amount", "method", "status", "created_at"), payments),
    ]
    return {
        table: await _copy(conn, table, columns, records, progress)
        for table, columns, records in tables
    }
