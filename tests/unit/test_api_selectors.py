"""labelSelector and fieldSelector select what the Kubernetes API server selects."""

from __future__ import annotations

import pytest

from reconciler.api import selectors

pytestmark = pytest.mark.unit

LABELS = {"app": "web", "tier": "front", "version": "3"}
OBJ = {"metadata": {"name": "web-1", "namespace": "shop", "labels": LABELS},
       "spec": {"nodeName": "node1"}, "status": {"phase": "Running"}}


@pytest.mark.parametrize(("selector", "matches"), [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("missing!=x", True),
    ("app in (web, db)", True),
    ("app in (db)", False),
    ("app notin (db,cache)", True),
    ("missing notin (x)", True),
    ("app", True),
    ("!app", False),
    ("!missing", True),
    ("app=web,tier=front", True),
    ("app=web,tier=back", False),
    ("version>2", True),
    ("version<2", False),
    ("app=", False),
    (" app = web , tier in ( front ) ", True),
])
def test_label_selector(selector: str, matches: bool) -> None:
    assert selectors.label_matcher(selector)(OBJ) is matches


@pytest.mark.parametrize("selector", [
    "app=web,", "app in web", "app in (web", "a b", "app=we b", "-app=web", "version>x",
    "app=" + "x" * 64, "app ~ web",
])
def test_invalid_label_selectors_are_refused(selector: str) -> None:
    with pytest.raises(selectors.Invalid):
        selectors.label_matcher(selector)


@pytest.mark.parametrize(("resource", "selector", "matches"), [
    ("pods", "metadata.name=web-1", True),
    ("pods", "metadata.name==web-2", False),
    ("pods", "metadata.namespace=shop,spec.nodeName=node1", True),
    ("pods", "status.phase!=Failed,status.phase!=Succeeded", True),
    ("pods", "status.phase=Pending", False),
    ("pods", "spec.nodeName=", False),
    ("nodes", "spec.unschedulable=false", True),
])
def test_field_selector(resource: str, selector: str, matches: bool) -> None:
    assert selectors.field_matcher(resource, selector)(OBJ) is matches


def test_event_fields_reach_into_the_involved_object() -> None:
    event = {"metadata": {"name": "e", "namespace": "shop"},
             "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u-1",
                                "namespace": "shop"},
             "reason": "Scheduled", "type": "Normal", "source": {"component": "podyard"}}
    match = selectors.field_matcher(
        "events", "involvedObject.name=web-1,involvedObject.namespace=shop,"
        "involvedObject.uid=u-1,involvedObject.kind=Pod,source=podyard,type=Normal")
    assert match(event)
    assert not selectors.field_matcher("events", "involvedObject.name=web-2")(event)


def test_a_field_the_resource_does_not_support_is_refused_as_kubernetes_does() -> None:
    with pytest.raises(selectors.Invalid, match=r"field label not supported: spec\.replicas"):
        selectors.field_matcher("pods", "spec.replicas=2")
    with pytest.raises(selectors.Invalid):
        selectors.field_matcher("pods", "metadata.name")


def test_escaped_commas_and_equals_belong_to_the_value() -> None:
    obj = {"metadata": {"name": "a,b=c"}}
    assert selectors.parse_fields(r"metadata.name=a\,b\=c") == (("metadata.name", "=", "a,b=c"),)
    assert selectors.field_matcher("pods", r"metadata.name=a\,b\=c")(obj)
