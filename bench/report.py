"""The results writer of the benchmarks: every `bench/results/*.md` is written through it.

A result file says, in this order: what was measured, the exact command (as typed from the
repository root), the machine (cores, CPU, kernel, Docker, Python, load) and the date, the
raw rounds, then the tables. A script builds one `Report` as it measures and writes it at
the end, so nothing in a result file is typed by hand and a re-run replaces it whole.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def default_output(script: str) -> Path:
    """Where a script's results go: `bench/results/<script's name>.md`."""
    return RESULTS / f"{Path(script).stem}.md"


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed from the repository root: `.venv/bin/python bench/x.py ...`.

    Paths inside the repository are written relative to it, so no machine's layout leaks in.
    """
    argv = list(sys.argv if argv is None else argv)
    python = _repo_relative(sys.executable)
    if python.startswith("/"):  # an interpreter outside the repository: name it only
        python = Path(python).name
    return shlex.join([python, _repo_relative(argv[0]), *map(_repo_relative, argv[1:])])


def _repo_relative(arg: str) -> str:
    path = Path(os.path.abspath(arg))  # abspath: keep .venv/bin/python, not its symlink target
    if (Path(arg).is_absolute() or Path(arg).exists()) and path.is_relative_to(REPO):
        return path.relative_to(REPO).as_posix()
    return arg


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _docker() -> str:
    import docker

    from reconciler.engine import client

    api = docker.APIClient(version=client.API_VERSION, timeout=30)
    try:
        v = api.version()
    finally:
        api.close()
    return f"engine {v.get('Version')} (API {v.get('ApiVersion')}), docker-py {docker.__version__}"


def _load() -> str:
    return "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def fmt(value: float) -> str:
    """A measured number with as many digits as it deserves."""
    size = abs(value)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 1 else 3
    return f"{value:.{digits}f}"


class Report:
    """One result file, built while the script measures."""

    def __init__(self, title: str, *, docker: bool, facts: Sequence[str] = ()) -> None:
        self.title = title
        self.command = command_line()
        self.started = datetime.now(UTC)
        self.load_at_start = _load()
        self.docker = _docker() if docker else "not used by this benchmark"
        self.facts = list(facts)
        self.about: list[str] = []
        self.raw: list[str] = []
        self.results: list[str] = []

    def describe(self, *paragraphs: str) -> None:
        """What the benchmark measures and against what, before the command."""
        self.about += [*paragraphs]

    def rounds(self, title: str, series: Mapping[str, Sequence[float]], unit: str) -> None:
        """Raw rounds: one row per measurement, one column per round, values in `unit`."""
        width = max((len(v) for v in series.values()), default=0)
        lines = [f"### {title}", "",
                 "| measurement (" + unit + ") | " + " | ".join(
                     f"{i + 1}" for i in range(width)) + " |",
                 "|---|" + "---:|" * width]
        for name, values in series.items():
            cells = [fmt(v) for v in values] + [""] * (width - len(values))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        self.raw += [*lines, ""]

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[object]],
              *notes: str) -> None:
        """A result table under its own heading, with notes below it."""
        lines = [f"## {title}", "", "| " + " | ".join(header) + " |",
                 "|---" * len(header) + "|"]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        self.results += [*lines, "", *[n + "\n" for n in notes]]

    def note(self, *paragraphs: str) -> None:
        """Text after the tables: headlines, where the time goes, what was checked."""
        self.results += [p + "\n" for p in paragraphs if p]

    def render(self) -> str:
        """The whole markdown file."""
        script = shlex.split(self.command)[1]
        machine = [
            f"- date: {self.started:%Y-%m-%d %H:%M} UTC",
            f"- machine: {os.cpu_count()} cores ({_cpu_model()}), {_memory()} RAM, "
            f"{_os_name()}, kernel {platform.release()} ({platform.machine()})",
            f"- Docker: {self.docker}",
            f"- Python {platform.python_version()} ({platform.python_implementation()})",
            *[f"- {fact}" for fact in self.facts],
            f"- load average (1, 5, 15 min) at the start: {self.load_at_start}; "
            f"at the end: {_load()}",
        ]
        parts = [
            f"# {self.title}", "",
            f"Written by `{script}` (through `bench/report.py`); to update it, run the "
            "command again: never edit it by hand.", "",
            *[p + "\n" for p in self.about],
            "## Command", "", "From the repository root, after `make venv images`:", "",
            "```", self.command, "```", "",
            "## Machine", "", *machine, "",
        ]
        if self.raw:
            parts += ["## Raw rounds", "", *self.raw]
        parts += self.results
        return "\n".join(parts).rstrip("\n") + "\n"

    def write(self, output: Path) -> None:
        """Write the file (making its directory) and show it on stdout."""
        text = self.render()
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(text)
