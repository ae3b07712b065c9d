#!/usr/bin/env bash
# Builds Boson's guest kernel from Debian's linux-source-6.1 with guest/kernel/boson-guest.config (on top of
# `make tinyconfig`), and installs it into build/guest/kernel the way /boot is laid out:
#   vmlinuz-<release>, config-<release>, modules/<release>/modules.{dep,builtin} (no modules: all built in).
# The build (~4 min on 2 cores) is cached in $BOSON_KERNEL_CACHE (default /var/cache/boson/kernel), keyed by the
# source package's version, the config fragment and RECIPE; later runs and fresh clones only copy it.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
fragment="$root/guest/kernel/boson-guest.config"
tarball=/usr/src/linux-source-6.1.tar.xz
out="$root/build/guest/kernel"
cache_root=${BOSON_KERNEL_CACHE:-/var/cache/boson/kernel}
RECIPE=1  # bump when a change below alters what is built (not for messages or comments)

[ -f "$tarball" ] || { echo "build-kernel: $tarball is missing (apt-get install linux-source-6.1)" >&2; exit 1; }
source_version=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( { echo "$source_version"; echo "$RECIPE"; cat "$fragment"; } | sha256sum | cut -c1-16)
cache="$cache_root/$key"

if [ ! -f "$cache/done" ]; then
  printf '\033[1m==> %s\033[0m\n' "Building Boson's guest kernel from linux-source-6.1 $source_version (first time only: about 4 minutes)" >&2
  work=$(mktemp -d /var/tmp/boson-kernel-XXXXXX)
  trap 'rm -rf "$work"' EXIT
  tar -xJf "$tarball" -C "$work"
  src="$work/linux-source-6.1"
  make -s -C "$src" tinyconfig >/dev/null
  "$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$fragment" >/dev/null 2>&1
  make -s -C "$src" olddefconfig >/dev/null 2>&1
  # Every line of the fragment must have survived olddefconfig (a dependency it lacks would drop it silently).
  missing=$(grep -E '^(CONFIG_|# CONFIG_)' "$fragment" | while IFS= read -r line; do grep -qxF "$line" "$src/.config" || echo "$line"; done)
  if [ -n "$missing" ]; then echo "build-kernel: options dropped by olddefconfig:" >&2; echo "$missing" >&2; exit 1; fi
  jobs=$(nproc)
  if [ -t 2 ]; then
    make -C "$src" -j"$jobs" bzImage 2>&1 | awk '/^  (CC|LD|AR)/ { n++; if (n % 50 == 0) { printf "\r   %d objects built", n > "/dev/stderr" } } /error:|\*\*\*/ { print > "/dev/stderr" }'
    printf '\n' >&2
  else
    make -s -C "$src" -j"$jobs" bzImage >/dev/null
  fi
  [ -f "$src/arch/x86/boot/bzImage" ] || { echo "build-kernel: the kernel build failed" >&2; exit 1; }
  release=$(make -s -C "$src" kernelrelease)
  staged="$cache.tmp-$$"
  rm -rf "$staged"
  mkdir -p "$staged/modules/$release"
  cp "$src/arch/x86/boot/bzImage" "$staged/vmlinuz-$release"
  cp "$src/.config" "$staged/config-$release"
  cp "$src/modules.builtin" "$staged/modules/$release/modules.builtin"
  : > "$staged/modules/$release/modules.dep"
  echo "$release" > "$staged/done"
  rm -rf "$cache"
  mv "$staged" "$cache"
fi

release=$(cat "$cache/done")
if [ ! -f "$out/vmlinuz-$release" ] || ! cmp -s "$cache/vmlinuz-$release" "$out/vmlinuz-$release" || ! cmp -s "$cache/config-$release" "$out/config-$release"; then
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp"
  cp -r "$cache/vmlinuz-$release" "$cache/config-$release" "$cache/modules" "$out.tmp/"
  chmod 0644 "$out.tmp/vmlinuz-$release"
  rm -rf "$out"
  mv "$out.tmp" "$out"
fi
echo "$out/vmlinuz-$release"
