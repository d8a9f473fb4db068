"""The machine's ceiling for a REST endpoint: a bare aiohttp + asyncpg app that reads one booking
row by id and answers it as JSON, with no authentication, no middleware and no checks.

`bench/rest_load.py` runs it beside Nanny with the same number of processes and the same pool
size, so every figure can be read as a share of what this machine allows. The throughput
targets were set where such an endpoint served about 7,000 req/s with two processes; a slower
machine shows a lower ceiling and proportionally lower figures.

    python bench/baseline_app.py --port 8090 --workers 2 --database-url postgresql://...
"""

from __future__ import annotations

import argparse
import os
import signal

import asyncpg
from aiohttp import web

POOL = web.AppKey("pool", asyncpg.Pool)

BOOKING_SQL = """
SELECT booking_id, owner_id, sitter_id, status, start_time, end_time, total_price
FROM bookings WHERE booking_id = $1
"""


def create_app(dsn: str, pool_size: int) -> web.Application:
    async def pool_ctx(app: web.Application):
        app[POOL] = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        yield
        await app[POOL].close()

    async def get_booking(request: web.Request) -> web.Response:
        row = await request.app[POOL].fetchrow(BOOKING_SQL, int(request.match_info["id"]))
        if row is None:
            raise web.HTTPNotFound()
        return web.json_response(
            {
                "booking_id": row["booking_id"],
                "owner_id": row["owner_id"],
                "sitter_id": row["sitter_id"],
                "status": row["status"],
                "start_time": row["start_time"].isoformat(),
                "end_time": row["end_time"].isoformat(),
                "total_price": str(row["total_price"]),
            }
        )

    app = web.Application()
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/bookings/{id:\\d+}", get_booking)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            children = []
            break
        children.append(pid)

    def stop_children(*_: object) -> None:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        raise web.GracefulExit()

    signal.signal(signal.SIGTERM, stop_children)
    web.run_app(
        create_app(args.database_url, args.pool_size),
        host="127.0.0.1",
        port=args.port,
        reuse_port=True,
        access_log=None,
        print=None,
        handle_signals=False,
    )


if __name__ == "__main__":
    main()
