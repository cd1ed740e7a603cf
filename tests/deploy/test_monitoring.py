"""Monitoring (manifests/components/monitoring, also the chart's): the alert
rules pass `promtool check rules` and fire in `promtool test rules` on made-up
series; every query of the Grafana dashboard parses; every metric they name
is one the webhook exports. promtool comes from Debian's `prometheus`
package (scripts/helm-bin says how); without it those tests skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import REPO

MONITORING = REPO / "manifests" / "components" / "monitoring"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="no promtool: apt-get install prometheus (Debian/Ubuntu)")


def rules() -> dict[str, Any]:
    return yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())


def dashboard() -> dict[str, Any]:
    return json.loads((MONITORING / "dashboard.json").read_text())


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    # Grafana's variables, as Grafana would substitute them.
    return [e.replace("$__rate_interval", "5m").replace("$namespace", "model-cache") for e in exprs]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL or "promtool", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@needs_promtool
def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules()["spec"]))
    proc = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"SUCCESS: \d+ rules found", proc.stdout), proc.stdout


@needs_promtool
def test_promtool_check_does_catch_a_bad_expression(tmp_path: Path) -> None:
    """The check above would pass vacuously if promtool ignored expressions."""
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"alert": "Bad", "expr": "sum by (le (rate(x[5m]))"}]}]}))
    assert promtool("check", "rules", "bad.yaml", cwd=tmp_path).returncode != 0


@needs_promtool
def test_dashboard_queries_parse(tmp_path: Path) -> None:
    groups = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(dashboard_exprs())]}]}
    (tmp_path / "dashboard-rules.yaml").write_text(yaml.safe_dump(groups))
    proc = promtool("check", "rules", "dashboard-rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Made-up series for `promtool test rules`: each alert fires when it should,
# and not on a healthy replica.
ALERT_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - name: a healthy replica raises nothing
    interval: 1m
    input_series:
      - series: 'up{job="model-cache", namespace="model-cache", pod="a"}'
        values: '1x120'
      - series: 'model_cache_certificate_expiry_timestamp_seconds{namespace="model-cache", pod="a", certificate="serving"}'
        values: '7776000x120'       # 90 days after the epoch, the test's "now"
      - series: 'model_cache_policy_files_invalid{namespace="model-cache", pod="a"}'
        values: '0x120'
      - series: 'model_cache_reviews_total{namespace="model-cache", pod="a", endpoint="mutate", result="mutated", strategy="pvc"}'
        values: '0+60x120'
      - series: 'model_cache_review_seconds_bucket{namespace="model-cache", pod="a", endpoint="mutate", le="0.01"}'
        values: '0+60x120'
      - series: 'model_cache_review_seconds_bucket{namespace="model-cache", pod="a", endpoint="mutate", le="+Inf"}'
        values: '0+60x120'
    alert_rule_test:
      - {eval_time: 100m, alertname: ModelCacheDown, exp_alerts: []}
      - {eval_time: 100m, alertname: ModelCacheCertificateExpiresSoon, exp_alerts: []}
      - {eval_time: 100m, alertname: ModelCachePolicyReloadErrors, exp_alerts: []}
      - {eval_time: 100m, alertname: ModelCacheHighDenialRate, exp_alerts: []}
      - {eval_time: 100m, alertname: ModelCacheSlowReviews, exp_alerts: []}
  - name: trouble
    interval: 1m
    input_series:
      - series: 'up{job="model-cache", namespace="model-cache", pod="a"}'
        values: '0x120'
      - series: 'model_cache_certificate_expiry_timestamp_seconds{namespace="model-cache", pod="a", certificate="serving"}'
        values: '864000x120'        # 10 days after the epoch
      - series: 'model_cache_policy_files_invalid{namespace="model-cache", pod="a"}'
        values: '1x120'
      - series: 'model_cache_reviews_total{namespace="model-cache", pod="a", endpoint="mutate", result="denied", strategy=""}'
        values: '0+30x120'
      - series: 'model_cache_reviews_total{namespace="model-cache", pod="a", endpoint="mutate", result="mutated", strategy="pvc"}'
        values: '0+30x120'
      - series: 'model_cache_warn_only_denials_total{namespace="model-cache", pod="a"}'
        values: '0+1x120'
      - series: 'model_cache_review_seconds_bucket{namespace="model-cache", pod="a", endpoint="mutate", le="0.25"}'
        values: '0+1x120'
      - series: 'model_cache_review_seconds_bucket{namespace="model-cache", pod="a", endpoint="mutate", le="1"}'
        values: '0+60x120'
      - series: 'model_cache_review_seconds_bucket{namespace="model-cache", pod="a", endpoint="mutate", le="+Inf"}'
        values: '0+60x120'
    alert_rule_test:
      - eval_time: 100m
        alertname: ModelCacheDown
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: No model-cache webhook replica is up
              description: >-
                Pods annotated with model.cache/name cannot be created while no replica answers.
                Check `kubectl -n model-cache get pods` and the logs.
      - eval_time: 100m
        alertname: ModelCacheCertificateExpiresVerySoon
        exp_alerts: []
      - eval_time: 100m
        alertname: ModelCachePolicyReloadErrors
        exp_alerts:
          - exp_labels: {severity: warning, namespace: model-cache}
            exp_annotations:
              summary: A model-cache policy file fails to load
              description: >-
                The last good version stays in force. Run `model-cache policy check` on the
                policies and see /readyz for the error.
      - eval_time: 100m
        alertname: ModelCacheCertificateExpiresSoon
        exp_alerts:
          - exp_labels: {severity: warning, namespace: model-cache, pod: a, certificate: serving}
            exp_annotations:
              summary: model-cache serving certificate expires in 9d 22h 20m 0s
              description: "Renewal starts 60 days before expiry, so it has been failing for a month. Look for certificate errors in the webhook's log."
      - eval_time: 100m
        alertname: ModelCacheHighDenialRate
        exp_alerts:
          - exp_labels: {severity: warning, namespace: model-cache}
            exp_annotations:
              summary: model-cache denies 50% of the pods that ask for a model
              description: "See the denial messages in the webhook's log (JSON lines with the review's uid) or the events of the failing ReplicaSets."
      - eval_time: 100m
        alertname: ModelCacheSlowReviews
        exp_alerts:
          - exp_labels: {severity: warning, namespace: model-cache, endpoint: mutate}
            exp_annotations:
              summary: model-cache p99 latency on /mutate is 992.4ms
              description: "Reviews normally take milliseconds. Look at the webhook's CPU throttling and at slow API server lookups (/validate)."
      - eval_time: 100m
        alertname: ModelCacheWarnOnlyDenials
        exp_alerts:
          - exp_labels: {severity: info, namespace: model-cache}
            exp_annotations:
              summary: 60 pods in the last hour would be denied without warn-only mode
              description: Fix them before turning warn-only off.
"""


