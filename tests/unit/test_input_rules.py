"""Input rules: podyard accepts only what Kubernetes accepts and what Docker can carry, and bad
input, however much of it, gets a bounded answer."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from reconciler import errors, manifests, model
from reconciler.manifests import documents, files, rules

pytestmark = pytest.mark.unit

Doc = dict[str, Any]
PRIVILEGED = model.PodSecurity(level=model.PRIVILEGED)


def pod() -> Doc:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "annotations": {"note": "x"}},
        "spec": {
            "nodeSelector": {"disk": "ssd"},
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{
                "name": "app", "image": "busybox:1", "command": ["sh", "-c"], "args": ["true"],
                "workingDir": "/srv", "env": [{"name": "MODE", "value": "demo"}],
                "ports": [{"name": "http", "containerPort": 80}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"limits": {"memory": "64Mi"}},
            }],
        },
    }


def rc(selector: dict[str, str], labels: dict[str, str]) -> Doc:
    template = pod()
    del template["metadata"]["name"], template["metadata"]["namespace"]
    template["metadata"]["labels"] = labels
    return {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
        "spec": {"selector": selector, "template": {"metadata": template["metadata"],
                                                    "spec": template["spec"]}},
    }


def service() -> Doc:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "dns", "port": 53},
        ]},
    }


def problems(
    tmp_path: Path, *docs: Doc, security: model.PodSecurity = model.DEFAULT_POD_SECURITY,
    limits: documents.Limits = documents.DEFAULT_LIMITS,
) -> list[errors.Problem]:
    """The problems of these documents as one JSON List; [] when they are valid."""
    (tmp_path / "m.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                                 "items": list(docs)}))
    try:
        manifests.load(tmp_path, pod_security=security, limits=limits)
    except errors.ManifestError as e:
        return e.problems
    return []


def edited(doc: Doc, edit: Callable[[Doc], object]) -> Doc:
    doc = copy.deepcopy(doc)
    edit(doc)
    return doc


def test_the_documents_edited_below_are_valid(tmp_path: Path) -> None:
    assert problems(tmp_path, pod(), rc({"app": "web"}, {"app": "web"}), service()) == []


# Names, namespaces, label keys and values, annotation keys and env names are matched whole:
# Python's `$` also matches before a final newline, the API server's (Go's) does not.

C = "items[0].spec.containers[0]"
NEWLINE_CASES: list[tuple[Doc, str]] = [
    (edited(pod(), lambda d: d["metadata"].update(name="web\n")), "items[0].metadata.name"),
    (edited(pod(), lambda d: d["metadata"].update(namespace="default\n")),
     "items[0].metadata.namespace"),
    (edited(pod(), lambda d: d["metadata"].update(labels={"app\n": "web"})),
     'items[0].metadata.labels["app\\n"]'),
    (edited(pod(), lambda d: d["metadata"].update(labels={"app": "web\n"})),
     "items[0].metadata.labels.app"),
    (edited(pod(), lambda d: d["metadata"].update(labels={"example.com\n/app": "web"})),
     'items[0].metadata.labels["example.com\\n/app"]'),
    (edited(pod(), lambda d: d["metadata"].update(annotations={"note\n": "x"})),
     'items[0].metadata.annotations["note\\n"]'),
    (edited(pod(), lambda d: d["spec"].update(nodeSelector={"disk": "ssd\n"})),
     "items[0].spec.nodeSelector.disk"),
    (edited(pod(), lambda d: d["spec"]["containers"][0].update(name="app\n")), f"{C}.name"),
    (edited(pod(), lambda d: d["spec"]["containers"][0]["env"][0].update(name="MODE\n")),
     f"{C}.env[0].name"),
    (edited(pod(), lambda d: d["spec"]["containers"][0]["ports"][0].update(name="http\n")),
     f"{C}.ports[0].name"),
    (edited(pod(), lambda d: d["spec"]["volumes"][0].update(name="data\n")),
     "items[0].spec.volumes[0].name"),
    (edited(pod(), lambda d: d["spec"]["containers"][0]["resources"].update(
        limits={"memory": "64Mi\n"})), f"{C}.resources.limits.memory"),
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop\n"}},
     "items[0].metadata.name"),
    (edited(service(), lambda d: d["metadata"].update(name="web\n")), "items[0].metadata.name"),
    (edited(service(), lambda d: d["spec"]["ports"][1].update(name="dns\n")),
     "items[0].spec.ports[1].name"),
    (edited(service(), lambda d: d["spec"]["ports"][0].update(targetPort="http\n")),
     "items[0].spec.ports[0].targetPort"),
    (rc({"app\n": "web"}, {"app\n": "web"}), 'items[0].spec.selector["app\\n"]'),
    (rc({"app": "web\n"}, {"app": "web\n"}), "items[0].spec.template.metadata.labels.app"),
]


@pytest.mark.parametrize(("doc", "field"), NEWLINE_CASES)
def test_a_trailing_newline_is_refused_in_every_name_and_label(
    tmp_path: Path, doc: Doc, field: str
) -> None:
    assert field in {p.field for p in problems(tmp_path, doc)}


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (rules.dns_label, "web\n"),
        (rules.dns_1035_label, "web\n"),
        (rules.dns_subdomain, "web.example\n"),
        (rules.qualified_name, "app\n"),
        (rules.label_value, "v1\n"),
        (rules.iana_svc_name, "http\n"),
    ],
)
def test_each_name_rule_matches_the_whole_value(
    check: Callable[[str], str | None], value: str
) -> None:
    assert check(value.rstrip("\n")) is None
    assert check(value) is not None


# NUL characters: Docker takes these strings as C strings.


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda c: c.update(image="busybox\0:1"), f"{C}.image"),
        (lambda c: c.update(command=["sh", "-c\0"]), f"{C}.command[1]"),
        (lambda c: c.update(args=["\0"]), f"{C}.args[0]"),
        (lambda c: c["env"][0].update(value="a\0b"), f"{C}.env[0].value"),
        (lambda c: c.update(workingDir="/srv\0"), f"{C}.workingDir"),
        (lambda c: c["volumeMounts"][0].update(mountPath="/data\0"),
         f"{C}.volumeMounts[0].mountPath"),
    ],
)
def test_a_nul_character_is_refused_in_every_string_docker_receives(
    tmp_path: Path, edit: Callable[[Doc], object], field: str
) -> None:
    doc = edited(pod(), lambda d: edit(d["spec"]["containers"][0]))
    [problem] = problems(tmp_path, doc)
    assert (problem.field, problem.reason) == (
        field, "must not contain a NUL character: Docker cannot pass it on")


def test_a_nul_character_is_refused_in_a_host_path(tmp_path: Path) -> None:
    doc = edited(pod(), lambda d: d["spec"].update(volumes=[
        {"name": "data", "hostPath": {"path": "/srv\0"}}]))
    [problem] = problems(tmp_path, doc, security=PRIVILEGED)
    assert problem.field == "items[0].spec.volumes[0].hostPath.path"
    assert "NUL" in problem.reason


# Paths Docker's bind syntax (source:target:options) cannot carry, and '..'.


@pytest.mark.parametrize(
    ("host", "mount", "field", "reason"),
    [
        ("/srv/a:b", "/data", "items[0].spec.volumes[0].hostPath.path",
         "'/srv/a:b' must not contain ':': Docker's bind syntax (source:target:options) cannot "
         "carry it"),
        ("/srv/a,b", "/data", "items[0].spec.volumes[0].hostPath.path", "must not contain ','"),
        ("/srv", "/data:ro", f"{C}.volumeMounts[0].mountPath", "must not contain ':'"),
        ("/srv", "/a,b:c", f"{C}.volumeMounts[0].mountPath",
         "must not contain ':' or ',': Docker's bind syntax (source:target:options) cannot "
         "carry them"),
        ("/srv/../etc", "/data", "items[0].spec.volumes[0].hostPath.path",
         "'/srv/../etc' must be an absolute path without '..'"),  # absolute, yet climbing out
        ("/srv", "/data/..", f"{C}.volumeMounts[0].mountPath", "without '..'"),
    ],
)
def test_a_path_docker_cannot_bind_is_refused_with_the_reason(
    tmp_path: Path, host: str, mount: str, field: str, reason: str
) -> None:
    def edit(d: Doc) -> None:
        d["spec"]["volumes"] = [{"name": "data", "hostPath": {"path": host}}]
        d["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = mount

    [problem] = problems(tmp_path, edited(pod(), edit), security=PRIVILEGED)
    assert problem.field == field
    assert reason in problem.reason


@pytest.mark.parametrize("path", ["/srv/..data", "/srv/data..", "/srv/.hidden", "/srv/a b"])
def test_a_dotted_name_is_not_a_parent_directory(tmp_path: Path, path: str) -> None:
    doc = edited(pod(), lambda d: d["spec"].update(volumes=[
        {"name": "data", "hostPath": {"path": path}}]))
    assert problems(tmp_path, doc, security=PRIVILEGED) == []


def test_one_volume_mounted_at_two_paths_is_accepted(tmp_path: Path) -> None:
    doc = edited(pod(), lambda d: d["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "data", "mountPath": "/also", "readOnly": True}))
    assert problems(tmp_path, doc) == []


# ReplicationController selectors (several keys) and the selector model.


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"app": "web", "tier": "front"}, {"app": "web", "tier": "front"}, True),
        ({"app": "web", "tier": "front"}, {"app": "web", "tier": "front", "v": "2"}, True),
        ({"app": "web", "tier": "front"}, {"app": "web", "tier": "back"}, False),  # one differs
        ({"app": "web", "tier": "front"}, {"app": "db", "tier": "front"}, False),
        ({"app": "web", "tier": "front"}, {"app": "web"}, False),  # one missing
        ({"app": "web", "tier": "front"}, {"app": "db", "tier": "back"}, False),
    ],
)
def test_every_selector_label_must_be_on_the_template(
    tmp_path: Path, selector: dict[str, str], labels: dict[str, str], matches: bool
) -> None:
    found = [p.reason for p in problems(tmp_path, rc(selector, labels))]
    assert (found == []) is matches
    if not matches:
        assert found == ["selector does not match template labels: every spec.selector label "
                         "must be set here with the same value"]


def test_an_explicit_selector_is_kept_not_replaced_by_the_template_labels(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(json.dumps(rc({"app": "web"}, {"app": "web", "v": "2"})))
    [controller] = manifests.load(tmp_path).controllers
    assert controller.selector == (("app", "web"),)
    assert controller.template.labels == (("app", "web"), ("v", "2"))


# Quantities: every suffix, and the largest value the API server takes (2^63 - 1).


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1M", Decimal(10**6)),
        ("3E", Decimal(3 * 10**18)),
        ("5n", Decimal("5e-9")),
        ("9223372036854775807", Decimal(2**63 - 1)),
        ("9.223372036854775807E", Decimal(2**63 - 1)),
    ],
)
def test_quantity_suffixes_scale_as_kubernetes_does(text: str, value: Decimal) -> None:
    assert rules.quantity(text) == (value, None)


@pytest.mark.parametrize("text", ["9223372036854775808", "9.223372036854775808E", "8Ei", "10E"])
def test_a_quantity_of_2_to_the_63_or_more_is_too_large(text: str) -> None:
    assert rules.quantity(text) == (None, f"{text!r} is too large")


# YAML tags: plain data only, never an object a tag would construct.


@pytest.mark.parametrize(
    ("text", "line", "tag"),
    [
        ("a: !!python/object:os.system x\n", 1, "tag:yaml.org,2002:python/object:os.system"),
        ("a:\n  b: !!python/name:os.system ''\n", 2, "tag:yaml.org,2002:python/name:os.system"),
        ("a: !custom x\n", 1, "!custom"),
        ("a: !!binary aGk=\n", 1, "tag:yaml.org,2002:binary"),
        ("a: !!set {x: null}\n", 1, "tag:yaml.org,2002:set"),
        ("a: !!omap [x: 1]\n", 1, "tag:yaml.org,2002:omap"),
        ("!k8s {a: 1}\n", 1, "!k8s"),
        ("!!python/bytes a: 1\n", 1, "tag:yaml.org,2002:python/bytes"),  # on a key
    ],
)
def test_a_yaml_tag_is_refused_with_its_line(text: str, line: int, tag: str) -> None:
    with pytest.raises(documents.ParseError) as caught:
        list(documents.parse(text))
    assert (caught.value.line, caught.value.reason) == (line, f"YAML tag {tag} is not supported")


@pytest.mark.parametrize(
    ("text", "value"),
    [("a: !!str 1\n", {"a": "1"}), ("a: !!int '3'\n", {"a": 3}), ("!!map {a: !!null ''}\n",
                                                                   {"a": None})],
)
def test_the_standard_scalar_tags_are_read(text: str, value: Doc) -> None:
    [document] = documents.parse(text)
    assert document.data == value


# Generated pod names stay within 63 characters, as generateName keeps them.


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("web", "web-abcde"),
        ("a" * 57, "a" * 57 + "-abcde"),  # exactly 63: nothing cut
        ("a" * 58, "a" * 58 + "abcde"),  # the API server cuts `<base>-` to 58
        ("a" * 253, "a" * 58 + "abcde"),
        ("web.example." + "b" * 60, "web.example." + "b" * 46 + "abcde"),
    ],
)
def test_a_generated_name_is_cut_as_kubernetes_cuts_it(base: str, expected: str) -> None:
    name = model.generated_name(base, "abcde")
    assert name == expected
    assert len(name) <= 63
    assert rules.dns_subdomain(name) is None


# Bounds: problems reported, total size, time.

UNKNOWN = "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec:\n  containers: " \
          "[{{name: a, image: i}}]\n{fields}"


def pod_with_unknown_fields(i: int, count: int) -> str:
    return UNKNOWN.format(i=i, fields="".join(f"  field{n:07d}: 1\n" for n in range(count)))


def test_at_most_100_problems_are_shown_per_file_then_how_many_more(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(pod_with_unknown_fields(0, 150))
    with pytest.raises(errors.ManifestError) as caught:
        manifests.load(tmp_path)
    shown = caught.value.problems
    assert len(shown) == 101
    assert [p.line for p in shown[:100]] == list(range(6, 106))  # the first ones, in order
    assert str(shown[-1]) == "a.yaml: and 50 more problems in this file"
    assert str(caught.value) == "150 problems in the manifests"


def test_at_most_max_problems_are_shown_in_all_then_how_many_more(tmp_path: Path) -> None:
    for i, (name, count) in enumerate((("a", 4), ("b", 4), ("c", 3), ("d", 1))):
        (tmp_path / f"{name}.yaml").write_text(pod_with_unknown_fields(i, count))
    limits = documents.Limits(max_problems_per_file=3, max_problems=5)
    with pytest.raises(errors.ManifestError) as caught:
        manifests.load(tmp_path, limits=limits)
    assert [str(p).split(": ", 1)[0] for p in caught.value.problems] == [
        "a.yaml:6", "a.yaml:7", "a.yaml:8", "a.yaml",
        "b.yaml:6", "b.yaml:7", "b.yaml",
        str(tmp_path),
    ]
    assert [str(p).split(": ", 1)[1] for p in caught.value.problems if not p.line] == [
        "and 1 more problem in this file",
        "and 2 more problems in this file",
        "and 4 more problems in 2 other files",
    ]
    assert str(caught.value) == "12 problems in the manifests"


def test_a_cached_error_keeps_its_order_and_count(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(pod_with_unknown_fields(0, 5))
    os.utime(tmp_path / "a.yaml", (0, 0))  # settled: the Loader may remember it
    loader = manifests.Loader(tmp_path, limits=documents.Limits(max_problems_per_file=2))
    raised = []
    for _ in range(2):
        with pytest.raises(errors.ManifestError) as caught:
            loader.load()
        raised.append((str(caught.value), caught.value.problems))
    assert raised[0] == raised[1]
    assert raised[0][0] == "5 problems in the manifests"
    assert str(raised[0][1][-1]) == "a.yaml: and 3 more problems in this file"


def test_a_tree_over_the_total_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("x" * 60)
    [problem] = problems_of_tree(tmp_path, documents.Limits(max_total_bytes=100))
    assert problem == errors.Problem(str(tmp_path), 0, "", (
        "the manifest files total 120 bytes; the limit for all of them together is 100"))


def test_the_total_size_limit_is_64_mib_by_default() -> None:
    assert documents.DEFAULT_LIMITS.max_total_bytes == 64 * 2**20


def problems_of_tree(
    root: Path, limits: documents.Limits, *, committed: bool = False
) -> list[errors.Problem]:
    with pytest.raises(errors.ManifestError) as caught:
        manifests.load(root, limits=limits, committed=committed)
    return caught.value.problems


def test_a_megabyte_of_unknown_fields_gets_a_capped_answer(tmp_path: Path) -> None:
    """The time is printed, not asserted (machines differ): run with -s to see it."""
    text = pod_with_unknown_fields(0, 0)
    line = len("  field0000000: 1\n")
    text = pod_with_unknown_fields(0, (documents.DEFAULT_LIMITS.max_bytes - len(text)) // line)
    (tmp_path / "big.yaml").write_text(text)
    started = time.perf_counter()
    with pytest.raises(errors.ManifestError) as caught:
        manifests.load(tmp_path)
    seconds = time.perf_counter() - started
    fields = text.count("field")
    assert len(text) <= documents.DEFAULT_LIMITS.max_bytes
    assert len(caught.value.problems) == 101
    more = f"big.yaml: and {fields - 100} more problems in this file"
    assert str(caught.value.problems[-1]) == more
    print(f"\n{len(text)} bytes, {fields} unknown fields: answered in {seconds:.2f} s")


# A symlink, committed in Git or in a plain directory, is refused by name, never followed.


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


POD = (
    "apiVersion: v1\nkind: Pod\nmetadata: {name: app}\nspec:\n"
    "  containers: [{name: a, image: i}]\n"
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:  # pragma: no cover - git is installed where tests run
        pytest.skip("git is not installed")
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "pod.yaml").write_text(POD)
    (tmp_path / "m" / "copy.yaml").symlink_to("pod.yaml")  # would declare `app` twice
    (tmp_path / "m" / "passwd.yaml").symlink_to("/etc/passwd")  # would read outside the tree
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "symlinks")
    return tmp_path


@pytest.mark.parametrize("committed", [True, False])
def test_symlinks_are_refused_by_name_and_never_read(repo: Path, committed: bool) -> None:
    (repo / "m" / "linked").symlink_to("/etc")  # a link to a directory, not committed
    with pytest.raises(errors.ManifestError) as refused:
        manifests.load(repo / "m", committed=committed)
    named = [(p.file, p.reason) for p in refused.value.problems]
    expected = ["copy.yaml", "passwd.yaml"] + ([] if committed else ["linked"])
    assert sorted(file for file, _ in named) == sorted(expected)
    assert all(reason == files.SYMLINK for _, reason in named)
    assert "root:" not in str(refused.value.problems)  # /etc/passwd was never read


def test_a_committed_symlink_out_of_the_tree_named_alone_is_not_read(repo: Path) -> None:
    [problem] = problems_of_tree(repo / "m" / "passwd.yaml", documents.DEFAULT_LIMITS,
                                 committed=True)
    assert problem.reason.startswith("not inside the Git work tree")


def test_the_committed_tree_counts_toward_the_total_size_limit(repo: Path) -> None:
    [problem] = problems_of_tree(repo / "m", documents.Limits(max_total_bytes=10),
                                 committed=True)
    assert problem.reason.startswith(f"the manifest files total {len(POD)} bytes")


def test_an_error_quotes_only_a_short_excerpt_of_a_value(tmp_path: Path) -> None:
    secret = "s3cr3t-" + "x" * 500
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n"
        f"    tier: '{secret}'\nspec:\n  containers: [{{name: a, image: i}}]\n"
    )
    with pytest.raises(errors.ManifestError) as refused:
        manifests.load(tmp_path)
    text = str(refused.value.problems)
    assert "s3cr3t-xxx" in text and "x" * 60 not in text
