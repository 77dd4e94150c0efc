"""The Grafana dashboard: every PromQL expression parses (promtool) and names only metrics the code exports."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import senseops_common.storage.spool as spool_metrics
import senseops_operator.metrics as operator_metrics
from senseops_runtime.metrics import RuntimeMetrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "manifests" / "dashboards" / "senseops.json"
# Grafana variables, replaced by what Grafana would send before the expression reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$model": ".*", "$version": ".*"}
METRIC_NAME = re.compile(r"\bsenseops_[a-zA-Z0-9_:]*")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def promtool() -> Path:
    """promtool from the Prometheus module build: $SENSEOPS_PROMTOOL, else $SENSEOPS_CACHE/bin/promtool."""
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    path = Path(os.environ.get("SENSEOPS_PROMTOOL") or cache / "bin" / "promtool")
    if not path.exists():
        raise AssertionError(f"{path} missing: build promtool from the Prometheus Go module (see DESIGN §6)")
    return path


def exported_series_names() -> set[str]:
    """Every series name the runtime, its spool and the operator expose (families expanded with suffixes)."""
    families = list(RuntimeMetrics().registry.collect())
    # The runtime's /metrics adds the default registry, where the recording spool's metrics live.
    for value in [*vars(operator_metrics).values(), *vars(spool_metrics).values()]:
        if isinstance(value, MetricWrapperBase):
            families += value.describe()
    assert families and any(f.name.startswith("senseops_operator") for f in families)
    return {f.name + suffix for f in families for suffix in SUFFIXES[f.type]}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
            assert inner, f"variable {variable['name']}: expected label_values(<selector>, <label>)"
            out.append((f"variable {variable['name']}", inner[1]))
    return out


def substitute(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def check_with_promtool(exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on a rule file with one recording rule per expression (it parses each one)."""
    rules = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True))
    return subprocess.run([str(promtool()), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_every_expression_parses(tmp_path: Path) -> None:
    found = expressions()
    assert len(found) >= 15
    done = check_with_promtool([substitute(e) for _, e in found], tmp_path)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert f"SUCCESS: {len(found)} rules found" in done.stdout


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    done = check_with_promtool(["sum by (kind (rate(senseops_operator_reconciles_total[5m]))"], tmp_path)
    assert done.returncode != 0


@pytest.mark.parametrize(("where", "expr"), expressions(), ids=[w for w, _ in expressions()])
def test_expression_names_only_exported_metrics(where: str, expr: str) -> None:
    names = set(METRIC_NAME.findall(expr))
    assert names, f"{where}: no senseops_ metric in {expr!r}"
    unknown = names - exported_series_names()
    assert not unknown, f"{where} names metrics the code does not export: {sorted(unknown)}"


def test_dashboard_covers_operator_and_runtime() -> None:
    used = {name for _, e in expressions() for name in METRIC_NAME.findall(e)}
    for needed in (
        "senseops_operator_reconciles_total",
        "senseops_operator_reconcile_errors_total",
        "senseops_active_streams",
        "senseops_rtf_bucket",
        "senseops_partial_latency_seconds_bucket",
        "senseops_final_latency_seconds_bucket",
        "senseops_http_requests_total",
        "senseops_decode_queue_depth",
        "senseops_recordings_total",
        "senseops_model_info",
    ):
        assert needed in used, needed


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert g["x"] + g["w"] <= 24, panel["title"]
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine


@pytest.mark.cluster
def test_dashboard_configmap_server_side_dry_run(local_cluster) -> None:  # type: ignore[no-untyped-def]
    local_cluster.kubectl("create", "namespace", "senseops-system", check=False)
    out = local_cluster.kubectl("apply", "--dry-run=server", "-k", str(REPO / "manifests/dashboards")).stdout
    assert "configmap/senseops-grafana-dashboard" in out and "(server dry run)" in out
