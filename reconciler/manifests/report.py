"""Problems -> the `errors.ManifestError` shown: in order, and never a flood.

Pure: no I/O. At most `Limits.max_problems_per_file` problems are shown per file and
`Limits.max_problems` in all; each cut is one line saying how many more there are (after its
file's problems, or last for the files not shown at all), and the error's message counts
every problem found. A flood of problems would hide the first, useful ones.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Iterable, Mapping

from reconciler import errors
from reconciler.manifests import documents

# How problems are listed: a key of plain tuples sorts far faster than the dataclass order.
ORDER = operator.attrgetter("file", "line", "field", "reason")


def first(problems: Iterable[errors.Problem], count: int) -> tuple[list[errors.Problem], int]:
    """The first `count` distinct problems in the order shown, and how many more there are."""
    distinct = set(problems)
    shown = heapq.nsmallest(count, distinct, key=ORDER)
    return shown, len(distinct) - len(shown)


def error(
    problems: Iterable[errors.Problem], omitted: Mapping[str, int], limits: documents.Limits,
    root: str,
) -> errors.ManifestError:
    """The error for `problems`, plus `omitted[file]` more found in a file but not kept."""
    by_file: dict[str, list[errors.Problem]] = {}
    for problem in sorted(set(problems), key=ORDER):
        by_file.setdefault(problem.file, []).append(problem)
    shown: list[errors.Problem] = []
    total = listed = hidden = hidden_files = 0
    for name in sorted(by_file.keys() | omitted.keys()):
        found = by_file.get(name, [])
        count = len(found) + omitted.get(name, 0)
        total += count
        kept = found[: min(limits.max_problems_per_file, limits.max_problems - listed)]
        listed += len(kept)
        if not kept:
            hidden, hidden_files = hidden + count, hidden_files + 1
            continue
        shown += kept
        if count > len(kept):
            more = f"and {_more(count - len(kept))} in this file"
            shown.append(errors.Problem(name, 0, "", more))
    if hidden:
        where = f"{hidden_files} other file{'s' if hidden_files != 1 else ''}"
        shown.append(errors.Problem(root, 0, "", f"and {_more(hidden)} in {where}"))
    return _error(shown, f"{total} problem{'s' if total != 1 else ''} in the manifests")


def again(previous: errors.ManifestError) -> errors.ManifestError:
    """A new error equal to `previous` (a raised error keeps its traceback), in its order."""
    return _error(previous.problems, str(previous))


def _more(count: int) -> str:
    return f"{count} more problem{'s' if count != 1 else ''}"


def _error(problems: list[errors.Problem], message: str) -> errors.ManifestError:
    # ManifestError sorts its problems and counts them; here they are already in order (each
    # cut line after its file's problems) and `message` counts those not shown too.
    error = errors.ManifestError(problems)
    error.problems = list(problems)
    error.args = (message,)
    return error
