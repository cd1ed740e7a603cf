"""What every storage strategy answers. Each module beside this one holds one
strategy (its volume, what fills it, the checks only it has, what it asks of the
cluster, its docs); `webhook.strategies` lists them. The defaults here are a
strategy that adds its volume and nothing else.

Pure, and below policy/, mutate/ and validate/, which read the strategies:
what a strategy reads (the model, the pod's use of the cache, the cluster
facts) is in webhook/facts/, below it."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Iterable, Mapping

from webhook.facts.cluster import ClusterFacts, LookupKey
from webhook.facts.finding import Finding
from webhook.facts.model import ModelView
from webhook.facts.use import CacheUse
from webhook.grammar import Section
from webhook.vocabulary import DEFAULT_UID, NO_TOKEN_VOLUME, TOKEN_PATH, VOLUME, VOLUME_ROOT


class Strategy:
    name: str
    # Its own section of the policy's `defaults` (`defaults.hostPath`), where it
    # has settings: the key, the pydantic model of the section, its built-in values.
    settings_key: str | None = None
    settings_model: type[Section] | None = None
    builtin_settings: Mapping[str, Any] = MappingProxyType({})
    # One cell each of the table in docs/strategies.md, which is generated from them.
    volume_doc: str
    init_doc: str
    serving_doc: str

    downloads: bool = False  # the downloader init container fills the volume (unless preload is off)
    copies: bool = False  # an init container copies the model image's files into the volume
    oci_source: bool = False  # the model is an oci:// image, pulled with the model's authSecretName
    node_local: bool = False  # the cache is the node's own: pods are placed by what the nodes hold

    def settings(self, model: ModelView) -> Any:
        """Its section of MODEL's merged defaults (an instance of settings_model)."""
        return getattr(model.defaults, self.settings_key or "")

    def unusable(self, model: ModelView) -> str | None:
        """Why it cannot serve MODEL as the policy stands (a setting it needs is
        missing), naming the fix; `policy check` and the mutation both ask."""
        return None

    def volume(self, model: ModelView) -> dict[str, Any]:
        """The volume source of the model volume (without its name)."""
        raise NotImplementedError

    def sub_path(self, model: ModelView) -> str | None:
        """The subPath of the serving containers' read-only mount."""
        return model.cache_subpath if self.downloads else None

    def give_write_access(self, spec: dict[str, Any], model: ModelView) -> list[dict[str, Any]]:
        """Lets the downloader (a non-root user) write the volume, where it does
        not start writable by all (emptyDir does): changes the pod's SPEC, and/or
        returns init containers to run before the downloader. Asked only when
        the downloader is injected."""
        return []

    def place(self, spec: dict[str, Any], model: ModelView) -> None:
        """Adds to SPEC's scheduling what this strategy's cache asks for (nothing by default)."""

    def dragonfly(self, model: ModelView) -> Any | None:
        """The Dragonfly settings its downloads follow (DragonflySettings of
        hostpath: the model's over the namespace's), or None: straight from the
        origin. Only a strategy whose volume is the node's takes them."""
        return None

    def grow_downloader(self, container: dict[str, Any], model: ModelView) -> None:
        """Changes the downloader container (its resources) for this strategy."""

    def grow_serving(self, container: dict[str, Any], model: ModelView) -> None:
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

    def findings(self, use: CacheUse, model: ModelView, facts: ClusterFacts) -> list[Finding]:
        """Its warnings about a pod (or a workload's pod template)."""
        return []


def downloader_uid(model: ModelView) -> int:
    """The downloader's uid and gid (they are the same)."""
    return model.defaults.downloader.runAsUser or DEFAULT_UID


def give_downloader_resources(container: dict[str, Any], model: ModelView) -> None:
    """The policy's downloader resources (where set) on CONTAINER: every
    container we inject runs with them."""
    resources = model.defaults.downloader.resources
    if resources is not None:
        container["resources"] = resources.model_dump(exclude_none=True)


def init_container_mounts() -> list[dict[str, Any]]:
    """What every injected init container mounts: the model volume whole, and
    nothing at the token path."""
    return [{"name": VOLUME, "mountPath": VOLUME_ROOT},
            {"name": NO_TOKEN_VOLUME, "mountPath": TOKEN_PATH, "readOnly": True}]


def either(names: Iterable[str]) -> str:
    """"a, b or c": how a message offers a choice."""
    items = list(names)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"
