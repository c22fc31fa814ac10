"""Files -> validated documents -> model; and the Git revision the files came from.

The I/O here is reading manifest files (from the work tree, or from Git's HEAD tree with
`committed=True`) and asking `git` for the revision, with a timeout. Parsing is
`documents.py`, the schema `validation.py`, the API-server rules `checks.py`; this module
adds the rules that need every document at once and builds the `model.DesiredState`.

Decisions worth knowing:
- Server-set metadata (uid, resourceVersion, ...) is refused; `creationTimestamp: null` and an
  empty `status: {}` (as `kubectl create --dry-run -o yaml` writes them) are accepted.
- Hidden files and directories are skipped, as are files not ending in .yaml, .yml or .json.
- An object in a namespace other than `default` or `kube-system` needs a Namespace manifest.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import checks, documents, errors, model, validation

EXTENSIONS = (".yaml", ".yml", ".json")
BUILTIN_NAMESPACES = ("default", "kube-system")
GIT_TIMEOUT = 10.0


@dataclass(frozen=True)
class _File:
    """A manifest file's name (relative to the root) and content, or why it has none."""

    name: str
    data: bytes = b""
    problem: str = ""


@dataclass(frozen=True)
class _Object:
    kind: str
    body: Mapping[str, Any]
    document: documents.Document
    base: documents.Path
    file: str

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, Mapping) else {}

    @property
    def name(self) -> str | None:
        name = self.metadata.get("name")
        return name if isinstance(name, str) else None

    @property
    def namespace(self) -> str:
        namespace = self.metadata.get("namespace", model.DEFAULT_NAMESPACE)
        return namespace if isinstance(namespace, str) else model.DEFAULT_NAMESPACE

    def problem(self, path: documents.Path, reason: str) -> errors.Problem:
        full = (*self.base, *path)
        line = self.document.line_of(full)
        return errors.Problem(self.file, line, validation.format_path(full), reason)

    @property
    def source(self) -> model.Source:
        return model.Source(self.file, self.document.line_of(self.base))


def load(
    root: Path, *, committed: bool = False, limits: documents.Limits = documents.DEFAULT_LIMITS
) -> model.DesiredState:
    """Read, validate and model every manifest under `root` (a directory or one file).

    Raises `errors.ManifestError` carrying every problem found. With `committed`, the files
    come from the HEAD commit of the Git repository holding `root`, not the work tree.
    """
    root = Path(root)
    if committed:
        files, revision = _committed_files(root, limits), _head_revision(root)
    else:
        files, revision = _work_tree_files(root, limits), _revision_of(root)
    problems: list[errors.Problem] = []
    objects: list[_Object] = []
    for file in files:
        problems += _read_objects(file, limits, objects)
    problems += _cross_checks(objects)
    if problems:
        raise errors.ManifestError(_unique(problems))
    return _build(objects, revision)


def revision(root: Path) -> model.Revision:
    """HEAD's commit and whether `root` differs from it; `Revision()` when not in Git."""
    return _revision_of(Path(root))


def summary(state: model.DesiredState) -> list[str]:
    """One line per kind, for `--validate`: `ReplicationController: 2 (db: 1 replica, ...)`."""

    def named(namespace: str, name: str) -> str:
        return name if namespace == model.DEFAULT_NAMESPACE else f"{namespace}/{name}"

    def line(kind: str, parts: list[str]) -> str:
        return f"{kind}: {len(parts)}" + (f" ({', '.join(parts)})" if parts else "")

    def ports(service: model.Service) -> str:
        return ",".join(
            f"{p.port}" + (f":{p.node_port}" if p.node_port else "") for p in service.ports
        )

    return [
        line("Namespace", [n.name for n in state.namespaces]),
        line("Pod", [named(p.namespace, p.name) for p in state.pods]),
        line("ReplicationController", [
            f"{named(c.namespace, c.name)}: {c.replicas} replica{'' if c.replicas == 1 else 's'}"
            for c in state.controllers
        ]),
        line("Service", [
            f"{named(s.namespace, s.name)}: {s.type} {ports(s)}" for s in state.services
        ]),
    ]


# Reading files.


def _work_tree_files(root: Path, limits: documents.Limits) -> list[_File]:
    if not root.exists():
        raise errors.ManifestError([errors.Problem(str(root), 0, "", "no such file or directory")])
    if not root.is_dir():
        return [_read_file(root, root.name, limits)]
    found: list[_File] = []

    def unreadable(e: OSError) -> None:
        name = Path(e.filename).relative_to(root).as_posix() if e.filename else str(root)
        found.append(_File(name, problem=f"cannot read directory: {e.strerror or e}"))

    for directory, subdirs, names in os.walk(root, onerror=unreadable):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and name.endswith(EXTENSIONS):
                path = Path(directory, name)
                found.append(_read_file(path, path.relative_to(root).as_posix(), limits))
    return found


