"""Command line: `nanny serve|migrate|create-admin|seed-demo`; parses arguments, calls the app."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import os
import signal
import sys
import threading
import time

from nanny.config import (
    MULTIPROCESS_DIR_ENV,
    ConfigError,
    Settings,
    StartupError,
    load_settings,
)

log = logging.getLogger("nanny")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nanny", description="Nanny pet-sitting backend")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply pending migrations, then serve HTTP and WebSocket")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing the port")

    sub.add_parser("migrate", help="apply pending database migrations")

    admin = sub.add_parser("create-admin", help="create an administrator account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True)
    admin.add_argument("--full-name", required=True)

    seed = sub.add_parser(
        "seed-demo", help="load demo owners, sitters, bookings and chats (idempotent)"
    )
    seed.add_argument(
        "--scale",
        type=int,
        default=0,
        help="also load N x (100 sitters, 1000 owners, 10000 bookings and reviews) for benchmarks",
    )
    return parser


def configure_logging(settings: Settings) -> None:
    from nanny import logs

    logs.configure(settings.log_level)


def resolve_database(settings: Settings) -> Settings:
    """Settings with a database URL: the configured one, else the embedded PostgreSQL."""
    if settings.database_url:
        return settings
    from nanny.db.embedded import start_embedded_postgres

    return dataclasses.replace(settings, database_url=start_embedded_postgres(settings.data_dir))


def _migrate(settings: Settings) -> None:
    import psycopg2

    from nanny.db.migrate import MIGRATIONS_DIR, apply_migrations
    from nanny.startup import describe, retry_sync

    if not (MIGRATIONS_DIR / "0001.schema.sql").is_file():
        # Serving on an empty schema would fail on every request; say where we looked.
        raise ConfigError(
            f"no migrations in {MIGRATIONS_DIR}; set NANNY_ROOT to the folder holding migrations/"
        )
    # OperationalError covers refused connections and "the database system is starting up".
    applied = retry_sync(
        describe(settings.database_url, "PostgreSQL"),
        lambda: apply_migrations(settings.database_url),
        (psycopg2.OperationalError,),
        settings.startup_timeout_seconds,
    )
    log.info("migrations: %d applied", applied)


def tune_gc() -> None:
    """Keep the cycle collector from stalling the loop. With thousands of sockets a process holds
    many objects, and a full collection walking them all paused it for 100-200 ms, the whole p99
    of chat delivery above 2,000 messages/s. Everything alive at start-up is frozen out of the
    collector's sight, and collections run after 50,000 allocations instead of 700 (memory freed
    by reference counting is unaffected; only cyclic garbage waits a little longer)."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def stop_with_supervisor(supervisor: int) -> None:
    """Stop this worker, gracefully as on SIGTERM, once its supervisor is gone (killed with
    SIGKILL, say): an orphan would go on serving the port beside a restarted server. The
    supervisor's pid comes from the supervisor, so one that died while this process was still
    starting is noticed too."""

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(0.5)
        log.warning("the supervisor (pid %d) is gone; stopping", supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="nanny-supervisor-watch", daemon=True).start()


def _load_server_modules() -> None:
    """Import what a server process runs."""
    # PyJWT loads `cryptography` when it can (8 MiB a process) for the public-key algorithms;
    # tokens here are pinned to HS256, which needs only the standard library's hmac.
    sys.modules.setdefault("cryptography", None)
    import nanny.app  # noqa: F401


