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
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner

REPO = Path(__file__).resolve().parents[1]
INVENTORY = REPO / "inventory" / "lab"


@dataclass(frozen=True)
class Run:
    """One timed playbook run."""

    playbook: str
    seconds: float
    status: str
    changed: dict[str, int]
    ok: dict[str, int]
    changed_tasks: list[str]


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


def run(playbook: str, *extra: str) -> Run:
    """Run a playbook against the lab inventory and time it."""
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    }
    print(f"== {playbook} {' '.join(extra)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="podyard-bench-") as private:
        result = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(REPO),
            playbook=str(REPO / playbook),
            inventory=str(INVENTORY),
            cmdline=" ".join(extra) or None,
            envvars=env,
            quiet=True,
            event_handler=show_progress(started),
        )
        seconds = time.monotonic() - started
        changed_tasks = [
            f"{e['event_data'].get('host')}: {e['event_data'].get('task')}"
            for e in result.events
            if e["event"] == "runner_on_ok" and e["event_data"].get("res", {}).get("changed")
        ]
        stats = result.stats or {}
    if result.status != "successful":
        sys.exit(f"{playbook} failed: {result.status}")
    return Run(
        playbook=playbook,
        seconds=seconds,
        status=result.status,
        changed=dict(stats.get("changed", {})),
        ok=dict(stats.get("ok", {})),
        changed_tasks=changed_tasks,
    )


def report(runs: list[Run], cold: bool, command: str) -> str:
    """The markdown report."""
    up, first, second = runs
    hosts = sorted(first.ok)
    lines = [
        "# The lab: from nothing to provisioned, and the idempotent second run",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}. Lab: {len(hosts)} hosts "
        f"({', '.join(hosts)}); "
        + (
            "cold: host image, SSH key, PKI and wheels made anew." if cold else "host image cached."
        ),
        "",
        "| step | wall time | changed per host |",
        "|---|---:|---|",
    ]
    for step in runs:
        per_host = ", ".join(f"{h}={step.changed.get(h, 0)}" for h in sorted(step.ok))
        lines.append(f"| `{step.playbook}` | {step.seconds:.1f} s | {per_host} |")
    total = up.seconds + first.seconds
    lines += [
        "",
        f"From nothing to provisioned: **{total:.1f} s** (target: under 300 s).",
        f"Second, idempotent run: **{second.seconds:.1f} s** (target: under 60 s), "
        f"changed tasks: {len(second.changed_tasks)}.",
    ]
    if second.changed_tasks:
        lines += ["", "Tasks that changed on the second run:", ""]
        lines += [f"- {task}" for task in second.changed_tasks]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, run the three steps, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cold",
        action="store_true",
        help="start as a fresh clone: rebuild image, key, PKI, wheels",
    )
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    parser.add_argument("--output", type=Path, help="write the report here too")
    args = parser.parse_args()
    command = shlex.join(["python", "bench/lab.py", *sys.argv[1:]])
    down = ("-e", "lab_down_image=true") if args.cold else ()
    run("playbooks/lab_down.yml", *down)
    if args.cold:
        shutil.rmtree(REPO / ".lab", ignore_errors=True)
    runs = [run("playbooks/lab_up.yml"), run("site.yml"), run("site.yml")]
    text = report(runs, args.cold, command)
    print(text)
    if args.output:
        args.output.write_text(text)
    if not args.keep:
        run("playbooks/lab_down.yml")


if __name__ == "__main__":
    main()
