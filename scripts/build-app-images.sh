#!/usr/bin/env bash
# Builds real application images from Debian's packages, for test/apps.test.ts, bench/apps.ts and bench/tax.ts:
#   redis  redis-server (Debian 12), listening on 0.0.0.0:6379 in the foreground, as user redis
#   nginx  nginx (Debian 12), listening on 0.0.0.0:80 in the foreground, serving a page of ours
#   bench  fio and iperf3 (Debian 12) on Debian's essential userland (coreutils, dash), for bench/tax.ts: the same
#          workloads in Boson and in runc on this one root filesystem; its Cmd is sh
# Each is a root filesystem from mmdebstrap (--variant=essential plus the server and what it depends on; no
# documentation, manual pages, locales or gconv modules; no device nodes), added as one layer with umoci to an
# OCI image layout whose entries are named redis, nginx and bench, with Cmd, User, ExposedPorts and StopSignal set by
# `umoci config`. Push them with skopeo: skopeo copy oci:build/app-images/oci:redis docker://HOST/apps/redis:7
#
#   scripts/build-app-images.sh [outDir]     (default build/app-images; the layout is outDir/oci)
#
# The build (about a minute: it downloads from Debian's mirror) is cached in $BOSON_APP_IMAGE_CACHE (default
# /var/cache/boson/app-images), keyed by this file's contents: the recipe is this file, so any change to it builds
# again; nothing else does (a later Debian point release reaches the images when the recipe changes or the cache is
# removed). Later runs and fresh clones only copy the cached layout.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
out=$(readlink -m "${1:-$root/build/app-images}")
cache_root=${BOSON_APP_IMAGE_CACHE:-/var/cache/boson/app-images}
suite=bookworm
# Debian 12 with its point-release and security updates, as the host's own sources (never stdin: mmdebstrap reads
# sources from stdin when it is not a terminal).
mirrors=("deb http://deb.debian.org/debian $suite main"
  "deb http://deb.debian.org/debian $suite-updates main"
  "deb http://deb.debian.org/debian-security $suite-security main")
# Every entry's timestamp (mmdebstrap clamps to it) and the images' "created".
export SOURCE_DATE_EPOCH=1704067200
created=2024-01-01T00:00:00Z

key=$(sha256sum "$(readlink -f "$0")" | cut -c1-16)
cache="$cache_root/$key"

# What mmdebstrap leaves out of every image: documentation (copyright files stay), manual pages, translations, gconv.
slim=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*')

# rootfs NAME PACKAGES HOOK: NAME.tar in the work directory. mmdebstrap's merged-usr hooks make /bin, /lib, /sbin
# links into /usr and install usr-is-merged, which satisfies init-system-helpers' dependency (apt would otherwise
# pick usrmerge, which pulls in all of perl); HOOK configures the server in the finished root ("$1").
rootfs() {
  local name=$1 packages=$2 hook=$3
  mmdebstrap --quiet --variant=essential --mode=root --format=tar --skip=output/dev --include="$packages" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    "${slim[@]}" --customize-hook="$hook" --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log "$1"/var/cache/ldconfig/aux-cache' \
    "$suite" "$work/$name.tar" "${mirrors[@]}" </dev/null
}

# image NAME CONFIG-FLAGS...: a layout entry NAME with NAME.tar as its one layer.
image() {
  local name=$1
  shift
  umoci new --image "$work/oci:$name"
  umoci raw add-layer --image "$work/oci:$name" --history.created "$created" --history.created_by "scripts/build-app-images.sh ($name)" "$work/$name.tar"
  umoci config --image "$work/oci:$name" --no-history --created "$created" --author "Boson scripts/build-app-images.sh" --os linux --architecture amd64 \
    --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$@"
  rm -f "$work/$name.tar"
}

redis_hook='set -e
conf="$1/etc/redis/redis.conf"
sed -i -e "s/^bind .*/bind 0.0.0.0/" -e "s/^protected-mode yes/protected-mode no/" -e "s/^daemonize yes/daemonize no/" \
  -e "s|^logfile .*|logfile \"\"|" -e "s|^pidfile .*|# pidfile: none, the server runs in the foreground|" "$conf"
grep -qx "bind 0.0.0.0" "$conf" && grep -qx "daemonize no" "$conf" && grep -qx "protected-mode no" "$conf"'

nginx_hook='set -e
site="$1/etc/nginx/sites-available/default"
sed -i -e "/listen \[::\]:80/d" "$site"
grep -q "listen 80 default_server;" "$site"
ln -sf /dev/stdout "$1/var/log/nginx/access.log"
ln -sf /dev/stderr "$1/var/log/nginx/error.log"
rm -f "$1"/var/www/html/index.nginx-debian.html
printf "<!doctype html>\n<title>Boson</title>\n<p>Hello from nginx in a Boson micro-VM</p>\n" > "$1/var/www/html/index.html"'

# iperf3's package asks (debconf) whether to run a system daemon; the image runs iperf3 only when told to.
bench_hook='set -e
test -x "$1/usr/bin/fio" && test -x "$1/usr/bin/iperf3"'

if [ ! -f "$cache/done" ]; then
  printf '\033[1m==> %s\033[0m\n' "Building the application images (redis, nginx, bench) from Debian's packages (first time only: about a minute)" >&2
  mkdir -p "$cache_root"
  work=$(mktemp -d /var/tmp/boson-app-images-XXXXXX)
  trap 'rm -rf "$work"' EXIT
  umoci init --layout "$work/oci"
  rootfs redis redis-server "$redis_hook"
  image redis --config.cmd redis-server --config.cmd /etc/redis/redis.conf --config.user redis --config.workingdir /var/lib/redis \
    --config.exposedports 6379/tcp --config.stopsignal SIGTERM
  rootfs nginx nginx "$nginx_hook"
  image nginx --config.cmd nginx --config.cmd -g --config.cmd 'daemon off;' --config.exposedports 80/tcp --config.stopsignal SIGQUIT
  rootfs bench fio,iperf3 "$bench_hook"
  image bench --config.cmd sh --config.exposedports 5201/tcp
  umoci gc --layout "$work/oci"
  staged="$cache.tmp-$$"
  rm -rf "$staged"
  mkdir -p "$staged"
  mv "$work/oci" "$staged/oci"
  du -sk "$staged/oci" | cut -f1 > "$staged/done"
  rm -rf "$cache"
  mv "$staged" "$cache"
fi

# The layout under outDir is a copy of the cached one, replaced whole when the key differs.
if [ "$(cat "$out/key" 2>/dev/null)" != "$key" ] || [ ! -f "$out/oci/index.json" ]; then
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp"
  cp -r "$cache/oci" "$out.tmp/oci"
  echo "$key" > "$out.tmp/key"
  rm -rf "$out"
  mv "$out.tmp" "$out"
fi
echo "$out/oci (redis, nginx, bench; recipe $key)"
