"""The cache root and the models' directories, made the downloader's: the
hostpath pods then need no root init container (`model-cache-prepare`).

The agent's own init container (root, CHOWN only) gives it the root; the agent
runs as the downloader's uid, so what it creates here is already the
downloader's. Run as root (a cluster that allows it), it chowns as well."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def prepare(root: Path, models: Iterable[str], uid: int) -> list[Path]:
    """ROOT and ROOT/<model> for each of MODELS, 0755, owned by UID. The
    directories made or fixed."""
    changed: list[Path] = []
    for d in (root, *(root / m for m in sorted(set(models)))):
        before = d.stat() if d.is_dir() else None
        d.mkdir(mode=0o755, parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(d, uid, uid)
        try:
            d.chmod(0o755)
        except PermissionError:
            pass  # not ours: the downloader's own, or the admin's
        after = d.stat()
        if before is None or (before.st_uid, before.st_gid, before.st_mode) != (after.st_uid, after.st_gid, after.st_mode):
            changed.append(d)
    return changed
