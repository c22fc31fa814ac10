"""YAML and JSON text -> plain documents, with the line of every field, refusing hostile input.

Pure: works on text already read; no file or network I/O. The parser is libyaml's event
stream (`yaml.CSafeLoader` when PyYAML was built with it): events come from an iterative C
state machine, so a deeply nested file cannot exhaust the Python stack, and building the
values here lets us record lines, reject duplicate keys as Kubernetes' strict decoding does,
and stop alias bombs before they expand.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler import errors

Path = tuple[str | int, ...]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "value")}
_COLLECTION_TAGS = {_TAG + "map", _TAG + "seq"}
_STR = _TAG + "str"
_AS_TEXT = {_STR, _TAG + "timestamp", _TAG + "value"}  # Kubernetes reads them as text
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
_MISSING = object()


@dataclass(frozen=True)
class Limits:
    """Bounds on the manifests; exceeding one is a problem, not a slow run or a flood."""

    max_bytes: int = 1024 * 1024  # one file
    max_depth: int = 64
    max_aliases: int = 100
    max_alias_nodes: int = 10_000
    max_total_bytes: int = 64 * 1024 * 1024  # every manifest file of a tree together
    # Problems reported; beyond these, one line says how many more there are.
    max_problems_per_file: int = 100
    max_problems: int = 1000


DEFAULT_LIMITS = Limits()


@dataclass
class Document:
    """One YAML document: its value and the line (1-based) of each field path in it."""

    data: Any
    lines: dict[Path, int]
    line: int

    def line_of(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return self.line


@dataclass
class ParseError(Exception):
    """The text is not acceptable YAML; `line` is 1-based (0 when unknown)."""

    line: int
    reason: str


@dataclass
class _Frame:
    value: dict[str, Any] | list[Any]
    path: Path
    anchor: str | None
    size: int = 1
    key: str | None = None
    key_line: int = 0
    first_lines: dict[str, int] = field(default_factory=dict)
    mapping: bool = False


class _Builder:
    """Turns the event stream of one file into Documents, enforcing the limits."""

    def __init__(self, text: str, limits: Limits) -> None:
        self.loader = _Loader(text)
        self.limits = limits
        self.aliases = 0
        self.alias_nodes = 0
        self.anchors: dict[str, tuple[Any, int]] = {}
        # Each plain scalar's value, by its text: a file repeats most of them (`1`, `true`,
        # `app`), and resolving one is most of a scalar's cost. Bounded by the file's size.
        self.plain: dict[str, Any] = {}
        self.resolvers: dict[str, list[tuple[str, Any]]] = self.loader.yaml_implicit_resolvers

    def documents(self) -> Iterator[Document]:
        try:
            while True:
                event = self.loader.get_event()
                if isinstance(event, yaml.StreamEndEvent):
                    return
                if isinstance(event, yaml.DocumentStartEvent):
                    start = event.start_mark
                    yield self.document(start.line + 1 if start else 0)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark else 0
            reason = f"invalid YAML: {e.problem or e.context}"
            if e.context and e.context_mark is not None and e.problem:
                reason += f" ({e.context} started at line {e.context_mark.line + 1})"
            raise ParseError(line, reason) from e
        except yaml.YAMLError as e:
            raise ParseError(0, f"invalid YAML: {str(e).splitlines()[0]}") from e
        finally:
            self.loader.dispose()

    def document(self, start: int) -> Document:
        self.anchors = {}
        lines: dict[Path, int] = {}
        stack: list[_Frame] = []
        root: list[Any] = []
        next_event, resolvers = self.loader.get_event, self.resolvers
        scalar_event = yaml.ScalarEvent
        while True:
            event = next_event()
            line = event.start_mark.line + 1
            top = stack[-1] if stack else None
            if type(event) is scalar_event and top is not None and top.mapping:
                # Most events of a manifest: a key, or a plain value in a mapping.
                if top.key is None:
                    text = event.value
                    if event.tag is None and text not in top.value and (
                        not event.implicit[0] or text[:1] not in resolvers
                        or self.resolve(text) == _STR  # `<<`, YAML's merge key, is not
                    ):
                        top.key, top.key_line = text, line  # a string key, given once
                        top.first_lines[text] = line
                    else:
                        self.key(top, event, line)
                    continue
                if event.anchor is None:
                    value = self.scalar(event, line)
                    top.size += 1
                    lines[(*top.path, top.key)] = top.key_line
                    top.value[top.key] = value  # type: ignore[call-overload]
                    top.key = None
                    continue
            if isinstance(event, yaml.DocumentEndEvent):
                return Document(root[0] if root else None, lines, start)
            if isinstance(event, _ENDS):
                done = stack.pop()
                if done.anchor is not None:
                    self.anchors[done.anchor] = (done.value, done.size)
                self.attach(stack, root, lines, done.value, done.size, done.path, 0)
                continue
            path = self.child_path(stack, event, line)
            if path is None:
                continue  # that scalar was a mapping key
            if isinstance(event, yaml.AliasEvent):
                value, size = self.alias(event, line)
                self.attach(stack, root, lines, value, size, path, line)
            elif isinstance(event, yaml.ScalarEvent):
                value = self.scalar(event, line)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1)
                self.attach(stack, root, lines, value, 1, path, line)
            else:
                self.check_tag(event.tag, _COLLECTION_TAGS, line)
                if len(stack) >= self.limits.max_depth:
                    raise ParseError(line, f"nested deeper than {self.limits.max_depth} levels")
                lines[path] = lines.get(path, line)
                mapping = isinstance(event, yaml.MappingStartEvent)
                container: dict[str, Any] | list[Any] = {} if mapping else []
                stack.append(_Frame(container, path, event.anchor, mapping=mapping))

    def child_path(self, stack: list[_Frame], event: Any, line: int) -> Path | None:
        """The path of the node `event` starts; None when it is a key (then it is recorded)."""
        if not stack:
            return ()
        top = stack[-1]
        if not top.mapping:
            return (*top.path, len(top.value))
        if top.key is not None:
            return (*top.path, top.key)
        if not isinstance(event, yaml.ScalarEvent):
            raise ParseError(line, "a mapping key must be a string, not a list or mapping")
        self.key(top, event, line)
        return None

    def key(self, top: _Frame, event: Any, line: int) -> None:
        """Record a mapping key: a string, given once, and not YAML's merge key."""
        if event.tag is None and event.value == "<<" and event.implicit[0]:
            raise ParseError(line, "YAML merge keys (<<) are not supported: write the fields out")
        key = self.scalar(event, line)
        if not isinstance(key, str):
            raise ParseError(line, f"mapping key {event.value} must be a string: quote it")
        if key in top.value:
            first = top.first_lines[key]
            raise ParseError(line, f"duplicate key {errors.excerpt(key)} (first at line {first})")
        top.key, top.key_line = key, line
        top.first_lines[key] = line

    def attach(
        self,
        stack: list[_Frame],
        root: list[Any],
        lines: dict[Path, int],
        value: Any,
        size: int,
        path: Path,
        line: int,
    ) -> None:
        if line:
            lines[path] = line
        if not stack:
            root.append(value)
            return
        top = stack[-1]
        top.size += size
        if isinstance(top.value, list):
            top.value.append(value)
        else:
            assert top.key is not None
            lines[path] = top.key_line
            top.value[top.key] = value
            top.key = None

    def alias(self, event: Any, line: int) -> tuple[Any, int]:
        if event.anchor not in self.anchors:
            raise ParseError(line, f"alias *{event.anchor} refers to no complete anchor")
        value, size = self.anchors[event.anchor]
        self.aliases += 1
        self.alias_nodes += size
        if self.aliases > self.limits.max_aliases:
            raise ParseError(line, f"more than {self.limits.max_aliases} YAML aliases")
        if self.alias_nodes > self.limits.max_alias_nodes:
            raise ParseError(
                line, f"YAML aliases expand to more than {self.limits.max_alias_nodes} nodes"
            )
        return value, size

    def scalar(self, event: Any, line: int) -> Any:
        tag = event.tag
        if tag is None and not event.implicit[0]:
            return event.value  # quoted, untagged: a string, as the resolver would say
        if tag is None and event.value[:1] not in self.resolvers:
            return event.value  # no implicit type starts with this character: a string
        if tag is None:
            value = self.plain.get(event.value, _MISSING)
            if value is _MISSING:
                value = self.plain[event.value] = self.construct(self.resolve(event.value),
                                                                 event.value, line)
            return value
        if tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        return self.construct(tag, event.value, line)

    def resolve(self, text: str) -> str:
        """A plain scalar's tag, as `SafeLoader.resolve` finds it (it has no path or
        wildcard resolvers), without its per-call list building."""
        for tag, pattern in self.resolvers.get(text[:1], ()):
            if pattern.match(text):
                return tag
        return _STR

    def construct(self, tag: str, text: str, line: int) -> Any:
        self.check_tag(tag, _SCALAR_TAGS, line)
        if tag in _AS_TEXT:
            return text  # Kubernetes reads timestamps as the strings they are
        value = self.loader.yaml_constructors[tag](self.loader, yaml.ScalarNode(tag, text))
        if isinstance(value, float) and not math.isfinite(value):
            raise ParseError(line, f"{text} is not a number JSON can carry")
        return value

    @staticmethod
    def check_tag(tag: str | None, allowed: set[str], line: int) -> None:
        if tag is not None and tag != "!" and tag not in allowed:
            raise ParseError(line, f"YAML tag {tag} is not supported")


def parse(text: str, limits: Limits | None = None) -> Iterator[Document]:
    """Each document in `text` (YAML, or JSON which is YAML), empty ones included as None."""
    return _Builder(text, limits or DEFAULT_LIMITS).documents()
