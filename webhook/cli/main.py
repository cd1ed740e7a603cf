"""`model-cache`: one program for the webhook, the downloader and the tools around them.

Imports are deferred to each command so that `model-cache download` (run in
every init container) starts without loading Flask, gunicorn or kubernetes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from webhook.errors import ModelCacheError


def _cmd_serve(args: argparse.Namespace) -> int:
    from webhook.server.gunicorn import serve

    return serve(args)


def _cmd_certs_generate(args: argparse.Namespace) -> int:
    from webhook.certs.x509 import generate

    names = generate(Path(args.out), service=args.service, namespace=args.namespace)
    print(f"wrote {args.out}/ca.crt, tls.crt, tls.key for {', '.join(names)}")
    return 0


def _cmd_inject(args: argparse.Namespace) -> int:
    from webhook.cli.inject import run_inject

    return run_inject(args.file, namespace=args.namespace, policies=Path(args.policies))


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from webhook.policy import check_directory

    problems = check_directory(Path(args.dir))
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return 1
    print(f"{args.dir}: policies are valid")
    return 0


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policies", default="policies", help="directory of <namespace>.yaml policy files")
    p.add_argument("--cert", default="certs/tls.crt", help="serving certificate (PEM)")
    p.add_argument("--key", default="certs/tls.key", help="serving key (PEM)")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--host", default="0.0.0.0", help="address to bind")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=8, help="threads per worker (gthread)")
    p.add_argument("--log-level", default="info")
    p.add_argument("--warn-only", action="store_true",
                   default=os.environ.get("MODEL_CACHE_WARN_ONLY", "").strip().lower() in ("1", "true", "yes", "on"),
                   help="allow what would be denied, with a warning, and count it in "
                        "model_cache_warn_only_denials_total (env MODEL_CACHE_WARN_ONLY=true)")
    from webhook.certs.options import add_arguments as add_certificate_arguments

    add_certificate_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-cache", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the admission webhook under gunicorn over TLS")
    add_serve_arguments(serve)
    serve.set_defaults(func=_cmd_serve)

    certs = sub.add_parser("certs", help="certificate tools")
    certs_sub = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    gen = certs_sub.add_parser("generate", help="write a CA and a serving certificate for NAME.NS.svc")
    gen.add_argument("--out", required=True)
    gen.add_argument("--service", default="model-cache")
    gen.add_argument("--namespace", default="model-cache")
    gen.set_defaults(func=_cmd_certs_generate)

    inject = sub.add_parser("inject", help="print objects as the webhook would change them")
    inject.add_argument("-f", "--file", required=True, help="YAML file, or - for stdin")
    inject.add_argument("--namespace", default=None, help="namespace for objects that name none (default: default)")
    inject.add_argument("--policies", default="policies")
    inject.set_defaults(func=_cmd_inject)

    policy = sub.add_parser("policy", help="policy tools")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = policy_sub.add_parser("check", help="validate a directory of policy files")
    check.add_argument("dir")
    check.set_defaults(func=_cmd_policy_check)

    from webhook.download.command import register as register_download_commands

    register_download_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModelCacheError as err:
        print(f"model-cache: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `model-cache inject -f x | head`: the reader left; not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
