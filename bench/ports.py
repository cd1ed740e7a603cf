"""A free loopback port, for the benchmarks (which import nothing from tests/)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1: for a process that
    must be told its port before it starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
