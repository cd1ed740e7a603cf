"""Exception types. Each is caught at the edge (the admission handler, the CLI)
and turned into a message that names the problem and the fix."""

from __future__ import annotations


class ModelCacheError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code: int = 1


class PolicyError(ModelCacheError):
    """A policy file that cannot be read or does not validate."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(f"{file}: {p}" for p in problems))


class Denied(ModelCacheError):
    """A pod the webhook cannot serve as asked; the message goes back to kubectl."""


class AnnotationError(Denied):
    """A model.cache/* annotation with a bad value."""


class MalformedReview(ModelCacheError):
    """An AdmissionReview that is not one; answered with HTTP 400."""


class TooLarge(MalformedReview):
    """A request body over the cap; answered with HTTP 413."""