def _read_file(path: Path, name: str, limits: documents.Limits) -> _File:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return _File(name, problem="not a regular file")
        if info.st_size > limits.max_bytes:
            return _File(name, problem=_too_large(info.st_size, limits))
        with path.open("rb") as f:
            data = f.read(limits.max_bytes + 1)
    except OSError as e:
        return _File(name, problem=f"cannot read: {e.strerror or e}")
    if len(data) > limits.max_bytes:
        return _File(name, problem=_too_large(len(data), limits))
    return _File(name, data)


def _too_large(size: int, limits: documents.Limits) -> str:
    return f"is {size} bytes; the limit for one manifest file is {limits.max_bytes}"


def _git(args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes | None:
    """git's stdout, or None when git is missing, fails or does not answer in time."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True,
            timeout=GIT_TIMEOUT, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _git_dir(root: Path) -> Path:
    return root if root.is_dir() else root.parent


def _revision_of(root: Path) -> model.Revision:
    """The revision of `root`: HEAD, dirty when `git status` lists anything under root."""
    if not root.exists():
        return model.Revision()
    cwd = _git_dir(root)
    head = _git(["rev-parse", "--verify", "-q", "HEAD"], cwd)
    if not head:
        return model.Revision()
    status = _git(["status", "--porcelain", "--", root.resolve().as_posix()], cwd)
    return model.Revision(head.decode().strip(), dirty=status is None or bool(status.strip()))


def _head_revision(root: Path) -> model.Revision:
    head = _git(["rev-parse", "--verify", "-q", "HEAD"], _git_dir(root))
    return model.Revision(head.decode().strip() if head else "")


def _committed_files(root: Path, limits: documents.Limits) -> list[_File]:
    """The manifest files under `root` in Git's HEAD tree, read without touching the work tree."""

    def fail(reason: str) -> errors.ManifestError:
        return errors.ManifestError([errors.Problem(str(root), 0, "", reason)])

    if not root.exists():
        raise fail("no such file or directory")
    top = _git(["rev-parse", "--show-toplevel"], _git_dir(root))
    if top is None:
        raise fail("not inside a Git work tree (needed to read the committed manifests)")
    toplevel = Path(top.decode().strip()).resolve()
    try:
        prefix = root.resolve().relative_to(toplevel).as_posix()
    except ValueError:
        raise fail(f"not inside the Git work tree at {toplevel}") from None
    listing = _git(["ls-tree", "-r", "-l", "-z", "HEAD", "--", prefix or "."], toplevel)
    if listing is None:
        raise fail("cannot list Git's HEAD tree (is there a commit yet?)")
    wanted = list(_tree_entries(listing, prefix, root.is_dir()))
    if not root.is_dir() and not wanted:
        raise fail("not in Git's HEAD commit")
    files = []
    for name, oid, size in wanted:
        if size > limits.max_bytes:
            files.append(_File(name, problem=_too_large(size, limits)))
            continue
        data = _git(["cat-file", "blob", oid], toplevel)
        files.append(_File(name, data) if data is not None else _File(name, problem="cannot read"))
    return files


def _tree_entries(listing: bytes, prefix: str, is_dir: bool) -> Iterator[tuple[str, str, int]]:
    """(name relative to root, blob id, size) of each manifest blob in `ls-tree -r -l -z`."""
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, raw_path = entry.partition(b"\t")
        mode, kind, oid, size = meta.decode().split()
        path = raw_path.decode("utf-8", "replace")
        if kind != "blob" or mode == "120000":
            continue
        if not is_dir:
            yield Path(path).name, oid, int(size)
            continue
        name = path[len(prefix) + 1:] if prefix and prefix != "." else path
        parts = name.split("/")
        if any(p.startswith(".") for p in parts) or not name.endswith(EXTENSIONS):
            continue
        yield name, oid, int(size)


# Documents -> objects -> problems.


def _read_objects(
    file: _File, limits: documents.Limits, objects: list[_Object]
) -> list[errors.Problem]:
    if file.problem:
        return [errors.Problem(file.name, 0, "", file.problem)]
    try:
        text = file.data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return [errors.Problem(file.name, 0, "", f"not UTF-8 text (bad byte at offset {e.start})")]
    problems: list[errors.Problem] = []
    try:
        for document in documents.parse(text, limits):
            problems += _document_objects(file.name, document, objects)
    except documents.ParseError as e:
        problems.append(errors.Problem(file.name, e.line, "", e.reason))
    return problems


def _document_objects(
    name: str, document: documents.Document, objects: list[_Object]
) -> list[errors.Problem]:
    data = document.data
    if data is None:
        return []
    if not isinstance(data, Mapping):
        return [errors.Problem(name, document.line, "", "a manifest must be a mapping")]
    if data.get("kind") != validation.LIST:
        return _check_object(_Object("", data, document, (), name), objects)
    top = _Object(validation.LIST, data, document, (), name)
    found = validation.check_kind(data)
    problems = [top.problem(*found)] if found else []
    problems += [top.problem(*f) for f in validation.check_schema(validation.LIST, data)]
    items = data.get("items")
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, Mapping):
            obj = _Object("", item, document, ("items", i), name)
            problems += _check_object(obj, objects, in_list=True)
    return problems


