"""Documents -> schema problems: podyard's JSON Schemas and the messages they produce.

Pure: reads only the schemas shipped in the package (`reconciler.schemas`), once. A problem
here is a (field path, reason) pair; `manifests.py` adds the file and line.

The schemas carry three extension keywords (see schemas/common.json): `x-kubernetes-fields`
tells "not supported by podyard" from "unknown field", `x-kubernetes-values` does the same for
enum values, and `x-podyard-message` replaces the generic message where a better one exists.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema

from reconciler import errors
from reconciler.manifests.documents import Path

API_VERSION = "v1"
KINDS = ("Pod", "ReplicationController", "Service", "Namespace")
LIST = "List"
SUPPORTED = "podyard manages v1 Pod, ReplicationController, Service, Namespace"

_SCHEMA_FILES = {
    "Pod": "pod.json",
    "ReplicationController": "replicationcontroller.json",
    "Service": "service.json",
    "Namespace": "namespace.json",
    LIST: "list.json",
}
# Set by the API server on objects it returns; a manifest exported with `kubectl get -o yaml`
# carries them, and they must go.
_SERVER_FIELDS = {
    "uid",
    "resourceVersion",
    "generation",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
}
_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}

# What would hand a pod the node (Kubernetes' baseline level forbids most of it): podyard has
# no such field at any pod security level, and says so, so no operator reaches for a flag.
_HOST_ACCESS = {
    "io.k8s.api.core.v1.PodSpec": {"hostNetwork", "hostPID", "hostIPC", "securityContext"},
    "io.k8s.api.core.v1.Container": {"securityContext"},
}
SUGGESTIONS = 100  # "did you mean" lookups per document, by default

Finding = tuple[Path, str]


class _Budget:
    """How many more "did you mean" lookups a check may make: each is a slow fuzzy match."""

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self) -> bool:
        self.left -= 1
        return self.left >= 0


@functools.cache
def _documents() -> dict[str, Any]:
    """Every schema document shipped, by its `$id`."""
    files = importlib.resources.files("reconciler.schemas")
    found = {}
    for name in ("common.json", *_SCHEMA_FILES.values()):
        document = json.loads(files.joinpath(name).read_text(encoding="utf-8"))
        found[document["$id"]] = document
    return found


def schema(kind: str) -> Mapping[str, Any]:
    """The schema document for `kind` (a key of the schema files), as shipped."""
    docs = _documents()
    return next(d for uri, d in docs.items() if uri.endswith("/" + _SCHEMA_FILES[kind]))


@functools.cache
def validator(kind: str) -> jsonschema.protocols.Validator:
    """The compiled validator for `kind`, built once.

    Its schema has every `$ref` replaced by its target (the schemas are not recursive):
    resolving references while validating costs a third of the time.
    """
    document = schema(kind)
    inlined = _inline(document, document["$id"], _documents())
    return jsonschema.Draft202012Validator(inlined)


def _inline(node: Any, base: str, docs: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, base, docs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        uri, _, pointer = urllib.parse.urljoin(base, node["$ref"]).partition("#")
        target = docs[uri]
        for part in pointer.split("/")[1:]:
            target = target[part]
        return _inline(target, uri, docs)
    return {k: _inline(v, base, docs) for k, v in node.items() if k != "$defs"}


def check_kind(doc: Mapping[str, Any], *, in_list: bool = False) -> Finding | None:
    """Why this document's apiVersion/kind is not one podyard manages, or None if it is."""
    api, kind = doc.get("apiVersion"), doc.get("kind")
    if "kind" not in doc:
        return ("kind",), "required field is missing"
    if "apiVersion" not in doc:
        return ("apiVersion",), "required field is missing"
    if not isinstance(kind, str) or not isinstance(api, str):
        return ("kind",), "apiVersion and kind must be strings"
    if kind == LIST and in_list:
        return ("kind",), "a List inside a List is not supported"
    if kind in (*KINDS, LIST) and api != API_VERSION:
        return ("apiVersion",), f"{kind} is apiVersion {API_VERSION}, not {api}"
    if kind not in (*KINDS, LIST):
        return ("kind",), f"kind {kind} ({api}) is not supported: {SUPPORTED}"
    return None


