"""WebSocket chat load: N connections in rooms of two against `nanny serve --workers 2`.

Starts the server itself on 127.0.0.1 (a fresh database, Redis with a private prefix), seeds
owners, sitters and bookings by SQL, mints tokens, connects every participant and subscribes it
to its booking, sends at a fixed total rate for a fixed time, then prints: connections held,
messages/s delivered, end-to-end latency (send -> receipt by the other participant) p50/p99/max,
errors, lost/duplicated/reordered messages (every seq of every subscriber is checked) and the
server's RSS per connection (VmRSS of the worker processes from /proc). Stops everything by PID.

    python bench/ws_load.py --connections 2000 --rate 1000 --duration 20
    python bench/ws_load.py --connections 2000 --rates 1000,2000,3000 --duration 10

`--mode churn`: while the rooms chat as above, `--churners` more clients keep joining rooms
with after_seq=0 (each room holds `--history` messages first) and dropping at random, some
without reading a byte, some after reading for a moment, with a reset each time, the way phones
on a bad network go. It prints the server's open-socket gauge (`nanny_websockets_open`, summed
over the workers) and RSS before and after: the gauge must be back where it started. RSS rises
once to the high-water mark of the replays under way at a time (freed memory stays with the
process) and must not grow with the number of joins: compare runs of different --duration.

    python bench/ws_load.py --mode churn --connections 1000 --rate 200 --churners 200

Environment: BENCH_DATABASE_URL (an admin DSN; default TEST_DATABASE_URL or the local
PostgreSQL), BENCH_REDIS_URL (default TEST_REDIS_URL or the local Redis)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.raw_ws import reset, stalled_subscriber  # noqa: E402
from nanny.config import Settings  # noqa: E402
from nanny.http.security import issue_token  # noqa: E402

SECRET = "bench-secret-" + "y" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def worker_pids(parent: int) -> list[int]:
    try:
        children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    except FileNotFoundError:
        return []
    pids = []
    for child in map(int, children):
        try:
            if b"nanny.worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                pids.append(child)
        except FileNotFoundError:
            pass
    return pids or [parent]


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


class Conn:
    __slots__ = (
        "dups",
        "last_seq",
        "reader",
        "reorders",
        "room",
        "seen",
        "start_seq",
        "user_id",
        "ws",
    )

    def __init__(self, user_id: int, room: Room):
        self.user_id = user_id
        self.room = room
        self.ws = None
        self.last_seq = 0
        self.start_seq = 0  # the room's last seq when it subscribed: it is sent what follows
        self.seen: set[int] = set()
        self.dups = 0
        self.reorders = 0
        self.reader = None


class Room:
    __slots__ = ("booking_id", "conns", "max_acked")

    def __init__(self, booking_id: int):
        self.booking_id = booking_id
        self.conns: list[Conn] = []
        self.max_acked = 0


class Stats:
    def __init__(self):
        self.latencies: list[float] = []
        self.delivered = 0
        self.last_delivery = 0.0
        self.errors = 0
        self.error_codes: dict[str, int] = {}
        self.acked = 0
        self.sent = 0
        self.closed = 0
        self.recording = False


async def read_frames(conn: Conn, stats: Stats, subscribed: asyncio.Event) -> None:
    ws = conn.ws
    loads = json.loads
    while True:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            stats.closed += 1
            return
        frame = loads(msg.data)
        kind = frame["type"]
        if kind == "message":
            m = frame["message"]
            seq = m["seq"]
            if seq in conn.seen:
                conn.dups += 1
                continue
            if seq != conn.last_seq + 1:
                conn.reorders += 1
            conn.seen.add(seq)
            conn.last_seq = max(conn.last_seq, seq)
            if m["sender_id"] != conn.user_id:
                stats.delivered += 1
                stats.last_delivery = time.perf_counter()
                if stats.recording:
                    stats.latencies.append(time.perf_counter() - float(m["content"]))
        elif kind == "ack":
            stats.acked += 1
            room = conn.room
            room.max_acked = max(room.max_acked, frame["message"]["seq"])
        elif kind == "subscribed":
            conn.last_seq = conn.start_seq = frame["last_seq"]
            subscribed.set()
        elif kind == "error":
            stats.errors += 1
            code = frame.get("code", "?")
            stats.error_codes[code] = stats.error_codes.get(code, 0) + 1


async def seed(dsn: str, rooms: int, tag: str, notify: bool = False) -> list[tuple[int, int, int]]:
    # The seeded bookings are requests; unless asked, they write no notifications, whose
    # e-mails the servers would otherwise be sending while chat is measured.
    settings = {"nanny.notifications": "on" if notify else "off"}
    conn = await asyncpg.connect(dsn, server_settings=settings)
    try:
        n = rooms
        emails = [f"bench{tag}o{i}@example.kz" for i in range(n)] + [
            f"bench{tag}s{i}@example.kz" for i in range(n)
        ]
        roles = ["owner"] * n + ["sitter"] * n
        ids = await conn.fetch(
            """
            INSERT INTO users (email, full_name, password_hash, role)
            SELECT e, 'Bench', 'x', r FROM unnest($1::text[], $2::text[]) AS t (e, r)
            RETURNING user_id, email
            """,
            emails,
            roles,
        )
        by_email = {r["email"]: r["user_id"] for r in ids}
        owners = [by_email[f"bench{tag}o{i}@example.kz"] for i in range(n)]
        sitters = [by_email[f"bench{tag}s{i}@example.kz"] for i in range(n)]
        rows = await conn.fetch(
            """
            INSERT INTO bookings (owner_id, sitter_id, start_time, end_time, total_price)
            SELECT o, s, timestamptz '2032-01-01Z', timestamptz '2032-01-01 02:00Z', 100
            FROM unnest($1::int[], $2::int[]) AS t (o, s)
            RETURNING booking_id, owner_id, sitter_id
            """,
            owners,
            sitters,
        )
        await conn.execute("INSERT INTO chats (booking_id) SELECT booking_id FROM bookings")
        return [(r["booking_id"], r["owner_id"], r["sitter_id"]) for r in rows]
    finally:
        await conn.close()


class BenchServer:
    """`nanny serve --workers N` on 127.0.0.1 over a fresh database (dropped afterwards) and
    Redis with a private prefix; `extra_env` adds to its environment."""

    def __init__(self, workers: int, *, port: int = 0, **extra_env: str):
        self.admin_dsn = (
            os.environ.get("BENCH_DATABASE_URL")
            or os.environ.get("TEST_DATABASE_URL")
            or "postgresql://postgres@127.0.0.1:5432/postgres"
        )
        self.redis_url = (
            os.environ.get("BENCH_REDIS_URL")
            or os.environ.get("TEST_REDIS_URL")
            or "redis://127.0.0.1:6379/0"
        )
        self.tag = uuid.uuid4().hex[:8]
        self.dbname = f"nanny_bench_{self.tag}"
        self.dsn = with_database(self.admin_dsn, self.dbname)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.extra_env = extra_env
        self.proc: subprocess.Popen | None = None
        self._admin = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        self._admin = await asyncpg.connect(self.admin_dsn)
        await self._admin.execute(f'CREATE DATABASE "{self.dbname}"')
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env |= {
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.dsn,
            "REDIS_URL": self.redis_url,
            "REDIS_PREFIX": f"bench{self.tag}",
            "JWT_SECRET": SECRET,
            "NANNY_ENV": "test",
            "LOG_LEVEL": "WARNING",
        } | self.extra_env
        cmd = [sys.executable, "-m", "nanny", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
        for _ in range(600):
            try:
                async with session.get(f"{self.url}/api/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise SystemExit("server did not become healthy")

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._admin is not None:
            await self._admin.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
            await self._admin.close()


async def run(args) -> None:
    started = time.monotonic()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Each simulated user sends far more messages than a person would.
    extra = {"DB_POOL_MAX": str(args.pool), "RATE_CHAT_MESSAGES_PER_USER": "1000000/60s"}
    if args.mode == "churn":  # a churner reconnects far faster than a person would
        extra["RATE_WS_CONNECT_PER_USER"] = "1000000/60s"
    bench = BenchServer(args.workers, port=args.port, **extra)
    tag, dsn, url, port = bench.tag, bench.dsn, bench.url, bench.port
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )
    try:
        await bench.start(session)
        server = bench.proc
        # Let every worker finish starting before measuring its baseline.
        await asyncio.sleep(1.0)
        pids = worker_pids(server.pid)
        baseline = rss_kib(pids)
        rooms_n = args.connections // 2
        seeded = await seed(dsn, rooms_n, tag, args.emails)
        if args.mode == "churn":
            await add_history(dsn, args.history)
        settings = Settings(jwt_secret=SECRET, jwt_ttl_hours=2)
        rooms, conns = [], []
        for booking_id, owner_id, sitter_id in seeded:
            room = Room(booking_id)
            rooms.append(room)
            for user_id in (owner_id, sitter_id):
                c = Conn(user_id, room)
                room.conns.append(c)
                conns.append(c)
        stats = Stats()
        sem = asyncio.Semaphore(args.connect_concurrency)
        connect_failures = 0

        async def connect(c: Conn) -> None:
            nonlocal connect_failures
            role = "owner" if c is c.room.conns[0] else "sitter"
            token, _ = issue_token(settings, c.user_id, role)
            async with sem:
                try:
                    c.ws = await session.ws_connect(
                        f"{url}/api/ws",
                        headers={"Authorization": f"Bearer {token}"},
                        autoping=True,
                        heartbeat=None,
                    )
                    subscribed = asyncio.Event()
                    c.reader = asyncio.create_task(read_frames(c, stats, subscribed))
                    await c.ws.send_str(
                        json.dumps({"type": "subscribe", "booking_id": c.room.booking_id})
                    )
                    await asyncio.wait_for(subscribed.wait(), 30)
                except Exception as exc:
                    connect_failures += 1
                    if connect_failures <= 3:
                        print(f"connect failed: {exc!r}", file=sys.stderr)

        t0 = time.monotonic()
        # The connect phase may take at most half the run's bound; what is not connected by
        # then is left out (and reported).
        connect_budget = max(5.0, args.max_seconds / 2 - (time.monotonic() - started))
        tasks = [asyncio.create_task(connect(c)) for c in conns]
        _, pending = await asyncio.wait(tasks, timeout=connect_budget)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        connect_time = time.monotonic() - t0
        live = [c for c in conns if c.ws is not None and not c.ws.closed and c.reader]
        for c in conns:
            if c.ws is not None and c not in live:
                await c.ws.close()
        await asyncio.sleep(1.0)
        held_rss = rss_kib(pids)
        per_conn = (held_rss - baseline) / max(1, len(live))
        print(
            f"connections: {len(live)}/{len(conns)} held across {len(pids)} workers "
            f"(connect+subscribe {connect_time:.1f}s, {connect_failures} failed)"
        )
        if pending:
            print(
                f"{len(pending)} connections were still connecting or subscribing when the "
                f"connect phase's {connect_budget:.0f} s (half of --max-seconds, less the set-up) "
                "ran out: "
                "raise --max-seconds to hold them all",
                file=sys.stderr,
            )
        print(
            f"server RSS: {baseline / 1024:.1f} MiB idle -> {held_rss / 1024:.1f} MiB held = "
            f"{per_conn:.1f} KiB per connection"
        )
        rates = [float(r) for r in args.rates.split(",")] if args.rates else [args.rate]
        budget = args.max_seconds - (time.monotonic() - started) - 8
        phase = min(args.duration, max(3.0, budget / len(rates) - 2))
        if args.mode == "churn":
            sockets_before = await open_sockets(session, url)
            rss_before = rss_kib(pids)
            churn = Churn()
            until = time.monotonic() + phase * len(rates)
            churners = [
                asyncio.create_task(churn_loop(port, seeded, settings, churn, until))
                for _ in range(args.churners)
            ]
        for rate in rates:
            await load_phase(live, stats, rate, phase)
        if args.mode == "churn":
            await asyncio.gather(*churners)
            # The server has a few seconds to notice every drop.
            deadline = time.monotonic() + 10
            while (after := await open_sockets(session, url)) != sockets_before:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            print(
                f"churn: {churn.joined} joins with history, dropped ({churn.read_first} after "
                f"reading for a moment, the rest without reading); {churn.errors} failed"
            )
            verdict = "back" if after == sockets_before else "NOT back"
            print(
                f"server sockets open: {sockets_before:.0f} before -> {after:.0f} after "
                f"({verdict}); server RSS {rss_before / 1024:.1f} MiB before -> "
                f"{rss_kib(pids) / 1024:.1f} MiB after"
            )
        # Drain: wait until every subscriber has every acknowledged seq of its room.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if all(len(c.seen) >= c.room.max_acked - c.start_seq for c in live if not c.ws.closed):
                break
            await asyncio.sleep(0.1)
        lost = sum(
            max(0, c.room.max_acked - c.start_seq - len(c.seen)) for c in live if not c.ws.closed
        )
        dups = sum(c.dups for c in live)
        reorders = sum(c.reorders for c in live)
        still = sum(1 for c in live if not c.ws.closed)
        print(
            f"end: {still} connections still held; lost {lost}, duplicated {dups}, "
            f"reordered {reorders}; errors {stats.errors} {stats.error_codes or ''}; "
            f"server RSS {rss_kib(pids) / 1024:.1f} MiB"
        )
    finally:
        await session.close()
        await bench.stop()
        print(f"total run time {time.monotonic() - started:.1f}s")


async def add_history(dsn: str, count: int) -> None:
    """`count` messages of some 320 characters in every room, for the churners to replay."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            WITH c AS (UPDATE chats SET last_seq = $1 RETURNING chat_id, booking_id)
            INSERT INTO messages (chat_id, seq, sender_id, content)
            SELECT c.chat_id, g, b.owner_id, repeat('history ', 40)
            FROM c JOIN bookings b USING (booking_id), generate_series(1, $1) g
            """,
            count,
        )
    finally:
        await conn.close()


async def open_sockets(session: aiohttp.ClientSession, url: str) -> float:
    """The server's open-socket gauge, summed over its workers."""
    async with session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("nanny_websockets_open")
    )


