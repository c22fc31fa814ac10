"""Control: when passes run. The only code (with `execute.py`) that sleeps or waits.

In: a way to load the desired state, the nodes' drivers, options and a reporter.
Out: passes run until converged (`passes.Controller.converge`) or until stopped (`watch`).
I/O: only through its inputs (the loader reads manifests, the drivers speak to engines),
plus watching the manifest files for changes.

- `passes.py`  one pass (observe -> plan -> execute) and `converge`
- `watch.py`   the watch loop: file events, engine events, resync timer, debounce
"""
