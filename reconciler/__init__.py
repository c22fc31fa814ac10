"""podyard's reconciler: Kubernetes v1 manifests in, running Docker containers out.

Data flows one way, and the subpackages show it (upper layers import lower ones, never back;
`make lint` checks it with import-linter):

    manifests/  files or a Git tree -> validated documents -> model.DesiredState
    observe.py  each node's containers -> ObservedPods, read from their labels (labels.py)
    plan/       pure: desired + observed -> actions (pods, scheduling)
    execute.py  actions -> the engine layer, bounded parallelism per node
    engine/     the only code that speaks Docker: client, driver, podspec, cache, events
Beside them: cluster/ (the cluster file, node health), control/ (a pass, the watch loop),
cli/ (`reconcile`, `podyard`), and at the bottom model.py, labels.py, errors.py.
"""

__version__ = "0.1.0"
