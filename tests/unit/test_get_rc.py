"""`podyard get rc` shows DESIRED from the controller's status file when no -f is given."""

from __future__ import annotations

import argparse
import io
from typing import Any

import pytest

from reconciler import model, observe, plan
from reconciler.cli import podyard
from reconciler.cli.console import Console
from reconciler.cluster import health
from reconciler.control import observation, status

pytestmark = pytest.mark.unit


def test_the_status_file_carries_each_rcs_desired_replicas() -> None:
    judged = health.Health()
    observer = observation.Observer({}, judged, clock=lambda: 0.0, report=lambda t: None)
    template = model.PodTemplate((), (), model.PodSpec((model.Container("a", "i"),)))
    web = model.ReplicationController("shop", "web", (), 3, (), template)
    doc = status.document("default", judged, observer, [], plan.Plan(), 0.0, None, (web,))
    assert doc["controllers"] == [{"namespace": "shop", "name": "web", "replicas": 3}]


def test_get_rc_reads_desired_from_the_status_file(monkeypatch: pytest.MonkeyPatch) -> None:
    docs: list[dict[str, Any]] = [{"controllers": [
        {"namespace": "shop", "name": "web", "replicas": 3},
        {"namespace": "other", "name": "db", "replicas": 1}]}]
    monkeypatch.setattr(status, "read_all", lambda scope: docs)
    running = observe.ObservedContainer("c", "app", "app", "i", "running", 0.0)
    pods = [observe.ObservedPod("n1", "shop", f"web-{i}", f"u{i}", "ReplicationController/web",
                                "", "", (), running, (running,)) for i in range(2)]
    out = io.StringIO()
    args = argparse.Namespace(manifests=None, scope=None, namespace="shop",
                              all_namespaces=False, output=None)
    podyard._get_rc(pods, args, Console(out=out), model.PodSecurity())
    header, row = out.getvalue().splitlines()
    assert header.split()[:4] == ["NAME", "DESIRED", "CURRENT", "READY"]
    assert row.split()[:4] == ["web", "3", "2", "2"]
