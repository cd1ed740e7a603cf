"""Prewarm: the policy's models for this node, downloaded before any pod asks,
by the same program and under the same lock as a pod's downloader
(`model-cache download` as a child process, one at a time): a pod that starts
meanwhile waits on the lock and finds the model complete, and a prewarm that
was killed resumes from its partial download."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from webhook.download.command import arguments
from webhook.policy.resolved import ResolvedModel

log = logging.getLogger(__name__)


def download_args(model: ResolvedModel, root: Path) -> list[str]:
    """`model-cache download` for MODEL into ROOT/<model>/<revision>, as a pod's downloader runs it."""
    spec = model.spec
    return arguments(spec.source, str(root / model.cache_subpath), spec.revision, spec.sha256, spec.include,
                     spec.size)


@dataclass
class Prewarmer:
    root: Path
    program: list[str] = field(default_factory=lambda: [sys.executable, "-m", "webhook.cli"])
    current: tuple[ResolvedModel, subprocess.Popen[bytes]] | None = None

    def busy(self) -> bool:
        return self.current is not None

    def poll(self) -> tuple[ResolvedModel, int] | None:
        """The model whose download just ended and its exit code, once."""
        if self.current is None:
            return None
        model, proc = self.current
        code = proc.poll()
        if code is None:
            return None
        self.current = None
        return model, code

    def start(self, model: ResolvedModel) -> None:
        env = dict(os.environ)
        env.update(model.defaults.downloader.env or {})
        if model.spec.authSecretName:
            # The agent reads no Secrets (least privilege): credentials come
            # from its own environment (the chart's agent.env), or the pod's
            # downloader fetches the model.
            log.info("prewarm of %s: source needs Secret %s; using the agent's environment",
                     model.name, model.spec.authSecretName)
        cmd = [*self.program, *download_args(model, self.root)]
        log.info("prewarm: %s", " ".join(cmd))
        self.current = (model, subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL))

    def stop(self) -> None:
        if self.current is not None:
            self.current[1].terminate()
            try:
                self.current[1].wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.current[1].kill()
            self.current = None
