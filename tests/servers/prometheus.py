"""Launch a real Prometheus 3.x (built by ``make dataplane-bins`` with Kubernetes discovery) on loopback.

Prometheus finds pods through the API server (``kubernetes_sd_configs`` role ``pod``, credentials from a
kubeconfig file) and scrapes those annotated ``prometheus.io/scrape: "true"`` on ``prometheus.io/port`` and
``prometheus.io/path``, as the runtime's manifests set. **Only pod IPs inside the process node's pod
network (198.18.0.0/15) are ever scraped**: kwok's fake pods carry 10.244.x addresses that lead nowhere
on this machine, and tests must never send traffic outside loopback or their own network namespaces.
That rule is enforced twice in the generated relabelling (on the pod IP, and last of all on the final
scrape address), and static targets must be loopback addresses.

The config comes from a pure function (``prometheus_config``) so it can be checked without a server;
``PrometheusServer`` writes it, runs the binary, reloads it, stops and starts again on the same port and
data folder (tests stop Prometheus mid-rollout and bring it back).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tests.common.waiting import wait_until
from tests.servers._proc import free_port, go_binary, stop_process, wait_http_ok

# The process node's pod network. Every pod address Prometheus may scrape lies inside it.
POD_NETWORK = "198.18.0.0/15"
POD_JOB = "kubernetes-pods"
# Pod annotations the runtime and operator manifests set (manifests/).
SCRAPE_ANNOTATION = "prometheus.io/scrape"
PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"


class PrometheusError(RuntimeError):
    """The Prometheus HTTP API answered with an error, or not at all."""


@dataclass(frozen=True)
class StaticTarget:
    """A fixed scrape target on loopback, e.g. the operator's /metrics."""

    job: str
    address: str  # host:port, host a loopback address or "localhost"
    metrics_path: str = "/metrics"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PrometheusSettings:
    """What the generated config contains. ``kubeconfig`` None: no pod discovery, static targets only."""

    kubeconfig: Path | None = None
    scrape_interval_s: float = 15.0
    pod_network: str = POD_NETWORK
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    static_targets: tuple[StaticTarget, ...] = ()


def ipv4_network_regex(cidr: str) -> str:
    """An anchored-style regular expression (RE2 and Python ``re``) matching exactly the dotted-quad
    addresses inside ``cidr``; Prometheus relabelling has regexes, not CIDR matching."""
    net = ipaddress.IPv4Network(cidr, strict=True)
    if net.prefixlen < 8:
        raise ValueError(f"{cidr}: prefixes shorter than /8 are not supported")
    octets = str(net.network_address).split(".")
    full, rest = divmod(net.prefixlen, 8)
    parts = octets[:full]
    if rest:
        first = int(octets[full])
        values = range(first, first + 2 ** (8 - rest))
        parts.append(octets[full] if len(values) == 1 else "(?:" + "|".join(str(v) for v in values) + ")")
    parts += [r"\d{1,3}"] * (4 - len(parts))
    return r"\.".join(parts)


def _duration(seconds: float) -> str:
    if seconds <= 0:
        raise ValueError(f"a scrape interval must be positive (got {seconds})")
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def _annotation_label(annotation: str) -> str:
    """The meta label Kubernetes discovery gives a pod annotation (non-alphanumerics become ``_``)."""
    return "__meta_kubernetes_pod_annotation_" + "".join(ch if ch.isalnum() else "_" for ch in annotation)


def _check_loopback(target: StaticTarget) -> None:
    host, _, port = target.address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"static target {target.address!r} needs host:port")
    host = host.strip("[]")
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"static target {target.address!r} is not on loopback; tests scrape only 127.0.0.0/8, "
                         "::1 or pods in the process node's network")


