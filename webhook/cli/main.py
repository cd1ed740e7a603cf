"""`model-cache`: one program for the webhook, the downloader and the tools around them.

Imports are deferred to each command so that `model-cache download` (run in
every init container) starts without loading Flask, gunicorn or kubernetes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from webhook import version
from webhook.errors import EXIT_FINDINGS, EXIT_RUNTIME, EXIT_USAGE, ModelCacheError
from webhook.vocabulary import DEFAULT_IMAGE, POLICIES_ENV, POLICY_CONFIGMAP

if TYPE_CHECKING:
    from webhook.cli.kubectl import Target
    from webhook.policy import PolicyStore


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
    from webhook.cli.kubectl import Target, read_objects, refuse_namespace_mismatch

    docs = read_objects(args.files, args.recursive)
    refuse_namespace_mismatch(docs, args.namespace)
    target = Target.from_args(args)
    return run_inject(docs, namespace=target.namespace(), store=_policy_store(args, target), output=args.output)


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from webhook.cli.policy_check import run_policy_check

    return run_policy_check([Path(p) for p in args.paths], args.output, strict=args.strict)


def _policy_store(args: argparse.Namespace, target: "Target") -> "PolicyStore":
    """The policies the answer is for: the cluster's (--from-cluster), else --policies,
    else $MODEL_CACHE_POLICIES, else ./policies (a checkout's)."""
    from webhook.cli.inject import load_store

    if args.from_cluster:
        from webhook.cli.cluster_policies import fetch_policies

        directory = fetch_policies(args.policy_configmap, target.configuration("--from-cluster"))
    else:
        directory = Path(args.policies or os.environ.get(POLICIES_ENV) or "policies")
    return load_store(directory, args.downloader_image)


def _cmd_explain(args: argparse.Namespace) -> int:
    from webhook.cli.explain import run_explain
    from webhook.cli.kubectl import Target, read_objects, refuse_namespace_mismatch

    docs = read_objects(args.files, args.recursive)
    refuse_namespace_mismatch(docs, args.namespace)
    target = Target.from_args(args)
    store = _policy_store(args, target)
    facts = nodes = None
    if args.from_cluster:
        from webhook.cli.explain import nodes_from_cluster
        from webhook.validate.lookups import create_facts_provider

        facts = create_facts_provider(target.configuration("--from-cluster"))
        nodes = nodes_from_cluster(target.configuration("--from-cluster"))
    return run_explain(docs, namespace=target.namespace(), store=store, facts=facts, output=args.output,
                       strict=args.strict, source=", ".join(args.files), nodes=nodes)


EXIT_CODES = (f"exit codes: 0 nothing found; {EXIT_FINDINGS} findings (denied, missed, invalid; warnings "
              f"with --strict); {EXIT_USAGE} usage (the command line, an unreadable -f or --policies, a namespace "
              f"mismatch); {EXIT_RUNTIME} runtime (no kubeconfig, the API server unreachable or refusing)")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, once: not where the help names it already
    (a default that depends on the environment says so itself), and not for
    options with no value of their own (a flag that is off, a default of None)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS) or action.required:
            return text
        return super()._get_help_string(action)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_flag_off(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("0", "false", "no", "off")


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policies", metavar="DIR", default=os.environ.get(POLICIES_ENV) or "policies",
                   help=f"directory of <namespace>.yaml policy files (default: env {POLICIES_ENV}, else ./policies)")
    p.add_argument("--cert", default="certs/tls.crt", help="serving certificate (PEM)")
    p.add_argument("--key", default="certs/tls.key", help="serving key (PEM)")
    p.add_argument("--port", type=int, default=8443, help="TLS port")
    p.add_argument("--host", default="0.0.0.0",
                   help="address to bind; 0.0.0.0 (every address) is what a pod needs, scripts/serve binds 127.0.0.1")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--worker-class", choices=["gevent", "gthread"], default="gevent",
                   help="gevent: a greenlet per connection, so idle and slow clients cannot starve the server; "
                        "gthread: a thread per connection (the old behaviour)")
    p.add_argument("--worker-connections", type=int, default=1000,
                   help="connections one gevent worker holds at once")
    p.add_argument("--threads", type=int, default=8, help="threads per worker (only with --worker-class gthread)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log level")
    p.add_argument("--warn-only", action="store_true", default=_env_flag("MODEL_CACHE_WARN_ONLY"),
                   help="allow what would be denied, unchanged, with a warning, and count it in "
                        "model_cache_warn_only_denials_total (also env MODEL_CACHE_WARN_ONLY=true)")
    _add_downloader_image(p)
    p.add_argument("--events", action=argparse.BooleanOptionalAction,
                   default=not _env_flag_off("MODEL_CACHE_EVENTS"),
                   help="write validating warnings about controller-made pods as Events on their controller "
                        "(needs RBAC create events.events.k8s.io; also env MODEL_CACHE_EVENTS=off)")
    from webhook.certs.options import add_arguments as add_certificate_arguments

    add_certificate_arguments(p)


