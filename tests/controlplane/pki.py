"""Local certificate authority for the test control plane.

Everything is generated fresh for each cluster: one CA, the API server's serving certificate, one
client certificate per component (its Kubernetes identity is the certificate's CN/O), and the
service-account signing key pair. Nothing leaves the cluster's data folder.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.controlplane.components import FRONT_PROXY_CLIENT, PkiPaths

# Short-lived on purpose: a test cluster never lives longer than a day.
CERT_LIFETIME = datetime.timedelta(days=2)
# The API server's in-cluster names; pods reach it as kubernetes.default.svc.
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate's Kubernetes user (CN) and groups (O)."""

    file_stem: str
    user: str
    groups: tuple[str, ...] = ()


# Each component authenticates as the user its default RBAC bindings expect. kwok plays every fake
# kubelet at once (nodes, leases, pod status, deletions), so it runs with cluster-admin rights.
CLIENT_IDENTITIES = (
    ClientIdentity("admin", "senseops-admin", ("system:masters",)),
    ClientIdentity("controller-manager", "system:kube-controller-manager"),
    ClientIdentity("scheduler", "system:kube-scheduler"),
    ClientIdentity("kwok", "kwok-controller", ("system:masters",)),
)


def _name(common_name: str, groups: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             now: datetime.datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # Backdated a little so a clock a few seconds behind still accepts the certificate.
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
    )


def _new_ca(common_name: str, now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Name,
                                                                  x509.Certificate]:
    """A self-signed CA (key, name, certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, name, cert


def _issue(ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, subject: x509.Name,
           usages: list[x509.ObjectIdentifier], san: list[x509.GeneralName] | None,
           now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf certificate signed by the CA, with the given extended key usages and optional SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca_name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def generate_pki(root: Path, service_ip: str) -> PkiPaths:
    """Create the CA, serving/client certificates and service-account keys under ``root``.

    ``service_ip`` is the first address of the service CIDR (the ``kubernetes`` Service's ClusterIP),
    which must be in the API server certificate for in-cluster clients.
    """
    root.mkdir(parents=True, exist_ok=True)
    paths = PkiPaths(root)
    now = datetime.datetime.now(datetime.UTC)

    ca_key, ca_name, ca_cert = _new_ca("senseops-local-ca", now)
    _write_key(paths.ca_key, ca_key)
    _write_cert(paths.ca_cert, ca_cert)

    def issue(subject: x509.Name, usages: list[x509.ObjectIdentifier],
              san: list[x509.GeneralName] | None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        return _issue(ca_key, ca_name, subject, usages, san, now)

    san: list[x509.GeneralName] = [x509.DNSName(name) for name in APISERVER_DNS_NAMES]
    san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip)]
    key, cert = issue(_name("kube-apiserver"), [ExtendedKeyUsageOID.SERVER_AUTH], san)
    _write_key(paths.apiserver_key, key)
    _write_cert(paths.apiserver_cert, cert)

    # etcd serves clients and its (single) peer listener with one certificate, and only accepts
    # clients holding a certificate from this CA: the API server's etcd-client identity.
    loopback: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    key, cert = issue(_name("etcd"), [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                      loopback)
    _write_key(paths.etcd_key, key)
    _write_cert(paths.etcd_cert, cert)
    key, cert = issue(_name("kube-apiserver-etcd-client"), [ExtendedKeyUsageOID.CLIENT_AUTH], None)
    _write_key(paths.etcd_client_key, key)
    _write_cert(paths.etcd_client_cert, cert)

    # The aggregation layer's front proxy: its own CA and the API server's client certificate under it.
    fp_ca_key, fp_ca_name, fp_ca_cert = _new_ca("senseops-front-proxy-ca", now)
    _write_key(paths.front_proxy_ca_key, fp_ca_key)
    _write_cert(paths.front_proxy_ca_cert, fp_ca_cert)
    fp_key, fp_cert = _issue(fp_ca_key, fp_ca_name, _name(FRONT_PROXY_CLIENT), [ExtendedKeyUsageOID.CLIENT_AUTH],
                             None, now)
    _write_key(paths.front_proxy_client_key, fp_key)
    _write_cert(paths.front_proxy_client_cert, fp_cert)

    for identity in CLIENT_IDENTITIES:
        key, cert = issue(_name(identity.user, identity.groups), [ExtendedKeyUsageOID.CLIENT_AUTH], None)
        _write_key(paths.client_key(identity.file_stem), key)
        _write_cert(paths.client_cert(identity.file_stem), cert)

    # RSA for service-account tokens: RS256 is what every token consumer understands.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(paths.service_account_key, sa_key)
    paths.service_account_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return paths
