from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devcluster.pki import CLIENTS, node_client, node_serving, write_pki


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_every_certificate_is_issued_by_the_ca(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    ca = _cert(pki.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for path in [pki.serving_cert, *(pki.client_cert(n) for n in CLIENTS)]:
        _cert(path).verify_directly_issued_by(ca)


def test_serving_certificate_names_loopback_and_in_cluster_names(tmp_path: Path) -> None:
    cert = _cert(write_pki(tmp_path).serving_cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert {"localhost", "kubernetes.default.svc"} <= set(sans.get_values_for_type(x509.DNSName))
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_client_identities_are_the_users_and_groups_rbac_expects(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    admin = _cert(pki.client_cert("admin")).subject
    assert admin.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    scheduler = _cert(pki.client_cert("kube-scheduler")).subject
    assert scheduler.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-scheduler"
    assert not scheduler.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)


def test_private_keys_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    for key in [pki.serving_key, pki.sa_key, pki.client_key("admin")]:
        assert key.stat().st_mode & 0o077 == 0


def test_a_real_node_gets_the_identity_the_node_authorizer_knows(tmp_path: Path) -> None:
    pki = write_pki(tmp_path, {"real-node-0": "10.200.254.1"})
    ca = _cert(pki.ca_cert)
    client = _cert(pki.client_cert(node_client("real-node-0")))
    client.verify_directly_issued_by(ca)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "system:node:real-node-0"
    assert client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == \
        "system:nodes"
    serving = _cert(pki.client_cert(node_serving("real-node-0")))
    serving.verify_directly_issued_by(ca)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.200.254.1") in sans.get_values_for_type(x509.IPAddress)
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
