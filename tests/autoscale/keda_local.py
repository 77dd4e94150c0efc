"""KEDA on the process node: the repository's KEDA install (manifests/keda) adapted to run as host processes.

What changes against the manifests, and why (the process node is a kubelet stand-in, tests/procnode/README.md):

- the containers run the binaries built from KEDA's Go module (``make keda-bins``), not the images;
- no ClusterIP routing and no cluster DNS: the metrics API server dials the operator's pod address, with the
  gRPC authority (TLS server name) of the operator's Service;
- certificates are made here, not by KEDA's rotation: the process node mounts a Secret's content as it is at
  pod start and does not refresh it as a kubelet does, so rotation could never hand its new files to the pods.
  The APIService gets the CA as its caBundle (what rotation would write);
- the metrics API server's HTTPS probes become TCP probes (the process node's HTTPS probes verify the serving
  certificate; a kubelet does not).
"""

from __future__ import annotations

import base64
import copy
import datetime
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.procnode.fixtures import PLACEMENT

KEDA_NS = "keda"
OPERATOR_AUTHORITY = f"keda-operator.{KEDA_NS}.svc.cluster.local"
SERVICE_NAMES = tuple(
    f"{service}.{KEDA_NS}.{suffix}" for service in ("keda-operator", "keda-metrics-apiserver")
    for suffix in ("svc", "svc.cluster.local")
)


def keda_binary(name: str) -> Path:
    """keda-operator / keda-adapter from ``make keda-bins``."""
    cache = Path(os.environ.get("SENSEOPS_CACHE", Path.home() / ".cache" / "senseops"))
    repo = Path(__file__).resolve().parents[2]
    for candidate in (repo / ".bin" / name, cache / "bin" / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{name} not found in .bin/ or $SENSEOPS_CACHE/bin: run `make keda-bins` first")


def keda_certificates() -> dict[str, bytes]:
    """ca.crt, tls.crt, tls.key for the gRPC link (mutual TLS, one certificate both ways) and the metrics API."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keda-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVICE_NAMES[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in SERVICE_NAMES]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {
        "ca.crt": ca.public_bytes(pem),
        "tls.crt": cert.public_bytes(pem),
        "tls.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    }


def certificate_secret(certs: dict[str, bytes]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kedaorg-certs", "namespace": KEDA_NS},
            "data": {k: base64.b64encode(v).decode() for k, v in certs.items()}}


def _on_process_node(deployment: dict[str, Any], binary: Path) -> dict[str, Any]:
    out = copy.deepcopy(deployment)
    pod = out["spec"]["template"]["spec"]
    pod.update(copy.deepcopy(PLACEMENT))
    pod["containers"][0]["command"] = [str(binary)]
    return out


def operator_for_process_node(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's Deployment and Service, rotation off (certificates from ``certificate_secret``)."""
    out = []
    for obj in objects:
        name = obj["metadata"]["name"]
        if obj["kind"] == "Deployment" and name == "keda-operator":
            obj = _on_process_node(obj, keda_binary("keda-operator"))
            container = obj["spec"]["template"]["spec"]["containers"][0]
            container["args"] = [a for a in container["args"] if not a.startswith("--enable-cert-rotation")]
            container["args"].append("--enable-cert-rotation=false")
            out.append(obj)
        elif obj["kind"] == "Service" and name == "keda-operator":
            out.append(obj)
    return out


def metrics_apiserver_for_process_node(objects: list[dict[str, Any]], operator_ip: str,
                                       ca_pem: bytes) -> list[dict[str, Any]]:
    """The metrics API server's Deployment, Service and APIService, dialling the operator at ``operator_ip``."""
    out = []
    for obj in objects:
        name = obj["metadata"]["name"]
        if obj["kind"] == "Deployment" and name == "keda-metrics-apiserver":
            obj = _on_process_node(obj, keda_binary("keda-adapter"))
            container = obj["spec"]["template"]["spec"]["containers"][0]
            container["args"] = [a for a in container["args"] if not a.startswith("--metrics-service-address")]
            container["args"] += [f"--metrics-service-address={operator_ip}:9666",
                                  f"--metrics-service-grpc-authority={OPERATOR_AUTHORITY}"]
            for probe in ("livenessProbe", "readinessProbe"):
                container[probe] = {"tcpSocket": {"port": 6443}, "periodSeconds": 2}
            out.append(obj)
        elif obj["kind"] == "Service" and name == "keda-metrics-apiserver":
            out.append(obj)
        elif obj["kind"] == "APIService":
            obj = copy.deepcopy(obj)
            obj["spec"]["caBundle"] = base64.b64encode(ca_pem).decode()
            out.append(obj)
    return out


def cluster_setup(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Namespace, ServiceAccounts and RBAC, as the manifests have them."""
    kinds = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    return [obj for obj in objects if obj["kind"] in kinds]
