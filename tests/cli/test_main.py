"""The command line itself."""

from __future__ import annotations

import subprocess
import sys


def test_building_the_command_line_loads_no_heavy_library() -> None:
    """`model-cache download` runs in every init container; its fast path must
    not pay for the webhook's or the cloud clients' imports."""
    code = (
        "import sys; from webhook.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('kubernetes', 'flask', 'gunicorn', 'boto3', 'huggingface_hub', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_serve_has_the_certificate_options() -> None:
    from webhook.cli import build_parser

    args = build_parser().parse_args(["serve", "--tls-secret", "model-cache-tls", "--port", "9443"])
    assert args.tls_secret == "model-cache-tls" and args.port == 9443 and args.webhook_configs.startswith("mutating:")
