"""The pause image's build context: a static busybox, or a clear refusal."""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from reconciler import errors
from reconciler.engine import pause

pytestmark = pytest.mark.unit

DYNAMIC = Path(os.path.realpath(sys.executable))  # CPython: dynamically linked, an ELF file


def test_a_dynamic_executable_is_not_static() -> None:
    binary = DYNAMIC.read_bytes()
    assert binary[:4] == b"\x7fELF" and not pause.is_static_elf(binary)


def test_garbage_is_not_static() -> None:
    assert not pause.is_static_elf(b"#!/bin/sh\necho not an ELF file\n" * 3)


@pytest.mark.skipif(not pause.BUSYBOX.exists(), reason="busybox-static is not installed")
def test_context_holds_the_dockerfile_and_busybox() -> None:
    with tarfile.open(fileobj=io.BytesIO(pause.build_context())) as tar:
        assert sorted(tar.getnames()) == ["Dockerfile", "busybox"]
        assert tar.getmember("busybox").mode == 0o755
        dockerfile = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
    assert dockerfile.startswith("FROM scratch\n")
    assert "trap 'exit 0' TERM INT" in dockerfile


def test_refuses_a_missing_busybox(tmp_path: Path) -> None:
    with pytest.raises(errors.Refused, match="install busybox-static or pass --pause-image"):
        pause.build_context(tmp_path / "busybox")


def test_refuses_a_dynamic_busybox(tmp_path: Path) -> None:
    fake = tmp_path / "busybox"
    shutil.copy(DYNAMIC, fake)
    with pytest.raises(errors.Refused, match="not a statically linked executable"):
        pause.build_context(fake)

