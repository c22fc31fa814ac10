"""Observed state is read back from container labels, and only from podyard's own."""

from __future__ import annotations

import json

import pytest

from reconciler import labels, model, observe

pytestmark = pytest.mark.unit


def raw(
    container: str, uid: str = "u1", pod: str = "web-abcde", **kw: object
) -> observe.ContainerJSON:
    stamp = {
        labels.MANAGED: "true",
        labels.NAMESPACE: "default",
        labels.POD: pod,
        labels.UID: uid,
        labels.CONTAINER: container,
        labels.OWNER: "ReplicationController/web",
        labels.TEMPLATE_HASH: "0123456789",
        labels.REVISION: "abc123",
        labels.POD_LABELS: json.dumps({"app": "web"}),
        labels.RESTARTS: "2",
        labels.STREAK: "1",
    }
    entry: dict[str, object] = {
        "Id": f"{container}-{uid}",
        "Names": [f"/k8s_{container}_{pod}_default_{uid}_0"],
        "Image": "podyard/busybox:1",
        "State": "running",
        "Status": "Up 3 seconds",
        "Created": 1700000000,
        "Labels": stamp,
    }
    if container == "POD":
        entry["NetworkSettings"] = {"Networks": {"bridge": {"IPAddress": "172.17.0.5"}}}
    entry.update(kw)
    return entry  # type: ignore[return-value]


def test_groups_containers_into_pods_by_uid() -> None:
    pods = observe.group_pods(
        "n1",
        [
            raw("POD"),
            raw("app"),
            raw("POD", uid="u2", pod="web-fghij"),
            raw("app", uid="u2", pod="web-fghij"),
        ],
    )
    assert [(p.name, p.uid) for p in pods] == [("web-abcde", "u1"), ("web-fghij", "u2")]
    first = pods[0]
    assert first.ip == "172.17.0.5"
    assert first.labels == (("app", "web"),)
    assert first.owner == "ReplicationController/web"
    assert first.template_hash == "0123456789"
    assert first.revision == "abc123"
    assert first.ready and first.phase == "Running"
    assert first.container("app") is not None and first.container("app").restarts == 2  # type: ignore[union-attr]


def test_containers_without_the_ownership_label_are_ignored() -> None:
    foreign = raw("app", uid="u9")
    foreign["Labels"] = {k: v for k, v in foreign["Labels"].items() if k != labels.MANAGED}
    assert observe.group_pods("n1", [foreign]) == ()


def test_exit_details_from_inspect_are_kept() -> None:
    exited = raw(
        "app",
        State="exited",
        ExitCode=137,
        StartedAt="2026-11-26T10:00:00.5Z",
        FinishedAt="2026-11-26T10:00:10.25Z",
        OOMKilled=True,
    )
    (pod,) = observe.group_pods("n1", [raw("POD"), exited])
    app = pod.containers[0]
    assert app.exited and app.exit_code == 137 and app.oom_killed
    assert app.finished_at - app.started_at == pytest.approx(9.75)
    assert not pod.ready and pod.phase == "Failed"


def test_pod_without_pause_is_pending_and_keeps_its_identity() -> None:
    (pod,) = observe.group_pods("n1", [raw("app")])
    assert pod.pause is None and pod.phase == "Pending" and pod.name == "web-abcde"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0001-01-01T00:00:00Z", 0.0),
        ("", 0.0),
        ("1970-01-01T00:00:10Z", 10.0),
        ("1970-01-01T00:00:10.123456789Z", 10.123456789),
        ("1970-01-01T01:00:10.5+01:00", 10.5),
    ],
)
def test_parses_docker_timestamps(text: str, expected: float) -> None:
    assert observe.parse_time(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("cpu=250,memory=67108864", model.Requests(250, 67108864)),
        ("memory=1", model.Requests(0, 1)),
        (None, model.Requests()),  # a pod created before the label existed requests nothing
        ("cpu=lots,memory=-5", model.Requests()),
        ("garbage", model.Requests()),
    ],
)
def test_a_pods_requests_are_read_back_from_its_label(
    label: str | None, expected: model.Requests
) -> None:
    pause = raw("POD")
    if label is not None:
        pause["Labels"][labels.REQUESTS] = label
    (pod,) = observe.group_pods("n1", [pause])
    assert pod.requests == expected


def test_unreadable_labels_do_not_break_observation() -> None:
    broken = raw("POD")
    broken["Labels"][labels.POD_LABELS] = "{not json"
    broken["Labels"][labels.RESTARTS] = "many"
    (pod,) = observe.group_pods("n1", [broken])
    assert pod.labels == () and pod.pause is not None and pod.pause.restarts == 0
