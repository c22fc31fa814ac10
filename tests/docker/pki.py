"""A throwaway PKI for the API's tests: a CA, a server certificate for 127.0.0.1, a client
certificate it signed, and a client certificate signed by another CA. EC P-256, one day."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Files:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from a CA the server does not trust
    rogue_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(subject: str, key: Key, issuer: tuple[x509.Name, Key] | None,
                 usage: x509.ObjectIdentifier | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signer = issuer or (_name(subject), key)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), True)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), False)
    return builder.sign(signer, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key: Key | None) -> Path:
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        (directory / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        (directory / f"{name}.key").chmod(0o600)
    return path


def make(directory: Path) -> Files:
    """Write the certificates and keys into `directory`."""
    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in
            ("ca", "server", "client", "rogue-ca", "rogue")}
    ca = _certificate("podyard-test-ca", keys["ca"], None)
    rogue_ca = _certificate("someone-else-ca", keys["rogue-ca"], None)
    signed_by_ca = (ca.subject, keys["ca"])
    _write(directory, "ca", ca, None)
    _write(directory, "server", _certificate(
        "podyard-api", keys["server"], signed_by_ca, ExtendedKeyUsageOID.SERVER_AUTH),
        keys["server"])
    _write(directory, "client", _certificate(
        "admin", keys["client"], signed_by_ca, ExtendedKeyUsageOID.CLIENT_AUTH), keys["client"])
    _write(directory, "rogue", _certificate(
        "admin", keys["rogue"], (rogue_ca.subject, keys["rogue-ca"]),
        ExtendedKeyUsageOID.CLIENT_AUTH), keys["rogue"])
    d = directory
    return Files(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt",
                 d / "client.key", d / "rogue.crt", d / "rogue.key")