@needs_promtool
def test_alerts_fire_on_made_up_series(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules()["spec"]))
    (tmp_path / "tests.yaml").write_text(ALERT_TESTS)
    proc = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alerts_cover_what_the_issue_asks() -> None:
    alerts = {r["alert"]: r for g in rules()["spec"]["groups"] for r in g["rules"]}
    text = {name: r["expr"] for name, r in alerts.items()}
    assert "model_cache_certificate_expiry_timestamp_seconds" in text["ModelCacheCertificateExpiresSoon"]
    assert "model_cache_policy_reload_errors_total" in text["ModelCachePolicyReloadErrors"]
    assert 'result="denied"' in text["ModelCacheHighDenialRate"]
    assert "histogram_quantile(0.99" in text["ModelCacheSlowReviews"]
    for rule in alerts.values():
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]


def test_every_metric_named_is_one_the_webhook_exports() -> None:
    source = "\n".join(p.read_text() for p in (REPO / "webhook").rglob("*.py"))
    exported = set(re.findall(r"\"(model_cache_[a-z_]+)\"", source)) | set(re.findall(r"= \"(model_cache_[a-z_]+)\"", source))
    used = set()
    for text in [yaml.safe_dump(rules()), *dashboard_exprs()]:
        used |= set(re.findall(r"\bmodel_cache_[a-z_]+", text))
    assert used, "no metric found in the rules and the dashboard"
    for name in sorted(used):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in exported or base in exported, f"{name}: no such metric in webhook/"


def test_dashboard_is_importable() -> None:
    d = dashboard()
    assert d["uid"] == "model-cache" and d["title"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    for p in d["panels"]:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"


def test_component_objects() -> None:
    from tests.deploy.render import kustomize, one

    docs = kustomize("manifests")  # the default install has no monitoring; the component adds it
    assert not [d for d in docs if d["kind"] in ("ServiceMonitor", "PrometheusRule")]
    sm = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    svc = one(docs, "Service", "model-cache")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}
