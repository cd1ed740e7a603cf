"""A throttling TCP proxy on loopback, to make a local origin behave like a
remote one (S3, a CDN): each connection is capped, the whole link is
capped, and every request pays a latency.

    python bench/throttle_proxy.py LISTEN_PORT UPSTREAM_PORT \\
        [--conn-mbps 40] [--link-mbps 400] [--latency-ms 20]     # prints "ready"

Model (what is and is not simulated):
  * per-connection cap: bytes from the origin to the client on one TCP
    connection are paced at --conn-mbps (MB/s, 10^6), as S3 and CDNs do;
  * link cap: all connections together are paced at --link-mbps;
  * latency: a new connection waits --latency-ms before it is connected
    upstream, and every chunk the client sends (a request: HTTP/1.1 without
    pipelining) is held --latency-ms before it is forwarded, so each request
    costs one round trip before its first byte. TCP window/BDP effects of a
    real long link are not simulated.
Pacing is by virtual time (a connection's next send may not start before the
bytes already sent would have left at the cap), with a burst of one chunk.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time

CHUNK = 256 * 1024
BUFFER = 256 * 1024


class Pacer:
    """A rate limit shared by whoever calls take(): it sleeps the caller
    until n more bytes fit under the rate."""

    def __init__(self, bytes_per_s: float, burst: int = CHUNK) -> None:
        self.rate = bytes_per_s
        self.burst_s = burst / bytes_per_s
        self.t = time.monotonic()
        self.lock = threading.Lock()

    def take(self, n: int) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(self.t, now - self.burst_s)
            self.t = start + n / self.rate
            wait = self.t - now - self.burst_s
        if wait > 0:
            time.sleep(wait)


def pipe(src: socket.socket, dst: socket.socket, pacers: list[Pacer], delay: float) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        while True:
            n = src.recv_into(buf)
            if n == 0:
                break
            if delay:
                time.sleep(delay)
            for p in pacers:
                p.take(n)
            dst.sendall(view[:n])
    except OSError:
        pass
    finally:
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listen: int, upstream: int, conn_bps: float, link_bps: float, latency: float) -> None:
    link = Pacer(link_bps)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen))
    srv.listen(256)
    print("ready", flush=True)

    def handle(client: socket.socket) -> None:
        time.sleep(latency)  # connection set-up: one round trip
        try:
            up = socket.socket()
            # Small buffers between origin and proxy: what the origin has sent
            # but the client has not received stays about one link's
            # bandwidth-delay product, as on a real path (else a kill -9
            # would "lose" megabytes parked in loopback buffers).
            up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
            up.connect(("127.0.0.1", upstream))
        except OSError:
            client.close()
            return
        for s in (client, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        down = threading.Thread(target=pipe, args=(up, client, [Pacer(conn_bps), link], 0.0), daemon=True)
        down.start()
        pipe(client, up, [], latency)
        down.join()
        client.close()
        up.close()

    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("listen", type=int)
    ap.add_argument("upstream", type=int)
    ap.add_argument("--conn-mbps", type=float, default=40.0)
    ap.add_argument("--link-mbps", type=float, default=400.0)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    a = ap.parse_args()
    serve(a.listen, a.upstream, a.conn_mbps * 1e6, a.link_mbps * 1e6, a.latency_ms / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