async def _return_startup_memory(app) -> None:
    """Hand back to the system what start-up allocated and freed (parsing the catalogs, making
    the templates' environments): glibc keeps freed heap pages otherwise."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_worker(settings: Settings, host: str, port: int, supervisor: int | None) -> None:
    """One server process: its own pool and broker connection; SIGTERM/SIGINT stop it
    gracefully (sockets closed with 1001 after in-flight work). The workers of a supervisor
    (its pid) share the port and stop with it."""
    _load_server_modules()
    from nanny import server
    from nanny.app import create_app
    from nanny.inflight import leftover_timeout

    configure_logging(settings)
    tune_gc()
    if supervisor is not None:
        stop_with_supervisor(supervisor)
    app = create_app(settings)
    app.on_startup.append(_return_startup_memory)  # after every cleanup_ctx has started
    server.run(
        app,
        host,
        port,
        reuse_port=supervisor is not None,
        # SIGTERM/SIGINT: stop listening; the app finishes or refuses its requests within most
        # of SHUTDOWN_TIMEOUT_SECONDS (nanny.inflight), the server waits at most the rest; then
        # every cleanup_ctx runs (background tasks, Redis, the pool) and we exit 0.
        shutdown_timeout=leftover_timeout(settings.shutdown_timeout_seconds),
    )


def supervise(settings: Settings, host: str, port: int, workers: int) -> int:
    """Run `workers` processes sharing the port (SO_REUSEPORT: the kernel spreads new
    connections), restart any that dies, and on SIGTERM/SIGINT stop them all gracefully.

    Each worker is `python -m nanny.worker`, its settings handed over on its stdin: the
    supervisor imports neither the web app nor its models, and needs no multiprocessing helper
    process (spawn's resource tracker)."""
    import pickle
    import shutil
    import subprocess
    import tempfile

    stopping = False
    # The workers' metrics, summed by whichever one is scraped (nanny/metrics.py).
    metrics_dir = tempfile.mkdtemp(prefix="nanny-metrics-")
    os.environ[MULTIPROCESS_DIR_ENV] = metrics_dir
    handed_over = pickle.dumps(settings)

    procs: list[subprocess.Popen | None] = [None] * workers

    def request_stop(signum, frame) -> None:
        nonlocal stopping
        if stopping:  # a second signal would cut a worker's graceful stop short
            return
        stopping = True
        # Passed on at once: the workers' shutdown timeout starts with ours, not at the wait
        # loop's next turn half a second later.
        for proc in procs:
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    started = [0.0] * workers
    quick_deaths = [0] * workers

    def spawn(i: int) -> None:
        command = [sys.executable, "-m", "nanny.worker", host, str(port), str(os.getpid())]
        proc = subprocess.Popen(command, stdin=subprocess.PIPE)
        proc.stdin.write(handed_over)
        proc.stdin.close()
        procs[i] = proc
        started[i] = time.monotonic()
        log.info("worker %d started (pid %d)", i, proc.pid)

    try:
        for i in range(workers):
            spawn(i)
        while not stopping:
            time.sleep(0.5)
            for i, proc in enumerate(procs):
                if proc.poll() is None or stopping:
                    continue
                log.warning(
                    "worker %d (pid %d) exited with %s; restarting", i, proc.pid, proc.returncode
                )
                # Its counters stay in the sums; its open-socket gauge goes.
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(proc.pid, metrics_dir)
                # A worker that dies right after starting is not restarted in a tight loop.
                quick = time.monotonic() - started[i] < 5
                quick_deaths[i] = quick_deaths[i] + 1 if quick else 0
                if quick_deaths[i]:
                    time.sleep(min(5.0, 0.5 * quick_deaths[i]))
                if not stopping:
                    spawn(i)
        log.info("stopping %d workers", workers)
        # The workers finish within the timeout; the margin covers closing pools and exiting.
        deadline = time.monotonic() + settings.shutdown_timeout_seconds + 5
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from nanny.ports import check_port

    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    if args.workers > 1 and not settings.redis_url:
        raise ConfigError(
            f"--workers {args.workers} needs REDIS_URL: the processes share chat rooms "
            "through Redis"
        )
    check_port(args.host, args.port)
    settings = resolve_database(settings)
    # Once, here, before any worker starts.
    if args.workers == 1:
        # This process serves too: it loads the app before it waits for PostgreSQL (and then
        # Redis), so that time is not taken from the waits.
        _load_server_modules()
        _migrate(settings)
    elif code := _migrate_in_child(settings):
        return code
    if args.workers == 1:
        # One process reads its own registry; a directory set from outside (as for gunicorn)
        # would hold counts of earlier runs that nobody wipes.
        os.environ.pop(MULTIPROCESS_DIR_ENV, None)
        run_worker(settings, args.host, args.port, supervisor=None)
        return 0
    return supervise(settings, args.host, args.port, args.workers)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    _migrate(resolve_database(settings))
    return 0


def _migrate_in_child(settings: Settings) -> int:
    """`nanny migrate` in a process of its own: the supervisor then never loads the migration
    tool and the database driver it needs (its memory is what it imports). Its exit status;
    a failure has printed its one line."""
    import subprocess

    env = os.environ | {"DATABASE_URL": settings.database_url}
    return subprocess.run([sys.executable, "-m", "nanny", "migrate"], env=env).returncode


async def _create_admin(settings: Settings, account) -> int | None:
    import asyncpg
    import bcrypt

    from nanny.db import users as db_users

    hashed = await asyncio.to_thread(
        bcrypt.hashpw, account.password.encode(), bcrypt.gensalt(settings.bcrypt_rounds)
    )
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await db_users.create_user(
            conn,
            email=account.email,
            phone=None,
            full_name=account.full_name,
            password_hash=hashed.decode(),
            role="admin",
        )
    finally:
        await conn.close()


def cmd_create_admin(settings: Settings, args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from nanny.http.schemas import Body, Email, FullName, Password
    from nanny.validation import validation_error

    class AdminAccount(Body):
        email: Email
        password: Password
        full_name: FullName

    try:
        account = AdminAccount(email=args.email, password=args.password, full_name=args.full_name)
    except ValidationError as exc:
        raise ConfigError(validation_error(exc, "arguments").message) from None
    settings = resolve_database(settings)
    _migrate(settings)
    user_id = asyncio.run(_create_admin(settings, account))
    if user_id is None:
        print(f"nanny: an account with e-mail {account.email} already exists", file=sys.stderr)
        return 1
    print(f"admin {account.email} created (user_id {user_id})")
    return 0


def cmd_seed_demo(settings: Settings, args: argparse.Namespace) -> int:
    from nanny.seed import run

    if not 0 <= args.scale <= 1000:
        raise ConfigError("--scale must be between 0 and 1000")
    settings = resolve_database(settings)
    _migrate(settings)
    return asyncio.run(
        run(settings.database_url, scale=args.scale, bcrypt_rounds=settings.bcrypt_rounds)
    )


COMMANDS = {
    "serve": cmd_serve,
    "migrate": cmd_migrate,
    "create-admin": cmd_create_admin,
    "seed-demo": cmd_seed_demo,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings)
        return COMMANDS[args.command](settings, args)
    except ConfigError as exc:
        print(f"nanny: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"nanny: {exc}", file=sys.stderr)
        return 1
