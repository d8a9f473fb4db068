"""Photo uploads under chat load: does a burst of uploads slow the chat down?

Starts `nanny serve --workers 2` itself on 127.0.0.1 (a fresh database, Redis with a private
prefix, a temporary media directory), seeds rooms of two as bench/ws_load.py does and connects
every participant. A few warm-up uploads first (a process loads Pillow with its first image),
then two phases of `--duration` seconds each, chat at `--rate` messages/s throughout:

1. chat alone;
2. chat while `--uploads` clients each upload a phone photo (a 12-megapixel JPEG of about 4 MB,
   made here by Pillow) to their booking, one after the other, for the whole phase, from a
   process of their own (so that the chat's latency is not that of the loop measuring it).

Prints for each phase the chat's end-to-end latency (send -> receipt by the other participant)
p50/p99, and for the second the uploads done, uploads/s and upload latency p50/p99. The chat's
p99 should stay under 100 ms with the uploads going.

    python bench/upload_load.py --connections 1000 --rate 500 --uploads 20 --duration 20
    python bench/upload_load.py --executor process      # image work in worker processes

Environment: BENCH_DATABASE_URL, BENCH_REDIS_URL as for bench/ws_load.py."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ws_load import (  # noqa: E402
    SECRET,
    BenchServer,
    Conn,
    Room,
    Stats,
    load_phase,
    percentile,
    read_frames,
    seed,
)
from nanny.config import Settings  # noqa: E402
from nanny.http.security import issue_token  # noqa: E402


def phone_photo(target: int = 4_000_000) -> bytes:
    """A 4032 x 3024 JPEG of about `target` bytes: a gradient under camera-like noise, which
    compresses as a real photo does (a flat picture would be a few KB)."""
    from PIL import Image

    size = (4032, 3024)
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    noise = Image.effect_noise(size, 40).convert("RGB")
    best = b""
    for strength in (0.15, 0.2, 0.25, 0.3, 0.35):
        out = io.BytesIO()
        Image.blend(base, noise, strength).save(out, "JPEG", quality=90)
        best = out.getvalue()
        if len(best) >= target:
            break
    return best


FORM_BOUNDARY = "nanny-bench-upload"
FORM_TYPE = f"multipart/form-data; boundary={FORM_BOUNDARY}"


def form_body(photo: bytes) -> bytes:
    """The multipart/form-data body of an upload of `photo`, made once: an uploader then only
    sends bytes, as a phone does, and its CPU (on the server's cores here) goes to that."""
    head = (
        f"--{FORM_BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="IMG_0001.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    )
    return head.encode() + photo + f"\r\n--{FORM_BOUNDARY}--\r\n".encode()


async def upload_once(
    session: aiohttp.ClientSession, url: str, token: str, booking_id: int, body: bytes
) -> bool:
    """Upload a photo (`body`, made by form_body) to the booking's chat: whether it was stored."""
    async with session.post(
        f"{url}/api/bookings/{booking_id}/attachments",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": FORM_TYPE},
    ) as resp:
        await resp.read()
        return resp.status == 201


async def uploader(
    session: aiohttp.ClientSession, url: str, token: str, booking_id: int, body: bytes, until
) -> tuple[list[float], int]:
    """Upload one photo after the other until `until`: the latency of each, and the failures."""
    latencies, failures = [], 0
    while time.perf_counter() < until:
        started = time.perf_counter()
        if await upload_once(session, url, token, booking_id, body):
            latencies.append(time.perf_counter() - started)
        else:
            failures += 1
    return latencies, failures


def upload_for(url: str, jobs: list[tuple[str, int]], body: bytes, seconds: float):
    """In a process of its own: each (token, booking_id) uploads for `seconds`; every upload's
    latency and the failures. The uploads' bodies (4 MB each) would otherwise go out from the
    loop that measures the chat, and the chat's latency would be the client's own."""

    async def go() -> tuple[list[float], int]:
        until = time.perf_counter() + seconds
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            done = await asyncio.gather(
                *(uploader(session, url, t, b, body, until) for t, b in jobs)
            )
        return [t for lat, _ in done for t in lat], sum(f for _, f in done)

    return asyncio.run(go())


def chat_p99(stats: Stats) -> tuple[float, float]:
    return percentile(stats.latencies, 0.5) * 1000, percentile(stats.latencies, 0.99) * 1000


async def run(args) -> None:
    started = time.monotonic()
    media = tempfile.TemporaryDirectory(prefix="nanny-bench-media-")
    extra = {"MEDIA_DIR": media.name, "MEDIA_EXECUTOR": args.executor}
    if args.media_workers:
        extra["MEDIA_WORKERS"] = str(args.media_workers)
    bench = BenchServer(args.workers, **extra)
    url = bench.url
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )
    try:
        photo = phone_photo()
        body = form_body(photo)
        await bench.start(session)
        await asyncio.sleep(1.0)
        seeded = await seed(bench.dsn, max(args.connections // 2, args.uploads), bench.tag)
        settings = Settings(jwt_secret=SECRET, jwt_ttl_hours=2)
        stats = Stats()
        conns: list[Conn] = []
        for booking_id, owner_id, sitter_id in seeded[: args.connections // 2]:
            room = Room(booking_id)
            for user_id, role in ((owner_id, "owner"), (sitter_id, "sitter")):
                c = Conn(user_id, room)
                room.conns.append(c)
                token, _ = issue_token(settings, user_id, role)
                c.ws = await session.ws_connect(
                    f"{url}/api/ws", headers={"Authorization": f"Bearer {token}"}
                )
                subscribed = asyncio.Event()
                c.reader = asyncio.create_task(read_frames(c, stats, subscribed))
                await c.ws.send_str(json.dumps({"type": "subscribe", "booking_id": booking_id}))
                await asyncio.wait_for(subscribed.wait(), 30)
                conns.append(c)
        print(
            f"{len(conns)} chat connections; photo {len(photo) / 1e6:.1f} MB, 4032 x 3024; "
            f"{args.uploads} uploaders; image work: {args.executor}"
        )

        jobs = [
            (issue_token(settings, owner_id, "owner")[0], booking_id)
            for booking_id, owner_id, _ in seeded[: args.uploads]
        ]
        # Warm-up: one upload on each of several connections (so on every worker), before
        # either phase: a process loads Pillow and its codecs with its first image.
        warmed = await asyncio.gather(
            *(upload_once(session, url, t, b, body) for t, b in jobs[: 3 * args.workers])
        )
        print(f"warm-up: {sum(warmed)} of {len(warmed)} uploads stored")

        print("phase 1: chat alone")
        await load_phase(conns, stats, args.rate, args.duration)
        alone = chat_p99(stats)

        print(f"phase 2: chat with {args.uploads} uploads at a time")
        loop = asyncio.get_running_loop()
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn) as uploaders:
            # The uploaders' process is started before the phase's clock runs.
            await loop.run_in_executor(uploaders, time.sleep, 0)
            phase_started = time.perf_counter()
            uploads = loop.run_in_executor(uploaders, upload_for, url, jobs, body, args.duration)
            await load_phase(conns, stats, args.rate, args.duration)
            latencies, failures = await uploads
        took = time.perf_counter() - phase_started
        with_uploads = chat_p99(stats)

        print(
            f"uploads: {len(latencies)} done ({failures} failed) in {took:.1f}s = "
            f"{len(latencies) / took:.2f} uploads/s; upload latency ms p50 "
            f"{percentile(latencies, 0.5) * 1000:.0f} p99 {percentile(latencies, 0.99) * 1000:.0f}"
        )
        print(
            f"chat latency ms p50/p99: alone {alone[0]:.1f}/{alone[1]:.1f}, "
            f"with uploads {with_uploads[0]:.1f}/{with_uploads[1]:.1f} "
            f"(p99 under 100 ms: {'yes' if with_uploads[1] < 100 else 'NO'})"
        )
        for c in conns:
            await c.ws.close()
    finally:
        await session.close()
        await bench.stop()
        media.cleanup()
        print(f"total run time {time.monotonic() - started:.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000, help="chat sockets")
    parser.add_argument("--rate", type=float, default=500.0, help="chat messages/s in all")
    parser.add_argument("--uploads", type=int, default=20, help="concurrent uploaders")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executor", choices=("thread", "process"), default="thread")
    parser.add_argument("--media-workers", type=int, default=0, help="MEDIA_WORKERS (0: default)")
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
