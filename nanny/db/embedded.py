"""The embedded PostgreSQL used when no DATABASE_URL is given (the `pgserver` package).

What it does on the machine (the README says it too): PostgreSQL's binaries come with the
pgserver wheel; its data lives in NANNY_DATA_DIR/pg, where it also logs (`log`); it listens on
a Unix socket only (in that directory, or under the user's runtime directory when the path is
too long for a socket), with no TCP port; it keeps running while any process uses it. As root it
cannot run as the current user (PostgreSQL refuses root): pgserver runs it as the OS user
`pgserver`, creates that user with `useradd` when missing, gives it the data directory and
makes every directory above it readable and searchable by all users."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import warnings
from pathlib import Path

from nanny.config import StartupError

log = logging.getLogger("nanny.embedded")

DATABASE = "nanny"
# The OS user pgserver runs PostgreSQL as when the process is root.
ROOT_SYSTEM_USER = "pgserver"


def check_running_as_root(pgdata: Path, user: str = ROOT_SYSTEM_USER) -> None:
    """As root: refuse at once, in one line, when pgserver could not make its OS user (it would
    die in a traceback), and otherwise say what it is about to do to the machine."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(user)
        exists = True
    except KeyError:
        exists = False
    if not exists and shutil.which("useradd") is None:
        raise StartupError(
            f"as root, the embedded PostgreSQL must run as the OS user '{user}', which does not "
            "exist, and there is no useradd on PATH to create it: create that user "
            f"(adduser --system {user}), run nanny as another user, or set DATABASE_URL"
        )
    log.warning(
        "running as root: the embedded PostgreSQL runs as the OS user '%s'%s, which gets %s, and "
        "every directory above it becomes readable by all users; run nanny as another user or "
        "set DATABASE_URL to avoid this",
        user,
        "" if exists else " (created now with useradd)",
        pgdata,
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):  # its text is the whole command line
        return f"{Path(str(exc.cmd[0])).name} exited with {exc.returncode}"
    return str(exc) or type(exc).__name__


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse, when another process already runs it) PostgreSQL in data_dir/pg and
    return a DSN for its `nanny` database. It stops when the last process using it exits."""
    pgdata = (data_dir / "pg").resolve()
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create {pgdata.parent} ({exc.strerror}): set NANNY_DATA_DIR to a folder "
            "this user may write, or set DATABASE_URL"
        ) from None
    check_running_as_root(pgdata)
    with warnings.catch_warnings():
        # platformdirs warns about a missing XDG_RUNTIME_DIR on servers; harmless here.
        warnings.simplefilter("ignore")
        import pgserver  # only the embedded mode needs it

        try:
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
            raise StartupError(
                f"the embedded PostgreSQL in {pgdata} did not start ({_reason(exc)}); its log "
                f"is {pgdata / 'log'}; or set DATABASE_URL to use another PostgreSQL"
            ) from None
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
    log.info("embedded PostgreSQL in %s", pgdata)
    return server.get_uri(database=DATABASE)
