#!/usr/bin/env bash
# Build the images the examples and tests use, from Debian's busybox-static.
# Skips what is already built; needs no registry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=podyard/busybox:1
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "image $image present"
  exit 0
fi
if ! dpkg -s busybox-static >/dev/null 2>&1; then
  # The image is FROM scratch, so busybox must be the static build.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/busybox/Dockerfile" "$ctx/"
cp /bin/busybox "$ctx/busybox"
docker build -q -t "$image" "$ctx" >/dev/null
echo "image $image built"
