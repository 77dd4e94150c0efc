"""Pure description of the local control plane: versions, ports, command lines, kubeconfigs, nodes.

Nothing here starts a process or touches the network; ``cluster.py`` does the I/O around it, and
``test_launcher.py`` checks these decisions with tables.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VERSIONS_FILE = HERE / "versions.env"
KWOK_STAGES_FILE = HERE / "kwok-stages.yaml"

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
POD_CIDR = "10.244.0.1/16"  # addresses kwok hands out to fake pods; nothing is routed there
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
FRONT_PROXY_CLIENT = "front-proxy-client"  # CN of the aggregator's client certificate
# How often the HPA controller recomputes replicas (kube default 15 s): short, so autoscaling tests
# see a decision within seconds; scale-down is still held back by each HPA's stabilisation window.
HPA_SYNC_PERIOD = "5s"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_LABEL = "nvidia.com/gpu.present"

# Start order, and the stop order (clients together, then the API server, then its store).
COMPONENT_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
STOP_STAGES = (("kwok", "kube-scheduler", "kube-controller-manager"), ("kube-apiserver",), ("etcd",))


@dataclass(frozen=True)
class PkiPaths:
    """Where the generated files live (all PEM)."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.root / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.root / "apiserver.key"

    @property
    def etcd_cert(self) -> Path:
        return self.root / "etcd.crt"

    @property
    def etcd_key(self) -> Path:
        return self.root / "etcd.key"

    @property
    def etcd_client_cert(self) -> Path:
        return self.root / "apiserver-etcd-client.crt"

    @property
    def etcd_client_key(self) -> Path:
        return self.root / "apiserver-etcd-client.key"

    @property
    def service_account_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.root / "sa.pub"

    # The aggregation layer: the API server proxies to extension API servers (KEDA's external metrics) with
    # the front-proxy client certificate, signed by a CA of its own so that certificate is good for nothing
    # else; extension servers trust the user headers only from holders of a certificate of that CA.
    @property
    def front_proxy_ca_cert(self) -> Path:
        return self.root / "front-proxy-ca.crt"

    @property
    def front_proxy_ca_key(self) -> Path:
        return self.root / "front-proxy-ca.key"

    @property
    def front_proxy_client_cert(self) -> Path:
        return self.root / "front-proxy-client.crt"

    @property
    def front_proxy_client_key(self) -> Path:
        return self.root / "front-proxy-client.key"

    def client_cert(self, stem: str) -> Path:
        return self.root / f"{stem}.crt"

    def client_key(self, stem: str) -> Path:
        return self.root / f"{stem}.key"



def parse_versions(text: str) -> dict[str, str]:
    """Parse ``KEY=value`` lines of versions.env (comments and blank lines ignored)."""
    versions: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"versions.env: expected KEY=value, got {raw!r}")
        versions[key.strip()] = value.strip()
    return versions


def pinned_versions() -> dict[str, str]:
    """The pinned KUBE_VERSION / ETCD_VERSION / KWOK_VERSION of this checkout."""
    return parse_versions(VERSIONS_FILE.read_text())


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one cluster, all chosen free at start."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def from_list(cls, ports: Sequence[int]) -> Ports:
        if len(set(ports)) != 6:
            raise ValueError(f"need 6 distinct ports, got {list(ports)}")
        return cls(*ports)


@dataclass(frozen=True)
class Layout:
    """Where one cluster keeps its files. ``root`` is `.cluster/` for `make cluster-up`."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def pki(self) -> PkiPaths:
        return PkiPaths(self.data / "pki")

    @property
    def etcd_data(self) -> Path:
        return self.data / "etcd"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def component_kubeconfig(self, stem: str) -> Path:
        return self.data / f"{stem}.kubeconfig"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"


def etcd_client_url(ports: Ports) -> str:
    return f"https://127.0.0.1:{ports.etcd_client}"


def apiserver_url(ports: Ports) -> str:
    return f"https://127.0.0.1:{ports.apiserver}"


def kubeconfig_yaml(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, user: str) -> str:
    """A self-contained kubeconfig (credentials embedded). JSON is valid YAML, so no YAML library."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "senseops-local", "cluster": {
            "server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": "senseops-local", "context": {"cluster": "senseops-local", "user": user}}],
        "current-context": "senseops-local",
        "preferences": {},
    }
    return json.dumps(config, indent=2) + "\n"


