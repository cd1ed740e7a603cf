"""The Kubernetes REST protocol on a store of objects, without the HTTP: what
a path names, what each verb does, and the `Status` bodies of its errors, as
the API reference gives them. tests/fakes/apiserver.py serves it.

Objects are kept by (resource, namespace, name), namespace "" when cluster
scoped. GET reads one or a list, POST creates (409 AlreadyExists), PUT
replaces (409 Conflict on a stale metadata.resourceVersion), PATCH takes
application/json-patch+json or merge-patch+json, DELETE removes.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import threading
import uuid
from typing import Any, NamedTuple

import jsonpatch

USER = "system:serviceaccount:model-cache:model-cache"
# Kind -> (resource, namespaced), for seeding from manifests and naming lists.
KINDS = {
    "Namespace": ("namespaces", False), "Secret": ("secrets", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True), "ConfigMap": ("configmaps", True),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations", False),
    "ValidatingWebhookConfiguration": ("validatingwebhookconfigurations", False),
}
_KIND_OF = {resource: kind for kind, (resource, _) in KINDS.items()}
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "Conflict", 415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
            500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                   r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?$")


class Target(NamedTuple):
    """What a path names."""

    group: str
    resource: str
    namespace: str
    name: str | None  # None: the collection

    @property
    def qualified(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


def parse_path(path: str) -> Target | None:
    m = _PATH.match(path)
    if m is None:
        return None
    return Target(m["group"] or "", m["resource"], m["ns"] or "", m["name"])


def status(code: int, message: str, target: Target | None = None, reason: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason or _REASONS.get(code, "Unknown"), "code": code}
    if target is not None and target.name:
        body["details"] = {"name": target.name, "group": target.group, "kind": target.resource}
    return body


def not_found(t: Target) -> tuple[int, dict[str, Any]]:
    return 404, status(404, f'{t.qualified} "{t.name}" not found', t)


def forbidden(method: str, t: Target) -> dict[str, Any]:
    """The API server's own wording, which names the verb and resource to grant."""
    verb = _VERBS.get(method, method.lower()) if t.name else "list" if method == "GET" else _VERBS.get(method, "")
    where = f' in the namespace "{t.namespace}"' if t.namespace else ""
    subject = f'{t.qualified} "{t.name}"' if t.name else t.qualified
    return status(403, f'{subject} is forbidden: User "{USER}" cannot {verb} resource "{t.resource}" '
                       f'in API group "{t.group}"{where}', t)


def injected(code: int, method: str, t: Target) -> dict[str, Any]:
    """The Status the API server sends with CODE, for a fault rule to answer with."""
    if code == 403:
        return forbidden(method, t)
    if code == 404:
        return not_found(t)[1]
    if code == 409:
        return status(409, f'Operation cannot be fulfilled on {t.qualified} "{t.name}": the object has been '
                           "modified; please apply your changes to the latest version and try again", t)
    if code == 429:
        return status(429, "Too many requests, please try again later.", t)
    if code >= 500:
        return status(code, "etcdserver: request timed out", t)
    return status(code, f"the server rejected the request ({code})", t)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.lock = threading.RLock()
        self._rv = 1000

    def put(self, resource: str, obj: dict[str, Any], namespace: str = "") -> dict[str, Any]:
        """Stores OBJ as the API server would after a write: a new resourceVersion,
        uid and creationTimestamp kept from a previous version or made up."""
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            old = (self.objects.get((resource, namespace, meta["name"])) or {}).get("metadata") or {}
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            meta["uid"] = old.get("uid") or meta.get("uid") or str(uuid.uuid4())
            meta["creationTimestamp"] = old.get("creationTimestamp") or meta.get("creationTimestamp") or now()
            if namespace:
                meta["namespace"] = namespace
            self.objects[(resource, namespace, meta["name"])] = obj
            return copy.deepcopy(obj)

    def get(self, resource: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def delete(self, resource: str, name: str, namespace: str = "") -> None:
        with self.lock:
            self.objects.pop((resource, namespace, name), None)

    def edit(self, resource: str, name: str, ops: list[dict[str, Any]], namespace: str = "") -> dict[str, Any]:
        """Applies the JSON patch OPS to a stored object, as someone else's
        write would (a new resourceVersion); the object as it is now."""
        with self.lock:
            current = self.objects[(resource, namespace, name)]
            return self.put(resource, jsonpatch.apply_patch(current, ops), namespace)

    def answer(self, method: str, t: Target, body: Any, content_type: str) -> tuple[int, dict[str, Any]]:
        """The status and body the API server answers METHOD on T with."""
        key = (t.resource, t.namespace, t.name or "")
        current = self.objects.get(key)
        if t.name is None and method == "GET":
            items = [copy.deepcopy(o) for (r, ns, _), o in sorted(self.objects.items())
                     if r == t.resource and (not t.namespace or ns == t.namespace)]
            kind = _KIND_OF.get(t.resource, "")
            return 200, {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {"resourceVersion": str(self._rv)},
                         "items": items}
        if t.name is None and method == "POST":
            name = ((body or {}).get("metadata") or {}).get("name")
            if not name:
                return 422, status(422, f"{t.qualified} is invalid: metadata.name: Required value", t)
            if (t.resource, t.namespace, name) in self.objects:
                return 409, status(409, f'{t.qualified} "{name}" already exists', t._replace(name=name),
                                   reason="AlreadyExists")
            return 201, self.put(t.resource, body, t.namespace)
        if t.name is None:
            return 405, status(405, f"{method} is not supported on a collection")
        if current is None:
            return not_found(t)
        if method == "GET":
            return 200, copy.deepcopy(current)
        if method == "DELETE":
            del self.objects[key]
            return 200, {**status(200, ""), "status": "Success", "reason": ""}
        if method == "PUT":
            rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
            if rv and rv != current["metadata"]["resourceVersion"]:
                return 409, injected(409, method, t)
            return 200, self.put(t.resource, body, t.namespace)
        if method == "PATCH":
            return self._patch(t, current, body, content_type)
        return 405, status(405, f"{method} is not supported")

    def _patch(self, t: Target, current: dict[str, Any], body: Any, content_type: str) -> tuple[int, dict[str, Any]]:
        if content_type == "application/json-patch+json":
            try:
                new = jsonpatch.apply_patch(current, body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
                return 422, status(422, str(err), t)
        elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            # Strategic merge differs only in list handling by patchMergeKey,
            # which nothing served here relies on: merged as RFC 7386.
            new = _merge(current, body)
        else:
            return 415, status(415, "the body of the request was in an unknown format - accepted media types "
                                    "include: application/json-patch+json, application/merge-patch+json, "
                                    "application/strategic-merge-patch+json", t)
        return 200, self.put(t.resource, new, t.namespace)


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


