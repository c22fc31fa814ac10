"""podyard's reconciler: Kubernetes v1 manifests in, running Docker containers out.

Data flows one way: manifests (load, validate) -> model (desired state) -> observe (each
node's containers, from their labels) -> plan (a pure diff) -> execute (the Docker driver).
Beside them: schedule, nodes (health), loop (watch), cli.
"""

__version__ = "0.1.0"
