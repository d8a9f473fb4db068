"""Serving the app on a port, in place of `web.run_app`: aiohttp's runner and TCP site with our
own request protocol, so that what aiohttp answers by itself is the API's JSON error too.

aiohttp's HTTP parser refuses some requests before any middleware runs (a request line or a
header over 8,190 bytes, a NUL in a header, a malformed request line) and answered them with
`text/plain` and an ERROR log line with a traceback. The protocol here answers them with the
error envelope of every other error and logs one line, as the access log would."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from nanny.http.middlewares import HTTP_CODES
from nanny.http.responses import error_response
from nanny.ports import cannot_listen

log = logging.getLogger("nanny.http")


class _JsonErrorProtocol(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: too late for another answer
            raise ConnectionError("the response was partly sent; closing the connection")
        if status >= 500:
            # Our error middleware answers every handler failure; this is aiohttp's last resort.
            log.error("error outside the middlewares", exc_info=exc)
            response = error_response(500, "internal_error", "Something went wrong on our side")
        else:
            reason = (message or str(exc or "") or HTTPStatus(status).phrase).strip()
            log.info(
                "refused a malformed HTTP request: %s",
                reason,
                extra={"status": status, "remote": request.remote},
            )
            code, text = HTTP_CODES.get(status, ("error", HTTPStatus(status).phrase))
            response = error_response(status, code, text, {"reason": reason})
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorProtocol(self, loop=self._loop, **self._kwargs)

    def pre_shutdown(self) -> None:
        # aiohttp closes idle kept-alive connections here, resetting any whose request was just
        # on its way. They stay open while the app finishes its requests (nanny.inflight): a
        # request on one gets a 503 that closes it, and shutdown() closes the rest.
        pass

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (aiohttp's)
        super().pre_shutdown()  # the app is done with its requests: now close what is idle
        await super().shutdown(timeout)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            **made._kwargs,
        )


async def _serve(
    app: web.Application, host: str, port: int, *, reuse_port: bool, shutdown_timeout: float
) -> None:
    # SIGTERM and SIGINT raise GracefulExit out of the loop; cleanup then stops listening,
    # lets in-flight requests finish within shutdown_timeout and runs every cleanup_ctx.
    runner = _Runner(app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
        try:
            await site.start()
        except OSError as exc:  # taken since check_port
            raise cannot_listen(host, port, exc) from None
        log.info("serving on http://%s:%d", host, port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(
    app: web.Application, host: str, port: int, *, reuse_port: bool, shutdown_timeout: float
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully and return (as web.run_app does)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(
        _serve(app, host, port, reuse_port=reuse_port, shutdown_timeout=shutdown_timeout)
    )
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
