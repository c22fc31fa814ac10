"""`podyard status`: what each controller last reported, in a few lines.

Reads the controllers' status files (`control/status.py`): which revision of the manifests is
applied, and why a newer one is not (invalid, or its commit signature refused); each node's
state; the pods no node can take.
"""

from __future__ import annotations

import time
from typing import Any

from reconciler.cli import tables


def text(statuses: list[dict[str, Any]]) -> str:
    """The status of every controller that wrote one, one block each."""
    if not statuses:
        return "no controller status here (is `reconcile --watch` running on this host?)"
    return "\n\n".join(_block(doc, time.time()) for doc in statuses)


def _block(doc: dict[str, Any], now: float) -> str:
    manifests = doc.get("manifests") or {}
    nodes = doc.get("nodes") or {}
    lines = [
        f"Scope:       {doc.get('scope') or '<none>'}",
        f"Last pass:   {tables.age(now - float(doc.get('time') or now))} ago",
        f"Applied:     revision {manifests.get('applied') or '<none>'}",
    ]
    if manifests.get("problem"):
        lines.append(f"Not applied: {manifests['problem']}")
    states = ", ".join(f"{name} {node.get('state', '?')}" for name, node in nodes.items())
    lines.append(f"Nodes:       {states or '<none>'}")
    for pending in doc.get("pending") or ():
        lines.append(f"Pending:     {pending.get('namespace')}/{pending.get('name')}: "
                     f"{pending.get('reason')}")
    return "\n".join(lines)
