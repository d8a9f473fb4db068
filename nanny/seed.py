"""`nanny seed-demo`: a small believable data set to try Nanny with, and (`--scale N`) the bulk
data set of nanny/bulk_seed.py for benchmarks.

The demo set is idempotent, keyed on its fixed e-mails (all @demo.nanny.kz): once its admin
exists, nothing is written again. Its rows go in through the same statements as the API's where
a rule follows from them (reviews update the sitters' rating aggregates).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from nanny.bulk_seed import (
    BULK_DOMAIN,
    OWNERS_PER_BLOCK,
    SITTERS_PER_BLOCK,
    Progress,
    seed_bulk,
    stderr_progress,
)
from nanny.db import reviews as db_reviews
from nanny.seed_calendar import write_demo_calendars

DEMO_PASSWORD = "nanny-demo-2026"
DEMO_DOMAIN = "demo.nanny.kz"
ADMIN_EMAIL = f"admin@{DEMO_DOMAIN}"
# One demo load at a time per database: it reads "is it there" before writing.
DEMO_LOCK = 0x6E616E6E79  # "nanny"


@dataclass(frozen=True)
class Login:
    role: str
    email: str
    full_name: str
    note: str = ""


# fmt: off
# (key, full name, location, years, certificates, preferences, status)
DEMO_SITTERS = [
    ("aigerim", "Aigerim Nurlanovna Seitkali", "Almaty, Bostandyk", 6,
     "Veterinary assistant diploma", "dogs, large breeds", "approved"),
    ("dmitry", "Dmitry Kovalev", "Almaty, Medeu", 4,
     "Canine first aid (2024)", "dogs and cats", "approved"),
    ("aliya", "Aliya Zhaksylykova", "Almaty, Auezov", 2, "", "cats, rodents", "approved"),
    ("yerlan", "Yerlan Abenov", "Astana, Yesil", 8,
     "Dog trainer certificate", "active dogs, long walks", "approved"),
    ("olga", "Olga Smirnova", "Astana, Almaty district", 3,
     "Feline care course", "cats, senior pets", "approved"),
    ("saule", "Saule Tulegenova", "Astana, Saryarka", 1, "", "small dogs", "pending"),
    ("sergey", "Sergey Ivanov", "Almaty, Alatau", 0, "", "any", "rejected"),
]
# (sitter key, type, price per hour, description)
DEMO_SERVICES = [
    ("aigerim", "walking", "2500.00", "Hour-long walks along the Esentai river, photos included"),
    ("aigerim", "boarding", "3500.00", "Your dog stays in my house with a fenced yard"),
    ("dmitry", "walking", "2000.00", "Morning and evening walks in Medeu"),
    ("dmitry", "home-care", "3000.00", "Feeding, litter and play at your home"),
    ("aliya", "home-care", "1800.00", "Cat sitting at your place, daily photo report"),
    ("yerlan", "walking", "2200.00", "Long walks and basic obedience practice"),
    ("yerlan", "boarding", "4000.00", "Boarding in a quiet flat near the Baiterek"),
    ("olga", "home-care", "2500.00", "Visits twice a day, medication given on schedule"),
    ("olga", "boarding", "3200.00", "Cats only, a separate room for each guest"),
]
# (key, full name)
DEMO_OWNERS = [
    ("madina", "Madina Omarova"),
    ("timur", "Timur Akhmetov"),
    ("ekaterina", "Ekaterina Volkova"),
    ("nurlan", "Nurlan Kassymov"),
    ("anastasia", "Anastasia Pak"),
]
# (owner key, name, type, age, notes)
DEMO_PETS = [
    ("madina", "Barsik", "cat", 4, "Shy with strangers, loves tuna"),
    ("madina", "Rex", "dog", 6, "German shepherd, pulls on the lead"),
    ("timur", "Tuzik", "dog", 2, "Jack Russell, endless energy"),
    ("ekaterina", "Murka", "cat", 11, "Kidney diet, pill at 9:00"),
    ("nurlan", "Aktos", "dog", 3, "Central Asian shepherd, calm"),
    ("anastasia", "Pushok", "rodent", 1, "Hamster, night owl"),
    ("anastasia", "Snezhka", "cat", 5, ""),
]
# (owner, pet, sitter, service index within DEMO_SERVICES, days from now, hours, status,
#  review (rating, comment) or None, payment status or None, chat lines [(who, text)])
DEMO_BOOKINGS = [
    ("madina", "Rex", "aigerim", 0, -20, 2, "completed", (5, "Rex came back tired and happy!"),
     "paid", [("owner", "Salem! Rex is ready at 10."), ("sitter", "Great, I'll be there.")]),
    ("timur", "Tuzik", "aigerim", 0, -12, 1, "completed", (4, "Punctual, sent lots of photos"),
     "paid", []),
    ("ekaterina", "Murka", "aliya", 4, -9, 3, "completed",
     (5, "Murka got her pill on time, thank you"), "paid", []),
    ("nurlan", "Aktos", "yerlan", 5, -5, 2, "completed", (3, "Fine walk, a bit late"), "paid",
     []),
    ("anastasia", "Snezhka", "olga", 8, -30, 48, "completed", (5, "Спасибо, всё отлично!"),
     "paid", []),
    ("madina", "Barsik", "dmitry", 3, 3, 2, "confirmed", None, "paid",
     [("owner", "The key is with the concierge."), ("sitter", "Понял, спасибо!"),
      ("owner", "Barsik hides under the bed, don't worry.")]),
    ("timur", "Tuzik", "yerlan", 5, 5, 1, "confirmed", None, None, []),
    ("nurlan", "Aktos", "yerlan", 6, 8, 24, "pending", None, None,
     [("owner", "Can Aktos stay with your dog?")]),
    ("ekaterina", "Murka", "olga", 7, 6, 2, "pending", None, None, []),
    ("anastasia", "Pushok", "aliya", 4, 2, 1, "cancelled", None, "refunded", []),
    ("madina", "Rex", "dmitry", 2, -3, 1, "cancelled", None, None, []),
]
# fmt: on
DEMO_APPROVED = {key for key, *_, status in DEMO_SITTERS if status == "approved"}


def _demo_email(key: str) -> str:
    return f"{key}@{DEMO_DOMAIN}"


def _demo_phone(n: int) -> str:
    return f"+7701555{n:04d}"


async def seed_demo(conn: asyncpg.Connection, password_hash: str) -> tuple[bool, list[Login]]:
    """Load the demo set once; (whether anything was written, the demo logins)."""
    logins = [Login("admin", ADMIN_EMAIL, "Nanny Admin")]
    logins += [
        Login("sitter", _demo_email(k), name, f"{loc}, {status}")
        for k, name, loc, *_, status in DEMO_SITTERS
    ]
    logins += [Login("owner", _demo_email(k), name) for k, name in DEMO_OWNERS]
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", DEMO_LOCK)
        exists = await conn.fetchval(
            "SELECT 1 FROM users WHERE lower(email) = lower($1)", ADMIN_EMAIL
        )
        if exists:
            return False, logins
        await _write_demo(conn, password_hash)
    return True, logins


async def _insert_user(conn, email: str, name: str, role: str, phone: str | None, pw: str) -> int:
    return await conn.fetchval(
        """
        INSERT INTO users (email, phone, full_name, password_hash, role)
        VALUES ($1, $2, $3, $4, $5) RETURNING user_id
        """,
        email,
        phone,
        name,
        pw,
        role,
    )


async def _write_demo(conn: asyncpg.Connection, pw: str) -> None:
    phone = iter(range(1, 10_000))
    await _insert_user(conn, ADMIN_EMAIL, "Nanny Admin", "admin", None, pw)
    sitters: dict[str, int] = {}
    for key, name, location, years, certificates, preferences, status in DEMO_SITTERS:
        uid = await _insert_user(
            conn, _demo_email(key), name, "sitter", _demo_phone(next(phone)), pw
        )
        await conn.execute(
            """
            INSERT INTO sitters (user_id, experience_years, certificates, preferences, location,
                                 status)
            VALUES ($1, $2, $3, $4, $5, $6)
            """,
            uid,
            years,
            certificates,
            preferences,
            location,
            status,
        )
        sitters[key] = uid
    services = []
    for key, type_, price, description in DEMO_SERVICES:
        services.append(
            await conn.fetchval(
                """
                INSERT INTO services (sitter_id, type, price_per_hour, description)
                VALUES ($1, $2, $3, $4) RETURNING service_id
                """,
                sitters[key],
                type_,
                Decimal(price),
                description,
            )
        )
    owners: dict[str, int] = {}
    for key, name in DEMO_OWNERS:
        owners[key] = await _insert_user(
            conn, _demo_email(key), name, "owner", _demo_phone(next(phone)), pw
        )
    pets: dict[tuple[str, str], int] = {}
    for owner, name, type_, age, notes in DEMO_PETS:
        pets[(owner, name)] = await conn.fetchval(
            """
            INSERT INTO pets (owner_id, name, type, age, notes) VALUES ($1, $2, $3, $4, $5)
            RETURNING pet_id
            """,
            owners[owner],
            name,
            type_,
            age,
            notes,
        )
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    for owner, pet, sitter, service, days, hours, status, review, paid, chat in DEMO_BOOKINGS:
        start = today + timedelta(days=days)
        price = Decimal(DEMO_SERVICES[service][2])
        booking_id = await conn.fetchval(
            """
            INSERT INTO bookings (owner_id, sitter_id, pet_id, service_id, start_time, end_time,
                                  status, cancel_reason, total_price, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7::text,
                    CASE WHEN $7::text = 'cancelled' THEN 'owner' END, $8,
                    least(now(), $5::timestamptz - interval '3 days'))
            RETURNING booking_id
            """,
            owners[owner],
            sitters[sitter],
            pets[(owner, pet)],
            services[service],
            start,
            start + timedelta(hours=hours),
            status,
            price * hours,
        )
        chat_id = await conn.fetchval(
            "INSERT INTO chats (booking_id, last_seq) VALUES ($1, $2) RETURNING chat_id",
            booking_id,
            len(chat),
        )
        for seq, (who, text) in enumerate(chat, start=1):
            sender = owners[owner] if who == "owner" else sitters[sitter]
            await conn.execute(
                "INSERT INTO messages (chat_id, seq, sender_id, content) VALUES ($1, $2, $3, $4)",
                chat_id,
                seq,
                sender,
                text,
            )
        if paid:
            await conn.execute(
                """
                INSERT INTO payments (booking_id, amount, method, status)
                VALUES ($1, $2, $3, $4)
                """,
                booking_id,
                price * hours,
                "card" if len(chat) % 2 == 0 else "cash",
                paid,
            )
        if review:
            # The same function as POST /api/reviews, so the sitter aggregates follow.
            await db_reviews.create_review(
                conn,
                booking_id=booking_id,
                owner_id=owners[owner],
                rating=review[0],
                comment=review[1],
            )
    # Schedules and time off last: they are checked against the bookings above.
    await write_demo_calendars(conn, {k: v for k, v in sitters.items() if k in DEMO_APPROVED})


async def run(
    database_url: str,
    *,
    scale: int = 0,
    bcrypt_rounds: int = 12,
    out=None,
    progress: Progress = stderr_progress,
) -> int:
    import asyncio

    import bcrypt

    out = out or sys.stdout
    # One hash for every account of this run: bcrypt is the slow part, not the rows.
    password_hash = (
        await asyncio.to_thread(
            bcrypt.hashpw, DEMO_PASSWORD.encode(), bcrypt.gensalt(bcrypt_rounds)
        )
    ).decode()
    # Demo data are not events: nobody is notified of them (nanny_notify reads the setting).
    conn = await asyncpg.connect(
        database_url, server_settings={"timezone": "UTC", "nanny.notifications": "off"}
    )
    try:
        wrote, logins = await seed_demo(conn, password_hash)
        print(
            "demo data loaded" if wrote else "demo data already present; nothing changed",
            file=out,
        )
        if scale:
            started = time.monotonic()
            result = await seed_bulk(conn, scale, password_hash, progress)
            if result.blocks_loaded:
                total = sum(result.rows.values())
                print(
                    f"bulk: loaded {result.blocks_loaded} block(s) ({total:,} rows) in "
                    f"{time.monotonic() - started:.1f}s; now at --scale {scale}",
                    file=out,
                )
            else:
                print(
                    f"bulk: already at --scale {result.blocks_before}; nothing changed",
                    file=out,
                )
    finally:
        await conn.close()
    print(f"\nDemo logins (password for all: {DEMO_PASSWORD}):", file=out)
    for login in logins:
        note = f"  ({login.note})" if login.note else ""
        print(f"  {login.role:<7} {login.email:<28} {login.full_name}{note}", file=out)
    if scale:
        print(
            f"  bulk accounts: sitter<B>-<N>@{BULK_DOMAIN} (N 1..{SITTERS_PER_BLOCK}), "
            f"owner<B>-<N>@{BULK_DOMAIN} (N 1..{OWNERS_PER_BLOCK}), block B 1..{scale}",
            file=out,
        )
    return 0
