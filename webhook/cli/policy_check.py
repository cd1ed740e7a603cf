"""`model-cache policy check PATH...`: the report of webhook.policy.check_paths,
for people (errors and warnings on stderr) or for scripts (`-o json|yaml`).
Exit 1 when a file has an error; warnings alone exit 0."""

from __future__ import annotations

import sys
from pathlib import Path

from webhook.cli.output import emit
from webhook.policy import check_paths


def run_policy_check(paths: list[Path], output: str = "text") -> int:
    report = check_paths(paths)
    if output == "text":
        for problem in report.warnings:
            print(f"warning: {problem}", file=sys.stderr)
        for problem in report.errors:
            print(problem, file=sys.stderr)
        if not report.errors:
            print(f"{', '.join(map(str, paths))}: {report.files} policy file(s) valid")
    else:
        emit({"ok": not report.errors, "files": report.files,
              "errors": [p.as_dict() for p in report.errors],
              "warnings": [p.as_dict() for p in report.warnings]}, output, lambda: "")
    return 1 if report.errors else 0