def pod_relabel_configs(pod_network: str = POD_NETWORK) -> list[dict[str, Any]]:
    """Relabelling for role ``pod``: keep annotated pods inside ``pod_network``, take port and path from
    the annotations, copy namespace, pod name and the pod's labels. The last rule re-checks the final
    scrape address against ``pod_network``, so no earlier rule can route a scrape elsewhere."""
    network = ipaddress.IPv4Network(pod_network, strict=True)
    if not network.subnet_of(ipaddress.IPv4Network(POD_NETWORK)):
        raise ValueError(f"pod network {pod_network} is outside {POD_NETWORK}, the only network tests may scrape")
    ip = ipv4_network_regex(pod_network)
    return [
        {"source_labels": [_annotation_label(SCRAPE_ANNOTATION)], "action": "keep", "regex": "true"},
        {"source_labels": ["__meta_kubernetes_pod_phase"], "action": "drop", "regex": "Succeeded|Failed"},
        {"source_labels": ["__meta_kubernetes_pod_ip"], "action": "keep", "regex": ip},
        {"source_labels": [_annotation_label(PATH_ANNOTATION)], "action": "replace", "regex": "(.+)",
         "target_label": "__metrics_path__"},
        {"source_labels": ["__meta_kubernetes_pod_ip", _annotation_label(PORT_ANNOTATION)], "action": "replace",
         "regex": r"(.+);(\d+)", "replacement": "$1:$2", "target_label": "__address__"},
        {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        # Safety: whatever happened above, only an address in the pod network is scraped.
        {"source_labels": ["__address__"], "action": "keep", "regex": ip + r"(?::\d+)?"},
    ]


def prometheus_config(settings: PrometheusSettings) -> dict[str, Any]:
    """The complete prometheus.yml for ``settings``."""
    interval = _duration(settings.scrape_interval_s)
    scrape_configs: list[dict[str, Any]] = []
    if settings.kubeconfig is not None:
        sd: dict[str, Any] = {"role": "pod", "kubeconfig_file": str(settings.kubeconfig)}
        if settings.namespaces:
            sd["namespaces"] = {"names": list(settings.namespaces)}
        scrape_configs.append({
            "job_name": POD_JOB,
            "fallback_scrape_protocol": "PrometheusText0.0.4",
            "kubernetes_sd_configs": [sd],
            "relabel_configs": pod_relabel_configs(settings.pod_network),
        })
    jobs: dict[str, list[StaticTarget]] = {}
    for target in settings.static_targets:
        _check_loopback(target)
        jobs.setdefault(target.job, []).append(target)
    for job, targets in jobs.items():
        paths = {t.metrics_path for t in targets}
        if len(paths) != 1:
            raise ValueError(f"static job {job!r} mixes metrics paths {sorted(paths)}; use one job per path")
        scrape_configs.append({
            "job_name": job,
            "metrics_path": paths.pop(),
            "fallback_scrape_protocol": "PrometheusText0.0.4",
            "static_configs": [{"targets": [t.address], "labels": dict(t.labels)} for t in targets],
        })
    if len({c["job_name"] for c in scrape_configs}) != len(scrape_configs):
        raise ValueError(f"static job names must differ from {POD_JOB!r}")
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval if settings.scrape_interval_s < 10
                   else "10s", "evaluation_interval": interval},
        "scrape_configs": scrape_configs,
    }


class PrometheusServer:
    """One Prometheus process on ``127.0.0.1:port`` with its TSDB under ``root/data``."""

    def __init__(self, root: Path, settings: PrometheusSettings, port: int | None = None) -> None:
        self.root = root
        self.settings = settings
        self.port = port or free_port()
        self.config_path = root / "prometheus.yml"
        self.data_dir = root / "data"
        self.log_path = root / f"prometheus-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        """Write prometheus.yml for the current settings."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(prometheus_config(self.settings), sort_keys=False))
        return self.config_path

    def start(self, timeout_s: float = 60.0) -> PrometheusServer:
        """Start (or restart on the same port and data) and wait until /-/ready answers."""
        self.write_config()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = subprocess.Popen(
            [str(go_binary("prometheus")), f"--config.file={self.config_path}",
             f"--storage.tsdb.path={self.data_dir}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)},
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_http_ok(f"{self.url}/-/ready", timeout_s, self.proc)
        return self

    def stop(self) -> None:
        """Stop Prometheus (the TSDB stays for a later ``start()``)."""
        stop_process(self.proc, timeout_s=20.0)
        self.proc = None

    def reconfigure(self, **changes: Any) -> None:
        """Change settings (e.g. ``static_targets=(...)``), rewrite the config and reload it live."""
        self.settings = replace(self.settings, **changes)
        self.write_config()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30):
                pass
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"reload refused: {exc.read().decode(errors='replace').strip()}") from exc

    def api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET /api/v1/<path>; the ``data`` field, or PrometheusError with Prometheus' own message."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                body = json.load(reply)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        except OSError as exc:
            raise PrometheusError(f"Prometheus at {self.url} did not answer: {exc}") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"{path}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query (now, or at unix time ``at``); the result vector."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params)
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(active targets, dropped targets) as /api/v1/targets lists them."""
        data = self.api("targets", {"state": "any"})
        return data["activeTargets"], data["droppedTargets"]

    def wait_for(self, what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
        """Poll ``check`` until it returns something truthy; AssertionError naming ``what`` and the log."""
        return wait_until(f"Prometheus: {what} (log: {self.log_path})", check, timeout_s, 0.5)


def sample_values(result: Sequence[dict[str, Any]]) -> list[float]:
    """The float values of an instant-query result vector."""
    return [float(item["value"][1]) for item in result]
