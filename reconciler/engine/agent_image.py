"""The node agent image: iptables, conntrack and dnsmasq from the controller host, FROM scratch.

No registry is needed: the image is assembled from the binaries Debian installed on the host
that runs the controller (packages iptables, conntrack, dnsmasq-base, busybox-static), with
the libraries `ldd` names, and built on each node through its engine API, as the pause image
is. The host's iptables is the nf_tables one (`xtables-nft-multi`), the backend Docker's own
rules use on Debian 12: a tool on another backend would program rules that never meet them.

Reads host files and runs `ldd`; never talks to Docker (`agents.py` sends the context).
"""

from __future__ import annotations

import functools
import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

from reconciler import errors

REPOSITORY = "podyard/node-agent"
XTABLES = Path("/usr/sbin/xtables-nft-multi")
XTABLES_MODULES = Path("/usr/lib/x86_64-linux-gnu/xtables")
BINARIES = {  # path in the image: where it comes from, and the Debian package that has it
    "/usr/sbin/xtables-nft-multi": (XTABLES, "iptables"),
    "/usr/sbin/conntrack": (Path("/usr/sbin/conntrack"), "conntrack"),
    "/usr/sbin/dnsmasq": (Path("/usr/sbin/dnsmasq"), "dnsmasq-base"),
}
BUSYBOX = Path("/bin/busybox")  # static (busybox-static): the scripts' shell and tools
APPLETS = ("sh", "sleep", "grep", "sed", "cat", "mv", "cp", "rm", "mkdir", "kill", "cmp",
           "touch", "echo", "tr", "awk")
IPTABLES = ("iptables", "iptables-restore", "iptables-save")

# The rule agent's main process: it keeps watch over the canary and the jumps, and exits
# (which the controller sees as a stopped agent, and answers with a new one and a fresh
# apply) as soon as someone has flushed them.
WATCH = r"""#!/bin/sh
trap 'exit 0' TERM INT
cd /run/podyard
while :; do
  if [ -f current/canary ]; then
    canary=$(cat current/canary)
    for table in nat filter; do
      if ! iptables -t "$table" -C "$canary" -j RETURN 2>/dev/null; then
        echo "podyard: $table $canary is gone (tables flushed); exiting to be re-applied"
        exit 1
      fi
    done
    while read -r table chain rule; do
      if ! eval "iptables -t $table -C $chain $rule" 2>/dev/null; then
        echo "podyard: the jump from $table $chain is gone; exiting to be re-applied"
        exit 1
      fi
    done < current/jumps
  fi
  sleep 1 & wait $!
done
"""

# Run through the engine's exec with the new files in /run/podyard/next: the whole rule set
# at once, then the jumps, then chains of ours the rule set no longer has, then conntrack.
APPLY = r"""#!/bin/sh
set -e
cd /run/podyard
iptables-restore --noflush < next/rules
while read -r table chain rule; do
  eval "iptables -t $table -C $chain $rule" 2>/dev/null ||
    eval "iptables -t $table -I $chain 1 $rule"
done < next/jumps
# Lines of file $2 that are not in file $1, in linear time.
missing() { awk 'NR == FNR { seen[$0]; next } !($0 in seen)' "$1" "$2"; }
if [ ! -f next/partial ]; then
  # A whole rule set: our chains it no longer has go. (A partial one deletes them itself.)
  canary=$(cat next/canary)
  prefix=${canary%-CANARY}
  for table in nat filter; do
    iptables-save -t "$table" | sed -n "s/^:\($prefix-[^ ]*\) .*/$table \1/p"
  done > have
  missing next/chains have > stale
  if [ -s stale ]; then
    for table in nat filter; do
      echo "*$table"
      grep "^$table " stale | while read -r t c; do echo ":$c - [0:0]"; done
      grep "^$table " stale | while read -r t c; do echo "-X $c"; done
      echo COMMIT
    done | iptables-restore --noflush
  fi
fi
if [ -f current/udp ]; then
  missing next/udp current/udp | while read -r ip port ep; do
    case "$ip $ep" in
      "#"*) continue ;;
      *" -") set -- --orig-dst "$ip" ;;
      "- "*) set -- --dst-nat "$ep" ;;
      *) set -- --orig-dst "$ip" --dst-nat "$ep" ;;
    esac
    conntrack -D -p udp --orig-port-dst "$port" "$@" >/dev/null 2>&1 || true
  done
fi
rm -rf current
mv next current
"""

