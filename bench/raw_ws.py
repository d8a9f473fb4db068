"""A WebSocket client on a bare socket, for clients that misbehave on purpose: it subscribes to a
room with its whole history and then reads only when its caller reads the socket, and it can
leave by a reset. Used by `ws_load.py --mode churn` and by the tests of dropped sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct


def masked_text(payload: bytes) -> bytes:
    """One client text frame (masked, as RFC 6455 requires of clients) of under 126 bytes."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body


async def stalled_subscriber(port: int, token: str, booking_id: int) -> socket.socket:
    """A client on 127.0.0.1:`port` subscribed to the booking with after_seq=0 that has read
    nothing but the upgrade's answer. Its small receive buffer and segment size keep the kernel
    from taking in much of the replay, as a distant or stalled client's network would: the
    server is soon left waiting for the client to read. ConnectionError if the upgrade fails."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(
            sock,
            (
                "GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode(),
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, 1)  # the answer only, not a byte of the frames
            if not chunk:
                raise ConnectionError("the server closed the upgrade")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
        frame = {"type": "subscribe", "booking_id": booking_id, "after_seq": 0}
        await loop.sock_sendall(sock, masked_text(json.dumps(frame).encode()))
    except BaseException:
        sock.close()
        raise
    return sock


def reset(sock: socket.socket) -> None:
    """Leave by a reset (RST), not the closing handshake."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
