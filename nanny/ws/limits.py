"""The per-connection limits of API.md, in one place so tests can shrink the timings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WsLimits:
    max_frame_bytes: int = 16 * 1024  # larger frames close the socket with 1009
    frames_per_second: float = 20.0  # sustained rate a connection may send
    frame_burst: int = 60  # frames a quiet connection may send at once (a burst of 50 sends fits)
    strikes_before_close: int = 20  # rate_limited answers before closing with 1008
    send_queue_frames: int = 512  # frames waiting for a slow reader before it is dropped
    auth_timeout: float = 10.0  # seconds to send the first `auth` frame
    heartbeat: float = 30.0  # seconds between pings; a peer that does not pong is dropped
    rooms_per_connection: int = 200
    gap_wait: float = 0.03  # seconds a room waits for a missing seq before reading it
    shutdown_grace: float = 10.0  # seconds shutdown waits for sockets to finish in-flight work
    close_timeout: float = 2.0  # seconds a closing peer has to take our close frame
