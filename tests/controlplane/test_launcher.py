"""Fast checks of the launcher's pure parts and generated files (no binaries, no cluster)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.controlplane import components as c
from tests.controlplane.cluster import ClusterState, ComponentExited, LocalCluster, free_ports
from tests.controlplane.pki import CLIENT_IDENTITIES, generate_pki

GO_DIR = c.HERE / "go"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1\n", {"A": "1"}),
        ("# comment\n\nKUBE_VERSION=v1.37.2  # trailing\n", {"KUBE_VERSION": "v1.37.2"}),
        ("A = b\nC=d", {"A": "b", "C": "d"}),
    ],
)
def test_parse_versions(text: str, expected: dict[str, str]) -> None:
    assert c.parse_versions(text) == expected


@pytest.mark.parametrize("bad", ["no equals sign", "=value"])
def test_parse_versions_rejects_malformed_lines(bad: str) -> None:
    with pytest.raises(ValueError, match="KEY=value"):
        c.parse_versions(bad)


def test_pinned_versions_meet_the_floor() -> None:
    versions = c.pinned_versions()
    kube_minor = int(versions["KUBE_VERSION"].split(".")[1])
    etcd = tuple(int(p) for p in versions["ETCD_VERSION"].lstrip("v").split("."))
    assert kube_minor >= 34
    assert etcd >= (3, 5, 13)


def test_kubernetes_wrapper_module_matches_pinned_version() -> None:
    """The generated go.mod pins the release in versions.env and replaces staging modules with it."""
    versions = c.pinned_versions()
    gomod = (GO_DIR / "kubernetes" / "go.mod").read_text()
    assert "DO NOT EDIT" in gomod.splitlines()[0]
    assert re.search(rf"^\s*k8s\.io/kubernetes {re.escape(versions['KUBE_VERSION'])}\b", gomod, re.M)
    replaces = re.findall(r"^\s*(k8s\.io/\S+) => (\S+) (\S+)$", gomod, re.M)
    staging = "v0." + versions["KUBE_VERSION"].removeprefix("v1.")
    assert len(replaces) >= 30  # every staging repository, not a hand-picked few
    assert all(src == dst and ver == staging for src, dst, ver in replaces)
    for module in ("k8s.io/api", "k8s.io/apiserver", "k8s.io/client-go", "k8s.io/component-base"):
        assert module in {src for src, _, _ in replaces}


def test_etcd_and_kwok_wrapper_modules_match_pinned_versions() -> None:
    versions = c.pinned_versions()
    etcd = (GO_DIR / "etcd" / "go.mod").read_text()
    kwok = (GO_DIR / "kwok" / "go.mod").read_text()
    assert re.search(rf"^\s*go\.etcd\.io/etcd/server/v3 {re.escape(versions['ETCD_VERSION'])}\b", etcd, re.M)
    assert all(v == versions["ETCD_VERSION"] for v in re.findall(r"=> go\.etcd\.io/\S+ (\S+)$", etcd, re.M))
    assert re.search(rf"^\s*sigs\.k8s\.io/kwok {re.escape(versions['KWOK_VERSION'])}\b", kwok, re.M)


def test_stop_stages_cover_every_component_once_and_stop_etcd_last() -> None:
    flat = [name for stage in c.STOP_STAGES for name in stage]
    assert sorted(flat) == sorted(c.COMPONENT_ORDER)
    assert c.STOP_STAGES[-1] == ("etcd",)
    assert c.STOP_STAGES[-2] == ("kube-apiserver",)


def test_ports_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        c.Ports.from_list([1000, 1000, 1001, 1002, 1003, 1004])
    assert c.Ports.from_list([1, 2, 3, 4, 5, 6]).kwok == 6


def test_free_ports_are_distinct_and_nonzero() -> None:
    ports = free_ports(6)
    assert len(set(ports)) == 6 and all(p > 0 for p in ports)


def test_every_component_listens_on_loopback_only(tmp_path: Path) -> None:
    commands = c.component_commands(Path("/bin"), c.Layout(tmp_path), c.Ports(11, 12, 13, 14, 15, 16))
    assert list(commands) == list(c.COMPONENT_ORDER)
    listener_flags = ("--bind-address", "--advertise-address", "--listen-", "--advertise-client-urls",
                      "--initial-advertise-peer-urls", "--initial-cluster=", "--server-address",
                      "--etcd-servers")
    checked = 0
    for argv in commands.values():
        assert "0.0.0.0" not in " ".join(argv)
        for arg in argv:
            if arg.startswith(listener_flags):
                value = arg.split("=", 1)[1]
                hosts = re.findall(r"(?:https?://)?([0-9a-z.]+):\d+", value) or [value]
                assert hosts == ["127.0.0.1"], arg
                checked += 1
    assert checked >= 10
    apiserver = commands["kube-apiserver"]
    assert "--authorization-mode=Node,RBAC" in apiserver
    assert "--anonymous-auth=false" in apiserver
    assert f"--service-cluster-ip-range={c.SERVICE_CIDR}" in apiserver
    assert "--manage-all-nodes=false" in commands["kwok"]


def test_kubeconfig_embeds_credentials() -> None:
    text = c.kubeconfig_yaml("https://127.0.0.1:6443", b"CA", b"CERT", b"KEY", "me")
    config = json.loads(text)
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E="
    assert config["users"][0]["user"]["client-key-data"] == "S0VZ"
    assert config["current-context"] == "senseops-local"


def test_fake_nodes_include_a_gpu_node() -> None:
    manifests = [c.node_manifest(spec) for spec in c.FAKE_NODES]
    assert len(manifests) >= 2
    gpu = [m for m in manifests if c.GPU_RESOURCE in m["status"]["allocatable"]]
    assert len(gpu) == 1
    assert gpu[0]["metadata"]["labels"][c.GPU_LABEL] == "true"
    for m in manifests:
        assert m["metadata"]["annotations"][c.FAKE_NODE_ANNOTATION[0]] == c.FAKE_NODE_ANNOTATION[1]


def _node(name: str, ready: str | None) -> dict[str, object]:
    conditions = [] if ready is None else [{"type": "MemoryPressure", "status": "False"},
                                           {"type": "Ready", "status": ready}]
    return {"metadata": {"name": name}, "status": {"conditions": conditions}}


@pytest.mark.parametrize(
    ("readyz", "sa", "nodes", "expected"),
    [
        (True, True, [_node("a", "True"), _node("b", "True")], []),
        (False, True, [_node("a", "True"), _node("b", "True")], ["kube-apiserver /readyz is not ok"]),
        (True, False, [_node("a", "True"), _node("b", "True")],
         ["ServiceAccount default/default does not exist yet"]),
        (True, True, [_node("a", "True"), _node("b", "False")], ["nodes not Ready: b"]),
        (True, True, [_node("a", None)], ["nodes not Ready: a, b"]),
    ],
)
def test_unready_reasons(readyz: bool, sa: bool, nodes: list[dict[str, object]], expected: list[str]) -> None:
    assert c.unready_reasons(readyz, sa, nodes, ["a", "b"]) == expected


def test_pki_issues_component_identities(tmp_path: Path) -> None:
    paths = generate_pki(tmp_path / "pki", c.SERVICE_IP)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    for identity in CLIENT_IDENTITIES:
        cert = x509.load_pem_x509_certificate(paths.client_cert(identity.file_stem).read_bytes())
        cert.verify_directly_issued_by(ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == identity.user
        groups = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        assert groups == list(identity.groups)
    server = x509.load_pem_x509_certificate(paths.apiserver_cert.read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in san.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", c.SERVICE_IP}
    assert oct(paths.service_account_key.stat().st_mode & 0o777) == "0o600"


def test_pki_front_proxy_is_a_separate_ca_and_the_apiserver_uses_it(tmp_path: Path) -> None:
    """The aggregation layer: only the front-proxy CA's client may assert users to extension API servers."""
    paths = generate_pki(tmp_path / "pki", c.SERVICE_IP)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    fp_ca = x509.load_pem_x509_certificate(paths.front_proxy_ca_cert.read_bytes())
    client = x509.load_pem_x509_certificate(paths.front_proxy_client_cert.read_bytes())
    client.verify_directly_issued_by(fp_ca)
    with pytest.raises(ValueError):
        client.verify_directly_issued_by(ca)  # not a cluster user: the client CA did not sign it
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == c.FRONT_PROXY_CLIENT
    assert oct(paths.front_proxy_client_key.stat().st_mode & 0o777) == "0o600"
    layout = c.Layout(tmp_path)
    commands = c.component_commands(tmp_path / "bin", layout, c.Ports.from_list(range(7000, 7006)))
    flags = dict(arg.partition("=")[::2] for arg in commands["kube-apiserver"][1:])
    assert flags["--requestheader-client-ca-file"] == str(layout.pki.front_proxy_ca_cert)
    assert flags["--requestheader-allowed-names"] == c.FRONT_PROXY_CLIENT
    assert flags["--proxy-client-cert-file"] == str(layout.pki.front_proxy_client_cert)
    assert flags["--enable-aggregator-routing"] == "true"
    assert "--horizontal-pod-autoscaler-sync-period=5s" in commands["kube-controller-manager"]


