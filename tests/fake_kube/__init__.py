"""A small HTTPS server that speaks the few Kubernetes API paths the
certificate manager uses, for tests with the real kubernetes client."""

from .server import FakeKube, kubeconfig_for

__all__ = ["FakeKube", "kubeconfig_for"]
