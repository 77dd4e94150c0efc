"""Pure parts of the registry and Prometheus launchers: generated configs, the pod-network safety
regex, htpasswd entries, crane label flags and the model layer (no servers, no binaries)."""

from __future__ import annotations

import csv
import ipaddress
import os
import re
import subprocess
import tarfile
from pathlib import Path

import bcrypt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.controlplane.components import parse_versions
from tests.servers.prometheus import (
    POD_JOB,
    POD_NETWORK,
    PrometheusSettings,
    StaticTarget,
    ipv4_network_regex,
    pod_relabel_configs,
    prometheus_config,
)
from tests.servers.registry import (
    crane_label_flag,
    docker_config,
    htpasswd_line,
    registry_config,
    write_model_layer,
)

SERVERS = Path(__file__).resolve().parent
REPO = SERVERS.parents[1]


def _go_mod_tools(gomod: str) -> list[str]:
    """The packages of a go.mod's ``tool`` directives (``tool X`` lines and ``tool ( ... )`` blocks)."""
    single = re.findall(r"^tool ([^\s(]+)$", gomod, re.M)
    blocks = [pkg for block in re.findall(r"^tool \((.*?)^\)", gomod, re.M | re.S) for pkg in block.split()]
    return single + blocks


@pytest.mark.parametrize(
    ("wrapper", "module", "version_key", "tools"),
    [
        ("registry", "github.com/distribution/distribution/v3", "REGISTRY_VERSION",
         ["github.com/distribution/distribution/v3/cmd/registry"]),
        ("crane", "github.com/google/go-containerregistry", "CRANE_VERSION",
         ["github.com/google/go-containerregistry/cmd/crane"]),
        ("prometheus", "github.com/prometheus/prometheus", "PROMETHEUS_MODULE_VERSION",
         ["github.com/prometheus/prometheus/cmd/prometheus", "github.com/prometheus/prometheus/cmd/promtool"]),
    ],
)
def test_wrapper_modules_match_versions_env(wrapper: str, module: str, version_key: str, tools: list[str]) -> None:
    """The generated go.mod pins the release in versions.env (rerun gen-wrapper-modules.sh after a bump)."""
    versions = parse_versions((SERVERS / "versions.env").read_text())
    gomod = (SERVERS / "go" / wrapper / "go.mod").read_text()
    assert "DO NOT EDIT" in gomod.splitlines()[0]
    pinned = rf"^\s*(require )?{re.escape(module)} {re.escape(versions[version_key])}( // indirect)?$"
    assert re.search(pinned, gomod, re.M)
    assert _go_mod_tools(gomod) == tools
    assert (SERVERS / "go" / wrapper / "go.sum").stat().st_size > 0


def test_prometheus_version_matches_its_module_version() -> None:
    """Module v0.316.0 is Prometheus 3.16.0: the version stamped into the binary must agree."""
    versions = parse_versions((SERVERS / "versions.env").read_text())
    major_minor, patch = versions["PROMETHEUS_MODULE_VERSION"].removeprefix("v0.").split(".")
    assert versions["PROMETHEUS_VERSION"] == f"{major_minor[0]}.{int(major_minor[1:])}.{patch}"


@pytest.mark.parametrize(
    ("cidr", "inside", "outside"),
    [
        ("198.18.0.0/15", ["198.18.0.1", "198.19.255.254", "198.18.7.9"],
         ["198.17.0.1", "198.20.0.1", "10.244.0.5", "127.0.0.1", "98.18.0.1", "198.180.0.1"]),
        ("198.18.0.0/16", ["198.18.3.4"], ["198.19.3.4"]),
        ("198.18.4.0/22", ["198.18.4.0", "198.18.7.255"], ["198.18.8.0", "198.18.3.255"]),
        ("198.18.0.9/32", ["198.18.0.9"], ["198.18.0.90", "198.18.0.1"]),
    ],
)
def test_network_regex_matches_exactly_the_network(cidr: str, inside: list[str], outside: list[str]) -> None:
    rx = ipv4_network_regex(cidr)
    assert all(re.fullmatch(rx, ip) for ip in inside)
    assert not any(re.fullmatch(rx, ip) for ip in outside)


