"""The pause image: podyard's own pod sandbox image, built from the controller's busybox.

Owns the image's build context (a tar holding a Dockerfile and a static busybox) and the
check that the busybox found on the controller host is static. It reads that one file and
never talks to Docker: `images.py` sends the tar over the engine API, so the image can be
built on a remote node that has no registry and no busybox of its own.
"""

from __future__ import annotations

import io
import struct
import tarfile
from pathlib import Path

from reconciler import errors

DEFAULT_IMAGE = "podyard/pause:1"
BUSYBOX = Path("/bin/busybox")

# PID 1 ignores signals it has no handler for, so the trap is what makes `docker stop`
# return at once instead of after the stop timeout. `sleep` runs as a child (busybox has
# no symlinks in this image) and `wait` is interrupted by the trapped signal.
ENTRYPOINT = (
    "/bin/busybox",
    "sh",
    "-c",
    "trap 'exit 0' TERM INT; while :; do /bin/busybox sleep 3600 & wait $!; done",
)

_PT_INTERP = 3  # an ELF program header naming a dynamic loader


def dockerfile() -> str:
    """The pause image's Dockerfile: busybox alone, FROM scratch, no RUN step."""
    entrypoint = ", ".join(f'"{part}"' for part in ENTRYPOINT)
    return (
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        "LABEL io.podyard.pause=true\n"
        f"ENTRYPOINT [{entrypoint}]\n"
    )


def build_context(busybox: Path = BUSYBOX) -> bytes:
    """The build context as an uncompressed tar; Refused when busybox is unusable."""
    try:
        binary = busybox.read_bytes()
    except OSError as e:
        raise _missing(busybox, "is not readable") from e
    if not is_static_elf(binary):
        raise _missing(busybox, "is not a statically linked executable")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add(tar, "Dockerfile", dockerfile().encode(), 0o644)
        _add(tar, "busybox", binary, 0o755)
    return buffer.getvalue()


def is_static_elf(binary: bytes) -> bool:
    """True for an ELF executable without an interpreter (a PT_INTERP program header)."""
    if len(binary) < 64 or binary[:4] != b"\x7fELF":
        return False
    wide, order = binary[4] == 2, "<" if binary[5] == 1 else ">"
    if wide:
        (phoff,) = struct.unpack_from(order + "Q", binary, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", binary, 0x36)
    else:
        (phoff,) = struct.unpack_from(order + "I", binary, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", binary, 0x2A)
    for i in range(phnum):
        offset = phoff + i * phentsize
        if offset + 4 > len(binary):
            return False
        (p_type,) = struct.unpack_from(order + "I", binary, offset)
        if p_type == _PT_INTERP:
            return False
    return True


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _missing(busybox: Path, why: str) -> errors.Refused:
    return errors.Refused(
        f"cannot build the pause image: {busybox} {why}; "
        "install busybox-static or pass --pause-image"
    )
