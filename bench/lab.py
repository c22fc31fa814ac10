"""Benchmark: the lab from nothing to provisioned, then the idempotent second run.

Removes the lab (and, with --cold, its cached host image and the .lab directory: SSH key,
PKI, built wheels, as in a fresh clone), then times, each as one
`ansible-playbook` run through ansible-runner:
  1. playbooks/lab_up.yml   containers that act as machines (builds the image when missing)
  2. site.yml               provisioning of the master and the nodes
  3. site.yml again         must change nothing
and writes a markdown report with the per-host stats of each run. Progress goes to stderr, one
line per host and task, so a slow run shows where it is.

    .venv/bin/python bench/lab.py [--cold] [--keep] [--output FILE]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

# Run as `python bench/lab.py`: the repository root, not bench/, must be on the path for
# `bench.report` and `tests.support`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from tests import support

REPO = support.REPO


def show_progress(started: float) -> Any:
    """An ansible-runner event handler printing one line per host and task."""

    def handle(event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        kind = event.get("event", "")
        states = {
            "runner_on_ok": "changed" if data.get("res", {}).get("changed") else "ok",
            "runner_on_failed": "FAILED",
            "runner_on_unreachable": "UNREACHABLE",
        }
        if kind in states:
            line = f"[{time.monotonic() - started:6.1f}s] {data.get('host', ''):<10} "
            line += f"{states[kind]:<11} {data.get('task', '')}"
            if kind != "runner_on_ok":
                line += f": {data.get('res', {}).get('msg', '')}"
            print(line, file=sys.stderr, flush=True)
        return True

    return handle


def run(playbook: str, *extra: str) -> support.PlaybookRun:
    """Run a playbook against the lab inventory, with progress on stderr; exit if it fails."""
    print(f"== {playbook} {' '.join(extra)}", file=sys.stderr, flush=True)
    result = support.run_playbook(playbook, *extra, event_handler=show_progress(time.monotonic()))
    if result.status != "successful":
        listing = "\n  ".join(result.failed_tasks) or "(no failed task reported)"
        sys.exit(f"{playbook} failed ({result.status}, rc={result.rc}):\n  {listing}")
    return result


def write_results(out: report.Report, runs: list[support.PlaybookRun]) -> None:
    """The steps' times and changes, the totals, and what changed on the second run."""
    up, first, second = runs
    out.rounds("one run of each step, in order", {
        f"`{step.playbook}`" + (" (second run)" if i == 2 else ""): [step.seconds]
        for i, step in enumerate(runs)}, "s")
    rows = []
    for i, step in enumerate(runs):
        per_host = ", ".join(f"{h}={step.changed_per_host().get(h, 0)}"
                             for h in sorted(step.ok_per_host()))
        name = f"`{step.playbook}`" + (" (second run)" if i == 2 else "")
        rows.append([name, f"{step.seconds:.1f} s", per_host])
    total = up.seconds + first.seconds
    out.table("From nothing to provisioned, then the idempotent second run",
              ["step", "wall time", "changed per host"], rows,
              f"From nothing to provisioned: **{total:.1f} s** (target: under 300 s). "
              f"Second, idempotent run: **{second.seconds:.1f} s** (target: under 60 s), "
              f"changed tasks: {len(second.changed_tasks)}.")
    if second.changed_tasks:
        out.note("Tasks that changed on the second run:",
                 "\n".join(f"- {task}" for task in second.changed_tasks))


def main() -> None:
    """Parse arguments, run the three steps, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cold",
        action="store_true",
        help="start as a fresh clone: rebuild image, key, PKI, wheels",
    )
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    parser.add_argument("--output", type=Path, default=report.default_output(__file__))
    args = parser.parse_args()
    out = report.Report(
        "The lab: from nothing to provisioned, and the idempotent second run", docker=True,
        facts=[f"ansible-core {_version('ansible-core')}, ansible-runner "
               f"{_version('ansible-runner')}",
               "cold: host image, SSH key, PKI and wheels made anew" if args.cold
               else "warm: the lab host image cached"])
    out.describe(__doc__.split("\n\n")[1].strip())
    down = ("-e", "lab_down_image=true") if args.cold else ()
    run("playbooks/lab_down.yml", *down)
    if args.cold:
        shutil.rmtree(REPO / ".lab", ignore_errors=True)
    runs = [run("playbooks/lab_up.yml"), run("site.yml"), run("site.yml")]
    hosts = sorted(runs[1].ok_per_host())
    out.facts.append(f"lab: {len(hosts)} hosts ({', '.join(hosts)})")
    write_results(out, runs)
    out.write(args.output)
    if not args.keep:
        run("playbooks/lab_down.yml")


def _version(package: str) -> str:
    from importlib import metadata

    return metadata.version(package)


if __name__ == "__main__":
    main()
