"""How search's cost per request grows with the data: `seed-demo --scale 1` and `--scale 10` in
two databases, one `nanny serve` on each with the search cache off, and wrk on plain search and
search with dates (one week in the next month; `bench/rest_load.py`'s scenarios), the two scales
alternating round by round so that the machine's drift falls on both alike. Prints each round's
req/s and the CPU that the server and PostgreSQL spent per request, then the medians, the growth
from scale 1 to scale 10 and, at each scale, search with dates as a share of plain search.

    python bench/search_growth.py --rounds 3 --duration 6

Needs wrk and PostgreSQL (DATABASE_URL's server; default the local one). Everything it starts it
stops, by PID, and it drops the databases it made.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import uuid

from rest_load import free_port as pick_port
from rest_load import (
    measured_wrk,
    next_month_week,
    script_get,
    seed,
    server_env,
    start_server,
    stop_server,
    with_database,
)

SCALES = (1, 10)


def paths() -> dict[str, str]:
    week = next_month_week()
    search = "/api/services/search?type=walking&location=almaty&sort=-rating"
    dated = (
        "/api/services/search?type=boarding&location=almaty&sort=-rating"
        f"&start_time={week[0]}&end_time={week[1]}"
    )
    return {"search": search, "search_dates": dated}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--bcrypt-rounds", type=int, default=4)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    args.search_cache_seconds = 0
    admin_dsn = args.database_url
    made: list[str] = []
    servers = {}
    try:
        for scale in SCALES:
            db = f"nanny_growth_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            subprocess.run(["psql", admin_dsn, "-qc", f'CREATE DATABASE "{db}"'], check=True)
            made.append(db)
            dsn = with_database(admin_dsn, db)
            env = server_env(args, dsn)
            seed(env, dsn, scale)
            port = pick_port()
            servers[scale] = (start_server(env, port, 1), port)
        scripts = {name: script_get(path) for name, path in paths().items()}
        # Warm both servers' statement caches and PostgreSQL's buffers.
        for proc, port in servers.values():
            for script in scripts.values():
                measured_wrk(proc, port, script, argparse.Namespace(duration=2, connections=8))
        cost: dict[tuple[str, int], list[float]] = {}
        rps: dict[tuple[str, int], list[float]] = {}
        print(f"{'round':>5} {'scenario':<13} {'scale':>5} {'req/s':>7} {'srv µs':>7} {'db µs':>7}")
        for round_ in range(1, args.rounds + 1):
            for name, script in scripts.items():
                for scale in SCALES:
                    proc, port = servers[scale]
                    r = measured_wrk(proc, port, script, args)
                    assert r["non2xx"] == 0 and r["socket_errors"] == 0, r
                    per_request = r["server_us"] + r["db_us"]
                    cost.setdefault((name, scale), []).append(per_request)
                    rps.setdefault((name, scale), []).append(r["rps"])
                    print(
                        f"{round_:>5} {name:<13} {scale:>5} {r['rps']:>7.0f} "
                        f"{r['server_us']:>7.0f} {r['db_us']:>7.0f}",
                        flush=True,
                    )
    finally:
        for proc, _ in servers.values():
            stop_server(proc)
        for db in made:
            subprocess.run(
                ["psql", admin_dsn, "-qc", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)']
            )

    median = {key: statistics.median(values) for key, values in cost.items()}
    median_rps = {key: statistics.median(values) for key, values in rps.items()}
    print()
    print(f"{'scenario':<13} {'µs/req s1':>10} {'µs/req s10':>11} {'growth':>7}  target: under 2")
    for name in scripts:
        low, high = median[(name, 1)], median[(name, 10)]
        print(f"{name:<13} {low:>10.0f} {high:>11.0f} {high / low:>6.2f}x")
    for scale in SCALES:
        share = median_rps[("search_dates", scale)] / median_rps[("search", scale)]
        print(f"scale {scale}: search with dates at {share:.0%} of plain search's req/s (≥ 50 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
