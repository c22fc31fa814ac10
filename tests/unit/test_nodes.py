"""The cluster file and node health: parsing, TLS rules, grace period."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import errors
from reconciler.cluster import config, health

pytestmark = pytest.mark.unit

CLUSTER = """\
nodes:
  - name: node1
    endpoint: tcp://172.30.0.11:2376
    podSubnet: 10.244.1.0/24
    labels: {zone: a}
  - name: node2
    endpoint: tcp://172.30.0.12:2376
    podSubnet: 10.244.2.0/24
tls:
  ca: /etc/podyard/pki/ca.pem
  cert: /etc/podyard/pki/controller.pem
  key: /etc/podyard/pki/controller-key.pem
serviceCIDR: 10.96.0.0/16
registry: 172.30.0.10:5000
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.yml"
    path.write_text(text)
    return path


def test_reads_the_cluster_file_the_controller_role_writes(tmp_path: Path) -> None:
    cluster = config.load_cluster(write(tmp_path, CLUSTER))
    assert [n.name for n in cluster.nodes] == ["node1", "node2"]
    assert cluster.nodes[0].labels == (("zone", "a"),)
    assert cluster.tls == config.TLS(
        "/etc/podyard/pki/ca.pem",
        "/etc/podyard/pki/controller.pem",
        "/etc/podyard/pki/controller-key.pem",
    )
    assert cluster.registry == "172.30.0.10:5000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nodes: []", "non-empty `nodes`"),
        ("nodes: [{name: a}]", "nodes[0] needs `name` and `endpoint`"),
        ("nodes: [{name: a, endpoint: 'http://x:2375'}]", "must be tcp:// or unix://"),
        ("nodes: [{name: a, endpoint: 'tcp://x:2376'}]", "need tls.ca, tls.cert, tls.key"),
        (
            "nodes: [{name: a, endpoint: 'unix:///s'}, {name: a, endpoint: 'unix:///t'}]",
            "unique",
        ),
        ("nodes: [", "cannot read cluster file"),
    ],
)
def test_rejects_a_bad_cluster_file_with_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(errors.ClusterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config.load_cluster(write(tmp_path, text))


def test_missing_cluster_file_is_a_cluster_error(tmp_path: Path) -> None:
    with pytest.raises(errors.ClusterError, match="cannot read"):
        config.load_cluster(tmp_path / "absent.yml")


def test_without_a_cluster_file_the_local_engine_is_the_one_node() -> None:
    (node,) = config.local_cluster().nodes
    assert node.endpoint == "unix:///var/run/docker.sock" and node.name


def test_a_silent_node_keeps_its_pods_until_the_grace_period_ends() -> None:
    nodes = health.Health(grace=20)
    nodes.failed("n1", now=100, error="connection refused")
    assert not nodes.ready("n1") and not nodes.lost("n1", now=119)
    nodes.failed("n1", now=110, error="connection refused")  # the clock starts at the first
    assert nodes.lost("n1", now=120)
    nodes.answered("n1")
    assert nodes.ready("n1") and not nodes.lost("n1", now=500)
