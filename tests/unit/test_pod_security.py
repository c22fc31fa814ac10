"""The pod security policy: Kubernetes' "baseline" level by default, relaxed by the operator only.

Each rule is checked on its own (`policy.check`), then through the whole path an operator uses:
the cluster file's `podSecurity` section and `reconcile --pod-security`, into `manifests.load`.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler import errors, manifests, model
from reconciler.cli import console, reconcile
from reconciler.cluster import config
from reconciler.manifests import policy

pytestmark = pytest.mark.unit

BASELINE = model.PodSecurity()
PRIVILEGED = model.PodSecurity(level=model.PRIVILEGED)
DATA = model.PodSecurity(allowed_host_paths=("/srv/data",), allowed_host_ports=((8000, 8100),))


def pod(volumes: list[Any] | None = None, ports: list[Any] | None = None,
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "busybox:1", "ports": ports or []}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": annotations or {}},
        "spec": {"volumes": volumes or [], "containers": [container]},
    }


def host_path(path: str, name: str = "root") -> list[dict[str, Any]]:
    return [{"name": name, "hostPath": {"path": path}}]


def host_port(port: int) -> list[dict[str, Any]]:
    return [{"containerPort": 80, "hostPort": port}]


APPARMOR = policy.APPARMOR_PREFIX + "app"


@pytest.mark.parametrize(
    ("doc", "security", "field"),
    [
        (pod(host_path("/")), BASELINE, ("spec", "volumes", 0, "hostPath", "path")),
        (pod(host_path("/srv/data")), BASELINE, ("spec", "volumes", 0, "hostPath", "path")),
        (pod(host_path("/srv/database")), DATA, ("spec", "volumes", 0, "hostPath", "path")),
        (pod(host_path("/srv")), DATA, ("spec", "volumes", 0, "hostPath", "path")),
        (pod(host_path("/srv/data/../../etc")), DATA, ("spec", "volumes", 0, "hostPath", "path")),
        (pod(host_path("srv/data")), DATA, ("spec", "volumes", 0, "hostPath", "path")),
        (pod(ports=host_port(8080)), BASELINE, ("spec", "containers", 0, "ports", 0, "hostPort")),
        (pod(ports=host_port(7999)), DATA, ("spec", "containers", 0, "ports", 0, "hostPort")),
        (pod(ports=host_port(8101)), DATA, ("spec", "containers", 0, "ports", 0, "hostPort")),
        (pod(annotations={APPARMOR: "unconfined"}), DATA,
         ("metadata", "annotations", APPARMOR)),
    ],
)
def test_baseline_refuses_what_gives_a_pod_the_node(
    doc: dict[str, Any], security: model.PodSecurity, field: tuple[Any, ...]
) -> None:
    [(path, reason)] = policy.check("Pod", doc, security)
    assert path == field
    assert reason.startswith('violates PodSecurity "baseline": ')
    assert "podSecurity.level: privileged in the cluster file" in reason
    assert "reconcile --pod-security privileged" in reason


@pytest.mark.parametrize(
    ("doc", "security"),
    [
        (pod(host_path("/srv/data")), DATA),  # the allowed path itself
        (pod(host_path("/srv/data/app/logs")), DATA),  # under it, by whole components
        (pod(host_path("/srv//data/./x")), DATA),  # written oddly, still under it
        (pod(host_path("/anything")), model.PodSecurity(allowed_host_paths=("/",))),
        (pod(ports=host_port(8000)), DATA),  # a range includes both ends
        (pod(ports=host_port(8100)), DATA),
        (pod(ports=host_port(0)), BASELINE),  # 0 asks for no host port
        (pod(ports=[{"containerPort": 80}]), BASELINE),
        (pod(host_path("/"), host_port(22)), PRIVILEGED),  # privileged allows everything
        (pod(annotations={APPARMOR: "unconfined"}), PRIVILEGED),
        (pod(annotations={APPARMOR: "runtime/default"}), BASELINE),
        (pod(annotations={APPARMOR: "localhost/my-profile"}), BASELINE),
        (pod(annotations={"example.com/apparmor": "unconfined"}), BASELINE),  # not AppArmor's
        (pod(volumes=[{"name": "scratch", "emptyDir": {}}]), BASELINE),
    ],
)
def test_what_the_policy_allows_passes(doc: dict[str, Any], security: model.PodSecurity) -> None:
    assert policy.check("Pod", doc, security) == []


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (pod(host_path("/", name="root")),
         'hostPath volumes (volume "root" uses /; allowed host paths: none); allow it with '
         "podSecurity.allowedHostPaths or podSecurity.level: privileged"),
        (pod(ports=host_port(8080)),
         'hostPort (container "app" uses hostPort 8080; allowed host ports: none); allow it '
         "with podSecurity.allowedHostPorts or podSecurity.level: privileged"),
        (pod(annotations={APPARMOR: "unconfined"}),
         f'forbidden AppArmor profile (annotation "{APPARMOR}"="unconfined"); allow it with '
         "podSecurity.level: privileged"),
    ],
)
def test_a_violation_names_the_kubernetes_check_and_how_to_relax_it(
    doc: dict[str, Any], words: str
) -> None:
    [(_, reason)] = policy.check("Pod", doc, BASELINE)
    assert words in reason


def test_a_violation_lists_what_the_cluster_allows() -> None:
    [(_, paths)] = policy.check("Pod", pod(host_path("/etc")), DATA)
    [(_, ports)] = policy.check("Pod", pod(ports=host_port(22)), DATA)
    assert "allowed host paths: /srv/data)" in paths
    assert "allowed host ports: 8000-8100)" in ports


def test_a_replication_controller_template_is_checked_like_a_pod() -> None:
    template = pod(host_path("/"), host_port(80), {APPARMOR: "unconfined"})
    rc = {"kind": "ReplicationController", "spec": {"template": template}}
    paths = [path for path, _ in policy.check("ReplicationController", rc, BASELINE)]
    assert paths == [
        ("spec", "template", "spec", "volumes", 0, "hostPath", "path"),
        ("spec", "template", "spec", "containers", 0, "ports", 0, "hostPort"),
        ("spec", "template", "metadata", "annotations", APPARMOR),
    ]


@pytest.mark.parametrize("kind", ["Service", "Namespace"])
def test_kinds_without_pods_have_nothing_to_check(kind: str) -> None:
    assert policy.check(kind, pod(host_path("/")), BASELINE) == []


@pytest.mark.parametrize(
    "doc",
    [
        {"spec": {"volumes": "x", "containers": [{"ports": [{"hostPort": True}]}]}},
        {"spec": {"volumes": [{"hostPath": {"path": 3}}], "containers": [None, {"ports": 1}]}},
        {"spec": [], "metadata": {"annotations": {APPARMOR: 5}}},
        {"spec": {"containers": [{"ports": [{"hostPort": -1}, {"hostPort": "80"}]}]}},
    ],
)
def test_wrong_types_are_left_to_the_schema(doc: dict[str, Any]) -> None:
    assert policy.check("Pod", doc, BASELINE) == []


@pytest.mark.parametrize(
    ("path", "allowed", "expected"),
    [
        ("/srv/data", ("/srv/data",), True),
        ("/srv/data/", ("/srv/data",), True),
        ("/srv/data/x", ("/srv/data/",), True),
        ("/srv/database", ("/srv/data",), False),
        ("/srv/data/../x", ("/srv/data",), False),
        ("/x", ("/srv/../x",), False),  # an allowance with '..' allows nothing
        ("srv/data", ("/srv/data",), False),
        ("/srv/data", (), False),
        ("/srv/data", ("/var", "/srv"), True),
    ],
)
def test_a_host_path_is_allowed_under_an_allowed_prefix_by_whole_components(
    path: str, allowed: tuple[str, ...], expected: bool
) -> None:
    assert policy.path_allowed(path, allowed) is expected


# Through manifests.load: every problem at once, with file, line and field.

VIOLATIONS = """\
apiVersion: v1
kind: Pod
metadata:
  name: root
