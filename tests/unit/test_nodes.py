"""The cluster file and node health: parsing, TLS rules, the failure timeline."""

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


@pytest.mark.parametrize(
    ("silent_for", "state"),
    [
        (0.0, health.State.READY),
        (3.9, health.State.READY),  # within the grace period: a slow engine is not lost
        (4.0, health.State.NOT_READY),
        (7.9, health.State.NOT_READY),  # NotReady: its pods count, untouched
        (8.0, health.State.EVICTED),  # grace + eviction delay: its pods are replaced
        (600.0, health.State.EVICTED),
    ],
)
def test_a_node_is_judged_by_how_long_it_has_not_answered(
    silent_for: float, state: health.State
) -> None:
    nodes = health.Health(grace=4, eviction_delay=4)
    nodes.answered("n1", now=100)
    nodes.failed("n1", now=101, error="connection refused")
    nodes.tick(now=100 + silent_for)
    assert nodes.state("n1") is state


def test_the_clock_runs_from_the_last_answer_not_the_first_failure() -> None:
    nodes = health.Health(grace=4, eviction_delay=4)
    nodes.answered("n1", now=100)
    assert nodes.failed("n1", now=103, error="timeout") is None
    moved = nodes.failed("n1", now=104, error="timeout")
    assert moved is not None and moved.after is health.State.NOT_READY
    assert str(moved) == "node n1 is NotReady (timeout)"


def test_a_node_never_heard_from_is_counted_from_when_it_was_first_asked() -> None:
    nodes = health.Health(grace=4, eviction_delay=4)
    nodes.failed("n1", now=50, error="no route to host")
    assert nodes.tick(now=57.9) == [health.Transition("n1", health.State.READY,
                                                      health.State.NOT_READY, "no route to host")]
    assert nodes.tick(now=58) == [health.Transition("n1", health.State.NOT_READY,
                                                    health.State.EVICTED, "no route to host")]


def test_eviction_marks_the_pods_last_seen_as_stale_until_removed() -> None:
    nodes = health.Health(grace=4, eviction_delay=4)
    nodes.answered("n1", now=0)
    nodes.saw_pods("n1", ["a", "b"])
    nodes.failed("n1", now=1, error="refused")
    nodes.tick(now=8)
    assert nodes.evicted("n1") and nodes.stale("n1") == {"a", "b"}
    back = nodes.answered("n1", now=20)
    assert back is not None and str(back) == "node n1 is Ready again"
    assert nodes.ready("n1") and nodes.stale("n1") == {"a", "b"}
    nodes.settled("n1", ["a"])
    assert nodes.stale("n1") == {"b"}


def test_a_node_back_before_its_eviction_has_nothing_stale() -> None:
    nodes = health.Health(grace=4, eviction_delay=4)
    nodes.answered("n1", now=0)
    nodes.saw_pods("n1", ["a"])
    nodes.failed("n1", now=1, error="refused")
    nodes.tick(now=6)
    nodes.answered("n1", now=7)
    assert nodes.ready("n1") and nodes.stale("n1") == frozenset()


def test_grace_eviction_delay_and_reserve_come_from_the_cluster_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text(
        "nodes: [{name: n1, endpoint: 'unix:///var/run/docker.sock'}]\n"
        "nodeGrace: 2.5\nevictionDelay: 10\nreserved: {cpu: 500m, memory: 1Gi}\n"
    )
    cluster = config.load_cluster(path)
    assert (cluster.node_grace, cluster.eviction_delay) == (2.5, 10.0)
    assert cluster.reserved == config.Reserved(cpu=500, memory=2**30)
    path.write_text("nodes: [{name: n1, endpoint: 'unix:///x'}]\nnodeGrace: soon\n")
    with pytest.raises(errors.ClusterError, match="nodeGrace must be a number of seconds"):
        config.load_cluster(path)


def test_the_next_deadline_is_when_a_silent_node_would_change_state() -> None:
    nodes = health.Health(grace=4, eviction_delay=4)
    assert nodes.next_deadline() is None
    nodes.answered("n1", now=100)
    nodes.answered("n2", now=100)
    assert nodes.next_deadline() is None  # nobody silent
    nodes.failed("n1", now=101.5, error="timeout")
    assert nodes.next_deadline() == 104  # NotReady 4 s after its last answer
    nodes.tick(now=104)
    assert nodes.next_deadline() == 108  # evicted 4 s later
    nodes.tick(now=108)
    assert nodes.next_deadline() is None


def test_a_pod_created_just_before_its_node_is_lost_is_stale_too() -> None:
    nodes = health.Health(grace=4, eviction_delay=4)
    nodes.answered("n1", now=0)
    nodes.saw_pods("n1", ["a"])
    nodes.placed("n1", "b")  # created, never listed before the node went silent
    nodes.failed("n1", now=1, error="refused")
    nodes.tick(now=8)
    assert nodes.stale("n1") == {"a", "b"}
