"""`model-cache policy check PATH...`: every problem a platform team can catch
before the policies reach the cluster, as `file: field.path: what is expected`.

Beyond each file's schema: a model whose strategy its namespace does not allow
(every pod asking for it would be denied, with a message that sends the model
team to the wrong door), and a policy file the kustomization that builds the
ConfigMap does not list (it would silently never reach the cluster).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from webhook.errors import PolicyError
from webhook.policy.files import file_namespace, parse_policy, policy_files
from webhook.policy.resolved import merge_defaults
from webhook.policy.schema import ModelCachePolicy
from webhook.vocabulary import DEFAULT_POLICY

KUSTOMIZATION_NAMES = ("Kustomization", "kustomization.yaml", "kustomization.yml")


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: int = 0


def check_texts(texts: dict[str, str | bytes], default: tuple[str, ModelCachePolicy] | None = None) -> CheckReport:
    """Pure: policy files given as {file name: text} (a directory, or a ConfigMap's
    data), checked each and together. DEFAULT is a _default.yaml from elsewhere
    that merges into them (a file checked on its own has its sibling's)."""
    report = CheckReport()
    parsed: dict[str, tuple[str, ModelCachePolicy]] = {}
    for name, text in texts.items():
        report.files += 1
        try:
            parsed[file_namespace(name)] = (name, parse_policy(text, name))
        except PolicyError as err:
            report.errors += [f"{name}: {p}" for p in err.problems]
    fallback = parsed.get(DEFAULT_POLICY) or default
    for namespace, (name, policy) in parsed.items():
        errors, warnings = _strategy_problems(namespace, name, policy, fallback)
        report.errors += errors
        report.warnings += warnings
    return report


def check_paths(paths: list[Path]) -> CheckReport:
    """Checks policy files and directories of them (the shell around check_texts)."""
    report = CheckReport()
    for path in paths:
        if path.is_dir():
            files = policy_files(path)
            if not files:
                report.errors.append(f"{path}: no <namespace>.yaml or {DEFAULT_POLICY}.yaml files")
                continue
            report.errors += _unlisted(path, files)
        elif path.is_file():
            files = [path]
        else:
            report.errors.append(f"{path}: no such file or directory")
            continue
        texts: dict[str, str | bytes] = {}
        for file in files:
            try:
                texts[str(file)] = file.read_bytes()
            except OSError as err:
                report.errors.append(f"{file}: cannot read: {err.strerror}")
        found = check_texts(texts, _sibling_default(files))
        report.errors += found.errors
        report.warnings += found.warnings
        report.files += found.files
    return report


def _sibling_default(files: list[Path]) -> tuple[str, ModelCachePolicy] | None:
    """The _default.yaml beside a file checked on its own: it merges into it."""
    if len(files) != 1:
        return None
    sibling = files[0].parent / f"{DEFAULT_POLICY}.yaml"
    if sibling == files[0] or not sibling.is_file():
        return None
    try:
        return str(sibling), parse_policy(sibling.read_bytes(), sibling.name)
    except (PolicyError, OSError):
        return None  # reported when that file is checked itself


def _strategy_problems(namespace: str, file: str, policy: ModelCachePolicy,
                       fallback: tuple[str, ModelCachePolicy] | None) -> tuple[list[str], list[str]]:
    """A model's strategy (its own, else the default) must be one its namespace allows."""
    layers = [fallback[1].defaults] if fallback and namespace != DEFAULT_POLICY else []
    try:
        defaults = merge_defaults(*layers, policy.defaults)
    except ValueError as err:
        return [f"{file}: defaults: after merging over {DEFAULT_POLICY}.yaml: {err}"], []
    allowed = ", ".join(defaults.allowedStrategies)
    errors: list[str] = []
    if defaults.strategy not in defaults.allowedStrategies:
        errors.append(f"{file}: defaults.strategy: {defaults.strategy} is not in allowedStrategies ({allowed}); "
                      "models without a strategy of their own would be denied")
    for name, model in policy.models.items():
        if model.strategy and model.strategy not in defaults.allowedStrategies:
            errors.append(f"{file}: models.{name}.strategy: {model.strategy} is not in this namespace's allowedStrategies "
                          f"({allowed}); every pod asking for {name} would be denied")
    warnings: list[str] = []
    if fallback is not None and namespace != DEFAULT_POLICY:
        for name, model in fallback[1].models.items():
            if name in policy.models or not model.strategy or model.strategy in defaults.allowedStrategies:
                continue
            warnings.append(f"{file}: model {name} from {Path(fallback[0]).name} has strategy {model.strategy}, which "
                            f"namespace {namespace} does not allow ({allowed}): its pods there must set "
                            "model.cache/strategy")
    return errors, warnings


def _unlisted(directory: Path, files: list[Path]) -> list[str]:
    """Policy files the directory's kustomization leaves out of the ConfigMap."""
    kustomization = next((directory / n for n in KUSTOMIZATION_NAMES if (directory / n).is_file()), None)
    if kustomization is None:
        return []
    try:
        data = yaml.safe_load(kustomization.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        return [f"{kustomization}: cannot read it: {err}"]
    listed: set[str] = set()
    for generator in data.get("configMapGenerator") or []:
        for entry in generator.get("files") or []:
            # `key=path` or `path`: the file name is what counts.
            listed.add(Path(str(entry).split("=", 1)[-1]).name)
    return [f"{f}: not listed in {kustomization.name}'s configMapGenerator files; add it there, or it never "
            "reaches the cluster" for f in files if f.name not in listed]