def _add_downloader_image(p: argparse.ArgumentParser) -> None:
    p.add_argument("--downloader-image", metavar="IMAGE", default=os.environ.get("MODEL_CACHE_DOWNLOADER_IMAGE") or None,
                   help="the downloader image where a policy names none; installs from a private registry set it "
                        f"to the webhook's own (default: env MODEL_CACHE_DOWNLOADER_IMAGE, else {DEFAULT_IMAGE})")


def _add_policy_source(p: argparse.ArgumentParser) -> None:
    _add_downloader_image(p)
    p.add_argument("--policies", metavar="DIR", default=None,
                   help=f"directory of <namespace>.yaml policy files (default: env {POLICIES_ENV}, "
                        "else ./policies)")
    p.add_argument("--from-cluster", action="store_true",
                   help="read the policies from the cluster's ConfigMap (see --kubeconfig, --context) "
                        "instead of --policies")
    p.add_argument("--policy-configmap", default=POLICY_CONFIGMAP, metavar="NS/NAME",
                   help="the ConfigMap --from-cluster reads")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-cache", description=__doc__.splitlines()[0],
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"model-cache {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the admission webhook under gunicorn over TLS",
                           formatter_class=_Formatter)
    add_serve_arguments(serve)
    serve.set_defaults(func=_cmd_serve)

    certs = sub.add_parser("certs", help="certificate tools")
    certs_sub = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    gen = certs_sub.add_parser("generate", help="write a CA and a serving certificate for NAME.NS.svc",
                               formatter_class=_Formatter)
    gen.add_argument("--out", required=True, help="directory for ca.crt, tls.crt, tls.key")
    gen.add_argument("--service", default="model-cache", help="the Service the API server calls")
    gen.add_argument("-n", "--namespace", default="model-cache", help="the Service's namespace")
    gen.set_defaults(func=_cmd_certs_generate)

    from webhook.cli.kubectl import add_cluster_arguments, add_file_arguments
    from webhook.cli.output import add_output_argument

    for name, func, what, output, formats in (
        ("inject", _cmd_inject, "print objects as the webhook would change them; exit 1 if one cannot be injected "
                                "as meant (denied, a misspelled model.cache/name, the annotation in the wrong place)",
         "yaml", "yaml: the objects, changed; json: the same as a List; text: one line per pod template"),
        ("explain", _cmd_explain, "say why each pod template would or would not be injected; exit 1 if one that "
                                  "looks meant for model-cache would not be",
         "text", "text: for people; json, yaml: the verdicts for scripts"),
    ):
        cmd = sub.add_parser(name, help=what, description=what, epilog=EXIT_CODES, formatter_class=_Formatter)
        add_file_arguments(cmd)
        add_cluster_arguments(cmd)
        add_output_argument(cmd, formats, default=output)
        _add_policy_source(cmd)
        if name == "explain":
            cmd.add_argument("--strict", action="store_true",
                             help="a validating warning is a finding too: exit 1")
        cmd.set_defaults(func=func)

    policy = sub.add_parser("policy", help="policy tools")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = policy_sub.add_parser("check", help="validate policy files and directories of them; exit 1 on errors",
                                  epilog=EXIT_CODES, formatter_class=_Formatter)
    check.add_argument("paths", nargs="+", metavar="PATH", help="a <namespace>.yaml file or a directory of them")
    add_output_argument(check, "text: errors and warnings on stderr, a summary on stdout; "
                               "json, yaml: one report on stdout for scripts")
    check.add_argument("--strict", action="store_true", help="a warning is a finding too: exit 1")
    check.set_defaults(func=_cmd_policy_check)

    from webhook.download.command import register as register_download_commands

    register_download_commands(sub)
    from webhook.cli import agent, status

    agent.register(sub, _Formatter)
    status.register(sub, _Formatter)
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
