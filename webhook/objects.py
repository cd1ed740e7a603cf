"""Reading Kubernetes objects as plain dicts: the namespace of a review's
object, a field by path, and where the pods are in an object (a Pod is one, a
workload such as a Deployment or CronJob keeps a template, a List holds
objects). Pure, and below every layer: admission, mutate, validate, explain and
the CLI all import it."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from webhook.vocabulary import TEMPLATE_PATHS


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


def pod_templates(obj: dict[str, Any], where: str = "") -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(path, pod) for every Pod and pod template in OBJ: path "" for a Pod,
    e.g. "spec.template" for a Deployment; pod None when the template is not
    an object. Kinds without pods yield nothing."""
    kind = obj.get("kind", "")
    if kind == "List":
        for i, item in enumerate(obj.get("items") or []):
            if isinstance(item, dict):
                yield from pod_templates(item, f"{where}items.{i}.")
        return
    if kind == "Pod":
        yield where.rstrip("."), obj
        return
    path = TEMPLATE_PATHS.get(kind)
    if path is None:
        return
    template = dig(obj, path)
    yield where + ".".join(path), template if isinstance(template, dict) else None
