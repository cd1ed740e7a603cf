"""`model-cache policy check PATH...`: every problem a platform team can catch
before the policies reach the cluster, as `file: field.path: what is expected`.

Beyond each file's schema: a model whose strategy its namespace does not allow
(every pod asking for it would be denied, with a message that sends the model
team to the wrong door), and a policy file the kustomization that builds the
ConfigMap does not list (it would silently never reach the cluster). And, for the command line only,
advice: an hf:// model whose revision is a branch, a tag or unset (it moves,
so nodes may cache different files under one name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from webhook import strategies
from webhook.errors import PolicyError
from webhook.policy.files import file_namespace, parse_policy, policy_files
from webhook.policy.resolved import ResolvedModel, merge_defaults
from webhook.policy.schema import ModelCachePolicy
from webhook.vocabulary import DEFAULT_POLICY


KUSTOMIZATION_NAMES = ("Kustomization", "kustomization.yaml", "kustomization.yml")
PINNED_HF_REVISION = re.compile(r"^[0-9a-f]{40}$")  # a commit; branches and tags move
HF_PREFIX = "hf://"


class Problem(str):
    """One finding, read as `path: message` wherever a line of text is wanted
    (the ConfigMap review joins them), with its parts kept for `-o json`."""

    path: str  # the file or directory it is about
    message: str  # "models.llama.size: ..." without the path
    code: str  # a stable name for the kind of finding, for scripts

    def __new__(cls, path: str, message: str, code: str) -> "Problem":
        self = super().__new__(cls, f"{path}: {message}")
        self.path, self.message, self.code = path, message, code
        return self

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


@dataclass
class CheckReport:
    errors: list[Problem] = field(default_factory=list)  # the file would not work as meant
    warnings: list[Problem] = field(default_factory=list)  # it works, but not as its author may think
    files: int = 0

    def add(self, other: "CheckReport") -> None:
        self.errors += other.errors
        self.warnings += other.warnings
        self.files += other.files


def check_texts(texts: dict[str, str | bytes], default: tuple[str, ModelCachePolicy] | None = None,
                advice: bool = False) -> CheckReport:
    """Pure: policy files given as {file name: text} (a directory, or a ConfigMap's
    data), checked each and together. DEFAULT is a _default.yaml from elsewhere
    that merges into them (a file checked on its own has its sibling's). ADVICE
    adds the warnings only the command line gives (unpinned revisions)."""
    report = CheckReport()
    parsed: dict[str, tuple[str, ModelCachePolicy]] = {}
    for name, text in texts.items():
        report.files += 1
        try:
            parsed[file_namespace(name)] = (name, parse_policy(text, name))
        except PolicyError as err:
            report.errors += [Problem(name, p, "invalid") for p in err.problems]
    fallback = parsed.get(DEFAULT_POLICY) or default
    for namespace, (name, policy) in parsed.items():
        errors, warnings = _strategy_problems(namespace, name, policy, fallback)
        report.errors += errors
        report.warnings += warnings
        if advice:
            report.warnings += unpinned_revisions(name, policy)
    return report


def unpinned_revisions(file: str, policy: ModelCachePolicy) -> list[Problem]:
    """hf:// models whose revision can move under them: a branch, a tag, or none
    (the main branch). Each node caches what it fetched first, under the same name."""
    found = []
    for name, model in policy.models.items():
        if not model.source.startswith(HF_PREFIX) or (model.revision and PINNED_HF_REVISION.match(model.revision)):
            continue
        said = f"{model.revision!r} is a branch or tag" if model.revision else "not set, so it is the main branch"
        found.append(Problem(file, f"models.{name}.revision: {said}, which moves: nodes may cache different "
                                   "files under one name; pin the 40-hex commit", "unpinned-revision"))
    return found


def check_paths(paths: list[Path]) -> CheckReport:
    """Checks policy files and directories of them (the shell around check_texts)."""
    report = CheckReport()
    for path in paths:
        if path.is_dir():
            files = policy_files(path)
            if not files:
                report.errors.append(Problem(str(path), f"no <namespace>.yaml or {DEFAULT_POLICY}.yaml files",
                                             "no-policies"))
                continue
            report.errors += _unlisted(path, files)
        elif path.is_file():
            files = [path]
        else:
            report.errors.append(Problem(str(path), "no such file or directory", "not-found"))
            continue
        texts: dict[str, str | bytes] = {}
        for file in files:
            try:
                texts[str(file)] = file.read_bytes()
            except OSError as err:
                report.errors.append(Problem(str(file), f"cannot read: {err.strerror}", "unreadable"))
        report.add(check_texts(texts, _sibling_default(files), advice=True))
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
                       fallback: tuple[str, ModelCachePolicy] | None) -> tuple[list[Problem], list[Problem]]:
    """A model's strategy (its own, else the default) must be one its namespace allows."""
    layers = [fallback[1].defaults] if fallback and namespace != DEFAULT_POLICY else []
    try:
        defaults = merge_defaults(*layers, policy.defaults)
    except ValueError as err:
        return [Problem(file, f"defaults: after merging over {DEFAULT_POLICY}.yaml: {err}", "invalid")], []
    allowed = ", ".join(defaults.allowedStrategies)
    errors: list[Problem] = []
    if defaults.strategy not in defaults.allowedStrategies:
        errors.append(Problem(file, f"defaults.strategy: {defaults.strategy} is not in allowedStrategies ({allowed}); "
                                    "models without a strategy of their own would be denied", "strategy-not-allowed"))
    for name, model in policy.models.items():
        if model.strategy and model.strategy not in defaults.allowedStrategies:
            errors.append(Problem(file, f"models.{name}.strategy: {model.strategy} is not in this namespace's "
                                        f"allowedStrategies ({allowed}); every pod asking for {name} would be denied",
                                  "strategy-not-allowed"))
            continue
        resolved = ResolvedModel(name, namespace, model, defaults, file)
        unusable = strategies.unusable(resolved.strategy, resolved)
        if unusable is not None:
            errors.append(Problem(file, f"models.{name}: {unusable}; every pod asking for {name} would be denied",
                                  "strategy-unusable"))
    warnings: list[Problem] = []
    if fallback is not None and namespace != DEFAULT_POLICY:
        for name, model in fallback[1].models.items():
            if name in policy.models or not model.strategy or model.strategy in defaults.allowedStrategies:
                continue
            warnings.append(Problem(file, f"model {name} from {Path(fallback[0]).name} has strategy {model.strategy}, "
                                          f"which namespace {namespace} does not allow ({allowed}): its pods there "
                                          "must set model.cache/strategy", "inherited-strategy"))
    return errors, warnings


def _unlisted(directory: Path, files: list[Path]) -> list[Problem]:
    """Policy files the directory's kustomization leaves out of the ConfigMap."""
    kustomization = next((directory / n for n in KUSTOMIZATION_NAMES if (directory / n).is_file()), None)
    if kustomization is None:
        return []
    try:
        data = yaml.safe_load(kustomization.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        return [Problem(str(kustomization), f"cannot read it: {err}", "unreadable")]
    listed: set[str] = set()
    for generator in data.get("configMapGenerator") or []:
        for entry in generator.get("files") or []:
            # `key=path` or `path`: the file name is what counts.
            listed.add(Path(str(entry).split("=", 1)[-1]).name)
    return [Problem(str(f), f"not listed in {kustomization.name}'s configMapGenerator files; add it there, or it "
                            "never reaches the cluster", "unlisted") for f in files if f.name not in listed]
