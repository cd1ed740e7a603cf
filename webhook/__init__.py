"""model-cache: a Kubernetes admission webhook that gives inference pods a shared model cache."""


def version() -> str:
    """The installed package's version (pyproject.toml is the one place it is set)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("model-cache")
    except PackageNotFoundError:
        return "unknown (not installed)"
