"""The engine layer: the only code that speaks Docker (import-linter keeps it so).

In: plan actions (`plan.PodIdentity`, `plan.DeletePod`, ...) and the cluster's nodes.
Out: observed containers (`observe.ContainerJSON`) and errors with intent (`errors.py`).
I/O: each node's Docker Engine API, over its socket or mutual TLS; nothing else.

- `client.py`   one client per node; engine failures mapped to podyard errors, once
- `podspec.py`  pure: a pod -> the exact create requests of its containers and volumes
- `driver.py`   one node's engine behind the `Driver` protocol: list, create, delete, restart
- `cache.py`    informer-style container cache, fed by events and the driver's own actions
- `events.py`   the live event stream, and a pod's history for `describe`
- `images.py`   imagePullPolicy, and the pause image pulled or built on the node
- `pause.py`    the pause image's build context (busybox, FROM scratch)
- `logstream.py` a container's log on a client of its own, closable from any thread (the API)
"""
