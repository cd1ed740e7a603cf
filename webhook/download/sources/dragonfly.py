"""Files through the node's Dragonfly daemon (dfdaemon) instead of straight
from the origin: one origin download for all nodes, peers serving pieces
while they download (docs/dragonfly.md).

A wrapper around the model's own source: the listing (the pinned revision's
file list, sizes, checksums) is still ours, and so are the lock, the resume
and the verification. Each file is one Dragonfly task, asked for over the
daemon's gRPC socket (`DfdaemonDownload.DownloadTask`) with:

* the file's URL and headers as our source would fetch it (hf: the resolve
  URL at the commit, with the token; http(s): the URL),
* a task id of our own (`content_for_calculating_task_id`: the listing's key,
  the file's path and its checksum), so every node asks for the same task
  whatever signature or redirect its URL carries,
* a fixed piece length, a tag and an application name,
* `need_piece_content`: the daemon streams each piece's bytes back to us,
  and we write them into our partial directory as any other source's bytes.

Streaming rather than the daemon's hard link to an output path: the link
needs our partial directory on the file system of the daemon's storage, at a
path as the daemon sees it, written by the daemon's user; streamed bytes
land where our writer puts them, hashed as they arrive, fsynced and
published by our marker and rename. The cost: the node holds the daemon's
copy as well as ours until the daemon's GC drops it.

Pieces finish in any order; `_ordered` hands them on in file order, holding
at most MAX_AHEAD bytes of later pieces. A piece still missing then (a slow
parent) ends the stream as a transient error: the next attempt starts at our
offset, and the daemon serves what it already has from its own storage.

The daemon missing or unhealthy (no socket, no answer, a dropped stream it
cannot take back): with `ifUnavailable: direct` one line says so and every
later byte comes straight from the origin (the source we wrap); with
`refuse` the download fails with the reason (exit 7), and the kubelet
restarts the init container, which tries the daemon again.
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Iterator

from webhook.download.errors import AuthError, DownloadError, NotFoundError, TransientError
from webhook.download.lines import emit
from webhook.download.remote import Body, Listing, RemoteFile, Source
from webhook.quantity import describe as format_bytes

if TYPE_CHECKING:
    import grpc

PIECE_LENGTH = 4 << 20        # fixed, so every node computes the same pieces (Dragonfly's usual size)
MAX_AHEAD = 128 << 20         # bytes of later pieces held while an earlier one is missing
MAX_MESSAGE = 64 << 20        # a piece and its envelope; gRPC's default limit (4 MiB) is a piece
CONNECT_TIMEOUT = 5.0         # seconds for the daemon's socket to answer
FAILED_ATTEMPTS = 2           # a file the daemon fails this often in a row, no byte delivered: unhealthy
TAG = "model-cache"
HEALTH_SERVICE = "dfdaemon.v2.DfdaemonDownload"
APPLICATION = "model-cache"
IF_UNAVAILABLE = ("direct", "refuse")
# What the daemon fetches as a plain URL with our headers. s3:// would need
# presigned URLs or the daemon's own credentials; file:// is local already.
SCHEMES = ("hf", "http")


class DaemonUnavailable(Exception):
    """The daemon cannot be reached or does not answer; the reason is the message."""


def _grpc_modules():
    # Imported only when the policy sends downloads through Dragonfly.
    import grpc
    from dragonfly_api import common_pb2, dfdaemon_pb2, dfdaemon_pb2_grpc

    return grpc, common_pb2, dfdaemon_pb2, dfdaemon_pb2_grpc


class DaemonClient:
    """The daemon's download socket: one channel, shared by every file."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        grpc, _, _, stubs = _grpc_modules()
        self._grpc = grpc
        self.channel = grpc.insecure_channel(
            f"unix://{socket_path}",
            # gRPC's default :authority for a unix socket is the socket's
            # path, percent-encoded, which dfdaemon's HTTP/2 server (hyper)
            # refuses with RST_STREAM(PROTOCOL_ERROR) on every call.
            options=[("grpc.default_authority", "localhost"),
                     ("grpc.max_receive_message_length", MAX_MESSAGE),
                     ("grpc.max_send_message_length", MAX_MESSAGE)])
        self.stub = stubs.DfdaemonDownloadStub(self.channel)

    def check(self) -> None:
        """Raises DaemonUnavailable unless the daemon's health service says SERVING."""
        grpc = self._grpc
        if not os.path.exists(self.socket_path):
            raise DaemonUnavailable(f"no socket at {self.socket_path}")
        # The download service's health (SERVING once the daemon is up, not just its socket).
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            answer = health_pb2_grpc.HealthStub(self.channel).Check(
                health_pb2.HealthCheckRequest(service=HEALTH_SERVICE), timeout=CONNECT_TIMEOUT)
        except grpc.RpcError as err:
            raise DaemonUnavailable(f"{self.socket_path} does not answer: {_rpc_reason(err)}") from None
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            raise DaemonUnavailable(f"{self.socket_path} answers but is not serving (health {status})")

    def download(self, request) -> "Iterator":  # noqa: ANN001 - a DownloadTaskRequest
        return self.stub.DownloadTask(request)

    def close(self) -> None:
        self.channel.close()


