"""What every object shares: times, uids and quantities as Kubernetes writes them, and the
memory of when an object without a timestamp of its own was first seen.

Pure: times are passed in; `Memory` only remembers what it is told.
"""

from __future__ import annotations

import calendar
import time
import uuid
from typing import Any

VERSION = "v1.20.0-podyard"  # what /version and each node's kubeletVersion say
_UIDS = uuid.UUID("6b1d8a4e-2f0c-4c8e-9a55-70d1e0a3c001")  # the namespace of podyard's uuid5s


def timestamp(seconds: float | None) -> str | None:
    """A Unix time as Kubernetes writes a metav1.Time: RFC 3339, whole seconds, UTC."""
    if not seconds:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def parse_timestamp(text: str) -> float:
    """An RFC 3339 time as `timestamp` writes it, back to a Unix time; 0 when it is not one."""
    try:
        return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0


def pod_uid(hex_uid: str) -> str:
    """A pod's uid label (32 hex characters) in the UUID form the API uses."""
    try:
        return str(uuid.UUID(hex=hex_uid))
    except ValueError:
        return hex_uid


def stable_uid(*parts: str) -> str:
    """The uid of an object podyard keeps no uid for (an RC, a Service, a node): the same for
    the same object in every pass and after a controller restart."""
    return str(uuid.uuid5(_UIDS, "/".join(parts)))


def cpu(millicores: int) -> str:
    """CPU as a quantity: "250m", "2"."""
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def memory(value: int) -> str:
    """Bytes as Kubernetes canonicalises a quantity: "64Mi", "1500k", "1234"."""
    if value == 0:
        return "0"
    for suffix, size in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30),
                         ("Mi", 2**20), ("Ki", 2**10)):
        if value % size == 0:
            return f"{value // size}{suffix}"
    for suffix, size in (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9),
                         ("M", 10**6), ("k", 10**3)):
        if value % size == 0:
            return f"{value // size}{suffix}"
    return str(value)


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    """A metav1.Status, as every error of the API is written."""
    doc: dict[str, Any] = {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason,
    }
    if details:
        doc["details"] = details
    doc["code"] = code
    return doc


class Memory:
    """When each object was first seen, for objects that carry no creation time of their own
    (an RC, a namespace, a pending pod); kept only while the object is there."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, ...], float] = {}
        self._used: set[tuple[str, ...]] = set()

    def first(self, key: tuple[str, ...], now: float) -> float:
        """The first `now` this key was asked with (since it was last swept away)."""
        self._used.add(key)
        return self._first.setdefault(key, now)

    def sweep(self) -> None:
        """Forget every key not asked for since the last sweep: an object declared again
        after it was gone is a new object."""
        for gone in self._first.keys() - self._used:
            del self._first[gone]
        self._used = set()