class Churn:
    def __init__(self):
        self.joined = 0
        self.read_first = 0
        self.errors = 0


async def churn_loop(port: int, seeded, settings: Settings, churn: Churn, until: float) -> None:
    """Join a random room with its whole history, stay up to a second (reading or not), reset;
    again until `until`. A small receive buffer and segment size stand for a phone's network:
    the server cannot hand the kernel the whole replay and has to wait for the client."""
    loop = asyncio.get_running_loop()
    while time.monotonic() < until:
        booking_id, owner_id, sitter_id = random.choice(seeded)
        user_id, role = random.choice(((owner_id, "owner"), (sitter_id, "sitter")))
        token, _ = issue_token(settings, user_id, role)
        try:
            sock = await stalled_subscriber(port, token, booking_id)
        except OSError as exc:
            churn.errors += 1
            if churn.errors <= 3:
                print(f"churn connection failed: {exc!r}", file=sys.stderr)
            await asyncio.sleep(0.1)
            continue
        try:
            churn.joined += 1
            stay = time.monotonic() + random.uniform(0.0, 1.0)
            if random.random() < 0.5:
                churn.read_first += 1
                while time.monotonic() < stay:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.05)
            else:
                await asyncio.sleep(max(0.0, stay - time.monotonic()))
        finally:
            reset(sock)


