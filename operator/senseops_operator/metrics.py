"""Prometheus metrics of the operator (served on SENSEOPS_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILES = Counter(
    "senseops_operator_reconciles_total", "Reconciles run, by kind and result.", ["kind", "result"]
)
RECONCILE_SECONDS = Histogram(
    "senseops_operator_reconcile_duration_seconds",
    "Time to observe, decide and act for one object.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RECONCILE_ERRORS = Counter(
    "senseops_operator_reconcile_errors_total", "Reconciles that raised, by kind and exception.", ["kind", "error"]
)
ARTIFACT_CHECKS = Counter(
    "senseops_operator_artifact_checks_total", "Artifact verifications by outcome reason.", ["reason"]
)
RETRAIN_TRIGGERS = Counter(
    "senseops_operator_retrain_triggers_total", "FineTuneJobs created by RetrainPolicies.", ["namespace", "policy"]
)
