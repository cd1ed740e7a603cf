"""The environment variables a source reads its credentials from: the Secret
keys of webhook.vocabulary.CREDENTIAL_KEYS (their one home), which the
mutation passes to the downloader as variables of the same names."""

from __future__ import annotations

import os

from webhook.vocabulary import required_credential_keys


def token_var(scheme: str) -> str:
    """The one variable that holds the token of SCHEME (hf, http)."""
    (name,) = required_credential_keys(scheme)
    return name


def token(scheme: str) -> str | None:
    """The token of SCHEME from the environment, or None when unset or blank."""
    return os.environ.get(token_var(scheme), "").strip() or None


def required_vars_text(scheme: str) -> str:
    """`AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`: for messages."""
    return " and ".join(sorted(required_credential_keys(scheme)))
