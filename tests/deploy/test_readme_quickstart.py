"""The README's quick starts, run as written (issue 29: the Helm one failed at
`helm test` and no test ran it). Each command of the README's Helm and
kustomize blocks runs through bash, from the checkout, with `helm` and
`kubectl` on PATH and KUBECONFIG naming a real kube-apiserver (tests/apiserver).

That control plane has no kubelet and no Service network, so the commands
that need a kubelet are played by the test rather than skipped in silence,
except `logs -f`, which the API server proxies to a kubelet and is left out.
`rollout status` runs as written while the test reports the Deployment's
pods Running and Ready. `helm test` runs as written,
with the test standing in for the kubelet of the pod it creates: the
webhook runs beside the API server from the ConfigMap the chart installed
(reached by URL, the one change to what the chart installed), the pod's own
program (files/helm-test.py) runs with the pod's environment as its
ServiceAccount (the hook's RBAC, made by `helm test` itself), and the pod's
status gets the phase that program's exit gives, which `helm test` reads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.deploy.render import CHART, REPO, need_helm
from tests.helpers import cannot_run, free_port

NEEDS_A_KUBELET = ("logs ",)  # the API server proxies it to the kubelet that runs the pod


def readme_block(containing: str) -> list[str]:
    """The commands of the README's sh block that holds CONTAINING, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if containing in b]
    commands = re.sub(r"\\\n\s*", "", block).splitlines()
    return [c.split("  #", 1)[0].strip() for c in commands if c.strip()]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.apiserver.controlplane import running_control_plane, why_not

    reason = why_not()
    if reason:
        cannot_run(reason)
    with running_control_plane(tmp_path_factory.mktemp("quickstart-control-plane")) as cp:
        yield cp


@pytest.fixture(scope="module")
def shell_env(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from tests.apiserver.controlplane import KUBECTL

    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "helm").symlink_to(need_helm())
    (bin_dir / "kubectl").symlink_to(KUBECTL or "kubectl")
    home = tmp_path_factory.mktemp("home")
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "KUBECONFIG": str(cluster.kubeconfig),
            "HELM_CACHE_HOME": str(home / "helm-cache"), "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data")}