async def load_phase(conns: list[Conn], stats: Stats, rate: float, duration: float) -> None:
    stats.latencies = []
    stats.recording = True
    delivered_before = stats.delivered
    acked_before = stats.acked
    order = list(conns)
    random.shuffle(order)
    n = len(order)
    i = 0
    sent = 0
    start = time.perf_counter()
    end = start + duration
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - start) * rate) - sent
        for _ in range(due):
            c = order[i % n]
            i += 1
            if c.ws.closed:
                continue
            try:
                await c.ws.send_str(
                    f'{{"type":"send","booking_id":{c.room.booking_id},'
                    f'"content":"{time.perf_counter():.6f}"}}'
                )
                sent += 1
            except Exception:
                stats.errors += 1
        await asyncio.sleep(0.002)
    # Latencies of the phase include messages still arriving just after it.
    await asyncio.sleep(1.0)
    stats.recording = False
    # From the first send to the last receipt: the quiet second after the phase is not counted.
    took = max(stats.last_delivery, end) - start
    lat = stats.latencies
    delivered = stats.delivered - delivered_before
    print(
        f"rate {rate:.0f}/s for {duration:.0f}s: sent {sent}, acked {stats.acked - acked_before}, "
        f"delivered {delivered} ({delivered / took:.0f} msg/s); latency ms p50 "
        f"{percentile(lat, 0.5) * 1000:.1f} p99 {percentile(lat, 0.99) * 1000:.1f} "
        f"max {max(lat, default=float('nan')) * 1000:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500.0, help="messages/s, all rooms together")
    parser.add_argument("--rates", default="", help="comma-separated rates, one phase each")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per rate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pool", type=int, default=10, help="DB_POOL_MAX per worker")
    parser.add_argument("--connect-concurrency", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="bound on the whole run")
    parser.add_argument("--mode", choices=("chat", "churn"), default="chat")
    parser.add_argument(
        "--emails",
        action="store_true",
        help="the seeded requests queue their e-mails, sent while chat is measured",
    )
    parser.add_argument("--churners", type=int, default=100, help="churn: clients joining at once")
    parser.add_argument("--history", type=int, default=1500, help="churn: messages per room")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
