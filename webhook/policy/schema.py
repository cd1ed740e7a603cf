"""`ModelCachePolicy`: the pydantic models of one policy file, and of the
defaults after the merge. Every field is checked the way the API server would
check what it becomes in a pod (quantities, object names, paths)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from webhook import quantity
from webhook.download.errors import UsageError as SourceError
from webhook.download.uri import parse_source
from webhook.strategies import get as strategy, names as strategy_names
from webhook.strategies.base import either
from webhook.strategies.fit import serving
from webhook.strategies.images import OCI_SCHEME

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# Model names and revisions become path components and annotation values.
_PATH_COMPONENT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# The downloader reads these (its grammar, download/uri.py, is the one this file
# checks them with); oci:// images are pulled by the kubelet.
_DOWNLOAD_SCHEMES = ("hf://", "s3://", "https://", "http://")
_SOURCE_SCHEMES = (*_DOWNLOAD_SCHEMES, OCI_SCHEME)


def _check_quantity(value: Any) -> str:
    # YAML reads `size: 1000` as an int; the API server's grammar decides the rest.
    quantity.parse(value)
    return str(value)


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
    if value.startswith(_DOWNLOAD_SCHEMES):
        try:
            parse_source(value)
        except SourceError as err:
            raise ValueError(f"{value!r}: {str(err).removeprefix(f'--source {value}: ')}") from None
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
Strategy = Literal[strategy_names()]  # type: ignore[valid-type]  # the registry's names, in its order


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PvcSettings(_Schema):
    claimName: ObjectName | None = None


class HostPathSettings(_Schema):
    path: AbsolutePath | None = None
    # Ask the validator to warn when a hostpath pod has no nodeSelector/affinity:
    # without pinning, replicas land on nodes with a cold cache.
    requireNodePinning: bool | None = None
    # The node agent (`model-cache agent`) runs on the hostpath nodes and makes
    # the cache directories the downloader's: no `model-cache-prepare` init container.
    agent: bool | None = None
    # Weight (1-100) of the preferred node affinity toward nodes whose agent
    # reports the model@revision; 0 turns cache-aware placement off.
    cacheAffinityWeight: int | None = Field(default=None, ge=0, le=100)


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


class PrewarmSettings(_Schema):
    """Nodes (by label) whose agent keeps the model downloaded before any pod asks."""

    nodeSelector: dict[str, str] = Field(min_length=1)
    # Pods of the model may run only on nodes that hold it (a required node affinity).
    required: bool = False


class ModelSpec(_Schema):
    source: Annotated[str, AfterValidator(_check_source)]
    revision: Annotated[str, AfterValidator(lambda v: _check_path_component(v, "revision"))] | None = None
    size: Quantity
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    authSecretName: ObjectName | None = None
    include: list[str] | None = None
    strategy: Strategy | None = None
    ociPath: AbsolutePath | None = None
    prewarm: PrewarmSettings | None = None

    @model_validator(mode="after")
    def _source_fits_strategy(self) -> "ModelSpec":
        if self.strategy is None or strategy(self.strategy).oci_source == self.is_oci:
            return self
        if self.is_oci:
            raise ValueError(f"an oci:// source is served by strategy {either(serving(True))}, not {self.strategy}")
        raise ValueError(f"strategy {self.strategy} needs an oci:// source, got {self.source!r}")

    @property
    def is_oci(self) -> bool:
        return self.source.startswith(OCI_SCHEME)


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


def is_valid_model_name(name: str) -> bool:
    """The one grammar of model names, for the policy's keys and the model.cache/name annotation."""
    return bool(_PATH_COMPONENT.match(name))