# The DNS agent's main process: dnsmasq, started again whenever it exits (a change of SRV
# records ends it: they are configuration, which dnsmasq reads only at start). A-records
# come from /run/podyard/hosts, which dnsmasq re-reads by itself when a file there changes.
DNS = r"""#!/bin/sh
trap 'kill $pid 2>/dev/null; exit 0' TERM INT
cd /run/podyard
touch srv.conf
while :; do
  dnsmasq -k --no-hosts --hostsdir=/run/podyard/hosts --conf-file=/run/podyard/srv.conf \
    --local=/cluster.local/ --domain-needed --log-facility=- --user=nobody --group=nogroup \
    --pid-file=/run/podyard/dnsmasq.pid &
  pid=$!
  wait $pid
  sleep 0.2
done
"""

DNS_APPLY = r"""#!/bin/sh
set -e
cd /run/podyard
restart=
cmp -s next/srv.conf srv.conf || { cp next/srv.conf srv.conf; restart=yes; }
mv next/hosts hosts/services
cp next/digest digest
if [ -n "$restart" ] && [ -f dnsmasq.pid ]; then kill "$(cat dnsmasq.pid)" 2>/dev/null || true; fi
"""

ETC = {
    "etc/passwd": "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/nsswitch.conf": "hosts: files dns\n",
}


def dockerfile() -> str:
    return "FROM scratch\nCOPY rootfs/ /\nLABEL io.podyard.node-agent=true\n"


@functools.lru_cache(maxsize=1)
def build_context() -> tuple[str, bytes]:
    """(the image name with its content tag, the build context as a tar); Refused when the
    host lacks a binary, naming the package to install."""
    files: dict[str, Path] = {}
    for target, (source, package) in BINARIES.items():
        if not source.is_file():
            raise errors.Refused(
                f"{source} is missing on the controller host: install the Debian package "
                f"{package} (the node agent image is built from it)"
            )
        files[target] = source
    if not XTABLES_MODULES.is_dir():
        raise errors.Refused(f"{XTABLES_MODULES} is missing: install the package iptables")
    modules = sorted(XTABLES_MODULES.glob("*.so"))
    for module in modules:
        files[str(module)] = module
    for binary in [*(s for s, _ in BINARIES.values()), *modules]:
        for library in _libraries(binary):
            files.setdefault(str(library), library)
    if not BUSYBOX.is_file():
        raise errors.Refused(f"{BUSYBOX} is missing: install the Debian package busybox-static")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add(tar, "Dockerfile", dockerfile().encode(), 0o644)
        for target, source in sorted(files.items()):
            _add(tar, "rootfs" + target, source.read_bytes(), 0o755)
        _add(tar, "rootfs/bin/busybox", BUSYBOX.read_bytes(), 0o755)
        for applet in APPLETS:
            _link(tar, f"rootfs/bin/{applet}", "busybox")
        for name in IPTABLES:
            _link(tar, f"rootfs/usr/sbin/{name}", "xtables-nft-multi")
        for name, text in (("watch", WATCH), ("apply", APPLY), ("dns", DNS),
                           ("dns-apply", DNS_APPLY)):
            _add(tar, f"rootfs/agent/{name}", text.encode(), 0o755)
        for name, text in ETC.items():
            _add(tar, f"rootfs/{name}", text.encode(), 0o644)
        for directory in ("run/podyard/hosts", "tmp"):
            _dir(tar, f"rootfs/{directory}")
    context = buffer.getvalue()
    tag = hashlib.sha256(context).hexdigest()[:12]
    return f"{REPOSITORY}:{tag}", context


def _libraries(binary: Path) -> list[Path]:
    """The shared libraries `ldd` resolves for a binary, the dynamic loader included."""
    try:
        out = subprocess.run(
            ["ldd", str(binary)], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise errors.Refused(f"cannot run ldd on {binary}: {e}") from e
    found = []
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if len(parts) >= 3 and parts[1] == "=>" else parts[0] if parts else ""
        if path.startswith("/"):
            found.append(Path(path))
    return found


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


def _dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)
