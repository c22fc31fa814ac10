"""Node health: whether each node's engine answers, and when its pods count as lost.

Pure bookkeeping with an injected clock (`now` is passed in). A node whose engine stops
answering is `Suspect` during a grace period: a slow engine must not make its pods look lost,
so the pass waits for it. After the grace period the node is `NotReady`: its pods count as
gone and the plan replaces them elsewhere, as the Kubernetes node lifecycle controller does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

DEFAULT_GRACE = 20.0  # seconds an unanswering node keeps its pods before they move


class Verdict(enum.Enum):
    """What a pass makes of a node that did not answer."""

    SUSPECT = "Suspect"  # within the grace period: wait, its pods are not gone
    NOT_READY = "NotReady"  # past it: its pods are replaced on other nodes


@dataclass
class Health:
    """When each node last answered, and since when it has not."""

    grace: float = DEFAULT_GRACE
    failing_since: dict[str, float] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)

    def answered(self, node: str) -> bool:
        """The node's engine answered; True when it had not been answering before."""
        was_failing = node in self.failing_since
        self.failing_since.pop(node, None)
        self.last_error.pop(node, None)
        return was_failing

    def failed(self, node: str, now: float, error: str) -> Verdict:
        """The node's engine did not answer at `now`: what that means for its pods."""
        self.failing_since.setdefault(node, now)
        self.last_error[node] = error
        return Verdict.NOT_READY if self.lost(node, now) else Verdict.SUSPECT

    def ready(self, node: str) -> bool:
        """Answering, as of the last check: new pods may be placed there."""
        return node not in self.failing_since

    def lost(self, node: str, now: float) -> bool:
        """Not answering for longer than the grace period: its pods are to be replaced."""
        since = self.failing_since.get(node)
        return since is not None and now - since >= self.grace
