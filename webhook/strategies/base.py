"""What every storage strategy answers. Each module beside this one holds one
strategy (its volume, what fills it, the checks only it has, what it asks of the
cluster, its docs); `webhook.strategies` lists them. The defaults here are a
strategy that adds its volume and nothing else.

Pure, and below mutate/, validate/ and policy/: those read the strategies, so
the types of theirs used here are imported for the type checker only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from webhook.validate.facts import ClusterFacts, LookupKey
from webhook.validate.finding import Finding

if TYPE_CHECKING:
    from webhook.policy.resolved import ResolvedModel
    from webhook.validate.usage import CacheUse


class Strategy:
    name: str
    # One cell each of the table in docs/strategies.md (DESIGN.md, "What a mutation adds").
    volume_doc: str
    init_doc: str
    serving_doc: str

    downloads: bool = False  # the downloader init container fills the volume (unless preload is off)
    copies: bool = False  # an init container copies the model image's files into the volume
    oci_source: bool = False  # the model is an oci:// image, pulled with the model's authSecretName
    # How the downloader's user gets to write the volume, where the volume
    # does not start writable by all (emptyDir does):
    fs_group: bool = False  # the kubelet gives the volume to the pod's fsGroup (set when the pod has none)
    prepares_directory: bool = False  # an init container (root, CHOWN only) gives it the model's directory
    node_local: bool = False  # the cache is the node's own: pods are placed by what the nodes hold

    def volume(self, model: ResolvedModel) -> dict[str, Any]:
        """The volume source of the model volume (without its name)."""
        raise NotImplementedError

    def sub_path(self, model: ResolvedModel) -> str | None:
        """The subPath of the serving containers' read-only mount."""
        return model.cache_subpath if self.downloads else None

    def grow_downloader(self, container: dict[str, Any], model: ResolvedModel) -> None:
        """Changes the downloader container (its resources) for this strategy."""

    def grow_serving(self, container: dict[str, Any], model: ResolvedModel) -> None:
        """Changes the first serving container (its resources) for this strategy."""

    def admission_lookups(self, namespace: str) -> tuple[LookupKey, ...]:
        """The cluster facts /mutate needs to deny what cannot work at all."""
        return ()

    def admission_denial(self, namespace: str, found: Mapping[LookupKey, Any]) -> str | None:
        """The denial /mutate gives, from the facts of `admission_lookups`."""
        return None

    def denial(self, use: CacheUse) -> str | None:
        """What cannot work in a final pod of this strategy (a later webhook removed a part)."""
        return None

    def lookups(self, use: CacheUse) -> dict[str, LookupKey]:
        """The cluster facts its checks read, by ClusterFacts field."""
        return {}

    def findings(self, use: CacheUse, model: ResolvedModel, facts: ClusterFacts) -> list[Finding]:
        """Its warnings about a pod (or a workload's pod template)."""
        return []


def either(names: Iterable[str]) -> str:
    """"a, b or c": how a message offers a choice."""
    items = list(names)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
