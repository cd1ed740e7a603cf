"""Placeholder for self-managed certificates in the cluster (issue 4)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds `model-cache serve` options for in-cluster certificate management."""


def prepare(args: argparse.Namespace) -> None:
    """Runs in `model-cache serve` before gunicorn starts (cert files must exist after it)."""


def start_background(args: argparse.Namespace) -> None:
    """Runs in the gunicorn master once it listens (when_ready): renewal, caBundle drift."""
