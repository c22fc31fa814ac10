"""Pods as the Kubernetes API writes them: metadata, spec, status.

Pure: an observed pod (what its containers' labels and states say) and the template it was
made from (the manifests' own spec, annotations included) in, a v1 Pod as JSON data out. A
pod whose template changed since it was made (a rollout under way) shows the current spec.
Pending pods, which no node could take, are built from their template alone.
"""

from __future__ import annotations

from typing import Any

from reconciler import model, observe
from reconciler.api import meta

HASH_ANNOTATION = "podyard.io/template-hash"
REVISION_ANNOTATION = "podyard.io/revision"


def pod(
    p: observe.ObservedPod,
    template: model.PodTemplate | None,
    owner_uid: str,
    host_ip: str,
    deleting_since: float | None = None,
) -> dict[str, Any]:
    """One observed pod; `owner_uid`: its RC's uid, when it has an owner."""
    spec = template.spec if template else _observed_spec(p)
    annotations = dict(template.annotations) if template else {}
    annotations[HASH_ANNOTATION] = p.template_hash
    if p.revision:
        annotations[REVISION_ANNOTATION] = p.revision
    metadata = _metadata(p.namespace, p.name, meta.pod_uid(p.uid), p.created, p.owner,
                         owner_uid, dict(p.labels), annotations)
    if deleting_since is not None:
        metadata["deletionTimestamp"] = meta.timestamp(deleting_since)
        metadata["deletionGracePeriodSeconds"] = spec.termination_grace_period_seconds
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": pod_spec(spec, p.node),
        "status": _status(p, spec, host_ip),
    }


def pending(
    namespace: str, name: str, owner: str, owner_uid: str, template: model.PodTemplate,
    reason: str, since: float,
) -> dict[str, Any]:
    """A pod no node can take: Pending, PodScheduled False with the scheduler's reason."""
    uid = meta.stable_uid("pod", namespace, name)
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": _metadata(namespace, name, uid, since, owner, owner_uid,
                              dict(template.labels), dict(template.annotations)),
        "spec": pod_spec(template.spec, ""),
        "status": {
            "phase": "Pending",
            "conditions": [_condition("PodScheduled", False, since, "Unschedulable", reason)],
            "qosClass": qos_class(template.spec),
        },
    }