@given(st.integers(0, 2**32 - 1), st.integers(8, 32), st.booleans(), st.integers(-300, 300))
def test_network_regex_agrees_with_ipaddress(base: int, prefix: int, from_end: bool, offset: int) -> None:
    net = ipaddress.IPv4Network((base, prefix), strict=False)
    edge = net.broadcast_address if from_end else net.network_address
    ip = ipaddress.IPv4Address((int(edge) + offset) % 2**32)  # just inside or outside one of the edges
    assert (re.fullmatch(ipv4_network_regex(str(net)), str(ip)) is not None) == (ip in net)


def test_network_regex_rejects_host_bits_and_short_prefixes() -> None:
    with pytest.raises(ValueError):
        ipv4_network_regex("198.18.0.1/15")
    with pytest.raises(ValueError, match="/8"):
        ipv4_network_regex("0.0.0.0/0")


def _kept_by_ip_rules(rules: list[dict[str, object]], pod_ip: str, address: str) -> bool:
    """Apply only the keep rules on the pod IP and the final address (the safety net)."""
    for rule in rules:
        if rule.get("action") != "keep":
            continue
        source = rule["source_labels"]
        assert isinstance(source, list)
        value = {"__meta_kubernetes_pod_ip": pod_ip, "__address__": address}.get(source[0])
        if value is not None and not re.fullmatch(str(rule["regex"]), value):
            return False
    return True


@pytest.mark.parametrize(
    ("pod_ip", "address", "kept"),
    [
        ("198.18.0.7", "198.18.0.7:8000", True),
        ("198.19.1.2", "198.19.1.2", True),
        ("10.244.0.12", "10.244.0.12:8000", False),  # a kwok fake pod
        ("127.0.0.1", "127.0.0.1:8000", False),
        ("198.18.0.7", "10.244.0.12:8000", False),  # an address rewritten outside the network
    ],
)
def test_pod_rules_keep_only_the_pod_network(pod_ip: str, address: str, kept: bool) -> None:
    rules = pod_relabel_configs()
    assert _kept_by_ip_rules(rules, pod_ip, address) is kept
    assert rules[-1]["source_labels"] == ["__address__"] and rules[-1]["action"] == "keep"


def test_pod_network_outside_the_process_node_network_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape(POD_NETWORK)):
        pod_relabel_configs("10.244.0.0/16")


