"""What the node's cache holds: the complete models under <root>/<model>/<revision>/,
read from their completion markers. The marker's mtime is the last use (the
downloader's fast path touches it)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from webhook.download.verify.checks import SIZE_ONLY as _SIZE_ONLY
from webhook.download.volume.gc import complete_models
from webhook.inventory import Holding


@dataclass(frozen=True)
class Held:
    """A complete model on disk, with what eviction needs beside the published facts."""

    dest: Path
    holding: Holding
    last_used: float  # epoch seconds

    @property
    def key(self) -> tuple[str, str]:
        return self.holding.model, self.holding.revision


def _verified(marker: dict) -> bool:
    archive = marker.get("archive")
    if isinstance(archive, dict):
        return str(archive.get("verified", _SIZE_ONLY)) != _SIZE_ONLY
    files = marker.get("files") or []
    return bool(files) and all(str(f.get("verified", _SIZE_ONLY)) != _SIZE_ONLY for f in files)


def scan(root: Path, prewarmed: frozenset[tuple[str, str]] = frozenset()) -> list[Held]:
    """Complete models under ROOT; anything without a complete marker (a
    partial download, a lock, another program's files) is not a holding."""
    if not root.is_dir():
        return []
    return [Held(rev, Holding(model=rev.parent.name, revision=rev.name, size=int(marker.get("total_size", 0)),
                              verified=_verified(marker),
                              lastUsed=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(used)),
                              prewarmed=(rev.parent.name, rev.name) in prewarmed), used)
            for rev, marker, used in complete_models(root)]
