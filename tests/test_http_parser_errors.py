"""What aiohttp's HTTP parser refuses before any middleware runs is answered with the API's JSON
error too, over a raw socket to a real `nanny serve` process; the log says it in one line."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.test_shutdown import log_entries, start_server, wait_exit, wait_health

LONG = "a" * 9000  # aiohttp reads at most 8,190 bytes of a request line or a header

MALFORMED = {
    "header over 8190 bytes": f"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Long: {LONG}\r\n\r\n",
    "URL over 8190 bytes": f"GET /api/health?q={LONG} HTTP/1.1\r\nHost: x\r\n\r\n",
    "NUL in a header": "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
    "not HTTP": "HELLO\r\n\r\n",
}


async def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=5)  # the server closes after it
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.fixture
async def server_port(database_url, tmp_path):
    log_path = tmp_path / "serve.log"
    proc, port = start_server(database_url, log_path)
    try:
        await wait_health(port)
        yield port
        proc.terminate()
        assert await wait_exit(proc, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    entries = log_entries(log_path)  # every line is JSON
    assert not [e for e in entries if e["level"] in ("ERROR", "CRITICAL") or "exception" in e]
    refused = [e for e in entries if e["message"].startswith("refused a malformed HTTP request")]
    assert len(refused) == len(MALFORMED)


async def test_parser_errors_are_the_json_error(server_port):
    for name, request in MALFORMED.items():
        status, headers, body = await raw_exchange(server_port, request.encode("latin-1"))
        assert status == 400, name
        assert headers["content-type"] == "application/json; charset=utf-8", name
        data = json.loads(body)
        assert data["code"] == "validation_error", name
        assert data["error"] == "The request is malformed", name
        assert data["details"]["reason"], name
        assert headers["x-content-type-options"] == "nosniff"
