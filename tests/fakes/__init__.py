"""Stand-ins for what the webhook talks to, served for real on 127.0.0.1:
the Kubernetes API server (apiserver.py, with its fault rules in faults.py)
and the kubeconfig that points a client at it (kubeconfig.py)."""

from tests.fakes.apiserver import TOKEN, FakeApiServer
from tests.fakes.kubeconfig import write_kubeconfig

__all__ = ["TOKEN", "FakeApiServer", "write_kubeconfig"]
