"""kubectl's conventions, for every command that reads objects or the cluster:
`-f` (a file, a directory, `-`, repeated; `-R` into subdirectories),
`--kubeconfig`, `--context`, the context's namespace when `-n` is not given,
and the namespace mismatch refused as kubectl refuses it. A platform team's
habits then carry over: the same flags answer for the same cluster."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import yaml

from webhook.errors import KubeConfigError, UsageError

if TYPE_CHECKING:  # the kubernetes client is loaded only by a command that uses it
    from kubernetes import client as k8s

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")  # what kubectl reads from a directory
STDIN = "-"


def add_file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", "--file", dest="files", action="append", required=True,
                        metavar="FILE",
                        help="a YAML or JSON file, a directory of them (.yaml, .yml, .json), or - for stdin; "
                             "repeat for more")
    parser.add_argument("-R", "--recursive", action="store_true",
                        help="read the directories given with -f and all their subdirectories")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default=None,
                        help="namespace for objects that name none (default: the kubeconfig context's, else "
                             "default); an object that names another one is refused, as kubectl does")
    parser.add_argument("--kubeconfig", metavar="FILE", default=None,
                        help="kubeconfig for the cluster (default: env MODEL_CACHE_KUBECONFIG, in a pod its "
                             "ServiceAccount, env KUBECONFIG, else ~/.kube/config)")
    parser.add_argument("--context", default=None, help="the kubeconfig context to use (default: its current one)")


@dataclass(frozen=True)
class Target:
    """The cluster and namespace a command's flags name, as kubectl reads them."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace_flag: str | None = None  # -n as given: only then is a mismatch refused

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Target":
        return cls(args.kubeconfig, args.context, args.namespace)

    def namespace(self) -> str:
        """-n, else the context's namespace, else `default`."""
        if self.namespace_flag:
            return self.namespace_flag
        from webhook import kube

        return kube.context_namespace(os.environ, self.kubeconfig, self.context) or "default"

    def configuration(self, why: str) -> "k8s.Configuration":
        """The client configuration; KubeConfigError saying WHY one was needed when there is none."""
        from webhook import kube

        configuration = kube.load_configuration(os.environ, self.kubeconfig, self.context)
        if configuration is None:
            raise KubeConfigError(f"{why}: no kubeconfig found; pass --kubeconfig FILE, or set KUBECONFIG "
                                  "(or MODEL_CACHE_KUBECONFIG)")
        return configuration


def manifest_files(names: list[str], recursive: bool = False) -> list[str]:
    """The files that -f NAMES mean, in kubectl's order: each name in turn, a
    directory's manifests sorted by path."""
    files: list[str] = []
    for name in names:
        if name == STDIN:
            if STDIN in files:
                raise UsageError("-f - is given twice: standard input can be read only once")
            files.append(name)
            continue
        path = Path(name)
        if path.is_dir():
            found = sorted(str(p) for p in (path.rglob("*") if recursive else path.iterdir())
                           if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
            if not found:
                raise UsageError(f"-f {name}: no {', '.join(MANIFEST_SUFFIXES)} files in this directory"
                                 + ("" if recursive else " (-R reads its subdirectories too)"))
            files += found
        elif path.exists():
            files.append(name)
        else:
            raise UsageError(f"-f {name}: no such file or directory")
    return files


def read_objects(names: list[str], recursive: bool = False) -> list[dict[str, Any]]:
    """The Kubernetes objects of every document of -f NAMES, in order."""
    return [doc for file in manifest_files(names, recursive) for doc in _documents(file)]


def _documents(file: str) -> list[dict[str, Any]]:
    label = "standard input" if file == STDIN else file
    try:
        text = sys.stdin.read() if file == STDIN else Path(file).read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {label}: {getattr(err, 'strerror', None) or err}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise UsageError(f"{label} is not valid YAML: {err}") from None
    for doc in docs:
        if not isinstance(doc, dict):
            raise UsageError(f"{label}: every document must be a Kubernetes object (a mapping)")
    return docs


def _objects(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        yield doc
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            yield from _objects([i for i in doc["items"] if isinstance(i, dict)])


def refuse_namespace_mismatch(docs: list[dict[str, Any]], namespace_flag: str | None) -> None:
    """kubectl's rule: with -n given, an object that names another namespace is
    an error, not silently moved or silently kept."""
    if not namespace_flag:
        return
    for obj in _objects(docs):
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        named = meta.get("namespace")
        if named and named != namespace_flag:
            raise UsageError(
                f"{obj.get('kind', 'object')} {meta.get('name', '(unnamed)')}: the namespace from the provided "
                f"object {named!r} does not match the namespace {namespace_flag!r} given with -n; "
                f"pass -n {named}, or leave -n out")
