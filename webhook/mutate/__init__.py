"""The pure mutation: annotations (a pod's model.cache/* read into a request), plan (what to inject),
containers (the injected init containers), pod (the pod it gives)."""

from webhook.mutate.plan import Plan, already_injected
from webhook.mutate.pod import ModelResolver, after_native_sidecars, mutate, mutate_pod


__all__ = ["ModelResolver", "Plan", "after_native_sidecars", "already_injected", "mutate", "mutate_pod"]
