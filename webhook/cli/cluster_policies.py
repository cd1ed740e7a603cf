"""`--from-cluster`: the policies in force in the cluster, read from the
webhook's ConfigMap, so `inject` and `explain` answer for the cluster rather
than for a local checkout that may have drifted."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

from kubernetes import client

from webhook import kube
from webhook.errors import KubeAccessError, UsageError
from webhook.vocabulary import POLICY_CONFIGMAP

TIMEOUT = (5.0, 15.0)


def fetch_policies(ref: str, configuration: client.Configuration, into: Path | None = None) -> Path:
    """Writes the policy files of ConfigMap REF (`NAMESPACE/NAME`) into a directory
    and returns it; KubeAccessError naming the call when the cluster says no."""
    namespace, sep, name = ref.partition("/")
    if not sep or not namespace or not name:
        raise UsageError(f"--policy-configmap {ref!r}: expected NAMESPACE/NAME, e.g. {POLICY_CONFIGMAP}")
    api = client.CoreV1Api(kube.api_client(configuration))
    try:
        response = api.read_namespaced_config_map(name, namespace, _preload_content=False, _request_timeout=TIMEOUT)
        configmap = json.loads(response.data)
    except Exception as err:  # noqa: BLE001 - read by kube.read_failure; anything else is re-raised
        failure = kube.read_failure(err)
        if failure is None:
            raise
        hint = " (is model-cache installed there? see --policy-configmap)" if failure.kind == "missing" else ""
        raise KubeAccessError(f"reading ConfigMap {ref}", failure.status, failure.message + hint) from None
    finally:
        api.api_client.close()
    directory = into or Path(tempfile.mkdtemp(prefix="model-cache-policies-"))
    files = {k: v.encode() for k, v in (configmap.get("data") or {}).items()}
    files.update({k: base64.b64decode(v) for k, v in (configmap.get("binaryData") or {}).items()})
    for key, data in files.items():
        if key.endswith((".yaml", ".yml")) and "/" not in key:
            (directory / key).write_bytes(data)
    return directory
