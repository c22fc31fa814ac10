"""labelSelector and fieldSelector, parsed and matched as the API server does.

Pure. A label selector is a comma-separated list of requirements, all of which must hold:
`key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
`key>1`, `key<1` (`!=` and `notin` also match an object without the label). A field selector
is a list of `field=value`, `field==value` or `field!=value` terms, over the fields each
resource supports (`FIELDS`); another field is refused as Kubernetes refuses it. A bad
selector raises `Invalid`, answered with 400 Bad Request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Match = Callable[[Mapping[str, Any]], bool]

_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|<|>|[^\s=!(),<>]+)")
_KEY = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


class Invalid(ValueError):
    """A selector that does not parse, or names a field the resource does not support."""


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # exists, !, =, !=, in, notin, <, >
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key, "")
        match self.operator:
            case "exists":
                return has
            case "!":
                return not has
            case "=" | "in":
                return has and value in self.values
            case "!=" | "notin":
                return not has or value not in self.values
            case _:  # < and >: integer comparisons, never true for a non-integer label
                try:
                    number, bound = int(value), int(self.values[0])
                except ValueError:
                    return False
                return has and (number < bound if self.operator == "<" else number > bound)


def parse_labels(text: str) -> tuple[Requirement, ...]:
    """A labelSelector's requirements; Invalid when it does not parse."""
    tokens = [t for t in _TOKEN.findall(text) if t]
    if "".join(tokens) != re.sub(r"\s+", "", text):
        raise Invalid(f"unable to parse requirement: {text!r}")
    found: list[Requirement] = []
    i = 0
    while i < len(tokens):
        requirement, i = _requirement(tokens, i)
        found.append(requirement)
        if i < len(tokens):
            if tokens[i] != ",":
                raise Invalid(f"found '{tokens[i]}', expected: ','")
            i += 1
            if i == len(tokens):
                raise Invalid("found '', expected: identifier after ','")
    return tuple(found)


def _requirement(tokens: list[str], i: int) -> tuple[Requirement, int]:
    if tokens[i] == "!":
        key = _key(tokens, i + 1)
        return Requirement(key, "!"), i + 2
    key = _key(tokens, i)
    i += 1
    if i == len(tokens) or tokens[i] == ",":
        return Requirement(key, "exists"), i
    operator = tokens[i]
    if operator in ("=", "==", "!=", "<", ">"):
        value = tokens[i + 1] if i + 1 < len(tokens) and tokens[i + 1] != "," else ""
        _check_value(value)
        if operator in ("<", ">") and not value.lstrip("-").isdigit():
            raise Invalid(f"for '{operator}', the value must be an integer: {value!r}")
        step = 2 if value else 1
        return Requirement(key, "=" if operator == "==" else operator, (value,)), i + step
    if operator in ("in", "notin"):
        if i + 1 >= len(tokens) or tokens[i + 1] != "(":
            raise Invalid(f"found '{tokens[i + 1] if i + 1 < len(tokens) else ''}', "
                          "expected: '('")
        values, i = _values(tokens, i + 2)
        return Requirement(key, operator, values), i
    raise Invalid(f"found '{operator}', expected: in, notin, =, ==, !=, gt, lt")


def _values(tokens: list[str], i: int) -> tuple[tuple[str, ...], int]:
    values: list[str] = []
    expect_value = True
    while i < len(tokens) and tokens[i] != ")":
        token = tokens[i]
        if token == ",":
            if expect_value:
                values.append("")
            expect_value = True
        else:
            _check_value(token)
            values.append(token)
            expect_value = False
        i += 1
    if i == len(tokens):
        raise Invalid("found '', expected: ')'")
    return tuple(values), i + 1


def _key(tokens: list[str], i: int) -> str:
    if i >= len(tokens) or not _KEY.fullmatch(tokens[i]):
        found = tokens[i] if i < len(tokens) else ""
        raise Invalid(f"invalid label key {found!r}")
    return tokens[i]


def _check_value(value: str) -> None:
    if len(value) > 63 or not _VALUE.fullmatch(value):
        raise Invalid(f"invalid label value: {value!r}")


def label_matcher(text: str) -> Match:
    """A test of an object's metadata.labels against a labelSelector."""
    requirements = parse_labels(text)

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in requirements)

    return matches


# -- fields ------------------------------------------------------------------------------------


def _path(*names: str, default: str = "") -> Callable[[Mapping[str, Any]], str]:
    def get(obj: Mapping[str, Any]) -> str:
        value: Any = obj
        for name in names:
            value = value.get(name) if isinstance(value, Mapping) else None
        if value is None:
            return default
        return str(value).lower() if isinstance(value, bool) else str(value)

    return get


_COMMON = {"metadata.name": _path("metadata", "name"),
           "metadata.namespace": _path("metadata", "namespace")}
FIELDS: dict[str, dict[str, Callable[[Mapping[str, Any]], str]]] = {
    "pods": {**_COMMON, **{f: _path(*f.split(".")) for f in (
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "status.phase", "status.podIP", "status.nominatedNodeName")}},
    "events": {**_COMMON, **{f: _path(*f.split(".")) for f in (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "type")},
        "source": _path("source", "component")},
    "namespaces": {**_COMMON, "status.phase": _path("status", "phase")},
    "nodes": {**_COMMON, "spec.unschedulable": _path("spec", "unschedulable", default="false")},
    "replicationcontrollers": {**_COMMON, "status.replicas": _path("status", "replicas")},
    "services": {**_COMMON, "spec.clusterIP": _path("spec", "clusterIP"),
                 "spec.type": _path("spec", "type")},
    "endpoints": dict(_COMMON),
}


def parse_fields(text: str) -> tuple[tuple[str, str, str], ...]:
    """A fieldSelector's terms as (field, operator "=" or "!=", value); `\\` escapes."""
    terms: list[tuple[str, str, str]] = []
    for raw in _split(text, ","):
        if not raw:
            continue
        for operator in ("!=", "==", "="):
            field, sep, value = _partition(raw, operator)
            if sep:
                terms.append((field.strip(), "!=" if operator == "!=" else "=",
                              _unescape(value)))
                break
        else:
            raise Invalid(f"invalid selector: '{raw}'; can't understand '{raw}'")
    return tuple(terms)


def field_matcher(resource: str, text: str) -> Match:
    """A test of an object against a fieldSelector; Invalid for an unsupported field."""
    supported = FIELDS.get(resource, _COMMON)
    tests = []
    for field, operator, value in parse_fields(text):
        if field not in supported:
            raise Invalid(f'field label not supported: {field}')
        tests.append((supported[field], operator == "=", value))

    def matches(obj: Mapping[str, Any]) -> bool:
        return all((get(obj) == value) == equal for get, equal, value in tests)

    return matches


def _split(text: str, sep: str) -> list[str]:
    """`text` split at each `sep` not escaped by a backslash (escapes kept)."""
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current, escaped = current + "\\" + ch, False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current + ("\\" if escaped else ""))
    return parts


def _partition(term: str, operator: str) -> tuple[str, str, str]:
    """The first unescaped `operator` in a term."""
    i, escaped = 0, False
    while i < len(term):
        if escaped:
            escaped = False
        elif term[i] == "\\":
            escaped = True
        elif term.startswith(operator, i):
            return term[:i], operator, term[i + len(operator):]
        i += 1
    return term, "", ""


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)