def _metadata(
    namespace: str, name: str, uid: str, created: float, owner: str, owner_uid: str,
    labels: dict[str, str], annotations: dict[str, str],
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    kind, _, owner_name = owner.partition("/")
    if owner_name:
        metadata["generateName"] = f"{owner_name}-"
    metadata.update({"namespace": namespace, "uid": uid,
                     "creationTimestamp": meta.timestamp(created)})
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    if owner_name:
        metadata["ownerReferences"] = [{
            "apiVersion": "v1", "kind": kind, "name": owner_name, "uid": owner_uid,
            "controller": True, "blockOwnerDeletion": True,
        }]
    return metadata


def pod_spec(spec: model.PodSpec, node: str) -> dict[str, Any]:
    """A PodSpec as the API server returns it, defaults filled in."""
    doc: dict[str, Any] = {}
    if spec.volumes:
        doc["volumes"] = [_volume(v) for v in spec.volumes]
    doc["containers"] = [container(c) for c in spec.containers]
    doc.update({
        "restartPolicy": spec.restart_policy,
        "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
        "dnsPolicy": "ClusterFirst",
    })
    if spec.node_selector:
        doc["nodeSelector"] = dict(spec.node_selector)
    if node:
        doc["nodeName"] = node
    doc.update({"securityContext": {}, "schedulerName": "default-scheduler",
                "priority": 0, "enableServiceLinks": True})
    return doc


def container(c: model.Container) -> dict[str, Any]:
    """One container of a spec, in the API's field order."""
    doc: dict[str, Any] = {"name": c.name, "image": c.image}
    if c.command is not None:
        doc["command"] = list(c.command)
    if c.args is not None:
        doc["args"] = list(c.args)
    if c.working_dir:
        doc["workingDir"] = c.working_dir
    if c.ports:
        doc["ports"] = [_port(p) for p in c.ports]
    if c.env:
        doc["env"] = [{"name": k, "value": v} for k, v in c.env]
    doc["resources"] = _resources(c.resources)
    if c.volume_mounts:
        doc["volumeMounts"] = [
            {"name": m.name, "mountPath": m.mount_path}
            | ({"readOnly": True} if m.read_only else {})
            for m in c.volume_mounts
        ]
    doc.update({"terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File", "imagePullPolicy": c.image_pull_policy})
    return doc


def _port(p: model.ContainerPort) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": p.name} if p.name else {}
    if p.host_port:
        doc["hostPort"] = p.host_port
    doc.update({"containerPort": p.container_port, "protocol": p.protocol})
    return doc


def _resources(r: model.Resources) -> dict[str, Any]:
    limits = {k: v for k, v in (("cpu", r.cpu_limit and meta.cpu(r.cpu_limit)),
                                ("memory", r.memory_limit and meta.memory(r.memory_limit))) if v}
    requests = {k: v for k, v in (("cpu", r.cpu_request and meta.cpu(r.cpu_request)),
                                  ("memory", r.memory_request and meta.memory(r.memory_request)))
                if v}
    doc: dict[str, Any] = {}
    if limits:
        doc["limits"] = limits
    if requests:
        doc["requests"] = requests
    return doc


def _volume(v: model.Volume) -> dict[str, Any]:
    if v.is_empty_dir:
        return {"name": v.name, "emptyDir": {}}
    return {"name": v.name, "hostPath": {"path": v.host_path, "type": v.host_path_type}}


def qos_class(spec: model.PodSpec) -> str:
    """Kubernetes' QoS class: BestEffort (nothing asked), Guaranteed (limits = requests for
    CPU and memory in every container), else Burstable."""
    resources = [c.resources for c in spec.containers]
    if all(r == model.Resources() for r in resources):
        return "BestEffort"
    if all(r.cpu_limit and r.memory_limit and r.cpu_request == r.cpu_limit
           and r.memory_request == r.memory_limit for r in resources):
        return "Guaranteed"
    return "Burstable"


def _observed_spec(p: observe.ObservedPod) -> model.PodSpec:
    """The spec of a pod whose template is no longer declared: what its containers show."""
    names = dict.fromkeys(c.name for c in p.containers)  # newest last: one per name, in order
    images = {c.name: c.image for c in p.containers}
    return model.PodSpec(containers=tuple(model.Container(n, images[n]) for n in names))


# -- status ------------------------------------------------------------------------------------


def _status(p: observe.ObservedPod, spec: model.PodSpec, host_ip: str) -> dict[str, Any]:
    statuses = [_container_status(p, c, spec.restart_policy) for c in spec.containers]
    ready = p.ready and len(p.containers) >= len(spec.containers) and all(
        s["ready"] for s in statuses)
    unready = [s["name"] for s in statuses if not s["ready"]]
    since = max([c.started_at or c.created for c in p.containers if c.running] or [p.created])
    if not ready:
        since = max([c.finished_at for c in p.containers if c.exited] + [p.created])
    why = ("ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    doc: dict[str, Any] = {
        "phase": phase(p, spec.restart_policy),
        "conditions": [
            _condition("Initialized", True, p.created),
            _condition("Ready", ready, since, *(() if ready else why)),
            _condition("ContainersReady", ready, since, *(() if ready else why)),
            _condition("PodScheduled", True, p.created),
        ],
    }
    if host_ip:
        doc["hostIP"] = host_ip
    if p.ip:
        doc["podIP"] = p.ip
        doc["podIPs"] = [{"ip": p.ip}]
    doc["startTime"] = meta.timestamp(p.created)
    doc["containerStatuses"] = statuses
    doc["qosClass"] = qos_class(spec)
    return doc


def phase(p: observe.ObservedPod, policy: str) -> str:
    """The pod's phase as the kubelet gives it: a container about to be restarted keeps its
    pod Running; only what will not be restarted makes it Succeeded or Failed."""
    found = p.phase
    if found not in ("Succeeded", "Failed") or p.pause is None or not p.pause.running:
        return found
    if policy == "Always" or (policy == "OnFailure" and found == "Failed"):
        return "Running"
    return found


def _condition(kind: str, ok: bool, since: float, reason: str = "", message: str = ""
               ) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": kind, "status": "True" if ok else "False",
                           "lastProbeTime": None, "lastTransitionTime": meta.timestamp(since)}
    if reason:
        doc["reason"] = reason
    if message:
        doc["message"] = message
    return doc


def _container_status(p: observe.ObservedPod, c: model.Container, policy: str) -> dict[str, Any]:
    newest = [x for x in p.containers if x.name == c.name]  # sorted oldest first
    seen = newest[-1] if newest else None
    if seen is None:
        return {"name": c.name, "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {}, "ready": False, "restartCount": 0, "image": c.image,
                "imageID": "", "started": False}
    state, last = container_state(seen, policy)
    ready = seen.running and p.pause is not None and p.pause.running
    return {
        "name": c.name, "state": state, "lastState": last, "ready": ready,
        "restartCount": seen.restarts, "image": seen.image or c.image, "imageID": "",
        "containerID": f"docker://{seen.id}", "started": seen.running,
    }


def container_state(
    c: observe.ObservedContainer, policy: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state, lastState): running, waiting (created, or crashed and about to be restarted
    after its back-off) or terminated."""
    if c.running:
        return {"running": {"startedAt": meta.timestamp(c.started_at or c.created)}}, {}
    if not c.exited:
        reason = "ContainerCreating" if c.state == "created" else c.state.capitalize()
        return {"waiting": {"reason": reason}}, {}
    terminated: dict[str, Any] = {"exitCode": c.exit_code or 0, "reason": exit_reason(c)}
    if c.started_at:
        terminated["startedAt"] = meta.timestamp(c.started_at)
    if c.finished_at:
        terminated["finishedAt"] = meta.timestamp(c.finished_at)
    terminated["containerID"] = f"docker://{c.id}"
    restarts = policy == "Always" or (policy == "OnFailure" and c.exit_code != 0)
    if restarts and c.streak >= 1:
        waiting = {"reason": "CrashLoopBackOff",
                   "message": f"back-off restarting failed container {c.name}"}
        return {"waiting": waiting}, {"terminated": terminated}
    return {"terminated": terminated}, {}


def exit_reason(c: observe.ObservedContainer) -> str:
    """Why a container ended, in the kubelet's words."""
    if c.oom_killed:
        return "OOMKilled"
    return "Completed" if c.exit_code == 0 else "Error"
