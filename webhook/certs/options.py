"""The `model-cache serve` options of self-managed certificates.

Apart from manager.py so that building the command line (which every
`model-cache download` in every init container does) does not import the
kubernetes client.
"""

from __future__ import annotations

import argparse

DEFAULT_CONFIGS = "mutating:model-cache,validating:model-cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the `model-cache serve` options of self-managed certificates."""
    g = parser.add_argument_group("self-managed certificates (in a cluster)")
    g.add_argument("--tls-secret", metavar="NAME", default=None,
                   help="keep the CA and serving certificate in this Secret, create and rotate them, "
                        "and patch the caBundle of the webhook configurations (off when absent)")
    g.add_argument("--tls-namespace", metavar="NS", default=None,
                   help="namespace of the Secret and the Service (default: $POD_NAMESPACE, "
                        "else the pod's own namespace, else model-cache)")
    g.add_argument("--tls-service", metavar="NAME", default="model-cache",
                   help="Service the API server calls; the certificate names NAME.NS.svc")
    g.add_argument("--webhook-configs", metavar="KIND:NAME,...", default=DEFAULT_CONFIGS,
                   help=f"webhook configurations whose caBundle to keep patched (default {DEFAULT_CONFIGS}; "
                        "'' for none)")
    g.add_argument("--cert-check-interval", metavar="SECONDS", type=float, default=30.0,
                   help="how often each replica re-checks the Secret and the caBundles")
