"""kubectl's way of printing: padded columns, short ages, binary memory sizes, lists."""

from __future__ import annotations

import json
from typing import Any


def age(seconds: float) -> str:
    """kubectl's short age: 45s, 3m, 2h, 5d."""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size * (2 if unit != "m" else 1):
            return f"{s // size}{unit}"
    return f"{s}s"


def table(rows: list[list[str]]) -> str:
    """Columns padded to the widest cell, three spaces apart, like kubectl."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def bytes_text(value: int) -> str:
    """Memory as kubectl prints quantities: 512Mi, 2Gi, 1536Ki; plain bytes when uneven."""
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size and value % size == 0:
            return f"{value // size}{suffix}"
    if value >= 2**30:
        return f"{value / 2**30:.1f}Gi"
    if value >= 2**20:
        return f"{value // 2**20}Mi"
    return str(value)


def listing(items: list[dict[str, Any]], fmt: str) -> str:
    """Objects as a Kubernetes `List` in `json` or `yaml`, as `-o json|yaml` prints them."""
    doc = {"apiVersion": "v1", "kind": "List", "items": items}
    if fmt == "json":
        return json.dumps(doc, indent=4) + "\n"
    import yaml  # only for -o yaml

    return str(yaml.safe_dump(doc, sort_keys=False))
