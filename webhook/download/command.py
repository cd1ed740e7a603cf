"""Placeholder: replaced by the downloader's real argparse wiring."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `download` and `gc` sub-commands."""
