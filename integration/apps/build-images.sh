#!/usr/bin/env bash
# The real-application matrix's image (issue 11): one Debian 12 rootfs built from Debian's own
# packages, `debootstrap --variant=minbase bookworm` plus nginx-light, redis-server,
# postgresql and python3. Usage: build-images.sh OUT_DIR
#
# The result is OUT_DIR/<hash of this script>/rootfs with a `done` stamp; a re-run with an
# unchanged script prints the path and builds nothing. Older builds in OUT_DIR are removed.
#
# Nothing on the host changes: the package scripts run chrooted in a private mount and pid
# namespace (their /proc is mounted there only, and every process they leave dies with the
# namespace); a policy-rc.d in the rootfs answers 101, so no daemon starts; postgresql's
# packaging makes no cluster (the tests run initdb into a volume).
# An unreachable mirror fails the build (CI must not skip silently);
# WARD_APPS_SKIP=1 skips it with a visible SKIP line (for local runs without a network).
set -euo pipefail
out=${1:?usage: build-images.sh OUT_DIR}
mirror=${WARD_APPS_MIRROR:-http://deb.debian.org/debian}
packages="nginx-light redis-server postgresql python3"

if [ "${WARD_APPS_SKIP:-}" = 1 ]; then
  echo "SKIP: real-application images not built (WARD_APPS_SKIP=1)"
  exit 0
fi
for tool in debootstrap unshare chroot; do
  command -v "$tool" >/dev/null || { echo "build-images.sh: $tool not found (apt-get install debootstrap util-linux)" >&2; exit 1; }
done

hash=$( (cat "$0"; echo "$mirror") | sha256sum | cut -c1-16)
dest=$out/$hash
if [ -e "$dest/done" ]; then
  echo "$dest/rootfs"
  exit 0
fi
mkdir -p "$out"
# Builds of an older script, and a half-made one of this script.
for old in "$out"/*; do
  [ -d "$old" ] || continue
  rm -rf --one-file-system "$old"
done
mkdir -p "$dest"
root=$dest/rootfs
start=$(date +%s)

echo "build-images.sh: debootstrap --variant=minbase bookworm from $mirror into $root" >&2
# debootstrap mounts /proc and /sys in the target for its second stage: in a private mount
# namespace those mounts never reach the host's table, even if the build is interrupted.
unshare --mount --propagation private --pid --fork -- \
  debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  bookworm "$root" "$mirror" >"$dest/debootstrap.log" 2>&1 || {
  echo "build-images.sh: debootstrap failed (mirror $mirror unreachable?); last lines of $dest/debootstrap.log:" >&2
  tail -n 5 "$dest/debootstrap.log" >&2
  exit 1
}

printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mkdir -p "$root/etc/postgresql-common"
echo "create_main_cluster = false" >"$root/etc/postgresql-common/createcluster.conf"
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90ward-apps"

# In a private mount + pid namespace: /proc for the package scripts, gone afterwards.
unshare --mount --propagation private --pid --fork -- /bin/sh -euc '
  root=$1; shift
  mount -t proc proc "$root/proc"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    /bin/sh -euc "apt-get update -q && apt-get install -y -q -o Dpkg::Options::=--force-confold $*"
  chroot "$root" apt-get clean
' sh "$root" $packages >"$dest/apt.log" 2>&1 || {
  echo "build-images.sh: apt-get install $packages in the rootfs failed; last lines of $dest/apt.log:" >&2
  tail -n 10 "$dest/apt.log" >&2
  exit 1
}

# As the official nginx image: logs to the container's output, not to files in the image.
ln -sf /dev/stdout "$root/var/log/nginx/access.log"
ln -sf /dev/stderr "$root/var/log/nginx/error.log"
echo "ward-apps-nginx-ok" >"$root/var/www/html/index.html"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/apt/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
rm -f "$root/usr/sbin/policy-rc.d"
# debootstrap copied these from the host; the image needs neither.
: >"$root/etc/resolv.conf"
echo ward-apps >"$root/etc/hostname"

touch "$dest/done"
echo "build-images.sh: built in $(($(date +%s) - start)) s, $(du -sh --one-file-system "$root" | cut -f1)" >&2
echo "$root"