def _check_object(
    obj: _Object, objects: list[_Object], *, in_list: bool = False
) -> list[errors.Problem]:
    found = validation.check_kind(obj.body, in_list=in_list)
    if found:
        return [obj.problem(*found)]
    kind = obj.body["kind"]
    obj = _Object(kind, obj.body, obj.document, obj.base, obj.file)
    findings = validation.check_schema(kind, obj.body) + checks.check(kind, obj.body)
    if obj.name is not None:
        objects.append(obj)
    return [obj.problem(path, reason) for path, reason in findings]


def _cross_checks(objects: list[_Object]) -> list[errors.Problem]:
    """Rules across documents: duplicates, undeclared namespaces, clashing service addresses."""
    problems = []
    seen: dict[tuple[str, str, str], _Object] = {}
    namespaces = set(BUILTIN_NAMESPACES)
    namespaces.update(o.name for o in objects if o.kind == "Namespace" and o.name)
    taken: dict[tuple[str, Any], tuple[_Object, str]] = {}
    for obj in objects:
        assert obj.name is not None
        namespace = "" if obj.kind == "Namespace" else obj.namespace
        key = (obj.kind, namespace, obj.name)
        if key in seen:
            first = seen[key]
            where = f"{first.file}:{first.source.line}"
            problems.append(obj.problem(
                ("metadata", "name"), f"{obj.kind} {_qualified(obj)} is also declared in {where}"
            ))
            continue
        seen[key] = obj
        if namespace and namespace not in namespaces:
            problems.append(obj.problem(("metadata", "namespace"), (
                f"namespace {namespace!r} is not declared: add a Namespace manifest for it "
                f"(only {' and '.join(BUILTIN_NAMESPACES)} exist without one)")))
        if obj.kind == "Service":
            problems += _service_clashes(obj, taken)
    return problems


def _qualified(obj: _Object) -> str:
    return obj.name or "" if obj.kind == "Namespace" else f"{obj.namespace}/{obj.name}"


def _service_clashes(
    obj: _Object, taken: dict[tuple[str, Any], tuple[_Object, str]]
) -> Iterator[errors.Problem]:
    """A clusterIP or nodePort is allocated once in a cluster, as the API server enforces."""
    spec = obj.body.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    claims: list[tuple[tuple[str, Any], documents.Path, str]] = []
    if isinstance(spec.get("clusterIP"), str) and spec["clusterIP"]:
        claims.append((("clusterIP", spec["clusterIP"]), ("spec", "clusterIP"), "clusterIP"))
    ports = spec.get("ports")
    for i, port in enumerate(ports if isinstance(ports, list) else []):
        protocol = port.get("protocol", "TCP") if isinstance(port, Mapping) else None
        if isinstance(port, Mapping) and isinstance(port.get("nodePort"), int) and isinstance(
            protocol, str
        ):
            key = ("nodePort", (port["nodePort"], protocol))
            claims.append((key, ("spec", "ports", i, "nodePort"), f"nodePort {port['nodePort']}"))
    for key, path, what in claims:
        if key in taken and taken[key][0] is not obj:
            other, _ = taken[key]
            where = f"{other.file}:{other.source.line}"
            reason = f"{what} is already used by Service {_qualified(other)} ({where})"
            yield obj.problem(path, reason)
        taken.setdefault(key, (obj, what))


def _unique(problems: list[errors.Problem]) -> list[errors.Problem]:
    return list(dict.fromkeys(problems))


# Objects -> model.


def _build(objects: list[_Object], revision: model.Revision) -> model.DesiredState:
    namespaces, pods, controllers, services = [], [], [], []
    for obj in objects:
        meta, spec = obj.metadata, obj.body.get("spec") or {}
        if obj.kind == "Namespace":
            labels = model.pairs(meta.get("labels"))
            namespaces.append(model.Namespace(meta["name"], labels, obj.source))
        elif obj.kind == "Pod":
            template = model.build_template(meta, spec)
            pods.append(model.Pod(obj.namespace, meta["name"], template, obj.source))
        elif obj.kind == "ReplicationController":
            controllers.append(_controller(obj, meta, spec))
        else:
            services.append(model.build_service(obj.namespace, meta, spec, obj.source))

    def order(x: Any) -> tuple[str, str]:
        return (getattr(x, "namespace", ""), x.name)

    return model.DesiredState(
        namespaces=tuple(sorted(namespaces, key=order)),
        pods=tuple(sorted(pods, key=order)),
        controllers=tuple(sorted(controllers, key=order)),
        services=tuple(sorted(services, key=order)),
        revision=revision,
    )


def _controller(
    obj: _Object, meta: Mapping[str, Any], spec: Mapping[str, Any]
) -> model.ReplicationController:
    template_doc = spec["template"]
    template_meta = template_doc.get("metadata") or {}
    template = model.build_template(template_meta, template_doc["spec"])
    # As the API server does: an empty selector, and empty labels, default to the template's.
    selector = model.pairs(spec.get("selector") or template_meta.get("labels"))
    labels = model.pairs(meta.get("labels") or template_meta.get("labels"))
    return model.ReplicationController(
        namespace=obj.namespace, name=meta["name"], labels=labels,
        replicas=spec.get("replicas", 1), selector=selector, template=template, source=obj.source,
    )
