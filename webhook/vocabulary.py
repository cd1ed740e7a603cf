"""The words the webhook shares with its users and with itself: annotation keys,
the names of what it injects, credential keys, where workloads keep
their pod template. Declared once, here; the user-facing contract they belong
to is documented in README.md ("Annotations"), docs/policy.md (policy files)
and docs/cli.md (what `inject` and `explain` read); the strategies are in
webhook/strategies/."""

from __future__ import annotations

# --- pod annotations -------------------------------------------------------------

PREFIX = "model.cache/"
NAME = PREFIX + "name"  # the only trigger
STRATEGY = PREFIX + "strategy"
MOUNT_PATH = PREFIX + "mount-path"
CONTAINERS = PREFIX + "containers"
PRELOAD = PREFIX + "preload"
SHM_SIZE = PREFIX + "shm-size"
INJECTED = PREFIX + "injected"  # output: "<strategy>/<model>/<revision>"

INPUTS: tuple[str, ...] = (NAME, STRATEGY, MOUNT_PATH, CONTAINERS, PRELOAD, SHM_SIZE)
TYPO_DISTANCE = 3  # edits that still read as a typo of one of our keys


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def closest_input(key: str) -> tuple[str, int]:
    """The annotation of ours KEY is closest to, and how many edits away."""
    best = min(INPUTS, key=lambda ours: edit_distance(key, ours))
    return best, edit_distance(key, best)


def did_you_mean(key: str) -> str | None:
    """The input annotation an unknown `model.cache/` KEY most likely meant
    (`model.cache/stratgy` -> `model.cache/strategy`), None when none is close."""
    best, distance = closest_input(key)
    return best if distance <= TYPO_DISTANCE else None

MIRROR = "kubernetes.io/config.mirror"  # static pods' mirrors: never touched
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"  # a namespace's Pod Security level

# --- policy files ------------------------------------------------------------------

POLICY_API_VERSION = "model.cache/v1alpha1"
POLICY_KIND = "ModelCachePolicy"
DEFAULT_POLICY = "_default"  # `_default.yaml` serves every namespace
POLICY_LABEL = "model.cache/policy"  # on the ConfigMap that carries the policy files
POLICY_CONFIGMAP = "model-cache/model-cache-policies"  # NAMESPACE/NAME as manifests/ installs it
POLICIES_ENV = "MODEL_CACHE_POLICIES"  # the policy directory where --policies is not given

# --- what a mutation adds ------------------------------------------------------------

VOLUME = "model-cache"
SHM_VOLUME = "model-cache-shm"
DOWNLOADER = "model-cache-download"
OCI_COPY = "model-cache-oci-copy"
PREPARE = "model-cache-prepare"  # hostpath: gives the model's node directory to the downloader's user
INJECTED_CONTAINERS = frozenset({DOWNLOADER, OCI_COPY, PREPARE})
# An empty directory over the token path of the injected init containers: the
# ServiceAccount admission plugin leaves a container that mounts something
# there alone, so they carry no API token they never use, and the plugin has
# nothing to add after us (no second /mutate call).
NO_TOKEN_VOLUME = "model-cache-no-token"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_ROOT = "/model-cache"  # where the downloader and the OCI copy see the whole volume
# hostpath through Dragonfly: the node's dfdaemon socket directory, read-only
# (connecting to a unix socket needs no write access to its file system).
DRAGONFLY_VOLUME = "model-cache-dragonfly"
DRAGONFLY_MOUNT = "/run/model-cache-dragonfly"
DRAGONFLY_SOCKET = "/var/run/dragonfly/dfdaemon.sock"  # dfdaemon's default download socket on a node
SHM_PATH = "/dev/shm"
CACHE_PATH_ENV = "MODEL_CACHE_PATH"
DEFAULT_IMAGE = "ghcr.io/model-cache/model-cache:0.1.0"
DEFAULT_UID = 10001  # the image's own user and group (Dockerfile)

# --- credentials ----------------------------------------------------------------------

# Secret keys the downloader reads, by source scheme: (key, optional).
CREDENTIAL_KEYS: dict[str, tuple[tuple[str, bool], ...]] = {
    "hf": (("HF_TOKEN", False),),
    "s3": (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False), ("AWS_SESSION_TOKEN", True)),
    "http": (("MODEL_CACHE_HTTP_TOKEN", False),),
    "https": (("MODEL_CACHE_HTTP_TOKEN", False),),
}


def required_credential_keys(scheme: str) -> frozenset[str]:
    """The keys a Secret must hold for a download from SCHEME to start."""
    return frozenset(key for key, optional in CREDENTIAL_KEYS.get(scheme, ()) if not optional)


# --- workloads -------------------------------------------------------------------------

# Where each kind keeps the pod template its controller creates pods from.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

# The controllers (apiVersion, kind) whose pods skip /validate: their workload's
# template was checked when it was applied (workloads.validate.model.cache; a
# Deployment's for its ReplicaSets, a CronJob's for its Jobs), and /mutate
# checks such a pod and writes its warnings as Events. The matchCondition
# not-made-by-a-checked-workload of pods.validate.model.cache says the same in
# CEL (manifests/base/webhooks.yaml, the chart); tests/deploy holds them equal.
VALIDATED_AT_APPLY: frozenset[tuple[str, str]] = frozenset({
    ("apps/v1", "ReplicaSet"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"), ("batch/v1", "Job"),
})

# A KServe InferenceService keeps no pod template: its predictor is a pod spec
# inline (containers, volumes...) with the pods' annotations and labels beside
# it, and the InferenceService's own annotations reach the pods too. `model`
# (or a framework such as `sklearn`) is the serving container KServe builds
# from a ServingRuntime and names kserve-container.
PREDICTOR_PATHS: dict[str, tuple[str, ...]] = {
    "InferenceService": ("spec", "predictor"),
}
KSERVE_CONTAINER = "kserve-container"
# Predictor keys that are the serving container (a corev1.Container plus these
# KServe-only fields); at most one is set.
PREDICTOR_IMPLEMENTATIONS = ("model", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx",
                             "huggingface", "pmml", "lightgbm", "paddle")
PREDICTOR_IMPLEMENTATION_ONLY = ("modelFormat", "runtime", "storageUri", "runtimeVersion", "protocolVersion",
                                 "storage")
# Predictor keys that are KServe's, not the pod spec's (ComponentExtensionSpec and the rest).
PREDICTOR_ONLY = ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
                  "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels",
                  "annotations", "deploymentStrategy", "storageUris", "workerSpec", *PREDICTOR_IMPLEMENTATIONS)
