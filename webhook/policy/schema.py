"""`ModelCachePolicy`: the pydantic models of one policy file, and of the
defaults after the merge. Every field is checked the way the API server would
check what it becomes in a pod (quantities, object names, paths)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, create_model, model_validator

from webhook.download.errors import UsageError as SourceError
from webhook.download.uri import parse_source, scheme_of
from webhook.grammar import AbsolutePath, EnvMap, ObjectName, Quantity, Section
from webhook.strategies import names as strategy_names, unfit_source, with_settings
from webhook.strategies.image_source import OCI_SCHEME
from webhook.strategies.hostpath import DragonflySettings


# Model names and revisions become path components and annotation values.
_PATH_COMPONENT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$")
# The downloader reads these (its grammar, download/uri.py, is the one this file
# checks them with); oci:// images are pulled by the kubelet.
_DOWNLOAD_SCHEMES = ("hf://", "s3://", "https://", "http://")
_SOURCE_SCHEMES = (*_DOWNLOAD_SCHEMES, OCI_SCHEME)


def _check_source(value: str) -> str:
    if not value.startswith(_SOURCE_SCHEMES):
        raise ValueError(f"{value!r} has an unsupported scheme; use one of hf://, s3://, https://, http://, oci://")
    if not value.removeprefix(f"{scheme_of(value)}://").strip("/"):
        raise ValueError(f"{value!r} names no repository, bucket, URL or image")
    if value.startswith(_DOWNLOAD_SCHEMES):
        try:
            parse_source(value)
        except SourceError as err:
            raise ValueError(f"{value!r}: {str(err).removeprefix(f'--source {value}: ')}") from None
    return value


StrategyName = Literal[strategy_names()]  # type: ignore[valid-type]  # the registry's names, in its order


class ResourceRequirements(Section):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class DownloaderSettings(Section):
    image: str | None = Field(default=None, min_length=1)
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"] | None = None
    resources: ResourceRequirements | None = None
    env: EnvMap | None = None
    runAsUser: int | None = Field(default=None, ge=1)


class _SharedDefaults(Section):
    """`defaults` as written in a file: every field optional, merged later."""

    strategy: StrategyName | None = None
    allowedStrategies: list[StrategyName] | None = Field(default=None, min_length=1)
    mountPath: AbsolutePath | None = None
    shmSize: Quantity | None = None
    downloader: DownloaderSettings | None = None
    env: EnvMap | None = None
    pvcHeadroomPercent: float | None = Field(default=None, ge=0, le=1000)


class PrewarmSettings(Section):
    """Nodes (by label) whose agent keeps the model downloaded before any pod asks."""

    nodeSelector: dict[str, str] = Field(min_length=1)
    # Pods of the model may run only on nodes that hold it (a required node affinity).
    required: bool = False


# Each strategy's own section (`pvc:`, `hostPath:`), named and typed by the strategy.
PolicyDefaults = create_model(  # type: ignore[call-overload]
    "PolicyDefaults", __base__=_SharedDefaults, __doc__=_SharedDefaults.__doc__,
    **{s.settings_key: (s.settings_model | None, None) for s in with_settings()})


class ModelSpec(Section):
    source: Annotated[str, AfterValidator(_check_source)]
    revision: Annotated[str, AfterValidator(lambda v: _check_path_component(v, "revision"))] | None = None
    size: Quantity
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    authSecretName: ObjectName | None = None
    include: list[str] | None = None
    strategy: StrategyName | None = None
    ociPath: AbsolutePath | None = None
    prewarm: PrewarmSettings | None = None
    dragonfly: DragonflySettings | None = None  # hostpath only: over the namespace's hostPath.dragonfly

    @model_validator(mode="after")
    def _source_fits_strategy(self) -> "ModelSpec":
        unfit = unfit_source(self.strategy, self.source) if self.strategy else None
        if unfit is not None:
            raise ValueError(unfit)
        return self

    @property
    def is_oci(self) -> bool:
        return self.source.startswith(OCI_SCHEME)


def _check_path_component(value: str, what: str) -> str:
    if not _PATH_COMPONENT.match(value):
        raise ValueError(f"{what} {value!r} must be letters, digits, '.', '_' or '-' (it becomes a directory name)")
    return value


ModelName = Annotated[str, AfterValidator(lambda v: _check_path_component(v, "model name"))]


class ModelCachePolicy(Section):
    apiVersion: Literal["model.cache/v1alpha1"]
    kind: Literal["ModelCachePolicy"]
    defaults: PolicyDefaults = PolicyDefaults()
    models: dict[ModelName, ModelSpec] = Field(default_factory=dict)


class _SharedEffectiveDefaults(Section):
    """`defaults` after the merge: every field has a value."""

    strategy: StrategyName
    allowedStrategies: list[StrategyName]
    mountPath: AbsolutePath
    shmSize: Quantity
    downloader: DownloaderSettings
    env: EnvMap
    pvcHeadroomPercent: float


EffectiveDefaults = create_model(  # type: ignore[call-overload]
    "EffectiveDefaults", __base__=_SharedEffectiveDefaults, __doc__=_SharedEffectiveDefaults.__doc__,
    **{s.settings_key: (s.settings_model, ...) for s in with_settings()})


def is_valid_model_name(name: str) -> bool:
    """The one grammar of model names, for the policy's keys and the model.cache/name annotation."""
    return bool(_PATH_COMPONENT.match(name))