def component_commands(bin_dir: Path, layout: Layout, ports: Ports) -> dict[str, list[str]]:
    """The command line of each component. Every listener is bound to 127.0.0.1."""
    pki = layout.pki
    etcd_url = etcd_client_url(ports)
    peer_url = f"https://127.0.0.1:{ports.etcd_peer}"
    cm_kubeconfig = str(layout.component_kubeconfig("controller-manager"))
    sched_kubeconfig = str(layout.component_kubeconfig("scheduler"))
    return {
        "etcd": [
            str(bin_dir / "etcd"),
            "--name=senseops",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=senseops={peer_url}",
            "--initial-cluster-state=new",
            f"--cert-file={pki.etcd_cert}",
            f"--key-file={pki.etcd_key}",
            f"--trusted-ca-file={pki.ca_cert}",
            "--client-cert-auth=true",
            f"--peer-cert-file={pki.etcd_cert}",
            f"--peer-key-file={pki.etcd_key}",
            f"--peer-trusted-ca-file={pki.ca_cert}",
            "--peer-client-cert-auth=true",
            # A throwaway test store: durability is not worth the fsync latency on a shared disk.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
        "kube-apiserver": [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            f"--etcd-cafile={pki.ca_cert}",
            f"--etcd-certfile={pki.etcd_client_cert}",
            f"--etcd-keyfile={pki.etcd_client_key}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--tls-cert-file={pki.apiserver_cert}",
            f"--tls-private-key-file={pki.apiserver_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--anonymous-auth=false",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # The Endpoints of the `kubernetes` Service may not hold a loopback address.
            "--endpoint-reconciler-type=none",
            # Aggregation layer (APIService → extension API server, e.g. KEDA's external metrics).
            f"--requestheader-client-ca-file={pki.front_proxy_ca_cert}",
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.front_proxy_client_cert}",
            f"--proxy-client-key-file={pki.front_proxy_client_key}",
            # Dial an APIService's endpoint (pod) address, not its ClusterIP: nothing here routes ClusterIPs,
            # and process-node pods (198.18.0.0/15) are reachable from the host.
            "--enable-aggregator-routing=true",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ],
        "kube-controller-manager": [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={cm_kubeconfig}",
            f"--authentication-kubeconfig={cm_kubeconfig}",
            f"--authorization-kubeconfig={cm_kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.controller_manager}",
            "--leader-elect=false",
            "--cluster-name=senseops",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca_cert}",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_PERIOD}",
            "--profiling=false",
            "--v=1",
        ],
        "kube-scheduler": [
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={sched_kubeconfig}",
            f"--authentication-kubeconfig={sched_kubeconfig}",
            f"--authorization-kubeconfig={sched_kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.scheduler}",
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ],
        "kwok": [
            str(bin_dir / "kwok"),
            f"--kubeconfig={layout.component_kubeconfig('kwok')}",
            f"--config={KWOK_STAGES_FILE}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION[0]}={FAKE_NODE_ANNOTATION[1]}",
            f"--server-address=127.0.0.1:{ports.kwok}",
            f"--cidr={POD_CIDR}",
            # Node leases, renewed every ~10 s like a kubelet's; without this flag kwok keeps none and
            # the node lifecycle controller would rely on the slower status heartbeat alone.
            "--node-lease-duration-seconds=40",
            "--node-ip=10.244.255.1",
        ],
    }


@dataclass(frozen=True)
class FakeNodeSpec:
    """A fake node: its name, (fake, unrouted) address, allocatable resources and extra labels."""

    name: str
    address: str
    resources: Mapping[str, str]
    labels: Mapping[str, str]


FAKE_NODES = (
    FakeNodeSpec("kwok-cpu-0", "10.244.255.10", {"cpu": "16", "memory": "64Gi", "pods": "110"},
                 {"node.kubernetes.io/instance-type": "senseops.cpu-16"}),
    FakeNodeSpec("kwok-gpu-0", "10.244.255.11",
                 {"cpu": "32", "memory": "128Gi", "pods": "110", GPU_RESOURCE: "2"},
                 {"node.kubernetes.io/instance-type": "senseops.gpu-2", GPU_LABEL: "true"}),
)


def node_manifest(spec: FakeNodeSpec) -> dict[str, Any]:
    """The Node object registered for a fake node (as a kubelet would register itself)."""
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        **spec.labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": {FAKE_NODE_ANNOTATION[0]: FAKE_NODE_ANNOTATION[1]},
        },
        "spec": {},
        "status": {
            "capacity": dict(spec.resources),
            "allocatable": dict(spec.resources),
            "addresses": [{"type": "InternalIP", "address": spec.address},
                          {"type": "Hostname", "address": spec.name}],
        },
    }


def node_is_ready(node: Mapping[str, Any]) -> bool:
    """True when the node's Ready condition is True."""
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def unready_reasons(readyz_ok: bool, default_sa_exists: bool, nodes: Sequence[Mapping[str, Any]],
                    expected_nodes: Sequence[str]) -> list[str]:
    """Why the cluster is not ready yet (empty list = ready)."""
    reasons = []
    if not readyz_ok:
        reasons.append("kube-apiserver /readyz is not ok")
    if not default_sa_exists:
        reasons.append("ServiceAccount default/default does not exist yet")
    ready = {n.get("metadata", {}).get("name") for n in nodes if node_is_ready(n)}
    missing = [name for name in expected_nodes if name not in ready]
    if missing:
        reasons.append(f"nodes not Ready: {', '.join(missing)}")
    return reasons
