"""Certificates and keys for one devcluster: a CA, the serving certificate, client
certificates for each component and the admin, and the service-account signing key.

Everything is ECDSA P-256: fast to generate, and accepted by every component for TLS and
for service-account token signing (ES256).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The in-cluster names of the API server; 10.96.0.1 is the first address of the service range.
SERVING_DNS = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local")
SERVING_IPS = ("127.0.0.1", "10.96.0.1")
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"

# Client identities: file stem -> (common name = user, organization = group or None).
CLIENTS: dict[str, tuple[str, str | None]] = {
    "admin": ("devcluster-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    "kwok": ("system:kwok-controller", "system:masters"),
    # The API server's identity towards kubelets (logs, exec); kubelets ask the API server
    # whether it may (webhook authorization), and system:masters may.
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
    # Cluster DNS for real nodes; RBAC grants it what its kubernetes plugin reads.
    "coredns": ("system:coredns", None),
    # kube-proxy for real nodes' pods: the bootstrap ClusterRoleBinding system:node-proxier
    # grants this user what it reads (Services, EndpointSlices, Nodes) and its Events.
    "kube-proxy": ("system:kube-proxy", None),
}


def node_client(node: str) -> str:
    """The file stem of a real node's kubelet client certificate: the identity the Node
    authorizer and NodeRestriction admission know (system:node:NAME in system:nodes)."""
    return f"node-{node}"


def node_serving(node: str) -> str:
    """The file stem of a real node's kubelet serving certificate (its address as SAN)."""
    return f"node-{node}-serving"

_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class Pki:
    """Paths of the files written by :func:`write_pki`."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "serving.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "serving.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    def client_cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def client_key(self, name: str) -> Path:
        return self.dir / f"{name}.key"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _issue(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
           issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool,
           extensions: list[x509.ExtensionType]) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + _VALIDITY)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                         crl_sign=False, encipher_only=False, decipher_only=False)


def write_pki(directory: Path, nodes: Mapping[str, str] | None = None) -> Pki:
    """Create a fresh CA and every certificate and key a devcluster needs; ``nodes`` maps
    each real node's name to its address."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    ca_key, ca_name = _key(), _name("devcluster-ca")
    ca_usage = x509.KeyUsage(digital_signature=True, key_encipherment=False,
                             content_commitment=False, data_encipherment=False,
                             key_agreement=False, key_cert_sign=True, crl_sign=True,
                             encipher_only=False, decipher_only=False)
    ca = _issue(ca_name, ca_key, ca_name, ca_key, ca=True, extensions=[ca_usage])
    pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    serving_key = _key()
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in SERVING_DNS]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
    serving = _issue(_name("kube-apiserver"), serving_key, ca_name, ca_key, ca=False, extensions=[
        _leaf_usage(), x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        x509.SubjectAlternativeName(sans)])
    pki.serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    _write_key(pki.serving_key, serving_key)

    clients = dict(CLIENTS)
    for node, address in (nodes or {}).items():
        clients[node_client(node)] = (f"system:node:{node}", "system:nodes")
        key = _key()
        cert = _issue(_name(f"system:node:{node}", "system:nodes"), key, ca_name, ca_key,
                      ca=False, extensions=[
                          _leaf_usage(), x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                          x509.SubjectAlternativeName([
                              x509.DNSName(node), x509.IPAddress(ipaddress.ip_address(address))])])
        pki.client_cert(node_serving(node)).write_bytes(
            cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki.client_key(node_serving(node)), key)
    for stem, (cn, org) in clients.items():
        key = _key()
        cert = _issue(_name(cn, org), key, ca_name, ca_key, ca=False, extensions=[
            _leaf_usage(), x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])])
        pki.client_cert(stem).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki.client_key(stem), key)

    sa_key = _key()
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki
