"""`model-cache policy check PATH...`: the report of webhook.policy.check_paths,
for people (errors and warnings on stderr) or for scripts (`-o json|yaml`).
Exit 1 when a file has an error; warnings alone exit 0."""

from __future__ import annotations

import sys
from pathlib import Path

from webhook.cli.output import emit
from webhook.errors import EXIT_FINDINGS
from webhook.policy import check_paths


def run_policy_check(paths: list[Path], output: str = "text", strict: bool = False) -> int:
    """STRICT: a warning is a finding too (exit 1)."""
    report = check_paths(paths)
    failed = bool(report.errors or (strict and report.warnings))
    if output == "text":
        for problem in report.warnings:
            print(f"warning: {problem}", file=sys.stderr)
        for problem in report.errors:
            print(problem, file=sys.stderr)
        print(f"{', '.join(map(str, paths))}: {_summary(report.files, len(report.errors), len(report.warnings))}")
    else:
        emit({"ok": not failed, "files": report.files,
              "errors": [p.as_dict() for p in report.errors],
              "warnings": [p.as_dict() for p in report.warnings]}, output, lambda: "")
    return EXIT_FINDINGS if failed else 0


def _summary(files: int, errors: int, warnings: int) -> str:
    """One line, printed whatever the outcome, as docs/cli.md promises."""
    if not errors and not warnings:
        return f"{files} policy file(s) valid"
    found = [f"{n} {word}{'' if n == 1 else 's'}" for n, word in ((errors, "error"), (warnings, "warning")) if n]
    return f"{files} policy file(s) read, {' and '.join(found)}" + ("" if errors else "; valid")
