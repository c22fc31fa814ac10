"""Manifests: files (or a Git tree) in, a validated `model.DesiredState` out.

In: a directory or file of Kubernetes v1 YAML/JSON, from the work tree or Git's HEAD tree.
Out: `model.DesiredState`, or `errors.ManifestError` naming every problem (file, line, field,
reason) at once, a flood cut short. Pods must keep to the pod security policy given (a
`model.PodSecurity`; Kubernetes' "baseline" level by default). I/O: reading those files and
running `git`, bounded in size and time.

- `files.py`      find and read manifest files; the Git revision
- `documents.py`  YAML -> documents that remember each value's line, with hostile-input limits
- `schema.py`     the JSON Schemas in `schemas/`, and their errors in kubectl's words
- `rules.py`      the API server's checks beyond the schema, one document at a time
- `policy.py`     the pod security policy (Kubernetes' "baseline" level unless relaxed)
- `load.py`       cross-document rules, the model, and the `Loader` that re-reads only changes
- `report.py`     the problems shown: in order, at most 100 per file and 1,000 in all
"""

from reconciler.manifests.load import Loader, load, revision, summary

__all__ = ["Loader", "load", "revision", "summary"]
