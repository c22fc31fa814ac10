"""`podyard get svc|endpoints` and `describe svc`: kubectl's output, from the status file."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler import plan
from reconciler.cli import console, podyard, services
from reconciler.cluster import health
from reconciler.control import observation, status

pytestmark = pytest.mark.unit

NOW = 1_700_000_000.0
WEB = (("app", "web"),)


def service_status(
    name: str, kind: str = "ClusterIP", ip: str = "10.96.0.50",
    ports: tuple[tuple[str, int, str, int, str], ...] = (("", 80, "TCP", 0, "8080"),),
    endpoints: tuple[tuple[str, tuple[str, ...]], ...] = (),
    namespace: str = "default", selector: tuple[tuple[str, str], ...] = WEB,
    problem: str = "", created: float = NOW - 300,
) -> plan.ServiceStatus:
    return plan.ServiceStatus(
        namespace, name, kind, ip, ports,
        endpoints or tuple((n or f"{p}/{proto}", ()) for n, p, proto, _, _ in ports),
        selector, created, problem, labels=(("tier", "front"), ("app", "web")),
    )


WEB_SVC = service_status(
    "web", "NodePort", "10.96.182.82",
    (("http", 80, "TCP", 30080, "http"), ("", 443, "TCP", 30443, "8443")),
    (("http", ("10.244.1.5:8080", "10.244.2.3:8080", "10.244.2.4:8080", "10.244.3.2:8080")),
     ("443/TCP", ("10.244.1.5:8443",))),
)
DB_SVC = service_status("db", ip="10.96.0.20", ports=(("", 5432, "TCP", 0, "5432"),),
                        selector=(("tier", "db"), ("app", "shop")))
CLASH = service_status("clash", ip="", created=0.0, problem="clusterIP 10.96.0.20 is already "
                       "allocated to Service default/db (scope default)")
CART = service_status("cart", ip="10.96.44.1", ports=(("dns", 53, "UDP", 0, "53"),),
                      endpoints=(("dns", ("10.244.1.9:53",)),), namespace="shop", selector=())
ALL = (WEB_SVC, DB_SVC, CLASH, CART)


def document(*statuses: plan.ServiceStatus) -> dict[str, Any]:
    """A status file's content, through the controller's own `status.document`."""
    judged = health.Health(grace=4, eviction_delay=4)
    observer = observation.Observer({}, judged, clock=lambda: NOW, report=lambda t: None)
    return status.document("default", judged, observer, [], plan.Plan(services=statuses), NOW)


def found(*statuses: plan.ServiceStatus) -> list[services.Service]:
    listed = services.from_status([json.loads(json.dumps(document(*statuses)))])
    assert listed is not None
    return listed


def run(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        *docs: dict[str, Any]) -> tuple[int, str, str]:
    """`podyard <argv>` against status files written in `tmp_path`; (exit code, out, err)."""
    monkeypatch.setattr(status, "DIRECTORY", tmp_path)
    for i, doc in enumerate(docs):
        assert status.write(tmp_path / f"status-s{i}.json", doc)
    out, err = io.StringIO(), io.StringIO()
    shell = console.Console(out=out, err=err)
    args = podyard.podyard_parser().parse_args(argv)
    code = console.guard(lambda: podyard._podyard(args, shell), shell)
    return code, out.getvalue(), err.getvalue()


def test_the_status_file_carries_each_service_with_ports_and_endpoints() -> None:
    (entry,) = document(WEB_SVC)["services"]
    assert entry == {
        "namespace": "default", "name": "web", "type": "NodePort", "clusterIP": "10.96.182.82",
        "labels": {"tier": "front", "app": "web"}, "selector": {"app": "web"},
        "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080,
             "targetPort": "http", "endpoints": ["10.244.1.5:8080", "10.244.2.3:8080",
                                                 "10.244.2.4:8080", "10.244.3.2:8080"]},
            {"name": "", "port": 443, "protocol": "TCP", "nodePort": 30443, "targetPort": 8443,
             "endpoints": ["10.244.1.5:8443"]},
        ],
        "created": NOW - 300, "problem": "",
    }


def test_get_svc_prints_kubectl_s_columns() -> None:
    text = services.get_table(found(WEB_SVC, DB_SVC, CLASH), now=NOW)
    assert text.splitlines() == [
        "NAME    TYPE        CLUSTER-IP     EXTERNAL-IP   PORT(S)                      AGE",
        "clash   ClusterIP   <none>         <none>        80/TCP                       <unknown>",
        "db      ClusterIP   10.96.0.20     <none>        5432/TCP                     5m",
        "web     NodePort    10.96.182.82   <none>        80:30080/TCP,443:30443/TCP   5m",
    ]


def test_get_svc_wide_in_every_namespace_adds_namespace_and_selector() -> None:
    text = services.get_table(found(WEB_SVC, DB_SVC, CART), wide=True, all_namespaces=True,
                              now=NOW)
    assert [line.split() for line in text.splitlines()] == [
        ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"],
        ["default", "db", "ClusterIP", "10.96.0.20", "<none>", "5432/TCP", "5m",
         "app=shop,tier=db"],
        ["default", "web", "NodePort", "10.96.182.82", "<none>", "80:30080/TCP,443:30443/TCP",
         "5m", "app=web"],
        ["shop", "cart", "ClusterIP", "10.96.44.1", "<none>", "53/UDP", "5m", "<none>"],
    ]


def test_get_endpoints_shows_three_addresses_then_how_many_more() -> None:
    text = services.endpoints_table(found(WEB_SVC, DB_SVC), now=NOW)
    assert text.splitlines() == [
        "NAME   ENDPOINTS                                                     AGE",
        "db     <none>                                                        5m",
        "web    10.244.1.5:8080,10.244.2.3:8080,10.244.2.4:8080 + 2 more...   5m",
    ]


@pytest.mark.parametrize(
    ("addresses", "text"),
    [
        ((), "<none>"),
        (("10.0.0.1:80",), "10.0.0.1:80"),
        (("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"), "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80"),
        (("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"),
         "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more..."),
    ],
)
def test_endpoints_read_like_kubectl(addresses: tuple[str, ...], text: str) -> None:
    assert services.endpoints_text([services.Port("", 80, "TCP", 0, 80, addresses)]) == text


def test_describe_svc_lays_out_a_node_port_service_as_kubectl_does() -> None:
    (web,) = found(WEB_SVC)
    assert services.describe(web) == "\n".join([
        "Name:                     web",
        "Namespace:                default",
        "Labels:                   app=web",
        "                          tier=front",
        "Annotations:              <none>",
        "Selector:                 app=web",
        "Type:                     NodePort",
        "IP Family Policy:         SingleStack",
        "IP Families:              IPv4",
        "IP:                       10.96.182.82",
        "IPs:                      10.96.182.82",
        "Port:                     http  80/TCP",
        "TargetPort:               http/TCP",
        "NodePort:                 http  30080/TCP",
        "Endpoints:                10.244.1.5:8080,10.244.2.3:8080,10.244.2.4:8080 + 1 more...",
        "Port:                     <unset>  443/TCP",
        "TargetPort:               8443/TCP",
        "NodePort:                 <unset>  30443/TCP",
        "Endpoints:                10.244.1.5:8443",
        "Session Affinity:         None",
        "External Traffic Policy:  Cluster",
        "Events:                   <none>",
    ])


def test_describe_svc_says_why_a_service_has_no_address() -> None:
    (clash,) = found(CLASH)
    assert services.describe(clash).splitlines() == [
        "Name:              clash",
        "Namespace:         default",
        "Labels:            app=web",
        "                   tier=front",
        "Annotations:       <none>",
        "Selector:          app=web",
        "Type:              ClusterIP",
        "IP Family Policy:  SingleStack",
        "IP Families:       IPv4",
        "IP:                <none>",
        "Port:              <unset>  80/TCP",
        "TargetPort:        8080/TCP",
        "Endpoints:         <none>",
        "Session Affinity:  None",
        "Problem:           clusterIP 10.96.0.20 is already allocated to Service default/db "
        "(scope default)",
        "Events:            <none>",
    ]


def test_get_svc_reads_the_status_files_of_the_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(["get", "svc"], tmp_path, monkeypatch, document(*ALL))
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["NAME", "clash", "db", "web"]
    assert err == ("service clash has no address: clusterIP 10.96.0.20 is already allocated "
                   "to Service default/db (scope default)\n")
    code, out, _ = run(["get", "services", "-n", "shop"], tmp_path, monkeypatch)
    assert code == 0 and out.splitlines()[1].split()[0] == "cart"


def test_get_ep_leaves_out_services_without_a_selector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(["get", "ep", "-A"], tmp_path, monkeypatch, document(*ALL))
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()][1:] == [
        ["default", "clash"], ["default", "db"], ["default", "web"]
    ]


def test_the_services_of_every_scope_are_listed_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(["get", "service"], tmp_path, monkeypatch,
                       document(WEB_SVC), document(DB_SVC))
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["NAME", "db", "web"]


def test_no_service_in_the_namespace_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(["get", "svc", "-n", "empty"], tmp_path, monkeypatch,
                         document(*ALL))
    assert (code, out, err) == (0, "", "No resources found in empty namespace.\n")


@pytest.mark.parametrize("argv", [["get", "svc"], ["get", "endpoints"], ["describe", "svc", "web"]])
@pytest.mark.parametrize("older", [False, True])
def test_without_a_service_status_a_clear_message_and_a_non_zero_exit(
    argv: list[str], older: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = [{"scope": "default", "time": NOW, "nodes": {}}] if older else []
    code, out, err = run(argv, tmp_path, monkeypatch, *docs)
    assert code == 3 and out == ""
    assert err.startswith("error: no controller has reported Services on this host yet")
    assert "Traceback" not in err


def test_describe_an_unknown_service_is_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(["describe", "service", "nope"], tmp_path, monkeypatch,
                         document(*ALL))
    assert (code, out) == (1, "")
    assert err == 'Error from server (NotFound): services "nope" not found\n'
    code, out, _ = run(["describe", "svc", "cart", "-n", "shop"], tmp_path, monkeypatch)
    assert code == 0 and out.startswith("Name:              cart\nNamespace:         shop\n")


def test_get_svc_as_json_is_kubernetes_shaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(["get", "svc", "-o", "json"], tmp_path, monkeypatch,
                       document(WEB_SVC))
    assert code == 0
    (item,) = json.loads(out)["items"]
    assert item["kind"] == "Service" and item["metadata"]["name"] == "web"
    assert item["spec"]["clusterIP"] == "10.96.182.82"
    assert item["spec"]["ports"][0] == {"name": "http", "port": 80, "protocol": "TCP",
                                        "targetPort": "http", "nodePort": 30080}
    code, out, _ = run(["get", "ep", "-o", "json"], tmp_path, monkeypatch)
    (item,) = json.loads(out)["items"]
    assert item["subsets"][1] == {"addresses": [{"ip": "10.244.1.5"}],
                                  "ports": [{"port": 8443, "protocol": "TCP"}]}


def test_a_status_file_with_odd_content_shows_what_it_can() -> None:
    listed = services.from_status([{"services": [
        {"name": "x", "ports": [{"port": "80"}, "junk"], "selector": "junk"}, "junk",
    ]}])
    assert listed is not None
    (x,) = listed
    assert (x.name, x.type, x.selector, services.ports_text(x.ports)) == (
        "x", "ClusterIP", (), "80/TCP"
    )