spec:
  volumes:
    - name: host
      hostPath:
        path: /
  containers:
    - name: app
      image: busybox:1
      ports:
        - containerPort: 22
          hostPort: 22
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  selector: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      volumes:
        - name: data
          hostPath: {path: /srv/data/web}
      containers:
        - name: web
          image: busybox:1
          ports: [{containerPort: 80, hostPort: 8080}]
"""


def write(tmp_path: Path, text: str, name: str = "pods.yaml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_every_violation_is_reported_at_once_with_file_line_and_field(tmp_path: Path) -> None:
    with pytest.raises(errors.ManifestError) as caught:
        manifests.load(write(tmp_path, VIOLATIONS))
    assert [(p.file, p.line, p.field) for p in caught.value.problems] == [
        ("pods.yaml", 9, "spec.volumes[0].hostPath.path"),
        ("pods.yaml", 15, "spec.containers[0].ports[0].hostPort"),
        ("pods.yaml", 29, "spec.template.spec.volumes[0].hostPath.path"),
        ("pods.yaml", 33, "spec.template.spec.containers[0].ports[0].hostPort"),
    ]


@pytest.mark.parametrize(
    ("security", "lines"),
    [
        (BASELINE, [9, 15, 29, 33]),
        (DATA, [9, 15]),  # /srv/data/web and 8080 allowed; / and 22 not
        (model.PodSecurity(allowed_host_paths=("/",), allowed_host_ports=((1, 65535),)), []),
        (PRIVILEGED, []),
    ],
)
def test_the_loader_applies_the_policy_it_is_given(
    tmp_path: Path, security: model.PodSecurity, lines: list[int]
) -> None:
    loader = manifests.Loader(write(tmp_path, VIOLATIONS), pod_security=security)
    try:
        loader.load()
        found: list[int] = []
    except errors.ManifestError as e:
        found = [p.line for p in e.problems]
    assert found == lines


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("hostNetwork: true", "spec.hostNetwork"),
        ("hostPID: true", "spec.hostPID"),
        ("hostIPC: true", "spec.hostIPC"),
        ("securityContext: {runAsUser: 0}", "spec.securityContext"),
    ],
)
@pytest.mark.parametrize("security", [BASELINE, PRIVILEGED])
def test_host_namespaces_and_security_contexts_are_refused_at_every_level(
    tmp_path: Path, field: str, where: str, security: model.PodSecurity
) -> None:
    text = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  {field}
  containers:
    - name: app
      image: busybox:1
      securityContext: {{privileged: true, capabilities: {{add: [SYS_ADMIN]}}}}
"""
    with pytest.raises(errors.ManifestError) as caught:
        manifests.load(write(tmp_path, text), pod_security=security)
    reason = "not supported by podyard at any pod security level"
    assert [(p.field, p.reason) for p in caught.value.problems] == [
        (where, reason), ("spec.containers[0].securityContext", reason)
    ]


