"""Parses --source into a spec; pure."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from webhook.download.errors import UsageError

# Archives a URL may name, unpacked into the model's directory: tar (plain,
# gzip, bzip2, xz) streams in; zip needs the whole file (archive/unpack.py).
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)
# Longest first, so that `.tar.gz` is found before `.tar` could be.
ARCHIVE_SUFFIXES = tuple(sorted(TAR_SUFFIXES + ZIP_SUFFIXES, key=len, reverse=True))


@dataclass(frozen=True)
class SourceSpec:
    scheme: str            # "hf", "s3", "http", "file"
    uri: str
    repo_id: str = ""      # hf
    repo_type: str = "model"
    bucket: str = ""       # s3
    prefix: str = ""       # s3, without leading or trailing slash
    url: str = ""          # http(s)
    path: str = ""         # file


def archive_suffix(url_path: str) -> str | None:
    """The archive kind of a URL path (`.tar.gz`, ...) or None for a plain file."""
    lower = url_path.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return suffix
    return None


def scheme_of(uri: str) -> str:
    """The scheme of URI as written, lower case ("hf", "s3", "https", "oci"); "" for none."""
    return urlsplit(uri).scheme.lower() if "://" in uri else ""


def parse_source(uri: str) -> SourceSpec:
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "hf":
        # hf://ORG/REPO, or hf://datasets/ORG/REPO for a dataset repo.
        segs = [s for s in (parts.netloc + parts.path).split("/") if s]
        repo_type = "model"
        if len(segs) == 3 and segs[0] in ("datasets", "models", "spaces"):
            repo_type = segs[0][:-1]
            segs = segs[1:]
        if len(segs) == 1 or len(segs) == 2:
            return SourceSpec("hf", uri, repo_id="/".join(segs), repo_type=repo_type)
        raise UsageError(f"--source {uri}: expected hf://ORG/REPO, hf://REPO or hf://datasets/ORG/REPO")
    if scheme == "s3":
        if not parts.netloc:
            raise UsageError(f"--source {uri}: expected s3://BUCKET/PREFIX")
        return SourceSpec("s3", uri, bucket=parts.netloc, prefix=unquote(parts.path).strip("/"))
    if scheme in ("http", "https"):
        if not parts.netloc:
            raise UsageError(f"--source {uri}: expected a URL with a host")
        return SourceSpec("http", uri, url=uri)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"--source {uri}: file:// takes an absolute path (file:///models/x)")
        return SourceSpec("file", uri, path=unquote(parts.path))
    raise UsageError(f"--source {uri}: unsupported scheme; use hf://, s3://, https://, http:// or file://")


def matches(path: str, patterns: list[str] | None) -> bool:
    """--include semantics, as huggingface_hub's allow_patterns: fnmatch on the
    relative path; a pattern ending in '/' means everything below it."""
    if not patterns:
        return True
    from fnmatch import fnmatch

    for p in patterns:
        if p.endswith("/"):
            p += "*"
        if fnmatch(path, p):
            return True
    return False
