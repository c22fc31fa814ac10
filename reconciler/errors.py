"""The error hierarchy: the bottom layer, imported by every other module, importing none.

Errors carry intent, as kopf's do. Engine failures are mapped once, in `engine/client.py`,
into what the caller should do: `Unreachable` (retry later), `Conflict` (something is in the
way), `NotFound`, `Refused` (retrying won't help); no caller digs into `__cause__`. A
`ManifestError` waits for the input to change; a `ClusterError` means the cluster file or a
node cannot be used at all. The CLI maps them to exit codes; nothing else does.
"""

from __future__ import annotations

from dataclasses import dataclass


class PodyardError(Exception):
    """Base of every error podyard raises on purpose."""


EXCERPT = 40  # characters of a manifest's value an error message may quote


def excerpt(value: object) -> str:
    """A value as an error quotes it: its repr, cut short. An error must never carry much of a
    file's content (it goes to logs), only enough to find the offending value."""
    text = repr(value)
    return text if len(text) <= EXCERPT else text[: EXCERPT - 4] + "...'"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one manifest: where it is and why it is wrong."""

    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.reason}"


class ManifestError(PodyardError):
    """The manifests are invalid; carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the manifests")


class ClusterError(PodyardError):
    """The cluster file is invalid or names a node that cannot be used."""


class EngineError(PodyardError):
    """A node's engine did not do what was asked; the subclass says what to do about it."""


class Unreachable(EngineError):
    """The engine did not answer, or failed on its side (5xx): retry later."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class Conflict(EngineError):
    """The engine holds something in the way (409: a name in use): look again, then retry."""


class NotFound(EngineError):
    """What the call named does not exist (404); for a deletion, that is success."""


class Refused(EngineError):
    """The engine refused the request for a reason retrying will not fix (a bad image, a
    missing image under imagePullPolicy Never, an invalid setting)."""


# Worth another pass without any change of input.
RETRYABLE = (Unreachable, Conflict)
