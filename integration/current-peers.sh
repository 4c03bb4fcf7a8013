#!/usr/bin/env bash
# Current releases of Ward's peers and of containerd, from Debian's development suite (sid),
# unpacked into a private directory: nothing is installed system-wide, apt's own state is untouched.
#   containerd 2.x (+ ctr, containerd-shim-runc-v2): static Go binaries, run as they are
#   runc, crun: linked against sid's glibc; patched (patchelf) to load sid's libraries from DEST/lib
# The Makefile's `peers` target runs it into target/peers for the containerd 2 end-to-end tests
# (integration/src/release.rs); a copy of the team's shared tools/current-peers.sh.
# usage: current-peers.sh [DEST]   (default /opt/ward-peers)  -> DEST/bin/{containerd,ctr,
#        containerd-shim-runc-v2,runc,crun}; prints the versions. Re-running reuses what is there.
set -euo pipefail
DEST=${1:-/opt/ward-peers}
BIN=$DEST/bin LIB=$DEST/lib A=$DEST/apt
mkdir -p "$BIN" "$LIB" "$A/lists/partial" "$A/cache/archives/partial" "$A/debs" "$A/x"
command -v patchelf >/dev/null || { apt-get update -qq && apt-get install -y -qq patchelf >/dev/null; }
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" >"$A/sources.list"
APT=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o Dir::State::Lists="$A/lists" -o Dir::State::status=/dev/null -o Dir::Cache="$A/cache"
     -o APT::Sandbox::User=root)
if [ ! -x "$BIN/containerd" ] || [ ! -x "$BIN/runc" ] || [ ! -x "$BIN/crun" ]; then
  apt-get "${APT[@]}" update -qq
  (cd "$A/debs" && apt-get "${APT[@]}" download -qq containerd runc crun \
     libc6 libseccomp2 libcap2 libyajl2 libsystemd0 libblake3-0 >/dev/null)
  for d in "$A"/debs/*.deb; do dpkg -x "$d" "$A/x"; done
  cp "$A"/x/usr/bin/{containerd,ctr,containerd-shim-runc-v2} "$BIN/"
  cp "$A/x/usr/sbin/runc" "$BIN/runc"; cp "$A/x/usr/bin/crun" "$BIN/crun"
  cp -a "$A"/x/usr/lib/x86_64-linux-gnu/. "$LIB/"
  ld=$LIB/ld-linux-x86-64.so.2
  for b in runc crun; do patchelf --set-interpreter "$ld" --set-rpath "$LIB" "$BIN/$b"; done
  rm -rf "$A"  # the package lists and .debs (~200 MB) are not needed once unpacked
fi
"$BIN/containerd" --version
"$BIN/runc" --version | head -1
"$BIN/crun" --version | head -1
