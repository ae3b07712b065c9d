#!/bin/sh
# Builds the bundle of the boson CLI in build/cli (scripts/bundle-cli.mjs: esbuild), if it is missing or older than a
# file of src/, package-lock.json or the build scripts; otherwise does nothing (one find). scripts/setup.sh runs it;
# bin/boson runs it on first use, or when the sources changed since. Exits non-zero if esbuild failed, leaving the
# previous bundle in place. What is built: see scripts/bundle-cli.mjs.
set -eu
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
out="$root/build/cli"
bundle="$out/boson.mjs"
if [ -f "$bundle" ] && [ -f "$out/userns-child.mjs" ] && [ -f "$out/light.mjs" ] && [ -f "$out/run.mjs" ] &&
  [ -z "$(find "$root/src" "$root/package-lock.json" "$root/scripts/build-cli.sh" "$root/scripts/bundle-cli.mjs" -newer "$bundle" -print -quit 2>/dev/null)" ]; then
  exit 0
fi
if [ ! -x "$root/node_modules/.bin/esbuild" ]; then
  echo "build-cli: node_modules/.bin/esbuild is missing: run scripts/setup.sh (or npm ci) first" >&2
  exit 1
fi
mkdir -p "$root/build"
tmp="$root/build/cli.tmp-$$"
trap 'rm -rf "$tmp"' EXIT
node "$root/scripts/bundle-cli.mjs" "$tmp"
# A command already running the old bundle may still import one of its chunks (the daemon's, when it loads): chunk
# names carry their content's hash, so the old ones are kept beside the new ones (for a day; cp -p keeps their time).
if [ -d "$out" ]; then
  for f in "$out"/*-*.mjs; do
    [ -f "$f" ] && [ "${f##*/}" != userns-child.mjs ] && [ ! -e "$tmp/${f##*/}" ] && cp -p "$f" "$tmp/"
  done
  find "$tmp" -name '*-*.mjs' ! -name userns-child.mjs -mtime +0 -delete
fi
# Swap in the new bundle whole: a command starting meanwhile sees the old one or the new one, never a mix.
rm -rf "$out.old-$$"
[ -d "$out" ] && mv "$out" "$out.old-$$"
mv "$tmp" "$out"
rm -rf "$out.old-$$"
