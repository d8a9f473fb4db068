"""REST load benchmark: seeds `--scale N`, starts `nanny serve` with 1 and 2 worker processes and
drives it with wrk (a separate process, fixed connections, fixed time), printing req/s, p50 and p99
for search, search with dates (one week in the next month), a sitter's reviews (100 rows), a
service by id, get booking, owner's bookings list, create booking and login. The cached reads
(both searches, reviews, service; get booking and an owner's list) run twice: with the
per-process caches (SEARCH_CACHE_SECONDS, default, or `--search-cache-seconds`;
BOOKING_CACHE_SECONDS, default) and again against a server started with both off
(`… nocache`). Before the scenarios it prints each server process's idle
RSS. How search's cost grows from scale 1 to 10 is `bench/search_growth.py`, which alternates the
scales round by round (measured one after the other here, the machine's drift falls on one).

With `--profile DIR`, py-spy samples every worker during each scenario and the script prints
where the workers' time went (functions by share of samples, the flame graph data in DIR).

Each configuration first measures `bench/baseline_app.py` (a bare aiohttp + asyncpg endpoint that
reads one booking by id) with the same processes and pool size: the machine's ceiling. The last
columns give each scenario's throughput as a share of it, which compares across machines, and
the CPU time the server's processes and PostgreSQL's spent per request.

    python bench/rest_load.py --scale 1 --workers 1 2 --duration 10 --connections 64

Needs wrk (Debian package `wrk`), PostgreSQL (DATABASE_URL's server; default the local one) and, for
--workers > 1, Redis (REDIS_URL; default the local one). Everything it starts it stops, by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import jwt

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-" + "b" * 40
LOGIN_PASSWORD = "bench-login-pass"
# Bookings the benchmark creates start in this year or later; the seeded ones are near today.
BENCH_YEAR = 2040
SCENARIOS = (
    "search",
    "search_dates",
    "sitter_reviews",
    "service_by_id",
    "get_booking",
    "owner_bookings",
    "create_booking",
    "login",
)
# Reads answered from a per-process cache (public reads; bookings): measured again with it off.
CACHED = tuple(s for s in SCENARIOS if s not in ("create_booking", "login"))
NO_CACHES = {"SEARCH_CACHE_SECONDS": "0", "BOOKING_CACHE_SECONDS": "0"}
# The shares of the baseline that the targets ask for (two workers).
TARGETS = {
    "sitter_reviews": 1.5,
    "sitter_reviews nocache": 0.6,
    "owner_bookings": 0.9,
    "get_booking": 1.0,
    "create_booking": 0.45,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def token_for(user_id: int, role: str) -> str:
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "role": role, "iat": now, "exp": now + timedelta(hours=6)}
    # A token id and the generation of an account that never changed its password.
    claims |= {"jti": secrets.token_urlsafe(16), "gen": 0}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def lua_string(value: str) -> str:
    return json.dumps(value)


DONE = r"""
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout
  io.write(string.format(
    '{"requests": %d, "rps": %.1f, "p50_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f, '
    .. '"non2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.requests / secs, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.errors.status, errors))
end
"""


def script_rotating_get(items: list[tuple[str, str]]) -> str:
    """GET a rotating list of (path, token) pairs."""
    rows = ",\n".join(f"  {{{lua_string(p)}, {lua_string(t)}}}" for p, t in items)
    return (
        f"""
local items = {{
{rows}
}}
local i = 0
setup = function(thread) thread:set("offset", math.random(1, #items)) end
request = function()
  i = i + 1
  local item = items[((i + offset) % #items) + 1]
  return wrk.format("GET", item[1], {{["Authorization"] = "Bearer " .. item[2]}})
end
"""
        + DONE
    )


def script_create_booking(owners: list[dict], base_hours: int) -> str:
    """Each request books a distinct one-hour slot, so no two requests overlap."""
    rows = ",\n".join(
        "  {{{t}, {pet}, {sitter}, {service}}}".format(
            t=lua_string(o["token"]),
            pet=o["pet_id"],
            sitter=o["sitter_id"],
            service=o["service_id"],
        )
        for o in owners
    )
    return (
        f"""
local owners = {{
{rows}
}}
local counter = 0
local next_thread = 0
setup = function(thread)
  next_thread = next_thread + 1
  thread:set("thread_no", next_thread)
end
request = function()
  counter = counter + 1
  local o = owners[(counter % #owners) + 1]
  -- Two-hour steps, odd or even per thread: no two requests ever share a slot.
  local slot = {base_hours} + (counter * 2 + thread_no) * 2
  local start = os.date("!%Y-%m-%dT%H:00:00Z", slot * 3600)
  local finish = os.date("!%Y-%m-%dT%H:00:00Z", slot * 3600 + 3600)
  local body = string.format(
    '{{"sitter_id": %d, "pet_id": %d, "service_id": %d, "start_time": "%s", "end_time": "%s"}}',
    o[3], o[2], o[4], start, finish)
  return wrk.format("POST", "/api/bookings",
    {{["Authorization"] = "Bearer " .. o[1], ["Content-Type"] = "application/json"}}, body)
end
"""
        + DONE
    )


def script_login(email: str) -> str:
    body = json.dumps({"email": email, "password": LOGIN_PASSWORD})
    return (
        f"""
request = function()
  return wrk.format("POST", "/api/auth/login", {{["Content-Type"] = "application/json"}},
    {lua_string(body)})
end
"""
        + DONE
    )


def script_get(path: str) -> str:
    return (
        f"""
request = function() return wrk.format("GET", {lua_string(path)}) end
"""
        + DONE
    )


def run_wrk(port: int, script: str, duration: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{duration}s",
                "--timeout",
                "5s",
                "-s",
                path,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
        )
    finally:
        os.unlink(path)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not line:
        raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    return json.loads(line[-1])


def start_server(env: dict, port: int, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nanny",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_until_answers(proc, f"http://127.0.0.1:{port}/api/health")
    return proc


def wait_until_answers(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"{url} did not answer")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cpu_seconds(reaped: bool = False) -> dict[int, float]:
    """CPU time (user + system) of every process, by pid; with `reaped`, each also with that of
    its children that have exited and been waited for (a PostgreSQL's closed backends)."""
    tick = os.sysconf("SC_CLK_TCK")
    last = 15 if reaped else 13
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(entry.name)] = sum(int(f) for f in fields[11:last]) / tick
    return out


def measured_wrk(
    proc: subprocess.Popen, port: int, script: str, args, profile_as: str | None = None
) -> dict:
    """wrk's figures plus the CPU the server and PostgreSQL spent per request: throughput on a
    shared VM swings with its neighbours, CPU per request much less."""
    server = process_group(proc)
    postgres = {pid for pid in cpu_seconds() if is_postgres(pid)}
    samplers = start_profilers(args, proc, server, profile_as)
    before = cpu_seconds()
    r = run_wrk(port, script, args.duration, args.connections)
    after = cpu_seconds()
    finish_profilers(samplers, profile_as)
    postgres |= {pid for pid in after if pid not in before and is_postgres(pid)}

    def spent(pids: set[int]) -> float:
        return sum(after.get(p, 0.0) - before.get(p, 0.0) for p in pids)

    requests = max(r["requests"], 1)
    r["server_us"] = spent(server) / requests * 1e6
    r["db_us"] = spent(postgres) / requests * 1e6
    return r


def start_profilers(args, proc, server: set[int], name: str | None) -> list:
    """py-spy on each worker (the supervisor only waits) for the scenario's duration."""
    if getattr(args, "profile", None) is None or name is None:
        return []
    args.profile.mkdir(parents=True, exist_ok=True)
    workers = [p for p in server if p != proc.pid] or [proc.pid]
    samplers = []
    for pid in workers:
        out = args.profile / f"{name.replace(' ', '_')}.{pid}.txt"
        cmd = ["py-spy", "record", "--pid", str(pid), "--duration", str(args.duration)]
        cmd += ["--rate", "250", "--format", "raw", "--nonblocking", "-o", str(out)]
        samplers.append(
            (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out)
        )
    return samplers


def finish_profilers(samplers: list, name: str | None) -> None:
    """Print the functions the workers spent their samples in (inclusive and own)."""
    if not samplers:
        return
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for sampler, out in samplers:
        try:
            sampler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sampler.kill()
            sampler.wait()
        if not out.exists():
            continue
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = [f.split(" (", 1)[0] + " " + _where(f) for f in stack.split(";")]
            total += n
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n
            own[frames[-1]] = own.get(frames[-1], 0) + n
    if not total:
        return
    print(f"# profile {name}: {total} samples", flush=True)
    ours = {f: n for f, n in inclusive.items() if "nanny/" in f}
    for title, table in (("ours, inclusive", ours), ("own time", own)):
        top = sorted(table.items(), key=lambda kv: -kv[1])[:14]
        print(f"#   {title}: " + "; ".join(f"{f} {n / total:.0%}" for f, n in top), flush=True)


def _where(frame: str) -> str:
    """'(…/site-packages/aiohttp/web_protocol.py:123)' -> 'aiohttp/web_protocol.py'."""
    place = frame.rpartition(" (")[2].rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3"):
        if marker in place:
            place = place.split(marker, 1)[1]
    return place.lstrip("/")


def process_group(proc: subprocess.Popen) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == proc.pid:
                    pids.add(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
    return pids


def is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")
    except OSError:
        return False


def server_rss_kib(proc: subprocess.Popen) -> int:
    """Resident memory of the server's whole process group."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != proc.pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total


async def pick_fixtures(dsn: str, sample: int) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        bookings = await conn.fetch(
            "SELECT booking_id, owner_id FROM bookings ORDER BY random() LIMIT $1", sample
        )
        owners = await conn.fetch(
            """
            SELECT DISTINCT ON (p.owner_id) p.owner_id, p.pet_id
            FROM pets p ORDER BY p.owner_id, p.pet_id LIMIT $1
            """,
            # Creations spread over many owners, as real ones would be: each owner's pending
            # bookings stay few (the cap is lifted for the benchmark, not the count).
            sample * 4,
        )
        services = await conn.fetch(
            """
            SELECT s.service_id, s.sitter_id FROM services s
            JOIN sitters st ON st.user_id = s.sitter_id AND st.status = 'approved'
            -- Services its one-hour slots at any hour fit: sitters without a weekly schedule,
            -- or boarding and home care of sitters with hours every day (every bulk sitter).
            WHERE st.schedule_days = 0 OR (s.type <> 'walking' AND st.schedule_days = 127)
            ORDER BY random() LIMIT $1
            """,
            sample,
        )
        # Sitters with a hundred reviews (every bulk sitter has one review per completed day).
        reviewed = await conn.fetch(
            "SELECT user_id FROM sitters WHERE rating_count BETWEEN 100 AND 110 LIMIT $1", sample
        )
    finally:
        await conn.close()
    return {"bookings": bookings, "owners": owners, "services": services, "reviewed": reviewed}


async def vacuum_analyze(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def drop_bench_bookings(dsn: str) -> None:
    """Delete the bookings the benchmark created (their chats go with them: ON DELETE CASCADE),
    and vacuum, as autovacuum would in time: index scans otherwise wade through the dead rows."""
    conn = await asyncpg.connect(dsn)
    try:
        first = datetime(BENCH_YEAR, 1, 1, tzinfo=UTC)
        await conn.execute("DELETE FROM bookings WHERE start_time >= $1", first)
        await conn.execute("VACUUM ANALYZE bookings, chats")
    finally:
        await conn.close()


def server_env(args, dsn: str) -> dict:
    """The environment of `nanny serve` (and `seed-demo`) on the benchmark's database."""
    env = os.environ | {
        "DATABASE_URL": dsn,
        "JWT_SECRET": SECRET,
        "BCRYPT_ROUNDS": str(args.bcrypt_rounds),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "REDIS_PREFIX": f"bench{os.getpid()}",
        # The benchmark books far more than a person would: lift the per-owner and
        # per-IP guards that exist to stop scripts, not to measure them.
        "MAX_PENDING_BOOKINGS": "1000000",
        "MAX_PENDING_PER_SITTER": "1000000",
        # Its bookings go years ahead, each run in a stretch of its own.
        "BOOKING_HORIZON_DAYS": "1000000",
        "RATE_LIMIT_ENABLED": "false",
    }
    if args.search_cache_seconds is not None:
        env["SEARCH_CACHE_SECONDS"] = str(args.search_cache_seconds)
    env.pop("REDIS_URL", None)
    return env


def seed(env: dict, dsn: str, scale: int) -> None:
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "nanny", "seed-demo", "--scale", str(scale)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"# scale {scale}: seeded in {time.monotonic() - t0:.1f}s", flush=True)
    # What autovacuum would do within a minute of the bulk load, done before measuring:
    # otherwise it runs during the first scenarios, is counted as their database CPU,
    # and their plans are made without statistics.
    asyncio.run(vacuum_analyze(dsn))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scale", type=int, nargs="+", default=[1])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--bcrypt-rounds", type=int, default=10)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--only", nargs="+", default=None, choices=["baseline", *SCENARIOS])
    parser.add_argument(
        "--search-cache-seconds",
        type=float,
        default=None,
        help="SEARCH_CACHE_SECONDS for the server (0: every search reaches the database)",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="sample the workers with py-spy into DIR"
    )
    args = parser.parse_args()

    results = []
    for scale in args.scale:
        db = f"nanny_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin_dsn = args.database_url
        dsn = with_database(admin_dsn, db)
        subprocess.run(["psql", admin_dsn, "-qc", f'CREATE DATABASE "{db}"'], check=True)
        try:
            env = server_env(args, dsn)
            seed(env, dsn, scale)
            fx = asyncio.run(pick_fixtures(dsn, 500))
            for workers in args.workers:
                if not args.only or "baseline" in args.only:
                    results.append(run_baseline(args, fx, dsn, scale, workers))
                port = free_port()
                wenv = env | ({"REDIS_URL": args.redis_url} if workers > 1 else {})
                proc = start_server(wenv, port, workers)
                try:
                    print_idle_rss(proc, scale, workers)
                    results += run_scenarios(args, fx, port, scale, workers, proc)
                finally:
                    stop_server(proc)
                if not args.only or set(args.only) & set(CACHED):
                    port = free_port()
                    proc = start_server(wenv | NO_CACHES, port, workers)
                    try:
                        results += run_scenarios(
                            args, fx, port, scale, workers, proc, only=CACHED, suffix=" nocache"
                        )
                    finally:
                        stop_server(proc)
                # The next configuration reads the same data: drop what create_booking added
                # (otherwise its owners' lists are several times longer for the next run).
                asyncio.run(drop_bench_bookings(dsn))
        finally:
            subprocess.run(
                ["psql", admin_dsn, "-qc", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)']
            )

    baselines = {
        (r["scale"], r["workers"]): r["rps"] for r in results if r["scenario"] == "baseline"
    }
    print()
    print(
        f"{'scale':>5} {'workers':>7} {'scenario':<24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'non-2xx':>8} {'errors':>6} {'RSS MiB':>8} {'of base':>8} {'srv µs':>7} {'db µs':>7}"
    )
    for r in results:
        base = baselines.get((r["scale"], r["workers"]))
        share = f"{r['rps'] / base:>8.0%}" if base else f"{'-':>8}"
        print(
            f"{r['scale']:>5} {r['workers']:>7} {r['scenario']:<24} {r['rps']:>9.0f} "
            f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['non2xx']:>8} {r['socket_errors']:>6} "
            f"{r['rss_mib']:>8.0f} {share} {r['server_us']:>7.0f} {r['db_us']:>7.0f}"
        )
    print_ratio_table(results, baselines)
    return 0


def print_ratio_table(results: list[dict], baselines: dict) -> None:
    """Each scenario as a share of the bare baseline of the same run, beside its target."""
    print()
    print(f"{'scale':>5} {'workers':>7} {'scenario':<24} {'of base':>8} {'target':>7}  holds")
    for r in results:
        base = baselines.get((r["scale"], r["workers"]))
        if not base or r["scenario"] == "baseline":
            continue
        share = r["rps"] / base
        target = TARGETS.get(r["scenario"]) if r["workers"] == 2 else None
        verdict = "-" if target is None else ("yes" if share >= target else "NO")
        shown = f"{target:>7.0%}" if target is not None else f"{'-':>7}"
        print(
            f"{r['scale']:>5} {r['workers']:>7} {r['scenario']:<24} {share:>8.0%} {shown}"
            f"  {verdict}"
        )


def process_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def print_idle_rss(proc: subprocess.Popen, scale: int, workers: int) -> None:
    """Resident memory of each process of the idle server: the supervisor (with several
    workers), each worker, and anything else it started."""
    time.sleep(1.0)  # the workers' start-up garbage collected
    parts = []
    for pid in sorted(process_group(proc)):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            rss = process_rss_kib(pid) / 1024
        except OSError:
            continue
        if pid == proc.pid:
            role = "supervisor" if workers > 1 else "worker"
        elif "nanny" in cmd and "resource_tracker" not in cmd:
            role = "worker"
        else:
            role = "other: " + cmd[-60:]
        parts.append(f"{role} {rss:.1f} MiB")
    print(f"# scale {scale}, {workers} workers, idle RSS: " + "; ".join(parts), flush=True)


def run_baseline(args, fx, dsn: str, scale: int, workers: int) -> dict:
    """The bare endpoint with this configuration's processes, over the same booking ids."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "baseline_app.py"),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--database-url",
            dsn,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_until_answers(
            proc, f"http://127.0.0.1:{port}/bookings/{fx['bookings'][0]['booking_id']}"
        )
        script = script_rotating_get([(f"/bookings/{b['booking_id']}", "") for b in fx["bookings"]])
        r = measured_wrk(proc, port, script, args)
        r |= {
            "scale": scale,
            "workers": workers,
            "scenario": "baseline",
            "rss_mib": server_rss_kib(proc) / 1024,
        }
        print(json.dumps(r), flush=True)
        return r
    finally:
        stop_server(proc)


def next_month_week() -> tuple[str, str]:
    """Monday 00:00 UTC to the next Monday, in the month after this one."""
    today = datetime.now(UTC).date()
    first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    monday = first + timedelta(days=(7 - first.weekday()) % 7)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    return tuple(t.isoformat().replace("+00:00", "Z") for t in (start, start + timedelta(days=7)))


def run_scenarios(
    args, fx, port: int, scale: int, workers: int, proc, only=SCENARIOS, suffix=""
) -> list[dict]:
    base = f"http://127.0.0.1:{port}"
    email = f"login-{uuid.uuid4().hex[:8]}@bench.kz"
    body = json.dumps(
        {
            "full_name": "Bench Login",
            "email": email,
            "phone": "+77010000099",
            "password": LOGIN_PASSWORD,
        }
    ).encode()
    req = urllib.request.Request(
        f"{base}/api/auth/register/owner", body, {"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req, timeout=10).read()

    services = list(fx["services"])
    owners = [
        {
            "token": token_for(o["owner_id"], "owner"),
            "pet_id": o["pet_id"],
            "sitter_id": s["sitter_id"],
            "service_id": s["service_id"],
        }
        for o, s in zip(fx["owners"], itertools.cycle(services), strict=False)
    ]
    # Each run books its own 20-year stretch from BENCH_YEAR on, so runs never reuse a slot.
    run_index = scale * 10 + workers
    base_hours = int(datetime(BENCH_YEAR + 20 * run_index, 1, 1, tzinfo=UTC).timestamp() // 3600)
    week = next_month_week()
    scenarios = {
        "search": script_get("/api/services/search?type=walking&location=almaty&sort=-rating"),
        # The same search for one week in the next month: boarding, as a week-long walk fits
        # no schedule; as many services of that type as of walking.
        "search_dates": script_get(
            "/api/services/search?type=boarding&location=almaty&sort=-rating"
            f"&start_time={week[0]}&end_time={week[1]}"
        ),
        "sitter_reviews": script_rotating_get(
            [(f"/api/sitters/{r['user_id']}/reviews?limit=200", "") for r in fx["reviewed"]]
        ),
        "service_by_id": script_rotating_get(
            [(f"/api/services/{s['service_id']}", "") for s in fx["services"]]
        ),
        "get_booking": script_rotating_get(
            [
                (f"/api/bookings/{b['booking_id']}", token_for(b["owner_id"], "owner"))
                for b in fx["bookings"]
            ]
        ),
        "owner_bookings": script_rotating_get(
            [
                (f"/api/owners/{b['owner_id']}/bookings", token_for(b["owner_id"], "owner"))
                for b in fx["bookings"]
            ]
        ),
        "create_booking": script_create_booking(owners, base_hours),
        "login": script_login(email),
    }
    out = []
    for name, script in scenarios.items():
        if (args.only and name not in args.only) or name not in only:
            continue
        r = measured_wrk(proc, port, script, args, profile_as=f"{name}{suffix}")
        r |= {
            "scale": scale,
            "workers": workers,
            "scenario": name + suffix,
            "rss_mib": server_rss_kib(proc) / 1024,
        }
        print(json.dumps(r), flush=True)
        out.append(r)
    return out


if __name__ == "__main__":
    sys.exit(main())
