"""One pass of the agent, and the loop around it: prepare, scan, evict,
prewarm, publish. Each pass starts from what is on disk and in the API
server, so a restarted agent picks up where the killed one was."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client as k8s

from webhook.agent import eviction, holdings, metrics, node, prepare, wishes
from webhook.agent.prewarm import Prewarmer
from webhook.kube import read_failure

log = logging.getLogger(__name__)


@dataclass
class Agent:
    core: k8s.CoreV1Api
    node: str
    root: Path
    policies: Path | str   # a directory of policy files, or a ConfigMap `NAMESPACE/NAME`
    quota: int | None          # bytes; None: no eviction
    uid: int
    min_age: float = 300.0
    downloader_image: str | None = None
    prewarmer: Prewarmer = field(init=False)
    failed: dict[tuple[str, str], float] = field(default_factory=dict)  # prewarm failures: when, for backoff

    def __post_init__(self) -> None:
        self.prewarmer = Prewarmer(self.root)

    def sync(self) -> None:
        labels, annotations = node.read_node(self.core, self.node)
        if isinstance(self.policies, Path):
            policies = wishes.load_policies(self.policies)
        else:
            policies = wishes.parse_policies(node.configmap_data(self.core, self.policies))
        wanted = wishes.wishes(policies, self.root, labels, self.downloader_image)
        prepare.prepare(self.root, wanted.models, self.uid)
        self._prewarm_ended()
        held = holdings.scan(self.root, wanted.prewarmed)
        if self.quota is not None:
            keep = node.in_use(node.pods_on(self.core, self.node)) | wanted.prewarmed
            for h in eviction.run(held, self.quota, keep, self.min_age):
                log.info("evicted %s@%s (%d bytes, last used %s)", h.holding.model, h.holding.revision,
                         h.holding.size, h.holding.lastUsed)
                metrics.EVICTIONS.labels(self.node).inc()
                metrics.EVICTED_BYTES.labels(self.node).inc(h.holding.size)
            held = holdings.scan(self.root, wanted.prewarmed)
        have = {h.key for h in held}
        if not self.prewarmer.busy():
            for model in wanted.prewarm:
                key = (model.name, model.revision)
                if key not in have and time.monotonic() - self.failed.get(key, -1e9) > 60:
                    self.prewarmer.start(model)
                    break
        published = [h.holding for h in held]
        node.publish(self.core, self.node, labels, annotations, published)
        metrics.BYTES.labels(self.node).set(sum(h.size for h in published))
        metrics.MODELS.labels(self.node).set(len(published))
        metrics.PREWARMED.labels(self.node).set(sum(1 for h in published if h.prewarmed))

    def _prewarm_ended(self) -> None:
        ended = self.prewarmer.poll()
        if ended is None:
            return
        model, code = ended
        result = "ok" if code == 0 else "failed"
        metrics.DOWNLOADS.labels(self.node, result).inc()
        if code != 0:
            log.warning("prewarm of %s@%s exited %d; retrying in 60 s", model.name, model.revision, code)
            self.failed[(model.name, model.revision)] = time.monotonic()

    def run(self, interval: float, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.sync()
            except Exception as err:  # noqa: BLE001 - the API server's failures are read below; the loop goes on
                failure = read_failure(err)
                if failure is None:
                    raise
                metrics.SYNC_ERRORS.labels(self.node).inc()
                log.warning("pass failed: %s %s", failure.kind, failure.message)
            # A running prewarm is checked more often, so the labels follow it closely.
            stop.wait(min(interval, 2.0) if self.prewarmer.busy() else interval)
        self.prewarmer.stop()
