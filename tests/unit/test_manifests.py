"""Loading and validating manifests: the corpus, file handling, Git, the model built."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler import errors, manifests, model
from reconciler.manifests import documents, files

from .test_manifests_property import CORPUS_POLICY

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = Path(__file__).parents[2] / "examples" / "manifests"
_EXPECT = re.compile(r"^# expect: (\S+):(\d+) (.*?): (.*)$", re.MULTILINE)

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
    - name: app
      image: {image}
"""


def problems_of(root: Path, **kwargs: object) -> list[errors.Problem]:
    with pytest.raises(errors.ManifestError) as caught:
        manifests.load(root, **kwargs)  # type: ignore[arg-type]
    return caught.value.problems


def expected_problems(case: Path) -> list[errors.Problem]:
    files = [case] if case.is_file() else sorted(case.rglob("*.yaml"))
    found = []
    for file in files:
        for name, line, field, reason in _EXPECT.findall(file.read_text()):
            found.append(errors.Problem(name, int(line), field, reason))
    return sorted(found)


def cases(kind: str) -> list[Path]:
    return sorted(p for p in (CORPUS / kind).iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("case", cases("invalid"), ids=lambda p: p.name)
def test_reports_exactly_the_expected_problems(case: Path) -> None:
    expected = expected_problems(case)
    assert expected, f"{case.name} declares no expected problem"
    assert problems_of(case) == expected


@pytest.mark.parametrize("case", cases("valid"), ids=lambda p: p.name)
def test_accepts_valid_manifest(case: Path) -> None:
    state = manifests.load(case, pod_security=CORPUS_POLICY)
    assert sum(state.counts().values()) >= 1


def test_reports_every_problem_of_a_directory_in_one_run() -> None:
    problems = problems_of(CORPUS / "invalid")
    files = {p.file.split("/")[0] for p in problems}
    assert files == {p.name for p in cases("invalid")}
    assert all(p.file.endswith(".yaml") for p in problems)


def test_loads_the_example_application() -> None:
    state = manifests.load(EXAMPLES)
    assert [c.name for c in state.controllers] == ["db", "web"]
    assert [c.replicas for c in state.controllers] == [1, 3]
    web = state.services[1]
    port = web.ports[0]
    assert (web.type, port.node_port, port.target_port) == ("NodePort", 30080, "http")
    pod = state.pods[0]
    assert [c.name for c in pod.template.spec.containers] == ["writer", "server"]
    assert pod.template.spec.volumes == (model.Volume("html"),)
    templates = [p.template for p in state.pods] + [c.template for c in state.controllers]
    images = {c.image for template in templates for c in template.spec.containers}
    assert images == {"podyard/busybox:1"}


def test_summary_has_one_line_per_kind() -> None:
    assert manifests.summary(manifests.load(EXAMPLES)) == [
        "Namespace: 0",
        "Pod: 1 (shared-files)",
        "ReplicationController: 2 (db: 1 replica, web: 3 replicas)",
        "Service: 2 (db: ClusterIP 5432, web: NodePort 80:30080)",
    ]


def test_builds_the_model_with_kubernetes_defaults() -> None:
    state = manifests.load(CORPUS / "valid" / "rc-default-selector.yaml")
    (rc,) = state.controllers
    assert rc.replicas == 1
    assert rc.selector == rc.labels == (("app", "worker"),)
    assert rc.namespace == "default"
    assert rc.source == model.Source("rc-default-selector.yaml", 2)
    spec = rc.template.spec
    assert spec.restart_policy == "Always"
    assert spec.termination_grace_period_seconds == model.DEFAULT_GRACE_SECONDS
    assert spec.containers[0].command == ("sleep", "3600")


def test_builds_every_supported_pod_field() -> None:
    (pod,) = manifests.load(CORPUS / "valid" / "pod-full.yaml", pod_security=CORPUS_POLICY).pods
    main, sidecar = pod.template.spec.containers
    assert pod.namespace == "kube-system"
    assert pod.template.labels == (("app.kubernetes.io/name", "full"), ("tier", ""))
    assert main.env == (("GREETING", "hello"), ("EMPTY", ""))
    assert main.ports[0] == model.ContainerPort(8080, "TCP", "http", 18080)
    assert main.resources == model.Resources(100, 1000, 64 * 2**20, 128974848)
    assert sidecar.resources == model.Resources(250, 250, 1000, 1000)
    assert main.volume_mounts[1] == model.VolumeMount("logs", "/logs", False)
    logs = model.Volume("logs", "/var/log/podyard", "DirectoryOrCreate")
    assert pod.template.spec.volumes[1] == logs
    assert (main.working_dir, main.image_pull_policy) == ("/tmp", "Never")


def test_sorts_objects_by_namespace_and_name(tmp_path: Path) -> None:
    docs = [POD.format(name=n, image="i:1") for n in ("b", "c", "a")]
    (tmp_path / "pods.yaml").write_text("---\n".join(docs))
    assert [p.name for p in manifests.load(tmp_path).pods] == ["a", "b", "c"]


def test_names_both_files_of_a_duplicate(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(POD.format(name="app", image="i:1"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "two.yml").write_text(POD.format(name="app", image="i:2"))
    (problem,) = problems_of(tmp_path)
    assert problem.file == "sub/two.yml"
    assert "one.yaml:1" in problem.reason


def test_accepts_objects_in_a_namespace_declared_in_another_file(tmp_path: Path) -> None:
    (tmp_path / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    (tmp_path / "pod.yaml").write_text(POD.format(name="app", image="i:1").replace(
        "name: app\n", "name: app\n  namespace: shop\n", 1))
    assert manifests.load(tmp_path).pods[0].namespace == "shop"


def test_skips_hidden_directories_other_files_and_empty_documents(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "bad.yaml").write_text("kind: [")
    (tmp_path / ".hidden.yaml").write_text("kind: [")
    (tmp_path / "README.md").write_text("kind: [")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "comments.yaml").write_text("# nothing\n---\n---\n")
    (tmp_path / "pod.json").write_text('{"apiVersion": "v1", "kind": "Pod", "metadata": '
                                       '{"name": "j"}, "spec": {"containers": '
                                       '[{"name": "a", "image": "i:1"}]}}')
    assert [p.name for p in manifests.load(tmp_path).pods] == ["j"]


def test_refuses_a_missing_root(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "nowhere")
    assert problem.reason == "no such file or directory"


def test_refuses_binary_and_non_utf8_files(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    (tmp_path / "nul.yaml").write_bytes(b"a: \x00\n")
    problems = problems_of(tmp_path)
    assert [p.file for p in problems] == ["binary.yaml", "latin1.yaml", "nul.yaml"]
    assert "not UTF-8" in problems[1].reason
    assert "control characters" in problems[2].reason


def test_refuses_files_over_the_size_limit(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("# " + "x" * 2000 + "\n")
    (problem,) = problems_of(tmp_path, limits=documents.Limits(max_bytes=1000))
    assert problem.file == "big.yaml"
    assert "the limit for one manifest file is 1000" in problem.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_reports_an_unreadable_file(tmp_path: Path) -> None:  # pragma: no cover - as root
    (tmp_path / "secret.yaml").write_text("a: 1\n")
    (tmp_path / "secret.yaml").chmod(0)
    (problem,) = problems_of(tmp_path)
    assert problem.reason.startswith("cannot read")


def test_reports_a_dangling_symlink_and_a_fifo(tmp_path: Path) -> None:
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "missing.yaml")
    os.mkfifo(tmp_path / "pipe.yaml")
    problems = problems_of(tmp_path)
    assert [(p.file, p.reason) for p in problems] == [
        ("gone.yaml", files.SYMLINK),
        ("pipe.yaml", "not a regular file"),
    ]


def test_loads_a_single_file(tmp_path: Path) -> None:
    path = tmp_path / "pod.txt"
    path.write_text(POD.format(name="single", image="i:1"))
    state = manifests.load(path)
    assert state.pods[0].source == model.Source("pod.txt", 1)


def test_refuses_an_alias_bomb_quickly() -> None:
    (problem,) = problems_of(CORPUS / "invalid" / "alias-bomb.yaml")
    assert "aliases expand" in problem.reason


def test_refuses_too_many_aliases(tmp_path: Path) -> None:
    aliases = "\n".join(f"k{i}: *a" for i in range(101))
    (tmp_path / "many.yaml").write_text(f"a: &a x\n{aliases}\n")
    (problem,) = problems_of(tmp_path)
    assert problem.reason == "more than 100 YAML aliases"


# Git.


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:  # pragma: no cover - git is installed where tests run
        pytest.skip("git is not installed")
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "pod.yaml").write_text(POD.format(name="app", image="i:1"))
    (tmp_path / "other.yaml").write_text("not: [a manifest")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_revision_is_head_and_clean(repo: Path) -> None:
    revision = manifests.revision(repo / "manifests")
    assert revision == model.Revision(git(repo, "rev-parse", "HEAD"), dirty=False)


def test_revision_is_dirty_only_for_changes_under_root(repo: Path) -> None:
    (repo / "other.yaml").write_text("changed")
    assert not manifests.revision(repo / "manifests").dirty
    (repo / "manifests" / "new.yaml").write_text("")
    assert manifests.revision(repo / "manifests").dirty
    assert manifests.load(repo / "manifests").revision.dirty


def test_revision_is_empty_outside_git(tmp_path: Path) -> None:
    assert manifests.revision(tmp_path) == model.Revision()
    assert manifests.revision(tmp_path / "missing") == model.Revision()


def test_revision_is_empty_when_git_is_missing(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(repo / "nothing-here"))
    assert manifests.revision(repo / "manifests") == model.Revision()


def test_committed_reads_head_not_the_work_tree(repo: Path) -> None:
    manifests_dir = repo / "manifests"
    (manifests_dir / "pod.yaml").write_text(POD.format(name="app", image="i:2"))
    (manifests_dir / "broken.yaml").write_text("kind: [")
    state = manifests.load(manifests_dir, committed=True)
    assert state.pods[0].template.spec.containers[0].image == "i:1"
    assert state.revision == model.Revision(git(repo, "rev-parse", "HEAD"), dirty=False)
    assert state.pods[0].source == model.Source("pod.yaml", 1)


def test_committed_reads_a_single_file_and_reports_its_problems(repo: Path) -> None:
    (problem,) = problems_of(repo / "other.yaml", committed=True)
    assert problem.file == "other.yaml"
    assert problem.reason.startswith("invalid YAML")
    state = manifests.load(repo / "manifests" / "pod.yaml", committed=True)
    assert state.pods[0].name == "app"


def test_committed_needs_a_git_work_tree(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, committed=True)
    assert "not inside a Git work tree" in problem.reason


def test_committed_refuses_a_file_not_committed(repo: Path) -> None:
    (repo / "manifests" / "new.yaml").write_text("")
    (problem,) = problems_of(repo / "manifests" / "new.yaml", committed=True)
    assert problem.reason == "not in Git's HEAD commit"
