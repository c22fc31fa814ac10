"""Manifests: files (or a Git tree) in, a validated `model.DesiredState` out.

In: a directory or file of Kubernetes v1 YAML/JSON, from the work tree or Git's HEAD tree.
Out: `model.DesiredState`, or `errors.ManifestError` naming every problem (file, line, field,
reason) at once. I/O: reading those files and running `git`, bounded in size and time.

- `files.py`      find and read manifest files; the Git revision
- `documents.py`  YAML -> documents that remember each value's line, with hostile-input limits
- `schema.py`     the JSON Schemas in `schemas/`, and their errors in kubectl's words
- `rules.py`      the API server's checks beyond the schema, one document at a time
- `load.py`       cross-document rules, the model, and the `Loader` that re-reads only changes
"""

from reconciler.manifests.load import Loader, load, revision, summary

__all__ = ["Loader", "load", "revision", "summary"]
