"""The shapes of what the webhook reads from an AdmissionReview, checked once,
up front, so that nothing further in can meet a number where it expects an
object. Only the fields the webhook reads are typed; every other field may be
anything (extra="allow") and is never touched, so the plain dict the API server
sent stays the source of truth: these models check it, they do not replace it.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from webhook.errors import MalformedReview
from webhook.pydantic_errors import problems
from webhook.objects import dig
from webhook.vocabulary import TEMPLATE_PATHS

StringMap = dict[str, str]
Quantity = Union[str, int, float]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Named(_Open):
    name: str


class _Mount(_Open):
    name: str
    mountPath: str


class _EnvVar(_Open):
    name: str
    value: str | None = None
    valueFrom: dict[str, Any] | None = None


class _Resources(_Open):
    requests: dict[str, Quantity] | None = None
    limits: dict[str, Quantity] | None = None


class _Container(_Open):
    name: str
    volumeMounts: list[_Mount] | None = None
    env: list[_EnvVar] | None = None
    envFrom: list[dict[str, Any]] | None = None
    resources: _Resources | None = None
    restartPolicy: str | None = None


class _Metadata(_Open):
    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    annotations: StringMap | None = None
    labels: StringMap | None = None


class _PodSpec(_Open):
    containers: list[_Container] | None = None
    initContainers: list[_Container] | None = None
    ephemeralContainers: list[_Container] | None = None
    volumes: list[_Named] | None = None
    imagePullSecrets: list[dict[str, Any]] | None = None
    nodeSelector: StringMap | None = None
    affinity: dict[str, Any] | None = None
    resources: _Resources | None = None


class PodShape(_Open):
    """A Pod, or a workload's pod template."""

    metadata: _Metadata | None = None
    spec: _PodSpec | None = None


class ConfigMapShape(_Open):
    metadata: _Metadata | None = None
    data: StringMap | None = None
    binaryData: StringMap | None = None


class GroupVersionKind(_Open):
    group: str = ""
    version: str = ""
    kind: str


class AdmissionRequestShape(_Open):
    uid: str = Field(min_length=1)
    kind: GroupVersionKind
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    namespace: str | None = None
    subResource: str | None = None
    dryRun: bool | None = None
    object: dict[str, Any] | None = None
    oldObject: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _object_present(self) -> "AdmissionRequestShape":
        if self.operation in ("CREATE", "UPDATE") and self.object is None:
            raise ValueError(f"a {self.operation} request must carry an object")
        return self


def _describe(err: ValidationError, prefix: str) -> str:
    """The first problem, and how many more there are."""
    found = problems(err, prefix)
    more = len(found) - 1
    return found[0] + (f"; and {more} more problem(s)" if more > 0 else "")


def check_request(request: Any) -> dict[str, Any]:
    """REQUEST (the review's `request`) if its shape is one the webhook can read;
    MalformedReview naming the first field that is not, otherwise."""
    if not isinstance(request, dict):
        raise MalformedReview("AdmissionReview has no request object")
    try:
        shape = AdmissionRequestShape.model_validate(request)
    except ValidationError as err:
        raise MalformedReview(_describe(err, "request")) from None
    kind = shape.kind.kind
    for key in ("object", "oldObject"):
        obj = request.get(key)
        if obj is None:
            continue
        problem = None
        if kind == "Pod":
            problem = pod_problem(obj, f"request.{key}")
        elif kind == "ConfigMap":
            problem = _problem(ConfigMapShape, obj, f"request.{key}")
        elif kind in TEMPLATE_PATHS:
            problem = pod_problem({"metadata": obj.get("metadata")}, f"request.{key}")
            template = dig(obj, TEMPLATE_PATHS[kind])
            if problem is None and template is not None:
                problem = pod_problem(template, f"request.{key}." + ".".join(TEMPLATE_PATHS[kind]))
        if problem is not None:
            raise MalformedReview(problem)
    return request


def _problem(shape: type[BaseModel], value: Any, where: str) -> str | None:
    try:
        shape.model_validate(value)
    except ValidationError as err:
        return _describe(err, where)
    return None


def pod_problem(pod: Any, where: str) -> str | None:
    """The first field of POD (a Pod or a pod template, found at WHERE) whose
    shape the webhook cannot read, described; None when it is readable."""
    return _problem(PodShape, pod, where)
