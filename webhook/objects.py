"""Reading Kubernetes objects as plain dicts: the namespace of a review's
object, a field by path, and where the pods are in an object (a Pod is one, a
workload such as a Deployment or CronJob keeps a template, a KServe
InferenceService keeps a predictor, a List holds objects). Pure, and below
every layer: admission, mutate, validate, explain and the CLI all import it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from webhook.vocabulary import (KSERVE_CONTAINER, PREDICTOR_IMPLEMENTATION_ONLY, PREDICTOR_IMPLEMENTATIONS,
                                PREDICTOR_ONLY, PREDICTOR_PATHS, TEMPLATE_PATHS, VALIDATED_AT_APPLY)

Path = tuple[str, ...]


def namespace_of(request: Mapping[str, Any]) -> str:
    """The namespace of an AdmissionReview request's object ("default" when unsaid)."""
    obj = request.get("object") or {}
    return request.get("namespace") or (obj.get("metadata") or {}).get("namespace") or "default"


def dig(obj: Any, path: tuple[str, ...]) -> Any:
    """OBJ at PATH, or None where a step is missing or not an object."""
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def validated_at_apply(pod: Mapping[str, Any]) -> bool:
    """Whether POD was made by a controller whose workload /validate checked at
    apply time, so the API server does not send it to /validate (the
    matchCondition not-made-by-a-checked-workload)."""
    return any(isinstance(ref, dict) and ref.get("controller") is True
               and (ref.get("apiVersion"), ref.get("kind")) in VALIDATED_AT_APPLY
               for ref in (pod.get("metadata") or {}).get("ownerReferences") or [])


def pod_kinds() -> list[str]:
    """Every kind whose pods `pod_templates` finds."""
    return ["Pod", *TEMPLATE_PATHS, *PREDICTOR_PATHS]


@dataclass
class PodTemplate:
    """One place in an object that becomes pods, and where its author writes
    what reaches them. `pod` is a Pod, a template, or for KServe a pod built
    from the predictor (a copy: `replace` writes a changed one back)."""

    owner: dict[str, Any]  # the object that holds it (a List's item, not the List)
    path: Path  # from the owner to the template; () for a Pod
    pod: dict[str, Any] | None  # None: the path holds something that is not an object
    prefix: str = ""  # "items.3." inside a List
    # Mappings with `annotations`/`labels` that reach the pods, and ones that look
    # like they would but never do (a Deployment's own metadata): paths from the owner.
    read: tuple[Path, ...] = ()
    ignored: tuple[Path, ...] = ()
    _predictor: bool = field(default=False, repr=False)

    @property
    def where(self) -> str:
        """The template's path as a user reads it: "" for a Pod, "spec.template", "items.0.spec.predictor"."""
        return (self.prefix + ".".join(self.path)).rstrip(".")

    def text(self, path: Path) -> str:
        """PATH (from the owner) as a user reads it."""
        return self.prefix + ".".join(path)

    def replace(self, mutated: dict[str, Any]) -> None:
        """Puts MUTATED, the pod as the webhook changed it, where the pod came from."""
        if self.pod is None:
            raise ValueError(f"{self.where}: no pod to replace")
        if self._predictor:
            _write_predictor(dig(self.owner, self.path), self.pod, mutated)
            self.pod = mutated
        else:
            self.pod.clear()
            self.pod.update(mutated)


def pod_templates(obj: dict[str, Any], prefix: str = "") -> Iterator[PodTemplate]:
    """Every Pod and pod template in OBJ. Kinds without pods yield nothing."""
    kind = obj.get("kind", "")
    if kind == "List":
        for i, item in enumerate(obj.get("items") or []):
            if isinstance(item, dict):
                yield from pod_templates(item, f"{prefix}items.{i}.")
        return
    if kind == "Pod":
        yield PodTemplate(obj, (), obj, prefix, read=(("metadata",),))
        return
    if kind in PREDICTOR_PATHS:
        path = PREDICTOR_PATHS[kind]
        predictor = dig(obj, path)
        pod = _predictor_pod(obj, predictor) if isinstance(predictor, dict) else None
        yield PodTemplate(obj, path, pod, prefix, read=(("metadata",), path), _predictor=True)
        return
    path = TEMPLATE_PATHS.get(kind)
    if path is None:
        return
    template = dig(obj, path)
    # Every metadata between the object and its template (a CronJob's own, its
    # jobTemplate's) is a place people put the annotation by mistake.
    ignored = tuple(path[:i] + ("metadata",) for i in range(len(path))
                    if isinstance(dig(obj, path[:i] + ("metadata",)), dict) or i == 0)
    yield PodTemplate(obj, path, template if isinstance(template, dict) else None, prefix,
                      read=(path + ("metadata",),), ignored=ignored)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _implementation(predictor: dict[str, Any]) -> str | None:
    return next((k for k in PREDICTOR_IMPLEMENTATIONS if isinstance(predictor.get(k), dict)), None)


def _predictor_pod(isvc: dict[str, Any], predictor: dict[str, Any]) -> dict[str, Any]:
    """The predictor's pod as KServe makes it, as far as the object tells: the
    InferenceService's annotations and labels under the predictor's, the pod spec
    fields inline, and the serving container (kserve-container) from `model`
    first. A ServingRuntime may add containers this cannot see."""
    meta = _mapping(isvc.get("metadata"))
    metadata = {"annotations": {**_mapping(meta.get("annotations")), **_mapping(predictor.get("annotations"))},
                "labels": {**_mapping(meta.get("labels")), **_mapping(predictor.get("labels"))}}
    spec = {k: copy.deepcopy(v) for k, v in predictor.items() if k not in PREDICTOR_ONLY}
    implementation = _implementation(predictor)
    if implementation is not None:
        fields = predictor[implementation]
        container = {"name": KSERVE_CONTAINER,
                     **{k: copy.deepcopy(v) for k, v in fields.items() if k not in PREDICTOR_IMPLEMENTATION_ONLY}}
        others = spec.get("containers") if isinstance(spec.get("containers"), list) else []
        spec["containers"] = [container, *others]
    return {"metadata": metadata, "spec": spec}


def _write_predictor(predictor: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> None:
    """Writes into PREDICTOR what the webhook changed from BEFORE to AFTER: new
    annotations and labels into the predictor's own, the serving container's
    fields into `model`, every other changed pod spec field inline."""
    for key in ("annotations", "labels"):
        old, new = _mapping(before["metadata"].get(key)), _mapping(_mapping(after.get("metadata")).get(key))
        changed = {k: v for k, v in new.items() if old.get(k) != v}
        if changed:
            predictor[key] = {**_mapping(predictor.get(key)), **changed}
    old_spec, new_spec = before["spec"], _mapping(after.get("spec"))
    implementation = _implementation(predictor)
    for key, value in new_spec.items():
        if key == "containers" and implementation is not None:
            serving, *others = value
            fields = predictor[implementation]
            for k, v in serving.items():
                if k != "name" and fields.get(k) != v:
                    fields[k] = v
            if others != old_spec["containers"][1:]:
                predictor["containers"] = others
        elif old_spec.get(key) != value:
            predictor[key] = value


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """OBJ's metadata.annotations ({} when absent, or not a mapping)."""
    annotations = dig(obj, ("metadata", "annotations"))
    return annotations if isinstance(annotations, Mapping) else {}
