"""Node health: where a node is judged Ready, NotReady, or lost with its pods.

Pure bookkeeping with an injected clock (`now` is passed in). Each node's engine is probed
(a `/_ping` with a short timeout) before it is listed and, under `--watch`, every second. The
timeline of a node that stops answering, counted from its last answer:

    Ready --(grace, default 4 s)--> NotReady --(eviction delay, default 4 s)--> Evicted

- Ready: its pods are observed and acted on, new pods may go there.
- NotReady: it is skipped; its pods, as last seen, still count (so nothing is replaced
  yet) but are not touched, and no new pod goes there.
- Evicted: its pods count as gone and the plan replaces them on Ready nodes, as the
  Kubernetes node lifecycle controller does after its eviction timeout.

When an evicted node answers again, the pods it held when it was evicted have been replaced
elsewhere: they are `stale`, and removed before anything else is created on it. The
replacement survives, as with Swarm and the kubelet: it is the copy the cluster has been
serving from, while the returning copy may have been cut off from its clients.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_GRACE = 4.0  # seconds without an answer before a node is NotReady
DEFAULT_EVICTION_DELAY = 4.0  # seconds NotReady before its pods are replaced elsewhere


class State(enum.Enum):
    """How a node stands, as `podyard get nodes` shows it."""

    READY = "Ready"
    NOT_READY = "NotReady"
    EVICTED = "NotReady,Evicted"


@dataclass
class _Node:
    first_seen: float
    last_answer: float | None = None  # None: never answered since the controller started
    last_error: str = ""
    last_failure: float | None = None  # when it last did not answer
    state: State = State.READY
    stale: frozenset[str] = frozenset()  # uids replaced elsewhere, to remove on return
    known: tuple[str, ...] = ()  # uids of the pods last seen there


@dataclass
class Transition:
    """A node changed state: one line in the controller's log."""

    node: str
    before: State
    after: State
    reason: str

    def __str__(self) -> str:
        if self.after is State.READY:
            return f"node {self.node} is Ready again"
        if self.after is State.EVICTED:
            return f"node {self.node} is NotReady ({self.reason}); its pods are replaced elsewhere"
        return f"node {self.node} is NotReady ({self.reason})"


@dataclass
class Health:
    """Every node's answers over time; safe to share between the loop and the prober."""

    grace: float = DEFAULT_GRACE
    eviction_delay: float = DEFAULT_EVICTION_DELAY
    _nodes: dict[str, _Node] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answered(self, node: str, now: float) -> Transition | None:
        """The node's engine answered at `now`."""
        with self._lock:
            n = self._node(node, now)
            n.last_answer, n.last_error = now, ""
            return self._move(node, n, State.READY, "answering")

    def failed(self, node: str, now: float, error: str) -> Transition | None:
        """The node's engine did not answer at `now`."""
        with self._lock:
            n = self._node(node, now)
            n.last_error, n.last_failure = error, now
            return self._judge(node, n, now)

    def tick(self, now: float) -> list[Transition]:
        """Re-judge every node at `now`: time passes even when no probe returns."""
        with self._lock:
            moves = [self._judge(name, n, now) for name, n in self._nodes.items()]
        return [m for m in moves if m is not None]

    def next_deadline(self) -> float | None:
        """When the next silent node will change state if it stays silent; None if none is
        silent. Judging at that moment, not at the next probe, keeps failover prompt."""
        with self._lock:
            deadlines = [self._deadline(n) for n in self._nodes.values() if n.last_error]
        pending = [d for d in deadlines if d is not None]
        return min(pending) if pending else None

    def _deadline(self, n: _Node) -> float | None:
        since = n.last_answer if n.last_answer is not None else n.first_seen
        if n.state is State.READY:
            return since + self.grace
        if n.state is State.NOT_READY:
            return since + self.grace + self.eviction_delay
        return None

    def silent_since(self, node: str, now: float, within: float) -> bool:
        """Not Ready, and failed to answer within the last `within` seconds: asking it again
        now would only wait out another timeout."""
        with self._lock:
            n = self._nodes.get(node)
            if n is None or n.state is State.READY or n.last_failure is None:
                return False
            return now - n.last_failure < within

    def saw_pods(self, node: str, uids: Iterable[str]) -> None:
        """The pods a listing found on the node: what would be replaced if it were lost."""
        with self._lock:
            if node in self._nodes:
                self._nodes[node].known = tuple(uids)

    def placed(self, node: str, uid: str) -> None:
        """A pod was just created on the node: replaced with the rest if the node is lost
        before a listing has seen it."""
        with self._lock:
            n = self._nodes.get(node)
            if n is not None and uid not in n.known:
                n.known = (*n.known, uid)

    def settled(self, node: str, uids: Iterable[str]) -> None:
        """These stale pods are gone from the node: nothing more to remove for them."""
        with self._lock:
            n = self._nodes.get(node)
            if n is not None:
                n.stale = n.stale - set(uids)

    def state(self, node: str) -> State:
        with self._lock:
            n = self._nodes.get(node)
            return n.state if n else State.READY

    def ready(self, node: str) -> bool:
        """Answering: its pods are observed and acted on, and new pods may go there."""
        return self.state(node) is State.READY

    def evicted(self, node: str) -> bool:
        """Lost for good enough that its pods are replaced elsewhere."""
        return self.state(node) is State.EVICTED

    def stale(self, node: str) -> frozenset[str]:
        """Uids of pods replaced elsewhere while the node was evicted, still to remove."""
        with self._lock:
            n = self._nodes.get(node)
            return n.stale if n else frozenset()

    def last_answer(self, node: str) -> float | None:
        with self._lock:
            n = self._nodes.get(node)
            return n.last_answer if n else None

    def first_seen(self, node: str) -> float | None:
        with self._lock:
            n = self._nodes.get(node)
            return n.first_seen if n else None

    def last_error(self, node: str) -> str:
        with self._lock:
            n = self._nodes.get(node)
            return n.last_error if n else ""

    def _node(self, node: str, now: float) -> _Node:
        return self._nodes.setdefault(node, _Node(first_seen=now))

    def _judge(self, name: str, n: _Node, now: float) -> Transition | None:
        if n.last_error == "":
            return None  # answering: nothing to judge
        silent = now - (n.last_answer if n.last_answer is not None else n.first_seen)
        if silent >= self.grace + self.eviction_delay:
            return self._move(name, n, State.EVICTED, n.last_error)
        if silent >= self.grace:
            return self._move(name, n, State.NOT_READY, n.last_error)
        return None

    def _move(self, name: str, n: _Node, to: State, reason: str) -> Transition | None:
        if n.state is to:
            return None
        before, n.state = n.state, to
        if to is State.EVICTED:
            n.stale, n.known = n.stale | set(n.known), ()
        return Transition(name, before, to, reason)
