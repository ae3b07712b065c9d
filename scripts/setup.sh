#!/usr/bin/env bash
# Boson setup: installs what is missing (Debian packages, npm packages), builds the CLI bundle, boson-init and the
# demo image, then runs the main job: a container in its own micro-VM printing its greeting. Idempotent and quick
# when nothing changed. Run as root on Debian 12. Set BOSON_SETUP_NO_DEMO=1 to skip the demo run.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$root"
step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then echo "setup: run as root (it installs Debian packages and boots micro-VMs)" >&2; exit 77; fi

# Debian packages: what Boson runs (QEMU, the guest kernel, mkfs tools, setpriv) and builds (musl for boson-init),
# plus what the tests and benchmarks use as real peers (busybox-static for the demo image, runc, skopeo, umoci), and
# uidmap (newuidmap/newgidmap), with which a rootless daemon builds root disks in a user namespace, attr (setfattr:
# extended attributes from image layers, e.g. file capabilities), mmdebstrap (the application images: redis, nginx,
# built from Debian's packages), redis-tools (redis-cli, the apps suite's client), clang with its libFuzzer/ASan
# runtime (libclang-rt-14-dev: guest/init's protocol fuzzer, `make -C guest/init fuzz`), and
# linux-source-6.1 with what building it takes (Boson's own guest kernel; Debian's cloud kernel stays the fallback),
# and fio and iperf3 (bench/tax.ts: iperf3 is its host-side client; both are also in its bench image), passt
# (the user-mode network of rootless micro-VMs: unlike QEMU's slirp it can be kept from the host's loopback), and
# containernetworking-plugins (bridge, host-local, portmap, loopback in /usr/lib/cni: CRI pod networks) with iptables
# (the bridge plugin's masquerade and portmap's hostPort rules).
packages=(qemu-system-x86 linux-image-cloud-amd64 busybox-static e2fsprogs erofs-utils musl-tools gcc make cpio passt
  linux-source-6.1 bc bison flex libelf-dev lz4 xz-utils
  util-linux kmod runc skopeo umoci procps docker-registry apache2-utils openssl zstd
  iproute2 nftables uidmap attr mmdebstrap redis-tools clang libclang-rt-14-dev fio iperf3
  containernetworking-plugins iptables)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "Installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The Docker clients that the Docker suites drive Boson with, from Debian: docker.io (the docker CLI 20.10, API 1.41),
# python3-docker (docker-py 5.0.3) and docker-compose (1.29). docker.io also carries Docker's own daemon, which must
# never run here (it would take /var/run/docker.sock, bridges and iptables rules): they are installed with a
# policy-rc.d that forbids starting services, and Docker's units are then disabled and masked where systemd exists.
docker_packages=(docker.io python3-docker docker-compose)
docker_missing=()
for p in "${docker_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || docker_missing+=("$p")
done
docker_units=(docker.service docker.socket containerd.service)
docker_daemons() { pgrep -x dockerd; pgrep -x containerd; true; }  # their pids (pgrep takes 15 characters at most)
if [ ${#docker_missing[@]} -gt 0 ]; then
  step "Installing the Docker clients (Docker's daemon stays off): ${docker_missing[*]}"
  # Daemons that already ran before this install are someone else's: they are reported, never killed.
  daemons_before=" $(docker_daemons | tr '\n' ' ') "
  policy=/usr/sbin/policy-rc.d
  policy_saved=
  if [ -e "$policy" ]; then policy_saved=$(mktemp); cp -p "$policy" "$policy_saved"; fi
  restore_policy() {
    if [ -n "$policy_saved" ]; then mv -f "$policy_saved" "$policy"; else rm -f "$policy"; fi
  }
  trap restore_policy EXIT
  trap 'exit 130' INT TERM HUP  # so that the EXIT trap runs on these too
  printf '#!/bin/sh\n# Boson setup: no service may start while the Docker packages are installed.\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${docker_missing[@]}"
  restore_policy
  trap - EXIT INT TERM HUP
  # A daemon that started anyway (a package that ignores policy-rc.d) is ours: stop exactly those processes.
  for pid in $(docker_daemons); do
    case "$daemons_before" in *" $pid "*) ;; *) echo "setup: stopping $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid), started by the install" >&2; kill "$pid" 2>/dev/null || true ;; esac
  done
fi
# Docker's units are disabled and masked wherever systemd is installed (every run: a later upgrade of docker.io
# must not enable them again). Without a running systemd (a container) systemctl works on the files (--root=/).
if command -v systemctl >/dev/null 2>&1 && dpkg-query -W -f='${Status}' docker.io 2>/dev/null | grep -q 'install ok installed'; then
  if [ -d /run/systemd/system ]; then systemd_root=(); systemctl stop "${docker_units[@]}" >/dev/null 2>&1 || true
  else systemd_root=(--root=/); fi
  for unit in "${docker_units[@]}"; do
    if [ "$(systemctl "${systemd_root[@]}" is-enabled "$unit" 2>/dev/null)" != masked ]; then
      systemctl "${systemd_root[@]}" disable "$unit" >/dev/null 2>&1 || true
      systemctl "${systemd_root[@]}" mask "$unit" >/dev/null 2>&1 || echo "setup: warning: could not mask $unit" >&2
    fi
  done