# The cluster file's podSecurity section.

NODES = "nodes: [{name: n1, endpoint: 'unix:///var/run/docker.sock'}]\n"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("", BASELINE),
        ("podSecurity: {}", BASELINE),
        ("podSecurity: {level: privileged}", PRIVILEGED),
        ('podSecurity: {allowedHostPaths: [/srv/data], allowedHostPorts: ["8000-8100", 30080]}',
         model.PodSecurity(allowed_host_paths=("/srv/data",),
                           allowed_host_ports=((8000, 8100), (30080, 30080)))),
        ('podSecurity: {level: baseline, allowedHostPorts: ["1-65535"]}',
         model.PodSecurity(allowed_host_ports=((1, 65535),))),
    ],
)
def test_the_cluster_file_sets_the_policy(
    tmp_path: Path, section: str, expected: model.PodSecurity
) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text(NODES + section + "\n")
    assert config.load_cluster(path).pod_security == expected


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        ("podSecurity: baseline",
         "podSecurity takes only allowedHostPaths, allowedHostPorts, level"),
        ("podSecurity: {levl: baseline}", "podSecurity takes only"),
        ("podSecurity: {level: restricted}",
         "podSecurity.level must be baseline or privileged, not 'restricted'"),
        ("podSecurity: {allowedHostPaths: /srv}", "must be lists"),
        ("podSecurity: {allowedHostPaths: [srv/data]}",
         "podSecurity.allowedHostPaths: 'srv/data' must be an absolute path without '..'"),
        ("podSecurity: {allowedHostPaths: [/srv/../etc]}", "without '..'"),
        ("podSecurity: {allowedHostPorts: [0]}",
         'podSecurity.allowedHostPorts: 0 must be a port or a range like "8000-8100"'),
        ("podSecurity: {allowedHostPorts: [65536]}", "within 1-65535"),
        ('podSecurity: {allowedHostPorts: ["9000-8000"]}', "'9000-8000' must be a port"),
        ('podSecurity: {allowedHostPorts: ["80-"]}', "'80-' must be a port"),
        ('podSecurity: {allowedHostPorts: ["\uff18\uff10"]}', "must be a port"),  # not ASCII
        ("podSecurity: {allowedHostPorts: [true]}", "True must be a port"),
    ],
)
def test_a_bad_podsecurity_section_is_a_cluster_error_naming_the_field(
    tmp_path: Path, section: str, reason: str
) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text(NODES + section + "\n")
    with pytest.raises(errors.ClusterError) as caught:
        config.load_cluster(path)
    assert reason in str(caught.value)


