"""model-cache: a Kubernetes admission webhook that gives inference pods a shared model cache."""

__version__ = "0.1.0"
