"""`helm test`: create a pod that asks for a model, as a server-side dry run
(dryRun=All: admission runs, nothing is stored), and check that the webhook
injected it. Runs in the webhook's own image with its Python and kubernetes
client: no kubectl image to pull, nothing the chart does not already trust."""

import json
import os
import sys

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

INJECTED = "model.cache/injected"
namespace = os.environ["TEST_NAMESPACE"]
model = os.environ.get("TEST_MODEL", "")
if not model:
    sys.exit(f"no model to ask for: set the chart value tests.model to a model of the policy that serves "
             f"namespace {namespace}")

restricted = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
              "seccompProfile": {"type": "RuntimeDefault"}}
pod = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"generateName": "model-cache-helm-test-", "annotations": {"model.cache/name": model}},
    "spec": {"containers": [{"name": "server", "image": os.environ["TEST_IMAGE"], "command": ["true"],
                             "securityContext": restricted}]},
}
try:
    config.load_incluster_config()
except config.ConfigException:  # run by hand, outside a pod: the kubeconfig's credentials
    config.load_kube_config()
try:
    resp = client.CoreV1Api().create_namespaced_pod(namespace, pod, dry_run="All", _preload_content=False)
except ApiException as err:
    try:
        why = json.loads(err.body)["message"]
    except (TypeError, ValueError, KeyError):
        why = err.reason
    sys.exit(f"FAIL: a dry-run pod asking for model {model} in namespace {namespace} was refused "
             f"(HTTP {err.status}): {why}")
created = json.loads(resp.data)
for warning in resp.headers.get("Warning", "").split(", "):
    if warning:
        print(f"warning: {warning}")
injected = created["metadata"].get("annotations", {}).get(INJECTED)
if not injected:
    sys.exit(f"FAIL: a dry-run pod asking for model {model} in namespace {namespace} came back without "
             f"{INJECTED}: the webhook was not called (see docs/troubleshooting.md, 'My pod was not injected')")
print(f"ok: a dry-run pod asking for model {model} in namespace {namespace} was injected: {INJECTED}={injected}")