def test_cluster_state_round_trips(tmp_path: Path) -> None:
    state = ClusterState(root="/x", ports={"apiserver": 1}, pids={"etcd": 2}, argv0={"etcd": "/b/etcd"},
                         started_at=1.0, ready_after_s=3.5)
    state.save(tmp_path / "state.json")
    assert ClusterState.load(tmp_path / "state.json") == state
    assert ClusterState.load(tmp_path / "missing.json") is None


@pytest.mark.parametrize(("failures", "starts_ok"), [(0, True), (1, True), (2, False)])
def test_up_gives_a_crashed_start_one_more_try(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               failures: int, starts_ok: bool) -> None:
    bins = tmp_path / "bin"
    bins.mkdir()
    for name in c.COMPONENT_ORDER:
        (bins / name).write_text("")
    monkeypatch.setenv("SENSEOPS_BIN", str(bins))
    attempts: list[int] = []

    def start_all(self: LocalCluster, binaries: Path, deadline: float) -> ClusterState:
        attempts.append(1)
        if len(attempts) <= failures:
            raise ComponentExited("etcd exited during start-up")
        self.layout.root.mkdir(parents=True, exist_ok=True)
        return ClusterState(root=str(self.layout.root), ports={}, pids={}, argv0={}, started_at=0.0)

    monkeypatch.setattr(LocalCluster, "_start_all", start_all)
    cluster = LocalCluster(tmp_path / "cluster")
    if starts_ok:
        assert cluster.up().ready_after_s is not None
        assert cluster.layout.state_file.exists()
    else:
        with pytest.raises(ComponentExited):
            cluster.up()
    assert len(attempts) == min(failures + 1, 2)
