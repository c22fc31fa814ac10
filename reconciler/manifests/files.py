"""Finding and reading manifest files: in a work tree, or in Git's HEAD tree.

Two steps, so a caller can skip what has not changed: `scan` finds the manifest files and
what identifies each one's content (its stat signature in a work tree, its blob id in Git)
without reading them; `read` reads one. The I/O here is the file system and `git`, always
with a size limit and a timeout. Also the revision (HEAD, and whether the tree is dirty).

Hidden files and directories are skipped, as are files not ending in .yaml, .yml or .json.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler import errors, model
from reconciler.manifests import documents

EXTENSIONS = (".yaml", ".yml", ".json")
GIT_TIMEOUT = 10.0
# A file changed this recently may change again within the same timestamp tick, unseen by
# its stat signature (Git's "racy" files): such a file is read again on the next scan.
RACY_NS = 2_000_000_000
# Whoever can push manifests must not make the controller read (and echo, in an error) a
# file outside the repository, nor apply one that was never committed: links are refused.
SYMLINK = (
    "is a symbolic link: podyard never follows links in the manifests (one could point "
    "outside them); put the file itself there"
)


@dataclass(frozen=True)
class Entry:
    """A manifest file found by a scan, not read yet."""

    name: str  # relative to the root, with forward slashes
    key: Hashable  # what identifies the content: equal keys, equal content
    settled: bool = True  # False: the key alone cannot be trusted (a racy file)
    path: str | None = None  # in a work tree (a str: a Path per file doubles a scan's time)
    blob: str = ""  # in Git's HEAD tree
    repo: Path | None = None
    problem: str = ""  # why it cannot be read at all
    size: int = 0  # bytes to read, as listed (a work-tree file may change before it is read)


@dataclass(frozen=True)
class File:
    """A manifest file's name (relative to the root) and content, or why it has none."""

    name: str
    data: bytes = b""
    problem: str = ""


def scan(root: Path, limits: documents.Limits, *, committed: bool) -> list[Entry]:
    """Every manifest file under `root` (a directory or one file), sorted by name.

    Raises `errors.ManifestError` when the files together exceed `limits.max_total_bytes`:
    a tree that large is a mistake or an attack, and reading it would take unbounded time.
    """
    entries = _scan_commit(root, limits) if committed else _scan_work_tree(root, limits)
    total = sum(e.size for e in entries)
    if total > limits.max_total_bytes:
        reason = (f"the manifest files total {total} bytes; the limit for all of them together "
                  f"is {limits.max_total_bytes}")
        raise errors.ManifestError([errors.Problem(str(root), 0, "", reason)])
    return entries


def read(entry: Entry, limits: documents.Limits) -> File:
    """One scanned file's content, or the reason it has none."""
    if entry.problem:
        return File(entry.name, problem=entry.problem)
    if entry.blob and entry.repo is not None:
        data = _git(["cat-file", "blob", entry.blob], entry.repo)
        if data is None:
            return File(entry.name, problem="cannot read")
        return File(entry.name, data)
    assert entry.path is not None
    try:
        with open(entry.path, "rb") as f:
            data = f.read(limits.max_bytes + 1)
    except OSError as e:
        return File(entry.name, problem=f"cannot read: {e.strerror or e}")
    if len(data) > limits.max_bytes:
        return File(entry.name, problem=_too_large(len(data), limits))
    return File(entry.name, data)


def revision(root: Path, *, committed: bool = False) -> model.Revision:
    """HEAD's commit, and (for a work tree) whether `root` differs from it."""
    if committed:
        head = _git(["rev-parse", "--verify", "-q", "HEAD"], _git_dir(root))
        return model.Revision(head.decode().strip() if head else "")
    if not root.exists():
        return model.Revision()
    cwd = _git_dir(root)
    head = _git(["rev-parse", "--verify", "-q", "HEAD"], cwd)
    if not head:
        return model.Revision()
    status = _git(["status", "--porcelain", "--", root.resolve().as_posix()], cwd)
    return model.Revision(head.decode().strip(), dirty=status is None or bool(status.strip()))


# The work tree.


