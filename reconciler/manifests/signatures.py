"""Commit signature verification, as Flux offers it: only a HEAD signed by a trusted key applies.

With `verifyCommits: true` and `trustedSigners` in the cluster file, the committed tree is
applied only when `git verify-commit HEAD` accepts its signature against those keys: SSH
public keys (`ssh-ed25519 AAAA... alice`, checked through an allowed-signers file) or
OpenPGP public key blocks (imported into a keyring of their own). Anything else (unsigned,
signed by another key, a key not trusted) is a problem of the manifests: the last verified
state stays applied. I/O: `git`, `ssh-keygen` or `gpg` through git, and temporary files.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from reconciler import model

GIT_TIMEOUT = 10.0
_SSH_TYPES = ("ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-")


def unverified(repo: Path, trust: model.CommitTrust) -> str | None:
    """Why HEAD of `repo` may not be applied; None when it may (or verification is off)."""
    if not trust.verify:
        return None
    if not trust.signers:
        return "verifyCommits is on but trustedSigners lists no key"
    with tempfile.TemporaryDirectory(prefix="podyard-trust-") as scratch:
        args, env = _verifier(Path(scratch), trust)
        try:
            done = subprocess.run(
                ["git", *args, "verify-commit", "--raw", "HEAD"], cwd=repo, env=env,
                capture_output=True, timeout=GIT_TIMEOUT, check=False,
            )
        except (OSError, subprocess.SubprocessError) as e:
            return f"cannot verify the signature of HEAD: {e}"
    if done.returncode == 0:
        return None
    return "HEAD is not signed by a trusted key: " + _reason(done.stderr.decode(errors="replace"))


def _verifier(
    scratch: Path, trust: model.CommitTrust
) -> tuple[list[str], dict[str, str]]:
    """git's options and environment to check signatures against the trusted keys only."""
    allowed = scratch / "allowed_signers"
    ssh_keys = [s.strip() for s in trust.signers if s.strip().startswith(_SSH_TYPES)]
    allowed.write_text("".join(f'* namespaces="git" {key}\n' for key in ssh_keys))
    home = scratch / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    for block in (s for s in trust.signers if "BEGIN PGP PUBLIC KEY BLOCK" in s):
        subprocess.run(["gpg", "--batch", "--quiet", "--import"], input=block.encode(),
                       env=env, capture_output=True, timeout=GIT_TIMEOUT, check=False)
    # The keys are the only trust: no user or system configuration may add to them.
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    args = ["-c", f"gpg.ssh.allowedSignersFile={allowed}", "-c", "gpg.minTrustLevel=undefined"]
    return args, env


def _reason(stderr: str) -> str:
    """git's and the verifier's words, on one line and short."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    wanted = [line for line in lines if not line.startswith("[GNUPG:]")] or ["no signature"]
    text = "; ".join(wanted)
    return text if len(text) <= 200 else text[:197] + "..."
