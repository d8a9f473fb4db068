"""Whether the server can listen on its port, asked before anything starts. Without aiohttp, so
the supervisor of `serve --workers N` asks it without loading the web stack."""

from __future__ import annotations

import errno
import socket

from nanny.config import StartupError


def cannot_listen(host: str, port: int, exc: OSError) -> StartupError:
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"port {port} is in use: pass --port")
    if exc.errno == errno.EACCES:
        return StartupError(f"port {port} needs root: pass --port 1024 or above")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(
            f"--host {host} is not an address of this machine: pass --host 0.0.0.0 or one of them"
        )
    return StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def check_port(host: str, port: int) -> None:
    """Fail at once, in one line, when the server could not listen on host:port, before the
    database starts and workers spawn. A probe without SO_REUSEPORT also catches a server that
    shares the port with its own workers, whom the workers' binds would silently join."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise StartupError(
            f"--host {host} is not a name or address of this machine: pass --host 0.0.0.0"
        ) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            try:
                probe.bind(address)
            except OSError as exc:
                raise cannot_listen(host, port, exc) from None
