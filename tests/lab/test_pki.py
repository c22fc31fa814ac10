"""A changed SAN, or an expiry within 30 days, re-issues only that host's certificate, and the
engine serves the new one."""

from __future__ import annotations

import datetime
import json
import shlex
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .hosts import PKI_DIR, Lab, require_success, run_playbook

pytestmark = pytest.mark.lab


def pki_files() -> dict[str, bytes]:
    """Every certificate and key on the control machine, by name."""
    return {path.name: path.read_bytes() for path in sorted(PKI_DIR.glob("*.pem"))}


def test_changed_san_reissues_only_that_certificate(lab: Lab) -> None:
    node = lab.nodes[-1]
    before = pki_files()
    extra = json.dumps({"pki_extra_sans": [f"DNS:{node}.lab.example"]})
    try:
        run = run_playbook("site.yml", "--limit", node, "--extra-vars", shlex.quote(extra))
        require_success(run, "site.yml with a new SAN")
        after = pki_files()
        assert {name for name in before if before[name] != after[name]} == {f"{node}.pem"}
        tasks = {task.split(": ", 1)[1] for task in run.changed_tasks}
        assert tasks == {
            "Write this host's signing request with every name and address it is reached by",
            "Sign this host's server certificate",
            "Copy the CA certificate and this host's server certificate",
            "Restart docker",
        }, run.changed_tasks
        served = lab.ssh(
            node, "openssl x509 -noout -ext subjectAltName -in /etc/podyard/pki/server.pem"
        )
        assert f"DNS:{node}.lab.example" in served
    finally:
        # Back to the inventory's SANs, so the lab is as site.yml leaves it.
        require_success(run_playbook("site.yml", "--limit", node), "site.yml restoring the SANs")


def expiring_copy(cert: x509.Certificate, days: int) -> bytes:
    """The same certificate (key, subject, extensions) re-signed by the CA to expire in `days`."""
    ca = x509.load_pem_x509_certificate((PKI_DIR / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((PKI_DIR / "ca-key.pem").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(ca.subject)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    signed = builder.sign(ca_key, hashes.SHA256())
    return signed.public_bytes(serialization.Encoding.PEM)


def served_certificate(address: str) -> x509.Certificate:
    """The certificate an engine's TLS API presents (to the controller's client certificate)."""
    context = ssl.create_default_context(cafile=str(PKI_DIR / "ca.pem"))
    context.check_hostname = False
    context.load_cert_chain(str(PKI_DIR / "controller.pem"), str(PKI_DIR / "controller-key.pem"))
    with (
        socket.create_connection((address, 2376), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_certificate_expiring_within_30_days_is_reissued_and_served(lab: Lab) -> None:
    node = lab.nodes[-1]
    path = PKI_DIR / f"{node}.pem"
    path.write_bytes(expiring_copy(x509.load_pem_x509_certificate(path.read_bytes()), days=10))
    before = pki_files()
    run = run_playbook("site.yml", "--limit", node)
    require_success(run, "site.yml with a certificate 10 days from expiry")
    after = pki_files()
    assert {name for name in before if before[name] != after[name]} == {f"{node}.pem"}
    renewed = x509.load_pem_x509_certificate(path.read_bytes())
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    assert renewed.not_valid_after_utc > soon
    tasks = {task.split(": ", 1)[1] for task in run.changed_tasks}
    assert tasks == {
        "Sign this host's server certificate",
        "Copy the CA certificate and this host's server certificate",
        "Restart docker",
    }, run.changed_tasks
    # The engine was restarted with it.
    assert served_certificate(lab.addresses[node]).serial_number == renewed.serial_number