def _rpc_reason(err: "grpc.RpcError") -> str:
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    return f"{code.name if code is not None else 'error'}: {details}"


def _backend_status(err: "grpc.RpcError") -> int | None:
    """The origin's HTTP status, when the daemon's error carries it: tonic
    sends errordetails.v2.Backend as JSON in grpc-status-details-bin."""
    try:
        trailers = err.trailing_metadata() or ()
    except AttributeError:
        return None
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            try:
                status = json.loads(value).get("status_code")
            except (ValueError, AttributeError):
                return None
            return status if isinstance(status, int) else None
    return None


class DragonflySource:
    """Source SOURCE's files, fetched through the daemon at SOCKET_PATH."""

    ranged = False  # one task per file: the daemon splits it into pieces, not we into parts

    def __init__(self, source: Source, socket_path: str, if_unavailable: str = "direct",
                 client: DaemonClient | None = None, scheme: str = "hf") -> None:
        if if_unavailable not in IF_UNAVAILABLE:
            raise ValueError(f"if_unavailable must be one of {IF_UNAVAILABLE}")
        self.inner = source
        self.socket_path = socket_path
        self.if_unavailable = if_unavailable
        self.label = getattr(source, "label", "source")
        self.immutable = getattr(source, "immutable", False)
        self.client = client
        self.scheme = scheme
        self.key = ""
        self._direct = False
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}

    # -- the source protocol ---------------------------------------------------

    def listing(self) -> Listing:
        listing = self.inner.listing()
        self.key = listing.key
        self._connect()
        return listing

    def open(self, f: RemoteFile, offset: int, validator: str | None, end: int | None = None) -> Body:
        if not self._direct:
            try:
                return self._open_task(f, offset)
            except DaemonUnavailable as err:
                self._unavailable(str(err))
        return self._open_direct(f, offset, validator, end)

    # -- the daemon ------------------------------------------------------------

    def _connect(self) -> None:
        """Checks the daemon before the first byte: the line about a fallback
        comes first, not after a failed file."""
        if self.scheme not in SCHEMES:
            self._unavailable(f"{self.scheme}:// sources are not fetched through Dragonfly (hf:// and http(s):// are)")
            return
        try:
            if self.client is None:
                self.client = DaemonClient(self.socket_path)
            self.client.check()
        except DaemonUnavailable as err:
            self._unavailable(str(err))
            return
        emit(f"model-cache: dragonfly: downloading through the node's dfdaemon at {self.socket_path} "
             f"(one origin download for all nodes; pieces of {format_bytes(PIECE_LENGTH)})")

    def _unavailable(self, reason: str) -> None:
        if self.if_unavailable == "refuse":
            raise DownloadError(
                f"dragonfly: the node's dfdaemon is unavailable ({reason}); the policy says ifUnavailable: refuse, so "
                f"nothing is fetched from the origin directly; start dfdaemon on the node (the kubelet retries this "
                f"download), or set hostPath.dragonfly.ifUnavailable: direct")
        with self._lock:
            first = not self._direct
            self._direct = True
        if first:
            emit(f"model-cache: dragonfly: the node's dfdaemon is unavailable ({reason}); downloading straight from "
                 f"the origin instead (policy ifUnavailable: direct): this node's bytes are not shared with its peers")

    def _request(self, f: RemoteFile):
        _, common, dfdaemon, _ = _grpc_modules()
        url, headers = self._origin_request(f)
        download = common.Download(
            url=url, type=common.TaskType.STANDARD, tag=TAG, application=APPLICATION,
            priority=common.Priority.LEVEL0, request_header=headers, piece_length=PIECE_LENGTH,
            need_piece_content=True, content_for_calculating_task_id=self._task_content(f),
        )
        if f.check is not None and f.check.algorithm in ("sha256", "sha512"):
            download.digest = f"{f.check.algorithm}:{f.check.value}"
        if "scheduling_policy" in common.Download.DESCRIPTOR.fields_by_name:
            # Small files too go through the swarm (AUTO would fetch them from the origin on every node).
            download.scheduling_policy = common.SchedulingPolicy.ALWAYS
        return dfdaemon.DownloadTaskRequest(download=download)

    def _task_content(self, f: RemoteFile) -> str:
        check = f"{f.check.algorithm}:{f.check.value}" if f.check is not None else f"size:{f.size}"
        return json.dumps({"model-cache": self.key, "path": f.path, "check": check}, sort_keys=True)

    def _origin_request(self, f: RemoteFile) -> tuple[str, dict[str, str]]:
        """What the daemon (or the seed peer it hands the task to) asks the
        origin for: the URL our source would fetch, with its headers."""
        url = f.ref if isinstance(f.ref, str) else None
        assert url is not None and url.startswith(("http://", "https://")), f.ref
        return url, dict(getattr(self.inner, "headers", {}) or {})

    def _open_task(self, f: RemoteFile, offset: int) -> Body:
        assert self.client is not None
        grpc = self.client._grpc
        stream = self.client.download(self._request(f))
        state = {"peer": 0, "origin": 0, "local": 0}

        def chunks() -> Iterator[bytes]:
            got = 0
            try:
                for chunk in _ordered(_pieces(stream, state), offset, f.path):
                    got += len(chunk)
                    yield chunk
            except grpc.RpcError as err:
                raise self._translate(err, f, got) from None
            except TransientError as err:
                self._count_failure(f, got, str(err))
                raise
            if f.size is not None and offset + got < f.size:
                reason = f"dfdaemon: {f.path}: the stream ended after {offset + got} of {f.size} bytes"
                self._count_failure(f, got, reason)
                raise TransientError(reason)
            if f.size is not None and f.size >= PIECE_LENGTH:
                self._say_sources(f, state)

        return Body(chunks=chunks(), close=stream.cancel, total=f.size)

    def _count_failure(self, f: RemoteFile, got: int, reason: str) -> None:
        """A daemon that answers but fails the same file FAILED_ATTEMPTS times
        in a row without a byte (it lost its parents and may not go to the
        origin, say) counts as unhealthy: the fallback, or the refusal."""
        with self._lock:
            n = self._failures[f.path] = 0 if got else self._failures.get(f.path, 0) + 1
        if n >= FAILED_ATTEMPTS:
            self._unavailable(f"it failed {f.path} {n} times in a row: {reason}")

    def _translate(self, err: "grpc.RpcError", f: RemoteFile, got: int = 0) -> Exception:
        grpc = self.client._grpc  # type: ignore[union-attr]
        code = err.code()
        status = _backend_status(err)
        if status in (401, 403):
            return AuthError(f"{self.label}: {f.path}: HTTP {status} from the origin (through dfdaemon); "
                             f"check the model's authSecretName")
        if status == 404:
            return NotFoundError(f"{self.label}: {f.path}: HTTP 404 from the origin (through dfdaemon)")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            # The daemon went away under us: see whether it is still there
            # before the retry, so that the fallback (or the refusal) happens now.
            try:
                self.client.check()  # type: ignore[union-attr]
            except DaemonUnavailable as gone:
                self._unavailable(str(gone))
                return TransientError(f"dfdaemon: {_rpc_reason(err)}")
        self._count_failure(f, got, _rpc_reason(err))
        return TransientError(f"dfdaemon: {_rpc_reason(err)}")

    def _say_sources(self, f: RemoteFile, state: dict[str, int]) -> None:
        total = sum(state.values()) or 1
        emit(f"model-cache: dragonfly: {f.path}: {format_bytes(total)}: {100 * state['peer'] / total:.0f}% from "
             f"peers, {100 * state['origin'] / total:.0f}% from the origin, {100 * state['local'] / total:.0f}% "
             f"already on this node")

    def _open_direct(self, f: RemoteFile, offset: int, validator: str | None, end: int | None) -> Body:
        if offset and not self.immutable and f.check is None and validator is None:
            # Bytes from the daemon and bytes from the origin are spliced only
            # when something proves them one object: start this file over.
            body = self.inner.open(f, 0, None, end)
            body.restarted = True
            return body
        return self.inner.open(f, offset, validator, end)


