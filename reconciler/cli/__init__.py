"""The commands: `reconcile` (converge, dry-run, watch) and `podyard` (get, describe, logs).

In: argv. Out: text on stdout/stderr and an exit code. Everything a user sees is formatted
here; nothing below prints. Whatever goes wrong, a one-line reason, never a traceback.

- `console.py`    thread-safe output, exit codes, and `guard` (errors -> messages + codes)
- `reconcile.py`  the `reconcile` command
- `podyard.py`    the `podyard` command: kubectl-like tables read from the engines
- `nodes.py`      `podyard get nodes` and `describe node`
- `services.py`   `podyard get svc|endpoints` and `describe svc`, from the controller's status
- `summary.py`    `podyard status`
- `tables.py`     kubectl's formatting: columns, ages, quantities, JSON/YAML lists
"""
