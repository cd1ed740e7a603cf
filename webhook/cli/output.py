"""`-o text|json|yaml`: one option and one printer for the commands whose
answer a script reads (inject, explain, policy check). The JSON and YAML carry
the same document; docs/cli.md describes each command's."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, TextIO

import yaml

FORMATS = ("text", "json", "yaml")


def add_output_argument(parser: argparse.ArgumentParser, what: str, default: str = "text") -> None:
    parser.add_argument("-o", "--output", choices=FORMATS, default=default, help=what)


def emit(document: Any, fmt: str, as_text: Callable[[], str], out: TextIO | None = None) -> None:
    """DOCUMENT as JSON or YAML, or AS_TEXT() for people."""
    out = out or sys.stdout
    if fmt == "json":
        json.dump(document, out, indent=2)
        out.write("\n")
    elif fmt == "yaml":
        yaml.safe_dump(document, out, sort_keys=False, default_flow_style=False)
    else:
        text = as_text()
        if text:
            out.write(text if text.endswith("\n") else text + "\n")