# `reconcile --validate`: the cluster file and the flag reach the check.


@pytest.fixture
def validate(monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str]]:
    """`reconcile --validate ARGS...` -> (exit code, what it wrote to stderr)."""

    def run(*argv: str) -> tuple[int, str]:
        err = io.StringIO()
        monkeypatch.setattr(reconcile, "Console", lambda quiet: console.Console(
            out=io.StringIO(), err=err, quiet=quiet))
        with pytest.raises(SystemExit) as exited:
            reconcile.reconcile_main(["--validate", *argv])
        return int(exited.value.code or 0), err.getvalue()

    return run


def test_validate_refuses_a_host_path_by_default_and_says_how_to_relax_it(
    tmp_path: Path, validate: Callable[..., tuple[int, str]]
) -> None:
    code, err = validate(str(write(tmp_path, VIOLATIONS)))
    assert code == console.EXIT_INVALID
    assert 'pods.yaml:9: spec.volumes[0].hostPath.path: violates PodSecurity "baseline": ' in err
    assert "4 problems in the manifests; nothing was changed" in err


@pytest.mark.parametrize(
    ("section", "flag", "exit_code"),
    [
        ("", [], console.EXIT_INVALID),
        ("", ["--pod-security", "privileged"], console.EXIT_OK),
        ("podSecurity: {level: privileged}", [], console.EXIT_OK),
        ("podSecurity: {level: privileged}", ["--pod-security", "baseline"], console.EXIT_INVALID),
        ('podSecurity: {allowedHostPaths: [/], allowedHostPorts: ["1-65535"]}', [],
         console.EXIT_OK),
        ("podSecurity: {level: nonsense}", [], console.EXIT_CLUSTER),
    ],
)
def test_the_cluster_file_and_the_flag_decide_the_level(
    tmp_path: Path, validate: Callable[..., tuple[int, str]], section: str, flag: list[str],
    exit_code: int,
) -> None:
    cluster = tmp_path / "cluster.yml"
    cluster.write_text(NODES + section + "\n")
    manifests_dir = tmp_path / "manifests"
    manifests_dir.mkdir()
    write(manifests_dir, VIOLATIONS)
    code, _ = validate(str(manifests_dir), "--cluster", str(cluster), *flag)
    assert code == exit_code


def test_the_flag_alone_relaxes_one_host(
    tmp_path: Path, validate: Callable[..., tuple[int, str]]
) -> None:
    path = str(write(tmp_path, VIOLATIONS))
    assert validate(path, "--pod-security", "privileged")[0] == console.EXIT_OK
    assert validate(path, "--pod-security", "baseline")[0] == console.EXIT_INVALID


def test_the_flag_takes_only_the_known_levels(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        reconcile.reconcile_main(["--validate", ".", "--pod-security", "restricted"])
    assert exited.value.code == 2  # argparse's usage error
    assert "invalid choice: 'restricted'" in capsys.readouterr().err


def test_the_readme_example_section_parses(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text(NODES + textwrap.dedent("""\
        podSecurity:
          level: baseline
          allowedHostPaths: [/srv/data]
          allowedHostPorts: ["8000-8100", 30080]
        """))
    assert config.load_cluster(path).pod_security.allowed_host_ports == ((8000, 8100),
                                                                         (30080, 30080))


@pytest.mark.parametrize(
    ("security", "line"),
    [
        (BASELINE, "baseline (host paths allowed: none; host ports allowed: none)"),
        (model.PodSecurity(allowed_host_paths=("/srv/data", "/var/log"),
                           allowed_host_ports=((8000, 8100), (30080, 30080))),
         "baseline (host paths allowed: /srv/data, /var/log; host ports allowed: 8000-8100, "
         "30080)"),
        (PRIVILEGED, "privileged"),
    ],
)
def test_validate_names_the_policy_it_checked_against(
    security: model.PodSecurity, line: str
) -> None:
    assert policy.describe(security) == line
