"""`model-cache download --dragonfly-socket` with no daemon behind the
socket: the policy's ifUnavailable says direct (one line, then the origin)
or refuse (exit 7, nothing fetched). Needs no Dragonfly build; the real
daemon's tests are in tests/dragonfly."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.download.origin import Origin
from tests.dragonfly.support import MiB, env_for, finish, hub_model, start, through, weights_served
from tests.download.support import model_files


def test_daemon_missing_direct(origin: Origin, dl_env: dict[str, str], tmp_path: Path) -> None:
    repo = hub_model(origin, "direct", big=2 * MiB)
    dest = tmp_path / "direct" / "main"
    code, out = finish(start(env_for(dl_env, origin), "direct", dest, *through(tmp_path / "none" / "dfdaemon.sock")))
    assert code == 0, out
    assert "dfdaemon is unavailable (no socket at" in out and "downloading straight from the origin" in out, out
    assert model_files(dest) == repo.files


def test_daemon_missing_refused(origin: Origin, dl_env: dict[str, str], tmp_path: Path) -> None:
    hub_model(origin, "refused", big=2 * MiB)
    dest = tmp_path / "refused" / "main"
    code, out = finish(start(env_for(dl_env, origin), "refused", dest,
                             *through(tmp_path / "none" / "dfdaemon.sock", "refuse")))
    assert code == 7, out
    assert "ifUnavailable: refuse" in out and "start dfdaemon on the node" in out, out
    assert not dest.exists()
    assert weights_served(origin, "refused") == 0


def test_socket_that_does_not_answer_is_unavailable(origin: Origin, dl_env: dict[str, str], tmp_path: Path) -> None:
    """A socket file nobody serves (a daemon that died without removing it)."""
    sock_path = tmp_path / "dead" / "dfdaemon.sock"
    sock_path.parent.mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock_path))  # bound, never listening: connect() is refused
    try:
        repo = hub_model(origin, "dead", big=1 * MiB)
        dest = tmp_path / "dead-model" / "main"
        code, out = finish(start(env_for(dl_env, origin), "dead", dest, *through(sock_path)))
    finally:
        s.close()
    assert code == 0, out
    assert "does not answer" in out and "downloading straight from the origin" in out, out
    assert model_files(dest) == repo.files


def test_a_daemon_whose_download_service_is_not_serving_is_unavailable(
        origin: Origin, dl_env: dict[str, str], tmp_path: Path) -> None:
    """A gRPC server on the socket whose health service says NOT_SERVING for
    the download service (a daemon starting up or shutting down): refused
    with the health status, nothing fetched."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from webhook.download.sources.dragonfly import HEALTH_SERVICE

    sock_path = tmp_path / "starting" / "dfdaemon.sock"
    sock_path.parent.mkdir()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set(HEALTH_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix://{sock_path}")
    server.start()
    try:
        hub_model(origin, "starting", big=1 * MiB)
        dest = tmp_path / "starting-model" / "main"
        code, out = finish(start(env_for(dl_env, origin), "starting", dest, *through(sock_path, "refuse")))
    finally:
        server.stop(grace=None)
    assert code == 7, out
    assert "answers but is not serving (health NOT_SERVING)" in out and "ifUnavailable: refuse" in out, out
    assert weights_served(origin, "starting") == 0
