"""`model-cache agent`: the node agent's command (webhook/agent/)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from webhook.errors import UsageError
from webhook.vocabulary import POLICY_CONFIGMAP


def register(sub: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser("agent", help="the node agent: prepares the node's cache, publishes what it holds on the "
                                     "Node, prewarms the policy's models, evicts under a quota",
                       formatter_class=formatter)
    p.add_argument("--node", default=os.environ.get("NODE_NAME"),
                   help="this node's name (default: env NODE_NAME, from the downward API)")
    p.add_argument("--root", default="/var/lib/model-cache",
                   help="the cache root, mounted at the policy's hostPath path")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--policy-configmap", default=POLICY_CONFIGMAP, metavar="NS/NAME",
                        help="the webhook's policy ConfigMap, read through the API each pass")
    source.add_argument("--policies", help="a directory of policy files instead (a mounted ConfigMap)")
    p.add_argument("--quota", default=os.environ.get("MODEL_CACHE_AGENT_QUOTA") or None,
                   help="size the node's cache may hold, e.g. 500Gi; least recently used models go first "
                        "(default: no eviction)")
    p.add_argument("--min-age", type=float, default=300.0, help="never evict a model used within this many seconds")
    p.add_argument("--uid", type=int, default=10001, help="the downloader's uid (and gid)")
    p.add_argument("--interval", type=float, default=15.0, help="seconds between passes")
    p.add_argument("--metrics-port", type=int, default=9102,
                   help="Prometheus metrics on this port (0: any free port, logged)")
    p.add_argument("--metrics-host", default="0.0.0.0", help="address for the metrics")
    p.set_defaults(func=run_agent)


def run_agent(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    from webhook import quantity
    from webhook.agent import metrics
    from webhook.agent.loop import Agent
    from webhook.kube import api_client, load_configuration

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.node:
        raise UsageError("--node (or env NODE_NAME) is required: the agent publishes onto its own Node")
    quota = int(quantity.parse(args.quota)) if args.quota else None
    cfg = load_configuration()
    if cfg is None:
        raise UsageError("no kubernetes client configuration: run in a pod, or set MODEL_CACHE_KUBECONFIG")
    from kubernetes import client as k8s

    server, _thread = start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.REGISTRY)
    logging.getLogger("webhook.agent").info("metrics on %s:%d", args.metrics_host, server.server_port)
    namespace, sep, name = args.policy_configmap.partition("/")
    if not args.policies and not (sep and namespace and name):
        raise UsageError(f"--policy-configmap {args.policy_configmap!r}: expected NAMESPACE/NAME, e.g. {POLICY_CONFIGMAP}")
    policies = Path(args.policies) if args.policies else args.policy_configmap
    agent = Agent(k8s.CoreV1Api(api_client(cfg)), args.node, Path(args.root), policies, quota, args.uid,
                  min_age=args.min_age)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    agent.run(args.interval, stop)
    return 0