def check_schema(
    kind: str, doc: Mapping[str, Any], *, suggestions: int = SUGGESTIONS
) -> list[Finding]:
    """Every schema problem of a document of a supported kind, in readable words.

    Only the first `suggestions` unknown fields get a "did you mean": a file of thousands of
    unknown fields must still answer at once, and only its first problems are shown.
    """
    findings: list[Finding] = []
    budget = _Budget(suggestions)
    for error in validator(kind).iter_errors(doc):
        findings.extend(_translate(error, budget))
    return findings


def _translate(error: jsonschema.ValidationError, budget: _Budget) -> Iterator[Finding]:
    path: Path = tuple(error.absolute_path)
    sub: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    keyword, value = error.validator, error.instance
    if "x-podyard-message" in sub:
        yield path, str(sub["x-podyard-message"])
    elif keyword == "additionalProperties":
        yield from _extra_fields(path, sub, value, budget)
    elif keyword == "required":
        missing = [k for k in error.validator_value if k not in value]
        for name in missing:
            yield (*path, name), "required field is missing"
    elif keyword == "type":
        yield path, _type_reason(error.validator_value, value)
    elif keyword == "enum":
        yield path, _enum_reason(sub, value)
    elif keyword in ("minimum", "maximum"):
        low, high = sub.get("minimum"), sub.get("maximum")
        yield path, f"must be between {low} and {high}, not {value}"
    elif keyword == "minItems":
        yield path, "must not be empty"
    elif keyword == "const":
        yield path, f"must be {errors.excerpt(error.validator_value)}"
    else:  # pragma: no cover - every keyword the schemas use is handled above
        yield path, error.message


def _extra_fields(
    path: Path, sub: Mapping[str, Any], value: Any, budget: _Budget
) -> Iterator[Finding]:
    known = sub.get("properties", {})
    fields = sub.get("x-kubernetes-fields", [])
    kubernetes = set(fields)  # a set: `value` may hold thousands of names
    host_access = _HOST_ACCESS.get(str(sub.get("x-kubernetes-type")), set())
    resources, metadata = sub.get("x-kubernetes-resources"), path[-1:] == ("metadata",)
    unknown = _unknown(sub)
    for name in value:
        if name in known:
            continue
        if name in _SERVER_FIELDS and metadata:
            yield (*path, name), "is set by the API server, not declared: remove it"
        elif name in host_access:
            yield (*path, name), "not supported by podyard at any pod security level"
        elif name in kubernetes or ("/" in name and resources):
            yield (*path, name), "not supported by podyard"
        else:
            close = _close_match(name, [*known, *fields]) if budget.take() else None
            yield (*path, name), unknown + (f" (did you mean {close}?)" if close else "")


def _unknown(sub: Mapping[str, Any]) -> str:
    owner = str(sub.get("x-kubernetes-type", "")).rsplit(".", 1)[-1]
    where = f" of a Kubernetes {owner}" if owner else ""
    return f"unknown field: not a field{where}"


def _close_match(name: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.7)
    return close[0] if close else None


def _type_reason(expected: str | list[str], value: Any) -> str:
    names = [expected] if isinstance(expected, str) else expected
    wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
    reason = f"must be {wanted}, not {_describe(value)}"
    if "string" in names and isinstance(value, bool | int | float):
        text = json.dumps(value)
        reason += f' (quote it: "{text}")'
    return reason


def _describe(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {errors.excerpt(value)}"
    return "a list" if isinstance(value, list) else "a mapping"


def _enum_reason(sub: Mapping[str, Any], value: Any) -> str:
    allowed = ", ".join(str(v) if v else '""' for v in sub.get("enum", []))
    if value in sub.get("x-kubernetes-values", []):
        return f"{value} is not supported by podyard (supported: {allowed})"
    return f"must be one of {allowed}, not {errors.excerpt(value)}"


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # fullmatch: `$` passes a final newline


def format_path(path: Path) -> str:
    """`spec.containers[1].image`; keys that are not identifiers are quoted: `labels["a/b"]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out
