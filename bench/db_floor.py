"""What PostgreSQL alone does on this machine, with no HTTP and no Python in between: pgbench
drives the statements behind get booking and create booking straight at the database, with
as many connections as `nanny serve --workers 2` has in its pools. The creation figure is the
ceiling for POST /api/bookings here: the server, wrk and PostgreSQL then share the same cores.

    python bench/db_floor.py --scale 1 --clients 20 --duration 8 --rounds 2

Scenarios:
- read:   the one-row read of bench/baseline_app.py, by a random seeded booking id.
- create: nanny_create_booking, the one statement behind POST /api/bookings, with the
          arguments the app passes (every rule checked, the booking and its chat stored).
- insert: the same booking row inserted with no rule checked beyond the table's constraints
          (exclusion, foreign keys, indexes): what the rules cost on top of the row itself.

Prints transactions per second, average latency and PostgreSQL's CPU per transaction (all
its processes, exited backends included). Needs pgbench (Debian package postgresql-client).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from rest_load import (
    BENCH_YEAR,
    ROOT,
    cpu_seconds,
    drop_bench_bookings,
    is_postgres,
    with_database,
)

from nanny.db.bookings import SITTER_CALENDAR_LOCK

# Bookings start at a random hour of the 200,000 years after BENCH_YEAR: two of them overlap
# (which would abort a pgbench client) about once in a hundred runs.
START = f"timestamptz '{BENCH_YEAR}-01-01 00:00+00' + make_interval(hours => :h)"
END = f"timestamptz '{BENCH_YEAR}-01-01 01:00+00' + make_interval(hours => :h)"
PICK = "\\set i random(1, :combos)\n\\set h random(1, 1750000000)\n"

SCRIPTS = {
    "read": """\\set id random(:first, :last)
SELECT booking_id, owner_id, sitter_id, status, start_time, end_time, total_price
FROM bookings WHERE booking_id = :id;
""",
    "create": PICK
    + f"""SELECT (nanny_create_booking(c.owner_id, c.sitter_id, c.pet_id, c.service_id,
        {START}, {END}, 1000000, {SITTER_CALENDAR_LOCK}, 1000000)).outcome
FROM bench_combos c WHERE c.i = :i;
""",
    "insert": PICK
    + f"""INSERT INTO bookings (owner_id, sitter_id, pet_id, service_id, start_time, end_time,
                      total_price)
SELECT c.owner_id, c.sitter_id, c.pet_id, c.service_id, {START}, {END}, 10
FROM bench_combos c WHERE c.i = :i;
""",
}


async def prepare(dsn: str) -> dict[str, int]:
    """One (owner, pet, approved service) per owner, the services dealt out in turn, so
    creations spread over owners and sitters as rest_load.py's do."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            CREATE TABLE bench_combos AS
            WITH p AS (SELECT DISTINCT ON (owner_id) owner_id, pet_id FROM pets
                       ORDER BY owner_id, pet_id),
                 pn AS (SELECT row_number() OVER (ORDER BY owner_id) AS i, * FROM p),
                 s AS (SELECT row_number() OVER (ORDER BY sv.service_id) AS n, sv.sitter_id,
                              sv.service_id
                       FROM services sv JOIN sitters st ON st.user_id = sv.sitter_id
                       WHERE st.status = 'approved')
            SELECT pn.i::int AS i, pn.owner_id, pn.pet_id, s.sitter_id, s.service_id
            FROM pn JOIN s ON s.n = 1 + pn.i % (SELECT count(*) FROM s);
            CREATE UNIQUE INDEX ON bench_combos (i);
            ANALYZE bench_combos;
            """
        )
        combos = await conn.fetchval("SELECT count(*) FROM bench_combos")
        first, last = await conn.fetchrow("SELECT min(booking_id), max(booking_id) FROM bookings")
    finally:
        await conn.close()
    return {"combos": combos, "first": first, "last": last}


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL process, with the backends that have exited (counted in the
    postmaster's children's time once it has reaped them)."""
    return sum(t for pid, t in cpu_seconds(reaped=True).items() if is_postgres(pid))


def run_pgbench(dsn: str, script: Path, variables: dict[str, int], args) -> dict:
    command = ["pgbench", "-n", "-M", "prepared", "-c", str(args.clients), "-j", "2"]
    command += ["-T", str(args.duration), "-f", str(script)]
    command += [f"-D{name}={value}" for name, value in variables.items()]
    before = postgres_cpu_seconds()
    out = subprocess.run(
        [*command, dsn],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    time.sleep(0.5)  # the postmaster reaps pgbench's backends
    spent = postgres_cpu_seconds() - before
    figures = dict(
        line.split(" = ", 1) for line in out.splitlines() if " = " in line and "tps" in line
    )
    done = int(next(x for x in out.splitlines() if "actually processed" in x).split()[-1])
    latency = next(x for x in out.splitlines() if x.startswith("latency average"))
    return {
        "tps": float(figures["tps"].split()[0]),
        "latency_ms": float(latency.split("=")[1].split()[0]),
        "db_us": spent / max(done, 1) * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()

    db = f"nanny_floor_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    dsn = with_database(args.database_url, db)
    subprocess.run(["psql", args.database_url, "-qc", f'CREATE DATABASE "{db}"'], check=True)
    results: dict[str, list[dict]] = {name: [] for name in SCRIPTS}
    try:
        env = os.environ | {"DATABASE_URL": dsn, "PYTHONPATH": str(ROOT)}
        env.setdefault("JWT_SECRET", "bench-secret-" + "b" * 40)
        subprocess.run(
            [sys.executable, "-m", "nanny", "seed-demo", "--scale", str(args.scale)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        variables = asyncio.run(prepare(dsn))
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.rounds):
                for name, text in SCRIPTS.items():
                    script = Path(tmp) / f"{name}.sql"
                    script.write_text(text)
                    r = run_pgbench(dsn, script, variables, args)
                    # Each run starts from the seeded rows, as rest_load.py's scenarios do.
                    asyncio.run(drop_bench_bookings(dsn))
                    print(f"{name}: {r}", flush=True)
                    results[name].append(r)
    finally:
        subprocess.run(
            ["psql", args.database_url, "-qc", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)']
        )

    print(f"\nscale {args.scale}, {args.clients} connections, medians of {args.rounds} runs")
    print(f"{'scenario':<8} {'tx/s':>8} {'avg ms':>7} {'db µs/tx':>9}")
    for name, runs in results.items():
        tps = statistics.median(r["tps"] for r in runs)
        latency = statistics.median(r["latency_ms"] for r in runs)
        db_us = statistics.median(r["db_us"] for r in runs)
        print(f"{name:<8} {tps:>8.0f} {latency:>7.2f} {db_us:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
