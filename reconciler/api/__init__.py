"""The read-only Kubernetes API: what `reconcile --watch --api-listen` serves to kubectl.

In: after each pass, the controller hands over what it knows as one immutable `Snapshot`
(the desired state, the observed pods with their nodes, each node's health and info, the
Services' status, the pending pods), and each finished action (`execute.Result`) as it ends.
Out: Kubernetes v1 JSON over HTTPS with client certificates: discovery, list, get and watch
of pods, replicationcontrollers, services, endpoints, nodes, namespaces and events, server-side
tables, pod logs. Every write is refused with a Status saying where changes go (Git).

Neither side waits on the other: `publisher.Publisher.offer` only drops the snapshot in a slot
(the newest wins) and returns; a thread of its own turns snapshots into objects and changes
(`store.Store`), which the server's threads only read. Log streams use engine clients of
their own, never the controller's drivers.

- `app.py`        the store, the publisher and the server of one controller, wired
- `snapshot.py`   the immutable hand-over from a pass
- `meta.py`       times, uids, quantities and Status objects as Kubernetes writes them
- `pods.py`       pods as Kubernetes writes them (metadata, spec, status)
- `objects.py`    every other kind, and the whole object set of a snapshot
- `events.py`     podyard's actions and node changes as Event objects
- `store.py`      the published objects, resourceVersions, the change history for watches
- `publisher.py`  the thread between the controller and the store
- `selectors.py`  labelSelector and fieldSelector
- `tables.py`     server-side printing (meta.k8s.io/v1 Table), kubectl's columns
- `discovery.py`  /version, /api, /api/v1, /apis, and the served resources
- `requests.py`   a URL as an API request (pure)
- `server.py`     HTTPS with client certificates, the answers, chunked streaming
- `streams.py`    watches (filtered, as Tables too) and log follows, written piece by piece
- `logs.py`       a pod's log from its node's engine, on a connection of its own
"""
