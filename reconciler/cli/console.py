"""What every command shares: thread-safe output, the exit codes, and `guard`.

The only module that knows exit codes. Whatever goes wrong, the user sees a one-line reason
and a non-zero exit, never a traceback.

Exit codes: 0 done (converged, valid, listed), 1 invalid input (nothing changed), 2 not
converged within --timeout, 3 the cluster cannot be used, 4 an internal error (a bug).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO, assert_never

from reconciler import errors, execute, plan

EXIT_OK, EXIT_INVALID, EXIT_NOT_CONVERGED, EXIT_CLUSTER, EXIT_BUG = 0, 1, 2, 3, 4


class Console:
    """Thread-safe output: results of actions arrive from worker threads."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr, quiet: bool = False):
        self.out, self.err, self.quiet = out, err, quiet
        self.lock = threading.Lock()
        self.counts = {"created": 0, "deleted": 0, "restarted": 0, "failed": 0, "claimed": 0,
                       "released": 0, "programmed": 0}

    def action(self, result: execute.Result) -> None:
        """One finished action, as it happens."""
        verb = past_tense(result.action)
        with self.lock:
            if result.error:
                self.counts["failed"] += 1
                print(f"{result.action.describe()} FAILED: {result.error}", file=self.err)
            else:
                self.counts[verb] += 1
                if not self.quiet:
                    print(f"{result.action.describe()} ({result.seconds:.1f}s)", file=self.out)
            self.out.flush()

    def info(self, message: str) -> None:
        with self.lock:
            if not self.quiet:
                print(message, file=self.out, flush=True)

    def warn(self, message: str) -> None:
        with self.lock:
            print(f"warning: {message}", file=self.err, flush=True)


def guard(run: Callable[[], int], console: Console) -> int:
    """Run a command; map every failure to a message and an exit code."""
    try:
        return run()
    except errors.ManifestError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=console.err)
        print(f"{e}; nothing was changed", file=console.err)
        return EXIT_INVALID
    except (errors.ClusterError, errors.EngineError) as e:
        print(f"error: {e}", file=console.err)
        return EXIT_CLUSTER
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug: say so plainly rather than dump a traceback
        print(f"internal error: {type(e).__name__}: {e}", file=console.err)
        return EXIT_BUG


def past_tense(action: plan.Action) -> str:
    """What an action did, for the summary line; every action type is named, none defaulted."""
    match action:
        case plan.CreatePod():
            return "created"
        case plan.DeletePod():
            return "deleted"
        case plan.RestartContainer():
            return "restarted"
        case plan.ClaimAddress():
            return "claimed"
        case plan.ReleaseAddress():
            return "released"
        case plan.ProgramRules() | plan.ProgramDNS():
            return "programmed"
        case _:
            assert_never(action)