def _pieces(stream, state: dict[str, int]) -> Iterator[tuple[int, bytes]]:  # noqa: ANN001 - a gRPC stream
    """(offset, content) of each finished piece, in the order they finish."""
    for response in stream:
        if not response.HasField("download_piece_finished_response"):
            continue
        piece = response.download_piece_finished_response.piece
        if piece.length and not piece.content:
            raise TransientError(f"dfdaemon sent piece {piece.number} without its content (need_piece_content)")
        kind = {0: "origin", 1: "peer", 2: "local"}.get(piece.traffic_type, "peer")
        state[kind] += piece.length
        yield piece.offset, piece.content


def _ordered(pieces: Iterator[tuple[int, bytes]], start: int, name: str) -> Iterator[bytes]:
    """The bytes from START on, in file order, from pieces in any order;
    pieces wholly before START are skipped, one straddling it is cut."""
    ahead: dict[int, bytes] = {}
    held = 0
    at = start
    for offset, content in pieces:
        end = offset + len(content)
        if end <= at:
            continue
        if offset <= at:
            yield content[at - offset:]
            at = end
            while at in ahead:
                data = ahead.pop(at)
                held -= len(data)
                yield data
                at += len(data)
            continue
        ahead[offset] = content
        held += len(content)
        if held > MAX_AHEAD:
            raise TransientError(f"dfdaemon: {name}: the piece at {at} is late ({format_bytes(held)} of later pieces "
                                 f"waiting); asking again from there")
    if ahead:
        raise TransientError(f"dfdaemon: {name}: the stream ended with the piece at {at} missing")
