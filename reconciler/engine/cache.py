"""The container cache of one node: what the engine last listed, and what changed since.

Pure bookkeeping, no I/O: the driver fills it from list calls and marks it from the engine's
event stream, as client-go's informers do, so a pass with nothing to do costs no engine call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from reconciler import observe


class ContainerCache:
    """One node's podyard containers by id, as last listed, and the ids to look at again.

    Pure bookkeeping, safe to share between threads. It is only trusted while at least one
    event stream is open (`opened`/`closed`); opening or closing a stream, or `invalidate`,
    empties it, and a list begun before that is not stored (each list carries the token
    `pending` gave it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._raws: dict[str, observe.ContainerJSON] = {}
        self._dirty: dict[str, str] = {}  # id -> the last event about it ("" for our own)
        self._streams = 0
        self._valid = False
        self._epoch = 0

    def opened(self) -> None:
        """An event stream is open: from now on, every change is heard of."""
        with self._lock:
            self._streams += 1
            self._reset()

    def closed(self) -> None:
        """An event stream ended: changes may be missed until the next full list."""
        with self._lock:
            self._streams = max(0, self._streams - 1)
            self._reset()
            if not self._streams:
                self._dirty = {}

    def invalidate(self) -> None:
        """Forget everything: the next list is a full one (the periodic resync)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        # Marks stay: a death heard of must be confirmed even by a full list (see list_pods).
        self._raws = {}
        self._valid = False
        self._epoch += 1

    @property
    def live(self) -> bool:
        """Whether an event stream is open, so that the cache can be trusted once filled."""
        with self._lock:
            return self._streams > 0

    def mark_dirty(self, *ids: str, event: str = "") -> None:
        """These containers changed (an engine event, or an action of ours): list them again."""
        with self._lock:
            if not self._streams:
                return
            for cid in ids:  # kept during a full list too: the list may predate the change
                self._dirty[cid] = event or self._dirty.get(cid, "")

    def pending(self) -> tuple[int, dict[str, str], bool]:
        """A token for the list about to be made; the ids it must refresh (now taken), each
        with the last event heard about it; and whether it must be a full list instead
        (nothing listed since the last reset).
        """
        with self._lock:
            ids, self._dirty = self._dirty, {}
            return self._epoch, ids, not self._valid

    def replace_all(self, raws: Iterable[observe.ContainerJSON], token: int) -> None:
        """Store a full list; dropped if the cache was reset since, or no stream is open."""
        with self._lock:
            if token != self._epoch or not self._streams:
                return
            self._raws = {raw["Id"]: raw for raw in raws}
            self._valid = True

    def apply_refresh(
        self, raws: Iterable[observe.ContainerJSON], ids: Iterable[str], token: int
    ) -> None:
        """Store a list of `ids`: those it did not return are gone."""
        with self._lock:
            if token != self._epoch:
                return
            for gone in ids:
                self._raws.pop(gone, None)
            self._raws.update((raw["Id"], raw) for raw in raws)

    def snapshot(self) -> list[observe.ContainerJSON]:
        """The cached containers, in no particular order."""
        with self._lock:
            return list(self._raws.values())
