"""Files -> validated documents -> model, with every problem found at once.

Finding and reading files is `files.py`, parsing `documents.py`, the schema `schema.py`,
the API server's rules `rules.py`; this module adds the rules that need every document at once
and builds the `model.DesiredState`. A `Loader` remembers each file's result by what
identifies its content, so `--watch` re-reads only the files that changed.

The pod security policy (`policy.py`, a `model.PodSecurity` given to `load` or the `Loader`,
"baseline" by default) is checked with the API server's rules, before anything runs.

Decisions worth knowing:
- Server-set metadata (uid, resourceVersion, ...) is refused; `creationTimestamp: null` and an
  empty `status: {}` (as `kubectl create --dry-run -o yaml` writes them) are accepted.
- An object in a namespace other than `default` or `kube-system` needs a Namespace manifest.
- At most `Limits.max_problems_per_file` problems are reported per file and
  `Limits.max_problems` in all (`report.py`); the error's message still counts every problem.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler import errors, model
from reconciler.manifests import documents, files, policy, report, rules, schema, signatures

_shown = errors.excerpt  # a value of a manifest, as an error may quote it

BUILTIN_NAMESPACES = ("default", "kube-system")


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

    def line(self, path: documents.Path) -> int:
        return self.document.line_of((*self.base, *path))

    def problem(self, path: documents.Path, reason: str) -> errors.Problem:
        full = (*self.base, *path)
        return errors.Problem(self.file, self.line(path), schema.format_path(full), reason)

    @property
    def source(self) -> model.Source:
        return model.Source(self.file, self.document.line_of(self.base))


def load(
    root: Path,
    *,
    committed: bool = False,
    limits: documents.Limits = documents.DEFAULT_LIMITS,
    pod_security: model.PodSecurity = model.DEFAULT_POD_SECURITY,
) -> model.DesiredState:
    """Read, validate and model every manifest under `root` (a directory or one file).

    Raises `errors.ManifestError` carrying every problem found. With `committed`, the files
    come from the HEAD commit of the Git repository holding `root`, not the work tree. Pods
    and pod templates must keep to `pod_security` (Kubernetes' "baseline" level by default).
    """
    return Loader(root, committed=committed, limits=limits, pod_security=pod_security).load()


def revision(root: Path) -> model.Revision:
    """HEAD's commit and whether `root` differs from it; `Revision()` when not in Git."""
    return files.revision(Path(root))


@dataclass(frozen=True)
class _FileResult:
    key: Hashable
    objects: tuple[_Object, ...]
    problems: tuple[errors.Problem, ...]  # the first `max_problems_per_file`, sorted
    omitted: int = 0  # problems found beyond those


class Loader:
    """`load`, again and again: a file whose content key is unchanged is not read again.

    When no file and not the revision changed, the last result (the state, or the error) is
    returned as it was. A file added, removed or changed is always seen: the scan lists
    every file each time, and a file changed within the last two seconds is never trusted by
    its key alone. The pod security policy is fixed for the Loader's life, so a file's
    remembered result stays right.
    """

    def __init__(
        self,
        root: Path,
        *,
        committed: bool = False,
        limits: documents.Limits = documents.DEFAULT_LIMITS,
        pod_security: model.PodSecurity = model.DEFAULT_POD_SECURITY,
        trust: model.CommitTrust = model.NO_COMMIT_TRUST,
        service_cidr: str = model.DEFAULT_SERVICE_CIDR,
    ) -> None:
        self.root = Path(root)
        self.service_cidr = ipaddress.ip_network(service_cidr, strict=False)
        self.trust = trust
        self.committed = committed
        self.limits = limits
        self.pod_security = pod_security
        self._files: dict[str, _FileResult] = {}
        self._last: tuple[Hashable, model.DesiredState | errors.ManifestError] | None = None

    def load(self) -> model.DesiredState:
        """The desired state now; raises `errors.ManifestError` with every problem."""
        entries = files.scan(self.root, self.limits, committed=self.committed)
        revision = files.revision(self.root, committed=self.committed)
        fingerprint = (revision, tuple((e.name, e.key, e.settled) for e in entries))
        if self._last is not None and self._last[0] == fingerprint and all(
            e.settled for e in entries
        ):
            return self._result(self._last[1])
        refused = self._unverified(revision)
        if refused is not None:
            self._last = (fingerprint, refused)
            return self._result(refused)
        results = {e.name: self._read(e) for e in entries}
        self._files = {e.name: results[e.name] for e in entries if e.settled}
        objects = [o for r in results.values() for o in r.objects]
        problems = [p for r in results.values() for p in r.problems]
        problems += _cross_checks(objects, self.service_cidr)
        omitted = {name: r.omitted for name, r in results.items() if r.omitted}
        outcome = (
            report.error(problems, omitted, self.limits, str(self.root))
            if problems or omitted else _build(objects, revision)
        )
        self._last = (fingerprint, outcome)
        return self._result(outcome)

    def _unverified(self, revision: model.Revision) -> errors.ManifestError | None:
        """With verifyCommits, a HEAD not signed by a trusted key applies nothing."""
        if not self.trust.verify:
            return None
        if not self.committed:
            why = "verifyCommits needs --committed: a work tree has no signature to check"
            return errors.ManifestError([errors.Problem(str(self.root), 0, "", why)])
        found = signatures.unverified(files.git_dir(self.root) or self.root, self.trust)
        if found is None:
            return None
        why = f"commit {revision}: {found}"
        return errors.ManifestError([errors.Problem(str(self.root), 0, "", why)])

    def _read(self, entry: files.Entry) -> _FileResult:
        known = self._files.get(entry.name)
        if known is not None and entry.settled and known.key == entry.key:
            return known
        check = _FileCheck(entry.name, self.limits, self.pod_security)
        check.read(files.read(entry, self.limits))
        shown = check.first(self.limits.max_problems_per_file)
        return _FileResult(entry.key, tuple(check.objects), tuple(shown), check.omitted)

    @staticmethod
    def _result(outcome: model.DesiredState | errors.ManifestError) -> model.DesiredState:
        if isinstance(outcome, errors.ManifestError):
            # A new error each time (a raised one keeps its traceback), in the same order.
            raise report.again(outcome)
        return outcome


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


# Documents -> objects -> problems.


@dataclass
class _FileCheck:
    """One file's documents -> its objects and problems, with the policy and limits given."""

    name: str
    limits: documents.Limits
    pod_security: model.PodSecurity
    objects: list[_Object] = field(default_factory=list)
    problems: list[errors.Problem] = field(default_factory=list)
    omitted: int = 0  # found, but never among the first shown: counted, not made

    def read(self, file: files.File) -> None:
        """Every document of the file; a file that cannot be read or parsed is one problem."""
        if file.problem:
            self.problems.append(errors.Problem(file.name, 0, "", file.problem))
            return
        try:
            text = file.data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            reason = f"not UTF-8 text (bad byte at offset {e.start})"
            self.problems.append(errors.Problem(file.name, 0, "", reason))
            return
        try:
            for document in documents.parse(text, self.limits):
                self.document(document)
        except documents.ParseError as e:
            self.problems.append(errors.Problem(file.name, e.line, "", e.reason))

    def document(self, document: documents.Document) -> None:
        """One document: an object, or a List of them."""
        data = document.data
        if data is None:
            return
        if not isinstance(data, Mapping):
            reason = "a manifest must be a mapping"
            self.problems.append(errors.Problem(self.name, document.line, "", reason))
            return
        if data.get("kind") != schema.LIST:
            self.check(_Object("", data, document, (), self.name))
            return
        top = _Object(schema.LIST, data, document, (), self.name)
        found = schema.check_kind(data)
        self.problems += [top.problem(*found)] if found else []
        self.problems += [top.problem(*f) for f in schema.check_schema(schema.LIST, data)]
        items = data.get("items")
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, Mapping):
                self.check(_Object("", item, document, ("items", i), self.name), in_list=True)

    def check(self, obj: _Object, *, in_list: bool = False) -> None:
        """One object: its kind, schema, the API server's rules and the pod security policy."""
        found = schema.check_kind(obj.body, in_list=in_list)
        if found:
            self.problems.append(obj.problem(*found))
            return
        kind = obj.body["kind"]
        obj = _Object(kind, obj.body, obj.document, obj.base, obj.file)
        # Suggestions cost a fuzzy match each; past the problems shown, no one reads them.
        suggestions = max(0, self.limits.max_problems_per_file - len(self.problems))
        findings = schema.check_schema(kind, obj.body, suggestions=suggestions)
        findings += rules.check(kind, obj.body)
        findings += policy.check(kind, obj.body, self.pod_security)
        if obj.name is not None:
            self.objects.append(obj)
        self.add(obj, findings)

    def add(self, obj: _Object, findings: list[schema.Finding]) -> None:
        """Problems for `findings`, made only for those that may be among the file's first
        `max_problems_per_file`; the others are counted. A file of thousands of problems
        answers at once."""
        unique = list(dict.fromkeys(findings))
        most = self.limits.max_problems_per_file
        if len(unique) > most:  # past its `most` lowest lines, none of these can be shown
            lines = [obj.line(path) for path, _ in unique]
            last = heapq.nsmallest(most, lines)[-1] if most else -1
            chosen = [f for f, line in zip(unique, lines, strict=True) if line <= last]
            self.omitted += len(unique) - len(chosen)
            unique = chosen
        self.problems += [obj.problem(path, reason) for path, reason in unique]
        if len(self.problems) > 2 * most:
            self.problems = self.first(most)

    def first(self, count: int) -> list[errors.Problem]:
        """The first `count` problems in the order shown; the rest counted in `omitted`."""
        shown, more = report.first(self.problems, count)
        self.omitted += more
        return shown


