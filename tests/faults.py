"""A real TCP proxy in front of a server, so tests can cut and restore the network to it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from urllib.parse import parse_qs, urlsplit, urlunsplit


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target (host/port or unix socket). `cut()` closes every
    connection and refuses new ones; `restore()` accepts again."""

    def __init__(
        self, *, host: str | None = None, port: int | None = None, path: str | None = None
    ):
        self._target = (host, port, path)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    @classmethod
    def for_postgres(cls, dsn: str) -> TcpProxy:
        parts = urlsplit(dsn)
        socket_dir = parse_qs(parts.query).get("host", [None])[0]
        if socket_dir and socket_dir.startswith("/"):
            return cls(path=f"{socket_dir}/.s.PGSQL.{parts.port or 5432}")
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or 5432)

    def postgres_dsn(self, dsn: str) -> str:
        parts = urlsplit(dsn)
        user = parts.username or "postgres"
        return urlunsplit(("postgresql", f"{user}@127.0.0.1:{self.port}", parts.path, "", ""))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _open_target(self):
        host, port, path = self._target
        if path:
            return await asyncio.open_unix_connection(path)
        return await asyncio.open_connection(host, port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._open_target()
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        tasks = [
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)
        self._writers.difference_update((writer, up_writer))

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()


@contextlib.asynccontextmanager
async def app_deaf_to_redis(settings, redis_url: str, aiohttp_client):
    """An in-process app whose Redis goes through a TcpProxy; `deafen()` cuts it and returns once
    the app noticed (it hears no other process's changes): yields (client, deafen)."""
    from nanny.app import create_app
    from nanny.keys import CHAT_HUB

    parts = urlsplit(redis_url)
    proxy = TcpProxy(host=parts.hostname, port=parts.port)
    await proxy.start()
    try:
        local = dataclasses.replace(
            settings,
            redis_url=f"redis://127.0.0.1:{proxy.port}{parts.path}",
            redis_prefix=f"t{uuid.uuid4().hex[:10]}",
        )
        client = await aiohttp_client(create_app(local))

        async def deafen() -> None:
            broker = client.app[CHAT_HUB].broker
            await proxy.cut()
            while broker.connected:
                await asyncio.sleep(0.02)

        yield client, deafen
    finally:
        await proxy.close()
