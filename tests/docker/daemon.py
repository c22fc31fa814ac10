"""The machine's dockerd as a process: found by the socket it serves, restarted as it was started.

A restart must give back the engine the machine had: the same argv (flags such as
`--containerd=...` or `--data-root`), working directory, environment and output targets.
Only `/proc` is read, so it works wherever the engine is a process of this machine (no
systemd needed), and it refuses where it is not (a remote engine, a socket mounted in).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SOCKET = "/var/run/docker.sock"  # the engine the docker tier tests: docker.APIClient()'s default
SOCKET_URL = f"unix://{SOCKET}"
PROC = Path("/proc")


@dataclass(frozen=True)
class Daemon:
    """How a running dockerd was started: everything needed to start it again the same way."""

    socket: str  # the Unix socket it serves the Engine API on
    pid: int
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]
    outputs: tuple[str, str]  # where its stdout and stderr went (readlink of fd 1 and 2)


def find(socket_path: str = SOCKET) -> Daemon:
    """The dockerd process listening on `socket_path`; AssertionError saying why if none."""
    inodes = _listening_inodes(socket_path)
    holders = [pid for pid in _pids_named("dockerd") if inodes & _socket_inodes(pid)]
    if len(holders) != 1:
        raise AssertionError(
            f"no single dockerd process of this machine serves {socket_path} (found {holders}):"
            " this test restarts the engine, so it needs the engine running here"
        )
    return describe(socket_path, holders[0])


def describe(socket_path: str, pid: int) -> Daemon:
    """How process `pid`, serving `socket_path`, was started, read from /proc."""
    proc = PROC / str(pid)
    argv = tuple((proc / "cmdline").read_bytes().decode().split("\0")[:-1])
    env = dict(
        entry.split("=", 1)
        for entry in (proc / "environ").read_bytes().decode().split("\0")
        if "=" in entry
    )
    outputs = (os.readlink(proc / "fd" / "1"), os.readlink(proc / "fd" / "2"))
    return Daemon(socket_path, pid, argv, os.readlink(proc / "cwd"), env, outputs)


def restart(daemon: Daemon, timeout: float = 180) -> Daemon:
    """Stop the engine (SIGTERM), start it again exactly as it was, and wait until it answers.

    Everything the start needs is checked and opened while the old process still lives, so
    nothing but the start itself can fail once the engine is down. The new process is
    detached in a session of its own (the engine outlives the tests). Returns it, as found.
    """
    deadline = time.monotonic() + timeout
    command = _command(daemon)
    with _inherited(daemon) as (cwd, stdout, stderr):
        os.kill(daemon.pid, signal.SIGTERM)
        _wait(lambda: not _alive(daemon.pid), deadline, "dockerd to stop")
        subprocess.run(command, cwd=cwd, env=daemon.env, stdin=subprocess.DEVNULL,
                       stdout=stdout, stderr=stderr, check=True)
    _wait(lambda: probe(daemon.socket) is None, deadline,
          f"dockerd to answer again (by hand: cd {shlex.quote(daemon.cwd)} &&"
          f" {shlex.join(daemon.argv)} >>{daemon.outputs[0]} 2>&1 &)")
    return find(daemon.socket)


def _command(daemon: Daemon) -> list[str]:
    """`setsid --fork` and the daemon's argv, once both are known to be there."""
    setsid = shutil.which("setsid")
    assert setsid is not None, "setsid (util-linux) is needed to detach the engine"
    program = daemon.argv[0]
    found = (os.access(os.path.join(daemon.cwd, program), os.X_OK) if os.sep in program
             else shutil.which(program, path=daemon.env.get("PATH", os.defpath)))
    assert found, f"{program} cannot be started again as it was (not found)"
    return [setsid, "--fork", *daemon.argv]


@contextlib.contextmanager
def _inherited(daemon: Daemon) -> Iterator[tuple[str, int, int]]:
    """The old process's working directory, stdout and stderr, opened again while it lives.

    Through /proc/<pid>/, so a deleted directory or log file, or a pipe, is reached as well as
    a path (the working directory is given as `/proc/self/fd/N`, which the child resolves to
    its inherited copy). The outputs are opened for appending, and once only when both went
    to the same place (`>log 2>&1`), so the order of lines holds.
    """
    proc = PROC / str(daemon.pid)
    with contextlib.ExitStack() as opened:

        def hold(path: Path, flags: int) -> int:
            fd = os.open(path, flags)
            opened.callback(os.close, fd)
            return fd

        cwd = hold(proc / "cwd", os.O_RDONLY | os.O_DIRECTORY)
        outputs: dict[str, int] = {}
        for n, target in zip((1, 2), daemon.outputs, strict=True):
            if target not in outputs:
                outputs[target] = hold(proc / "fd" / str(n), os.O_WRONLY | os.O_APPEND)
        yield f"/proc/self/fd/{cwd}", outputs[daemon.outputs[0]], outputs[daemon.outputs[1]]


def _listening_inodes(socket_path: str) -> set[str]:
    """Inodes of the listening Unix sockets bound to `socket_path` (state 01, /proc/net/unix).

    Paths are compared resolved: /var/run is a link to /run, and either may have been bound.
    """
    wanted = os.path.realpath(socket_path)
    inodes = set()
    for line in (PROC / "net" / "unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[5] == "01" and os.path.realpath(fields[7]) == wanted:
            inodes.add(fields[6])
    return inodes


def _pids_named(name: str) -> list[int]:
    """Processes whose command name is `name`; one that exits meanwhile is left out."""
    pids = []
    for proc in PROC.iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == name:
                pids.append(int(proc.name))
    return pids


def _socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process `pid` holds open."""
    inodes = set()
    with contextlib.suppress(OSError):  # the process exited meanwhile
        for fd in (PROC / str(pid) / "fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:["):-1])
    return inodes


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its parent has stopped)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def probe(socket_path: str = SOCKET) -> str | None:
    """None when an engine answers `GET /_ping` on `socket_path`; else why it does not.

    A plain socket, not docker-py: its Unix connection leaks the socket of every refused
    connect, which a test run that treats warnings as errors reports as a failure of its own.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            conn.connect(socket_path)
            conn.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            with conn.makefile("rb") as response:
                status = response.readline().decode(errors="replace").strip()
    except OSError as e:
        return f"{socket_path}: {e.strerror or e}"
    return None if status.split()[1:2] == ["200"] else f"{socket_path}: answered {status!r}"


def _wait(condition: Callable[[], bool], deadline: float, what: str) -> None:
    """Poll `condition` until it holds; AssertionError at the deadline."""
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
