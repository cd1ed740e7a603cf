"""One module per origin. Each is imported only when used, so that the fast
path never loads requests, boto3 or huggingface_hub."""

from __future__ import annotations

from webhook.download.remote import Source
from webhook.download.uri import SourceSpec


def make_source(spec: SourceSpec, *, revision: str, sha256: str | None, include: list[str] | None,
                stall: float, jobs: int, dragonfly_socket: str | None = None,
                dragonfly_if_unavailable: str = "direct") -> Source:
    """The origin's source; through the node's Dragonfly daemon when
    DRAGONFLY_SOCKET names its socket (sources/dragonfly.py)."""
    source = _origin(spec, revision=revision, sha256=sha256, include=include, stall=stall, jobs=jobs)
    if dragonfly_socket is None:
        return source
    from webhook.download.sources.dragonfly import DragonflySource

    return DragonflySource(source, dragonfly_socket, dragonfly_if_unavailable, scheme=spec.scheme)


def _origin(spec: SourceSpec, *, revision: str, sha256: str | None, include: list[str] | None,
            stall: float, jobs: int) -> Source:
    if spec.scheme == "http":
        from webhook.download.sources.http import HttpSource

        return HttpSource(spec, sha256=sha256, stall=stall, jobs=jobs)
    if spec.scheme == "s3":
        from webhook.download.sources.s3 import S3Source

        return S3Source(spec, include=include, stall=stall, jobs=jobs)
    if spec.scheme == "hf":
        from webhook.download.sources.hf import HfSource

        return HfSource(spec, revision=revision, include=include, stall=stall, jobs=jobs)
    if spec.scheme == "file":
        from webhook.download.sources.local import LocalSource

        return LocalSource(spec, include=include)
    raise AssertionError(spec.scheme)
