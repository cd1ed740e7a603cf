"""Policy files: pydantic models of `ModelCachePolicy`, lookup, merge and reload.

One YAML file per namespace (`<namespace>.yaml`) plus `_default.yaml` in one
directory. A model is looked up in the namespace's file first, then in
`_default.yaml`; `defaults` merge field by field the same way, over the
built-in defaults below. A file that fails to load keeps its last good version
in force: a bad edit never drops a working policy.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from kubernetes.utils.quantity import parse_quantity
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from webhook.errors import Denied, PolicyError

log = logging.getLogger(__name__)

API_VERSION = "model.cache/v1alpha1"
KIND = "ModelCachePolicy"
DEFAULT_FILE = "_default"
STRATEGIES: tuple[str, ...] = ("pvc", "hostpath", "memory", "oci", "image")
OCI_STRATEGIES = frozenset({"oci", "image"})
Strategy = Literal["pvc", "hostpath", "memory", "oci", "image"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# Model names and revisions become path components and annotation values.
_PATH_COMPONENT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_SOURCE_SCHEMES = ("hf://", "s3://", "https://", "http://", "oci://")


def _check_quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("expected a Kubernetes quantity such as 16Gi or 500Mi")
    text = str(value)
    try:
        number = parse_quantity(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a Kubernetes quantity; write e.g. 16Gi, 500Mi or 2G") from None
    if number < 0:
        raise ValueError(f"{text!r} is negative; sizes must be >= 0")
    return text


def _check_absolute(value: str) -> str:
    if not value.startswith("/") or "\0" in value:
        raise ValueError(f"{value!r} must be an absolute path such as /model-cache")
    if any(part == ".." for part in value.split("/")):
        raise ValueError(f"{value!r} must not contain '..'")
    return value.rstrip("/") or "/"


def _check_dns_subdomain(value: str) -> str:
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"{value!r} is not a valid Kubernetes object name (lower case, digits, '-', '.')")
    return value


def _check_source(value: str) -> str:
    if not value.startswith(_SOURCE_SCHEMES):
        raise ValueError(f"{value!r} has an unsupported scheme; use one of hf://, s3://, https://, http://, oci://")
    rest = value.split("://", 1)[1]
    if not rest.strip("/"):
        raise ValueError(f"{value!r} names no repository, bucket, URL or image")
    if value.startswith("hf://") and rest.strip("/").count("/") != 1:
        raise ValueError(f"{value!r}: an hf:// source is hf://ORG/REPO")
    return value


def _check_env(value: dict[str, str]) -> dict[str, str]:
    bad = [k for k in value if not _ENV_NAME.match(k)]
    if bad:
        raise ValueError(f"invalid environment variable names: {', '.join(bad)}")
    return value


def _env_values_to_str(value: Any) -> Any:
    # YAML reads HF_HUB_OFFLINE: 1 as an int; a container's env value is a string.
    if isinstance(value, dict):
        return {k: (str(v).lower() if isinstance(v, bool) else str(v)) if v is not None else "" for k, v in value.items()}
    return value


Quantity = Annotated[str, BeforeValidator(_check_quantity)]
AbsolutePath = Annotated[str, AfterValidator(_check_absolute)]
ObjectName = Annotated[str, AfterValidator(_check_dns_subdomain)]
EnvMap = Annotated[dict[str, str], BeforeValidator(_env_values_to_str), AfterValidator(_check_env)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PvcSettings(_Schema):
    claimName: ObjectName | None = None


class HostPathSettings(_Schema):
    path: AbsolutePath | None = None
    # Ask the validator to warn when a hostpath pod has no nodeSelector/affinity:
    # without pinning, replicas land on nodes with a cold cache.
    requireNodePinning: bool | None = None


class ResourceRequirements(_Schema):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class DownloaderSettings(_Schema):
    image: str | None = Field(default=None, min_length=1)
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] | None = None
    resources: ResourceRequirements | None = None
    env: EnvMap | None = None
    runAsUser: int | None = Field(default=None, ge=1)


class PolicyDefaults(_Schema):
    """`defaults` as written in a file: every field optional, merged later."""

    strategy: Strategy | None = None
    allowedStrategies: list[Strategy] | None = Field(default=None, min_length=1)
    mountPath: AbsolutePath | None = None
    shmSize: Quantity | None = None
    pvc: PvcSettings | None = None
    hostPath: HostPathSettings | None = None
    downloader: DownloaderSettings | None = None
    env: EnvMap | None = None
    pvcHeadroomPercent: float | None = Field(default=None, ge=0, le=1000)


class ModelSpec(_Schema):
    source: Annotated[str, AfterValidator(_check_source)]
    revision: Annotated[str, AfterValidator(lambda v: _check_path_component(v, "revision"))] | None = None
    size: Quantity
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    authSecretName: ObjectName | None = None
    include: list[str] | None = None
    strategy: Strategy | None = None
    ociPath: AbsolutePath | None = None

    @model_validator(mode="after")
    def _source_fits_strategy(self) -> "ModelSpec":
        is_oci = self.source.startswith("oci://")
        if self.strategy in OCI_STRATEGIES and not is_oci:
            raise ValueError(f"strategy {self.strategy} needs an oci:// source, got {self.source!r}")
        if self.strategy and self.strategy not in OCI_STRATEGIES and is_oci:
            raise ValueError(f"an oci:// source is served by strategy oci or image, not {self.strategy}")
        return self

    @property
    def is_oci(self) -> bool:
        return self.source.startswith("oci://")


def _check_path_component(value: str, what: str) -> str:
    if not _PATH_COMPONENT.match(value):
        raise ValueError(f"{what} {value!r} must be letters, digits, '.', '_' or '-' (it becomes a directory name)")
    return value


ModelName = Annotated[str, AfterValidator(lambda v: _check_path_component(v, "model name"))]


class ModelCachePolicy(_Schema):
    apiVersion: Literal["model.cache/v1alpha1"]
    kind: Literal["ModelCachePolicy"]
    defaults: PolicyDefaults = PolicyDefaults()
    models: dict[ModelName, ModelSpec] = Field(default_factory=dict)


class EffectiveDefaults(_Schema):
    """`defaults` after the merge: every field has a value."""

    strategy: Strategy
    allowedStrategies: list[Strategy]
    mountPath: AbsolutePath
    shmSize: Quantity
    pvc: PvcSettings
    hostPath: HostPathSettings
    downloader: DownloaderSettings
    env: EnvMap
    pvcHeadroomPercent: float


BUILTIN_DEFAULTS: dict[str, Any] = {
    "strategy": "pvc",
    "allowedStrategies": list(STRATEGIES),
    "mountPath": "/model-cache",
    "shmSize": "1Gi",
    "pvc": {"claimName": "model-cache"},
    "hostPath": {"path": "/var/lib/model-cache", "requireNodePinning": False},
    "downloader": {
        "image": "ghcr.io/model-cache/model-cache:0.1.0",
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "env": {},
        "runAsUser": 10001,  # the image's own user (Dockerfile)
    },
    "env": {},
    "pvcHeadroomPercent": 20.0,
}


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def merge_defaults(*layers: PolicyDefaults | None) -> EffectiveDefaults:
    """Built-in defaults, then each layer's fields over them, most general first."""
    merged = BUILTIN_DEFAULTS
    for layer in layers:
        if layer is not None:
            merged = _deep_merge(merged, layer.model_dump(exclude_none=True))
    return EffectiveDefaults.model_validate(merged)