def _scan_work_tree(root: Path, limits: documents.Limits) -> list[Entry]:
    if not root.exists():
        raise errors.ManifestError([errors.Problem(str(root), 0, "", "no such file or directory")])
    now = time.time_ns()
    if not root.is_dir():
        return [_stat_entry(str(root), root.name, limits, now)]
    found: list[Entry] = []

    def unreadable(e: OSError) -> None:
        name = Path(e.filename).relative_to(root).as_posix() if e.filename else str(root)
        found.append(Entry(name, None, problem=f"cannot read directory: {e.strerror or e}"))

    for directory, subdirs, names in os.walk(root, onerror=unreadable):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        # Strings, not pathlib: every idle --watch pass scans, and pathlib's parsing per file
        # was most of a 1,000-file scan's time.
        relative = os.path.relpath(directory, root).replace(os.sep, "/")
        prefix = "" if relative == "." else relative + "/"
        # os.walk lists a link to a directory among the directories and does not enter it.
        linked = [d for d in subdirs if os.path.islink(os.path.join(directory, d))]
        found += [Entry(prefix + d, None, problem=SYMLINK) for d in linked]
        subdirs[:] = [d for d in subdirs if d not in linked]
        for name in sorted(names):
            if not name.startswith(".") and name.endswith(EXTENSIONS):
                path = os.path.join(directory, name)
                found.append(_stat_entry(path, prefix + name, limits, now))
    return found


def _stat_entry(path: str, name: str, limits: documents.Limits, now: int) -> Entry:
    try:
        info = os.lstat(path)
    except OSError as e:
        return Entry(name, None, settled=False, problem=f"cannot read: {e.strerror or e}")
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    if stat.S_ISLNK(info.st_mode):
        return Entry(name, key, problem=SYMLINK)
    if not stat.S_ISREG(info.st_mode):
        return Entry(name, key, problem="not a regular file")
    if info.st_size > limits.max_bytes:
        return Entry(name, key, problem=_too_large(info.st_size, limits))
    settled = now - max(info.st_mtime_ns, info.st_ctime_ns) > RACY_NS
    return Entry(name, key, settled=settled, path=path, size=info.st_size)


def _too_large(size: int, limits: documents.Limits) -> str:
    return f"is {size} bytes; the limit for one manifest file is {limits.max_bytes}"


# Git's HEAD tree.


def _git(args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes | None:
    """git's stdout, or None when git is missing, fails or does not answer in time."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True,
            timeout=GIT_TIMEOUT, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _git_dir(root: Path) -> Path:
    return root if root.is_dir() else root.parent


def _scan_commit(root: Path, limits: documents.Limits) -> list[Entry]:
    """The manifest files under `root` in Git's HEAD tree, found without touching the work tree."""

    def fail(reason: str) -> errors.ManifestError:
        return errors.ManifestError([errors.Problem(str(root), 0, "", reason)])

    if not root.exists():
        raise fail("no such file or directory")
    top = _git(["rev-parse", "--show-toplevel"], _git_dir(root))
    if top is None:
        raise fail("not inside a Git work tree (needed to read the committed manifests)")
    toplevel = Path(top.decode().strip()).resolve()
    try:
        prefix = root.resolve().relative_to(toplevel).as_posix()
    except ValueError:
        raise fail(f"not inside the Git work tree at {toplevel}") from None
    listing = _git(["ls-tree", "-r", "-l", "-z", "HEAD", "--", prefix or "."], toplevel)
    if listing is None:
        raise fail("cannot list Git's HEAD tree (is there a commit yet?)")
    wanted = list(_tree_entries(listing, prefix, root.is_dir()))
    if not root.is_dir() and not wanted:
        raise fail("not in Git's HEAD commit")
    entries = []
    for name, oid, size, link in wanted:
        if link:
            entries.append(Entry(name, oid, problem=SYMLINK))
        elif size > limits.max_bytes:
            entries.append(Entry(name, oid, problem=_too_large(size, limits)))
        else:
            entries.append(Entry(name, oid, blob=oid, repo=toplevel, size=size))
    return entries


def _tree_entries(
    listing: bytes, prefix: str, is_dir: bool
) -> Iterator[tuple[str, str, int, bool]]:
    """(name relative to root, blob id, size, is a link) of each manifest blob, and of each
    symbolic link (whatever its name), in `ls-tree -r -l -z`."""
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, _, raw_path = entry.partition(b"\t")
        mode, kind, oid, size = meta.decode().split()
        path = raw_path.decode("utf-8", "replace")
        link = mode == "120000"
        if kind != "blob":
            continue
        if not is_dir:
            yield Path(path).name, oid, int(size), link
            continue
        name = path[len(prefix) + 1:] if prefix and prefix != "." else path
        parts = name.split("/")
        if any(p.startswith(".") for p in parts) or not (link or name.endswith(EXTENSIONS)):
            continue
        yield name, oid, int(size), link


def git_dir(root: Path) -> Path | None:
    """The Git directory of the repository holding `root` (where a push moves the refs)."""
    found = _git(["rev-parse", "--absolute-git-dir"], _git_dir(Path(root)))
    return Path(found.decode().strip()) if found else None