fi
running=$(docker_daemons | tr '\n' ' ')
if [ -n "$running" ]; then
  echo "setup: warning: a Docker daemon runs here (pids $running); Boson's Docker API uses its own socket, but the docker CLI follows DOCKER_HOST" >&2
fi

# etcd, the controller's distributed state store: the tests start their own etcd on loopback (a temp data dir,
# random ports), so Debian's etcd-server is installed with its service never started (the same policy-rc.d guard
# as the Docker packages), and its unit is disabled and masked wherever systemd exists (every run, as Docker's).
if ! dpkg-query -W -f='${Status}' etcd-server 2>/dev/null | grep -q 'install ok installed'; then
  step "Installing etcd-server (its service stays off)"
  etcd_before=" $( (pgrep -x etcd || true) | tr '\n' ' ') "
  policy=/usr/sbin/policy-rc.d
  policy_saved=
  if [ -e "$policy" ]; then policy_saved=$(mktemp); cp -p "$policy" "$policy_saved"; fi
  restore_policy() {
    if [ -n "$policy_saved" ]; then mv -f "$policy_saved" "$policy"; else rm -f "$policy"; fi
  }
  trap restore_policy EXIT
  trap 'exit 130' INT TERM HUP
  printf '#!/bin/sh\n# Boson setup: no service may start while etcd-server is installed.\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends etcd-server
  restore_policy
  trap - EXIT INT TERM HUP
  for pid in $(pgrep -x etcd || true); do
    case "$etcd_before" in *" $pid "*) ;; *) echo "setup: stopping etcd (pid $pid), started by the install" >&2; kill "$pid" 2>/dev/null || true ;; esac
  done
fi
if command -v systemctl >/dev/null 2>&1; then
  if [ -d /run/systemd/system ]; then etcd_root=(); systemctl stop etcd.service >/dev/null 2>&1 || true
  else etcd_root=(--root=/); fi
  if [ "$(systemctl "${etcd_root[@]}" is-enabled etcd.service 2>/dev/null)" != masked ]; then
    systemctl "${etcd_root[@]}" disable etcd.service >/dev/null 2>&1 || true
    systemctl "${etcd_root[@]}" mask etcd.service >/dev/null 2>&1 || echo "setup: warning: could not mask etcd.service" >&2
  fi
fi

# npm packages: reinstall only when the lock file changed.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f node_modules/.boson-lock ] || [ "$(cat node_modules/.boson-lock)" != "$lock_hash" ]; then
  step "Installing npm packages"
  npm_config_build_from_source=true npm ci --no-audit --no-fund  # better-sqlite3 builds against the local Node
  echo "$lock_hash" > node_modules/.boson-lock
fi

step "Building the CLI bundle"
scripts/build-cli.sh  # quick when the bundle is newer than every source; bin/boson would otherwise build it on first use

# The unprivileged user each QEMU of the daemon switches to once its devices are open (the jailed VMM).
if ! id boson-vmm >/dev/null 2>&1; then
  step "Creating the boson-vmm system user"
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin boson-vmm
fi

step "Building boson-init"
make -s -C guest/init
# The loopback guard preloaded into every passt of a rootless daemon (see src/vmm/passt-guard.c).
if [ ! -f build/host/passt-guard.so ] || [ src/vmm/passt-guard.c -nt build/host/passt-guard.so ]; then
  step "Building passt's loopback guard"
  mkdir -p build/host
  gcc -shared -fPIC -O2 -Wall -Wextra -o build/host/passt-guard.so src/vmm/passt-guard.c
  chmod 0755 build/host build/host/passt-guard.so  # rootless users' passts load it
fi

step "Building virtiofsd-guard"
make -s -C src/vmm/fsguard  # the seccomp wrapper of every bind mount's virtiofsd (no set-ID files, no devices)

step "Building the guest kernel"
scripts/build-kernel.sh >/dev/null  # cached: a copy when nothing changed

step "Building the demo image (localhost/busybox:latest)"
npx tsx scripts/build-busybox-image.ts build/images/busybox-oci
bin/boson image import build/images/busybox-oci >/dev/null  # idempotent: blobs are content-addressed

step "Building the application images (redis, nginx, bench)"
scripts/build-app-images.sh >/dev/null  # cached: a copy when the recipe did not change

step "Checking the host"
bin/boson info

if [ -z "${BOSON_SETUP_NO_DEMO:-}" ]; then
  step "Running a container in its own micro-VM"
  bin/boson run --rm busybox sh -c 'echo "Hello from Boson: container $(hostname) runs on guest kernel $(uname -r), not the host'"'"'s."'
fi
