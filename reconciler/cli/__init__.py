"""The commands: `reconcile` (converge, dry-run, watch) and `podyard` (get, describe, logs).

In: argv. Out: text on stdout/stderr and an exit code. Everything a user sees is formatted
here; nothing below prints. Whatever goes wrong, a one-line reason, never a traceback.

- `console.py`    thread-safe output, exit codes, and `guard` (errors -> messages + codes)
- `reconcile.py`  the `reconcile` command
- `podyard.py`    the `podyard` command: kubectl-like tables read from the engines
"""
