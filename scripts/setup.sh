#!/usr/bin/env bash
# Boson setup: installs what is missing (Debian packages, npm packages), builds boson-init and the demo image,
# then runs the main job: a container in its own micro-VM printing its greeting. Idempotent and quick when nothing
# changed. Run as root on Debian 12. Set BOSON_SETUP_NO_DEMO=1 to skip the demo run.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$root"
step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then echo "setup: run as root (it installs Debian packages and boots micro-VMs)" >&2; exit 77; fi

# Debian packages: what Boson runs (QEMU, the guest kernel, mkfs tools, setpriv) and builds (musl for boson-init),
# plus what the tests and benchmarks use as real peers (busybox-static for the demo image, runc, skopeo, umoci), and
# uidmap (newuidmap/newgidmap), with which a rootless daemon builds root disks in a user namespace, attr (setfattr:
# extended attributes from image layers, e.g. file capabilities), and
# linux-source-6.1 with what building it takes (Boson's own guest kernel; Debian's cloud kernel stays the fallback).
packages=(qemu-system-x86 linux-image-cloud-amd64 busybox-static e2fsprogs erofs-utils musl-tools gcc make cpio
  linux-source-6.1 bc bison flex libelf-dev lz4 xz-utils
  util-linux kmod runc skopeo umoci procps docker-registry apache2-utils openssl zstd
  iproute2 nftables uidmap attr)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "Installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm packages: reinstall only when the lock file changed.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/.boson-lock ] || [ "$(cat node_modules/.boson-lock)" != "$lock_hash" ]; then
  step "Installing npm packages"
  npm_config_build_from_source=true npm ci --no-audit --no-fund  # better-sqlite3 builds against the local Node
  echo "$lock_hash" > node_modules/.boson-lock
fi

step "Building boson-init"
make -s -C guest/init

step "Building the guest kernel"
scripts/build-kernel.sh >/dev/null  # cached: a copy when nothing changed

step "Building the demo image (localhost/busybox:latest)"
npx tsx scripts/build-busybox-image.ts build/images/busybox-oci
bin/boson image import build/images/busybox-oci >/dev/null  # idempotent: blobs are content-addressed

step "Checking the host"
bin/boson info

if [ -z "${BOSON_SETUP_NO_DEMO:-}" ]; then
  step "Running a container in its own micro-VM"
  bin/boson run --rm busybox sh -c 'echo "Hello from Boson: container $(hostname) runs on guest kernel $(uname -r), not the host'"'"'s."'
fi
