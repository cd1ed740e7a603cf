"""`model-cache download` and `model-cache gc`: argparse wiring.

Imported by webhook/cli.py when it builds its parser, so this module imports
nothing heavy; the work is imported inside each command.
"""

from __future__ import annotations

import argparse
import os
import sys


def arguments(source: str, dest: str, revision: str | None = None, sha256: str | None = None,
              include: list[str] | None = None, size: str | None = None) -> list[str]:
    """`model-cache download`'s arguments for one model: the one spelling of
    the command line, for the injected init container and the agent's prewarm.
    SIZE (the policy's `size`) becomes `--size` for an archive source: the
    budget its contents may unpack to."""
    from webhook.download.archive.unpack import archive_of

    args = ["download", "--source", source, "--dest", dest]
    if revision:
        args += ["--revision", revision]
    if sha256:
        args += ["--sha256", sha256]
    if include:
        args += ["--include", *include]
    if size is not None and archive_of(source) is not None:
        args += ["--size", str(size)]
    return args


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _usage_exit(err: Exception) -> int:
    """A usage error of `download` or `gc` exits 2, as argparse's own do
    (webhook.errors.UsageError itself carries the generic exit code 1)."""
    from webhook.download.errors import EXIT_USAGE

    print(f"model-cache: {err}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_download(args: argparse.Namespace) -> int:
    import signal
    from pathlib import Path

    from webhook.download.errors import EXIT_TERMINATED, DownloadError, Terminated, UsageError
    from webhook.download.protocol import Settings, run
    from webhook.download.termination import record

    def on_term(signum, frame):  # noqa: ANN001 - signal handler signature
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)
    settings = Settings(
        source=args.source, dest=Path(args.dest), revision=args.revision or "main",
        sha256=args.sha256, size=args.size, include=args.include or None, jobs=args.jobs, stall=args.stall_timeout,
        heartbeat=args.heartbeat, stale_after=args.stale_after, progress_interval=args.progress_interval,
        poll=_env_float("MODEL_CACHE_POLL_SECONDS", 1.0),
        retries=int(_env_float("MODEL_CACHE_RETRIES", 8)), backoff=_env_float("MODEL_CACHE_RETRY_BACKOFF", 1.0),
        dragonfly_socket=args.dragonfly_socket or None, dragonfly_if_unavailable=args.dragonfly_if_unavailable,
    )
    try:
        return run(settings)
    except UsageError as err:
        record(f"model-cache: {err}")
        return _usage_exit(err)
    except DownloadError as err:
        record(f"model-cache: {err}")
        raise
    except Terminated:
        print("model-cache: terminated (SIGTERM); lock released, the partial download is kept for a resume",
              file=sys.stderr, flush=True)
        return EXIT_TERMINATED
    except PermissionError as err:
        from webhook.download.errors import NotWritable
        from webhook.download.volume.access import explain

        denied = NotWritable(explain(Path(err.filename or settings.dest)))
        record(f"model-cache: {denied}")
        raise denied from None


def _cmd_gc(args: argparse.Namespace) -> int:
    from pathlib import Path

    from webhook.download.errors import UsageError
    from webhook.download.volume.gc import run_gc
    from webhook import quantity

    try:
        try:
            size = quantity.parse(args.max_size, "--max-size")
        except ValueError as err:
            raise UsageError(str(err)) from None
        if size != int(size):
            raise UsageError(f"--max-size: {args.max_size} is {size.normalize()} bytes, not a whole number; "
                             "did you mean Mi (mebibytes) or M (megabytes)?")
        return run_gc(Path(args.root), int(size), args.min_age, args.dry_run, sys.stdout)
    except UsageError as err:
        return _usage_exit(err)


def _sha256(text: str) -> str:
    t = text.strip().lower()
    if len(t) != 64 or any(c not in "0123456789abcdef" for c in t):
        raise argparse.ArgumentTypeError("expected 64 hex digits")
    return t


def _size(text: str) -> int:
    from webhook import quantity

    try:
        value = quantity.parse(text, "--size")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return int(value)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the `download` and `gc` sub-commands."""
    d = subparsers.add_parser(
        "download", help="fetch a model into a shared cache directory, once for all replicas",
        description="Fetches a model into DIR on a shared volume. Exit 0 means DIR holds the whole model and its "
                    "completion marker. Replicas started together download it once.")
    d.add_argument("--source", required=True, help="hf://ORG/REPO (or hf://REPO, hf://datasets/ORG/REPO), s3://BUCKET/PREFIX, https://URL or file:///PATH")
    d.add_argument("--dest", required=True, help="the model's directory, <root>/<model>/<revision>")
    d.add_argument("--revision", default="main", help="hf branch, tag or commit (default: main)")
    d.add_argument("--sha256", type=_sha256, help="expected sha256 of an http(s) file or archive")
    d.add_argument("--size", type=_size, metavar="QUANTITY",
                   help="the model's size in the policy (e.g. 16Gi): an archive may unpack to this plus 5%%, no more")
    d.add_argument("--include", nargs="+", action="extend", metavar="GLOB",
                   help="only files matching one of these globs (hf, s3, file)")
    d.add_argument("--jobs", type=int, default=int(_env_float("MODEL_CACHE_JOBS", 16)),
                   help="connections at once, shared by files and the parts of large files (default 16)")
    d.add_argument("--stall-timeout", type=float, default=_env_float("MODEL_CACHE_STALL_SECONDS", 60),
                   help="seconds without a byte before a connection is retried (default 60)")
    d.add_argument("--heartbeat", type=float, default=_env_float("MODEL_CACHE_HEARTBEAT_SECONDS", 5),
                   help="seconds between lock heartbeats (default 5)")
    d.add_argument("--stale-after", type=float, default=_env_float("MODEL_CACHE_STALE_SECONDS", 60),
                   help="seconds without a heartbeat before a lock is taken over (default 60)")
    d.add_argument("--progress-interval", type=float, default=_env_float("MODEL_CACHE_PROGRESS_SECONDS", 5),
                   help="seconds between progress lines, independent of --heartbeat (default 5); on a "
                        "terminal, stderr shows a live bar instead")
    d.add_argument("--dragonfly-socket", default=os.environ.get("MODEL_CACHE_DRAGONFLY_SOCKET"), metavar="PATH",
                   help="fetch through the node's Dragonfly daemon (dfdaemon) at this socket: one origin download "
                        "for all nodes (docs/dragonfly.md)")
    d.add_argument("--dragonfly-if-unavailable", choices=("direct", "refuse"),
                   default=os.environ.get("MODEL_CACHE_DRAGONFLY_IF_UNAVAILABLE", "direct"),
                   help="the daemon missing or unhealthy: download straight from the origin (default), or fail")
    d.set_defaults(func=_cmd_download)

    g = subparsers.add_parser("gc", help="evict least recently used models from a cache volume",
                              description="Evicts the least recently used complete models under ROOT until the "
                                          "cache fits in --max-size. Locked or recently used models are kept.")
    g.add_argument("--root", required=True, help="the cache volume's root (holds <model>/<revision>/)")
    g.add_argument("--max-size", required=True, help="e.g. 500Gi, 200G or bytes")
    g.add_argument("--min-age", type=float, default=3600.0,
                   help="never evict a model used within this many seconds (default 3600)")
    g.add_argument("--dry-run", action="store_true", help="print what would be evicted, change nothing")
    g.set_defaults(func=_cmd_gc)