@dataclass(frozen=True)
class ResolvedModel:
    """A model as one namespace sees it: its spec and the merged defaults."""

    name: str
    namespace: str
    spec: ModelSpec
    defaults: EffectiveDefaults
    policy_file: str

    @property
    def revision(self) -> str:
        return self.spec.revision or "main"

    @property
    def size_bytes(self) -> Decimal:
        return parse_quantity(self.spec.size)

    @property
    def strategy(self) -> str:
        return self.spec.strategy or self.defaults.strategy

    @property
    def cache_subpath(self) -> str:
        return f"{self.name}/{self.revision}"


# --- reading files ---------------------------------------------------------


def _format_validation_error(file: str, err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see policies/_default.yaml for the fields)"
        elif e["type"] == "literal_error":
            msg = f"{msg}, got {e['input']!r}"
        problems.append(f"{loc}: {msg}")
    return problems


def _namespace_of(filename: str) -> str:
    stem = filename.rsplit("/", 1)[-1]
    for ext in (".yaml", ".yml"):
        if stem.endswith(ext):
            return stem[: -len(ext)]
    return stem


def parse_policy(text: str | bytes, filename: str) -> ModelCachePolicy:
    """Parses one policy file's text; raises PolicyError listing every problem."""
    namespace = _namespace_of(filename)
    if namespace != DEFAULT_FILE and (len(namespace) > 63 or not _DNS_LABEL.match(namespace)):
        raise PolicyError(filename, [f"file name must be <namespace>.yaml or {DEFAULT_FILE}.yaml; {namespace!r} is not a namespace name"])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise PolicyError(filename, [f"not valid YAML: {where}{problem}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(filename, [f"expected a mapping with apiVersion: {API_VERSION} and kind: {KIND}, got {type(data).__name__}"])
    try:
        return ModelCachePolicy.model_validate(data)
    except ValidationError as err:
        raise PolicyError(filename, _format_validation_error(filename, err)) from None


def policy_problems(text: str | bytes, filename: str) -> list[str]:
    """Every problem of one file as `file: field.path: what is expected`; empty if valid."""
    try:
        parse_policy(text, filename)
    except PolicyError as err:
        return [f"{err.file}: {p}" for p in err.problems]
    return []


def _policy_files(directory: Path) -> list[Path]:
    # A mounted ConfigMap shows `ns.yaml -> ..data/ns.yaml` plus hidden `..data`
    # and `..<timestamp>` entries: skip anything hidden.
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return []
    return [p for p in entries if not p.name.startswith(".") and p.suffix in (".yaml", ".yml") and p.is_file()]


def check_directory(directory: Path) -> list[str]:
    """`model-cache policy check DIR`: problems of every file, or a missing/empty directory."""
    if not directory.is_dir():
        return [f"{directory}: no such directory"]
    files = _policy_files(directory)
    if not files:
        return [f"{directory}: no <namespace>.yaml or {DEFAULT_FILE}.yaml files"]
    problems: list[str] = []
    for path in files:
        problems.extend(policy_problems(path.read_bytes(), str(path)))
    return problems


# --- the live store --------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    policy: ModelCachePolicy
    fingerprint: tuple[int, int, int]


@dataclass
class _Snapshot:
    files: dict[str, _Loaded] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # fingerprints of the bad contents, so an unchanged bad file is not parsed again
    bad: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    merged: dict[str, EffectiveDefaults] = field(default_factory=dict)


class PolicyStore:
    """The policies in force. Reloads at most every `interval` seconds, from the
    request path, so every gunicorn worker sees edits without a thread of its own."""

    def __init__(self, directory: Path, interval: float = 2.0) -> None:
        self.directory = directory
        self.interval = interval
        self._snapshot = _Snapshot()
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self.reload()

    # reading

    @property
    def errors(self) -> dict[str, str]:
        return dict(self._snapshot.errors)

    @property
    def namespaces(self) -> list[str]:
        return sorted(self._snapshot.files)

    def readiness(self) -> tuple[bool, str]:
        snap = self._snapshot
        if not snap.files:
            why = f"no valid policy file in {self.directory}"
            if snap.errors:
                why += ": " + "; ".join(snap.errors.values())
            return False, why
        detail = f"{len(snap.files)} policy file(s) loaded"
        if snap.errors:
            detail += "; last good version kept for: " + "; ".join(snap.errors.values())
        return True, detail

    def resolve(self, namespace: str, model: str) -> ResolvedModel:
        """The model as NAMESPACE sees it, or Denied naming the fix."""
        self.maybe_reload()
        snap = self._snapshot
        own = snap.files.get(namespace)
        fallback = snap.files.get(DEFAULT_FILE)
        if own is None and fallback is None:
            raise Denied(
                f"no model-cache policy for namespace {namespace}: ask the platform team to add "
                f"{namespace}.yaml (or {DEFAULT_FILE}.yaml) to the model-cache policies"
            )
        for name, loaded in ((namespace, own), (DEFAULT_FILE, fallback)):
            if loaded is not None and model in loaded.policy.models:
                return ResolvedModel(
                    name=model,
                    namespace=namespace,
                    spec=loaded.policy.models[model],
                    defaults=self._defaults_for(snap, namespace),
                    policy_file=f"{name}.yaml",
                )
        known = sorted({m for loaded in (own, fallback) if loaded for m in loaded.policy.models})
        listing = ", ".join(known) if known else "(none)"
        raise Denied(
            f'model "{model}" is not in the model-cache policy for namespace {namespace}; '
            f"known models: {listing}. Fix the model.cache/name annotation, or ask the platform team to add it"
        )

    def defaults_for(self, namespace: str) -> EffectiveDefaults:
        self.maybe_reload()
        return self._defaults_for(self._snapshot, namespace)

    @staticmethod
    def _defaults_for(snap: _Snapshot, namespace: str) -> EffectiveDefaults:
        cached = snap.merged.get(namespace)
        if cached is None:
            layers = [snap.files.get(DEFAULT_FILE), snap.files.get(namespace) if namespace != DEFAULT_FILE else None]
            cached = merge_defaults(*(l.policy.defaults for l in layers if l is not None))
            snap.merged[namespace] = cached
        return cached

    # loading

    def maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self.interval:
            return
        if self._lock.acquire(blocking=False):
            try:
                self._checked_at = now
                self._reload_locked()
            finally:
                self._lock.release()

    def reload(self) -> None:
        with self._lock:
            self._checked_at = time.monotonic()
            self._reload_locked()

    def _reload_locked(self) -> None:
        from webhook import metrics

        old = self._snapshot
        new = _Snapshot()
        for path in _policy_files(self.directory):
            namespace = _namespace_of(path.name)
            try:
                st = os.stat(path)  # follows the ..data symlink: a swap gives a new inode
            except FileNotFoundError:
                continue
            fingerprint = (st.st_ino, st.st_mtime_ns, st.st_size)
            previous = old.files.get(namespace)
            if old.bad.get(namespace) == fingerprint:
                new.errors[namespace], new.bad[namespace] = old.errors[namespace], fingerprint
                if previous is not None:
                    new.files[namespace] = previous
                continue
            if previous is not None and previous.fingerprint == fingerprint:
                new.files[namespace] = previous
                continue
            try:
                new.files[namespace] = _Loaded(parse_policy(path.read_bytes(), path.name), fingerprint)
                log.info("policy file loaded: %s", path.name)
            except (PolicyError, OSError) as err:
                metrics.POLICY_RELOAD_ERRORS.labels(file=path.name).inc()
                kept = "last good version kept" if previous else "no earlier version to keep"
                log.error("policy file rejected (%s): %s", kept, err)
                new.errors[namespace] = f"{err} ({kept})"
                new.bad[namespace] = fingerprint
                if previous is not None:
                    new.files[namespace] = previous
        unchanged = new.bad == old.bad and {k: v.fingerprint for k, v in new.files.items()} == {
            k: v.fingerprint for k, v in old.files.items()
        }
        if not unchanged:
            self._snapshot = new  # one assignment: readers see the old or the new, never a mix
            metrics.POLICY_FILES_BAD.set(len(new.errors))