def sh(command: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, f"{command}\n{out.stdout}\n{out.stderr}"
    return out


def sh_started(command: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """COMMAND started as sh runs it, for one that waits on what the test does next; output merged."""
    return subprocess.Popen(["bash", "-euo", "pipefail", "-c", command], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def helm_test_with_a_stand_in_kubelet(command: str, cluster: Any, env: dict[str, str], root: Path) -> str:
    """Runs COMMAND (the README's `helm test`, as written) while the test
    plays the kubelet for the pod it creates: the pod's own program
    (files/helm-test.py) runs with the pod's environment, as its
    ServiceAccount, and the pod's phase becomes what the program's exit says,
    which is what `helm test` waits for. Returns helm's and the program's output."""
    from tests.apiserver.controlplane import wait_for
    from tests.apiserver.served import Webhook, service_account_kubeconfig

    # The webhook, as the chart's Deployment runs it, beside the API server.
    port = free_port()
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        config = yaml.safe_load(cluster.kubectl("get", kind, "model-cache", "-o", "yaml").stdout)
        path = "/mutate" if kind.startswith("mutating") else "/validate"
        patch = [{"op": "replace", "path": f"/webhooks/{i}/clientConfig",
                  "value": {"url": f"https://127.0.0.1:{port}{path}"}} for i in range(len(config["webhooks"]))]
        cluster.kubectl("patch", kind, "model-cache", "--type=json", "-p", yaml.safe_dump(patch))
    policies = root / "policies"
    policies.mkdir()
    configmap = yaml.safe_load(cluster.kubectl("get", "configmap", "model-cache-policies", "-n", "model-cache",
                                               "-o", "yaml").stdout)
    for key, text in configmap["data"].items():
        (policies / key).write_text(text)
    sa = service_account_kubeconfig(cluster, root / "webhook.kubeconfig", "model-cache", "model-cache")
    webhook = Webhook(cluster, root, port, sa, "")
    webhook.launch()
    helm = None
    try:
        webhook.wait_ready()
        helm = sh_started(command, env)

        def hook_pod() -> dict[str, Any] | None:
            pods = yaml.safe_load(cluster.kubectl("get", "pods", "-n", "model-cache", "-o", "yaml").stdout)["items"]
            hooks = [p for p in pods if (p["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
            return hooks[0] if hooks else None

        pod = wait_for("the pod of helm test", hook_pod, timeout=60, every=0.2)
        (container,) = pod["spec"]["containers"]
        hook_env = {e["name"]: e["value"] for e in container["env"]}
        test_sa = service_account_kubeconfig(cluster, root / "test.kubeconfig", "model-cache",
                                             pod["spec"]["serviceAccountName"])
        python = str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "python")
        result: dict[str, subprocess.CompletedProcess[str]] = {}

        def passes() -> bool:
            result["last"] = subprocess.run(
                [python, "-c", (CHART / "files" / "helm-test.py").read_text()], capture_output=True, text=True,
                timeout=60, env={**hook_env, "KUBECONFIG": str(test_sa), "PATH": "/usr/bin:/bin"})
            return result["last"].returncode == 0

        try:
            # The API server's webhook client takes up the patched configuration asynchronously.
            wait_for("helm test's program to pass", passes, timeout=60)
        except RuntimeError:
            pass  # the pod fails, as a kubelet would report it; helm test says so
        program = result["last"]
        phase = "Succeeded" if program.returncode == 0 else "Failed"
        status = {"phase": phase, "containerStatuses": [{
            "name": container["name"], "image": container["image"], "imageID": "", "ready": False,
            "restartCount": 0, "state": {"terminated": {"exitCode": program.returncode, "reason": "Completed"
                                                        if phase == "Succeeded" else "Error"}}}]}
        cluster.kubectl("patch", "pod", pod["metadata"]["name"], "-n", "model-cache", "--subresource=status",
                        "--type=merge", "-p", json.dumps({"status": status}))
        out, _ = helm.communicate(timeout=120)
        assert helm.returncode == 0, f"{command}: exit {helm.returncode}\n{out}\n{program.stdout}{program.stderr}"
        return out + program.stdout
    finally:
        if helm is not None and helm.poll() is None:
            helm.kill()
        webhook.stop()


def test_the_helm_quick_start(cluster: Any, shell_env: dict[str, str], tmp_path: Path) -> None:
    commands = readme_block("helm install model-cache charts/model-cache")
    assert "helm test model-cache -n model-cache" in commands
    for command in commands:
        if command.startswith("helm test"):
            out = helm_test_with_a_stand_in_kubelet(command, cluster, shell_env, tmp_path)
            assert "Phase:          Succeeded" in out, out
            # The policies replaced the examples: the test asks in llm, for llm's first model.
            assert out.splitlines()[-1].startswith(
                "ok: a dry-run pod asking for model llama-3-8b in namespace llm was injected: "
                "model.cache/injected=pvc/llama-3-8b/"), out
            # The validating half's warnings come through too: the example's PVC is not in this cluster.
            assert 'warning: 299 - "PVC llm-models not found in namespace llm' in out
        else:
            out = sh(command, shell_env).stdout
            if command.startswith("helm install"):
                assert "helm test model-cache -n model-cache" in out
                assert "A dry-run pod asking for model llama-3-8b in namespace llm comes back injected" in out
                assert "EXAMPLE policies" not in out
    sh("helm uninstall model-cache -n model-cache --wait", shell_env)


def rollout_with_a_stand_in_kubelet(command: str, cluster: Any, env: dict[str, str]) -> str:
    """Runs COMMAND (the README's `rollout status`, as written) while the
    test plays the kubelet of the Deployment's pods: each pod the ReplicaSet
    makes is reported Running and Ready, from which the controllers compute
    the availability that `rollout status` waits for."""
    from tests.apiserver.controlplane import wait_for

    deployment = json.loads(cluster.kubectl("get", "deployment", "model-cache", "-n", "model-cache",
                                            "-o", "json").stdout)
    selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
    rollout = sh_started(command, env)
    try:
        def report_ready() -> bool:
            pods = json.loads(cluster.kubectl("get", "pods", "-n", "model-cache", "-l", selector,
                                              "-o", "json").stdout)["items"]
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for pod in pods:
                if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])):
                    continue
                ready = [{"type": t, "status": "True", "lastTransitionTime": now}
                         for t in ("Initialized", "ContainersReady", "Ready")]
                cluster.kubectl("patch", "pod", pod["metadata"]["name"], "-n", "model-cache", "--subresource=status",
                                "--type=merge", "-p", json.dumps({"status": {"phase": "Running", "conditions": ready}}))
            return rollout.poll() is not None

        wait_for("rollout status to return", report_ready, timeout=120, every=0.5)
        out = rollout.communicate()[0]
        assert rollout.returncode == 0, f"{command}: exit {rollout.returncode}\n{out}"
        return out
    finally:
        if rollout.poll() is None:
            rollout.kill()


def test_the_kustomize_quick_start(cluster: Any, shell_env: dict[str, str]) -> None:
    commands = readme_block("kubectl apply -k manifests/")
    ran = []
    for command in commands:
        if any(needs in command for needs in NEEDS_A_KUBELET):
            continue
        if "rollout status" in command:
            out = rollout_with_a_stand_in_kubelet(command, cluster, shell_env)
            assert 'deployment "model-cache" successfully rolled out' in out, out
        else:
            sh(command, shell_env, timeout=300)
        ran.append(command)
        if command.startswith("kubectl apply -k"):
            assert cluster.kubectl("get", "deployment", "model-cache", "-n", "model-cache", "-o", "name").stdout.strip()
    assert ran == ["kubectl apply -k manifests/", "kubectl -n model-cache rollout status deployment/model-cache",
                   "kubectl delete -k manifests/"]
    gone = cluster.kubectl("get", "mutatingwebhookconfiguration", "model-cache", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
