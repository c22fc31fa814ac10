"""A changed SAN re-issues only that host's certificate, and the engine serves the new one."""

from __future__ import annotations

import json
import shlex

import pytest

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
