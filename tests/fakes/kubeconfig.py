"""The one kubeconfig writer of the suite: what `kubectl config view --raw`
would show for a bearer-token user of one cluster."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str) -> Path:
    """Writes a kubeconfig at PATH whose current context talks to SERVER,
    trusting CA_FILE, as a user with TOKEN; returns PATH."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "model-cache", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "model-cache"}}],
    }))
    return path
