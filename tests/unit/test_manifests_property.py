"""Whatever the input, loading ends in a model or a ManifestError, never another exception."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler import errors, manifests, model

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = Path(__file__).parents[2] / "examples" / "manifests"
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def seed_documents() -> list[dict[str, Any]]:
    """Every valid document of the corpus and the examples, to mutate."""
    found = []
    for path in sorted([*(CORPUS / "valid").iterdir(), *EXAMPLES.iterdir()]):
        text = path.read_text(encoding="utf-8-sig")
        found += [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    return found


SEEDS = seed_documents()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False,
    allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["v1", "Pod", "Service", "ReplicationController", "Namespace", "List",
                     "250m", "12XB", "None", "NodePort", "http", "a/b", "-x", "10.0.0.1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=12,
)


def load_text(text: str | bytes, name: str = "m.yaml") -> model.DesiredState | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, name)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        try:
            return manifests.load(Path(tmp))
        except errors.ManifestError as e:
            assert e.problems
            assert all(isinstance(p, errors.Problem) and p.file == name for p in e.problems)
            return None


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a nested value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += paths(item, (*prefix, i))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with a few random edits: replace, delete, add or duplicate."""
    doc: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(doc)[1:]))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(values)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return doc


@SETTINGS
@given(mutated())
def test_mutated_manifests_give_a_model_or_problems(doc: dict[str, Any]) -> None:
    load_text(yaml.safe_dump(doc))


@SETTINGS
@given(st.lists(mutated(), min_size=1, max_size=3))
def test_mutated_lists_as_json_give_a_model_or_problems(docs: list[dict[str, Any]]) -> None:
    load_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}), "m.json")


@SETTINGS
@given(values)
def test_random_values_give_a_model_or_problems(value: Any) -> None:
    load_text(yaml.safe_dump(value))


@SETTINGS
@given(st.text(max_size=200))
def test_random_text_gives_a_model_or_problems(text: str) -> None:
    load_text(text)


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes_give_a_model_or_problems(data: bytes) -> None:
    load_text(data)


@SETTINGS
@given(st.sampled_from(SEEDS), st.integers(0, 400))
def test_truncated_manifests_give_a_model_or_problems(doc: dict[str, Any], cut: int) -> None:
    load_text(yaml.safe_dump(doc)[:cut])