def test_config_discovers_pods_through_the_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    config = prometheus_config(PrometheusSettings(kubeconfig=kubeconfig, scrape_interval_s=1,
                                                  namespaces=("team-a",)))
    assert config["global"] == {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    (job,) = config["scrape_configs"]
    assert job["job_name"] == POD_JOB
    # kubeconfig_file excludes api_server and any HTTP client settings (TLS lives in the kubeconfig).
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "kubeconfig_file": str(kubeconfig),
                                             "namespaces": {"names": ["team-a"]}}]
    targets = {rule.get("target_label") for rule in job["relabel_configs"]}
    assert {"namespace", "pod", "__address__", "__metrics_path__"} <= targets
    assert {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"} in job["relabel_configs"]
    assert {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep",
            "regex": "true"} in job["relabel_configs"]


def test_config_static_targets_are_loopback_jobs() -> None:
    config = prometheus_config(PrometheusSettings(scrape_interval_s=0.5, static_targets=(
        StaticTarget("operator", "127.0.0.1:8080", labels={"component": "operator"}),
        StaticTarget("operator", "localhost:8081"),
    )))
    assert config["global"]["scrape_interval"] == "500ms"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "operator" and job["metrics_path"] == "/metrics"
    assert [c["targets"] for c in job["static_configs"]] == [["127.0.0.1:8080"], ["localhost:8081"]]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (StaticTarget("x", "10.0.0.1:80"), "not on loopback"),
        (StaticTarget("x", "198.18.0.5:80"), "not on loopback"),
        (StaticTarget("x", "127.0.0.1"), "host:port"),
        (StaticTarget(POD_JOB, "127.0.0.1:80"), "differ"),
    ],
)
def test_config_refuses_unsafe_or_ambiguous_static_targets(target: StaticTarget, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prometheus_config(PrometheusSettings(kubeconfig=Path("/k"), static_targets=(target,)))


def test_htpasswd_line_is_a_bcrypt_entry_for_the_password() -> None:
    line = htpasswd_line("ci-user", "s3cret", rounds=4)
    user, digest = line.rstrip("\n").split(":", 1)
    assert user == "ci-user" and digest.startswith("$2b$04$")
    assert bcrypt.checkpw(b"s3cret", digest.encode())
    assert not bcrypt.checkpw(b"wrong", digest.encode())
    with pytest.raises(ValueError, match="':'"):
        htpasswd_line("a:b", "x")


def test_registry_config_listens_on_loopback_with_htpasswd(tmp_path: Path) -> None:
    config = registry_config(5555, tmp_path / "data", tmp_path / "htpasswd", "secret")
    assert config["http"]["addr"] == "127.0.0.1:5555"
    assert config["auth"] == {"htpasswd": {"realm": "senseops-test-registry", "path": str(tmp_path / "htpasswd")}}
    assert config["storage"]["filesystem"] == {"rootdirectory": str(tmp_path / "data")}
    assert docker_config("127.0.0.1:5555", "u", "p") == {"auths": {"127.0.0.1:5555": {"auth": "dTpw"}}}


@pytest.mark.parametrize(
    ("key", "value"),
    [("org.opencontainers.image.title", "tiny"), ("dev.senseops.note", "a,b"), ("q", 'say "hi", ok'), ("e", "")],
)
def test_crane_label_flag_round_trips_through_csv(key: str, value: str) -> None:
    flag = crane_label_flag(key, value)
    (record,) = list(csv.reader([flag]))
    assert record == [f"{key}={value}"]


def test_model_layer_is_reproducible_and_rooted_at_models(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "model.pt").write_bytes(bytes(range(256)) * 4)
    (model / "sub" / "config.yaml").write_text("a: 1\n")
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    write_model_layer(model, first)
    (model / "model.pt").touch()  # a new mtime must not change the layer
    write_model_layer(model, second)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == ["models", "models/model.pt", "models/sub", "models/sub/config.yaml"]
    assert all(m.uid == 0 and m.mtime == 0 for m in members.values())
    (model / "link").symlink_to(model / "model.pt")
    with pytest.raises(ValueError, match="not a regular file"):
        write_model_layer(model, tmp_path / "c.tar")


@pytest.mark.parametrize(("go_line", "ok"), [("1.20", True), ("1.26.0", True), ("1.99.1", False)])
def test_build_stops_early_when_go_is_older_than_the_module_needs(tmp_path: Path, go_line: str, ok: bool) -> None:
    """scripts/build-go-bins.sh checks the module's `go` line before it locks, links or builds anything."""
    module = tmp_path / "module"
    module.mkdir()
    (module / "go.mod").write_text(f"module example.com/x\n\ngo {go_line}\n")
    cache = tmp_path / "cache"
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), "GOTOOLCHAIN": "local",
           "SENSEOPS_CACHE": str(cache)}
    check = subprocess.run([str(REPO / "scripts" / "ensure-go-version.sh"), str(module)], env=env,
                           capture_output=True, text=True, timeout=60)
    assert (check.returncode == 0) is ok, check.stderr
    if not ok:
        assert f"needs Go >= {go_line}" in check.stderr and f"GOTOOLCHAIN=go{go_line}" in check.stderr
        build = subprocess.run([str(REPO / "scripts" / "build-go-bins.sh"), str(module), "x=example.com/x"],
                               env=env, capture_output=True, text=True, timeout=60)
        assert build.returncode == 1 and f"needs Go >= {go_line}" in build.stderr
        assert not cache.exists()  # failed before creating the cache or touching .bin