def _cross_checks(objects: list[_Object], service_cidr: _Network) -> list[errors.Problem]:
    """Rules across documents: duplicates, undeclared namespaces, clashing service addresses,
    a clusterIP outside the cluster's service CIDR."""
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
                f"namespace {_shown(namespace)} is not declared: add a Namespace manifest for it "
                f"(only {' and '.join(BUILTIN_NAMESPACES)} exist without one)")))
        if obj.kind == "Service":
            problems += _service_clashes(obj, taken)
            problems += _outside(obj, service_cidr)
    return problems


def _qualified(obj: _Object) -> str:
    return obj.name or "" if obj.kind == "Namespace" else f"{obj.namespace}/{obj.name}"


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _outside(obj: _Object, service_cidr: _Network) -> list[errors.Problem]:
    """A clusterIP must lie in the service CIDR (the cluster file's serviceCIDR)."""
    spec = obj.body.get("spec")
    wanted = spec.get("clusterIP") if isinstance(spec, Mapping) else None
    if not isinstance(wanted, str) or not wanted or wanted == "None":
        return []
    try:
        address = ipaddress.ip_address(wanted)
    except ValueError:
        return []  # not an address: the field's own rule says so
    if address.version != 4 or address in service_cidr:
        return []  # IPv6 too is the field's own rule
    reason = (f"{wanted} is not in the cluster's service CIDR {service_cidr} "
              "(the cluster file's serviceCIDR)")
    return [obj.problem(("spec", "clusterIP"), reason)]


def _service_clashes(
    obj: _Object, taken: dict[tuple[str, Any], tuple[_Object, str]]
) -> Iterator[errors.Problem]:
    """A clusterIP or nodePort is allocated once in a cluster, as the API server enforces."""
    spec = obj.body.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    claims: list[tuple[tuple[str, Any], documents.Path, str]] = []
    if isinstance(spec.get("clusterIP"), str) and spec["clusterIP"]:
        claims.append((("clusterIP", spec["clusterIP"]), ("spec", "clusterIP"),
                       f"clusterIP {spec['clusterIP']}"))
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
