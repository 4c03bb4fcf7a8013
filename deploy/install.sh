#!/usr/bin/env bash
# Install Ward on a containerd node (like kata-deploy, without an image build).
#
#   PREFIX=/usr/local DESTDIR= deploy/install.sh
#
# Environment (all optional):
#   DESTDIR             root to install into (default: none = /); tests use a temp dir
#   PREFIX              binaries go to $DESTDIR$PREFIX/bin (default /usr/local)
#   BIN_SRC             dir holding `ward` and `containerd-shim-ward-v2`
#                       (default: target/release of this repo, else this script's dir)
#   PROFILES_SRC        dir of profile *.toml (default: profiles/builtin of this repo)
#   CONTAINERD_CONFIG   containerd config (default $DESTDIR/etc/containerd/config.toml)
#   CONTAINERD_VERSION  e.g. 1.6.20 or 2.0.0 when the config file does not exist yet
#                       (default: `containerd --version`)
#   NO_RESTART=1        do not restart containerd (default: restart when DESTDIR is empty)
#   NODE_NAME           with kubectl on PATH: label the node ward.dev/runtime=true
#
# Idempotent: running it twice leaves one Ward block in the containerd config.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
DESTDIR="${DESTDIR:-}"
PREFIX="${PREFIX:-/usr/local}"
BIN_SRC="${BIN_SRC:-}"
if [[ -z "$BIN_SRC" ]]; then
  if [[ -x "$repo/target/release/containerd-shim-ward-v2" ]]; then BIN_SRC="$repo/target/release"; else BIN_SRC="$here"; fi
fi
PROFILES_SRC="${PROFILES_SRC:-$repo/profiles/builtin}"
CONTAINERD_CONFIG="${CONTAINERD_CONFIG:-$DESTDIR/etc/containerd/config.toml}"
ETC="$DESTDIR/etc/ward"
BIN="$DESTDIR$PREFIX/bin"
STATE="$ETC/.install"          # what this installer created, for uninstall.sh
BEGIN="# BEGIN ward (managed by ward deploy/install.sh; uninstall.sh removes it)"
END="# END ward"

log() { echo "ward-install: $*"; }
die() { echo "ward-install: error: $*" >&2; exit 1; }

for b in ward containerd-shim-ward-v2; do
  [[ -x "$BIN_SRC/$b" ]] || die "$BIN_SRC/$b not found (build with 'make release' or set BIN_SRC)"
done
[[ -d "$PROFILES_SRC" ]] || die "profiles dir $PROFILES_SRC not found (set PROFILES_SRC)"

# Directories this run creates (deepest first), for uninstall.sh to rmdir.
new_dirs=()
for d in "$BIN" "$(dirname "$CONTAINERD_CONFIG")"; do
  while [[ -n "$d" && "$d" != / && ! -d "$d" ]]; do new_dirs+=("$d"); d="$(dirname "$d")"; done
done
mkdir -p "$BIN" "$ETC/profiles" "$STATE" "$(dirname "$CONTAINERD_CONFIG")"
for d in "${new_dirs[@]}"; do echo "$d"; done >> "$STATE/created-dirs"

# 1. Binaries.
for b in ward containerd-shim-ward-v2; do
  install -m 0755 "$BIN_SRC/$b" "$BIN/$b"
  log "installed $BIN/$b"
done
echo "$PREFIX/bin" > "$STATE/prefix"

# 2. Profiles and node configs (an admin's edited ward.toml is kept).
install -m 0644 "$PROFILES_SRC"/*.toml "$ETC/profiles/"
for f in ward.toml ward-strict.toml; do
  if [[ -e "$ETC/$f" ]]; then
    log "kept existing $ETC/$f"
  else
    install -m 0644 "$here/etc/$f" "$ETC/$f"
    touch "$STATE/created-$f"
    log "installed $ETC/$f"
  fi
done

# 3. containerd config: pick the block by the config's schema version.
config_version=""
if [[ -f "$CONTAINERD_CONFIG" ]]; then
  config_version="$(sed -n 's/^[[:space:]]*version[[:space:]]*=[[:space:]]*\([0-9]\+\).*/\1/p' "$CONTAINERD_CONFIG" | head -n1)"
else
  ver="${CONTAINERD_VERSION:-$(containerd --version 2>/dev/null | awk '{print $3}' | sed 's/^v//')}"
  if [[ "${ver%%.*}" -ge 2 ]] 2>/dev/null; then config_version=3; else config_version=2; fi
  printf 'version = %s\n' "$config_version" > "$CONTAINERD_CONFIG"
  touch "$STATE/created-containerd-config"
  log "created $CONTAINERD_CONFIG (version $config_version)"
fi
case "$config_version" in
  3) block="$here/containerd/ward-v3.toml" ;;
  2) block="$here/containerd/ward-v2.toml" ;;
  *) die "$CONTAINERD_CONFIG: need 'version = 2' (containerd 1.6/1.7) or 'version = 3' (2.x); found '${config_version:-none}'" ;;
esac

# Remove a previous Ward block, then refuse if Ward tables remain outside it.
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
awk -v b="$BEGIN" -v e="$END" '$0==b{skip=1;next} skip&&$0==e{skip=0;next} !skip' "$CONTAINERD_CONFIG" > "$tmp"
if grep -Eq 'runtimes\.(ward|"ward")(-strict)?[]."]' "$tmp"; then
  die "$CONTAINERD_CONFIG already defines ward runtimes outside the managed block; remove them first"
fi
# Keep the pristine file (byte for byte) for uninstall.sh.
[[ -f "$STATE/containerd-config.orig" ]] || cp "$CONTAINERD_CONFIG" "$STATE/containerd-config.orig"
{
  cat "$tmp"
  # keep one blank line between the admin's text and ours
  [[ -s "$tmp" && -n "$(tail -c1 "$tmp")" ]] && echo
  echo "$BEGIN"
  cat "$block"
  echo "$END"
} > "$CONTAINERD_CONFIG.ward-new"
mv "$CONTAINERD_CONFIG.ward-new" "$CONTAINERD_CONFIG"
log "added ward and ward-strict runtimes to $CONTAINERD_CONFIG (schema version $config_version)"

# 4. Restart containerd so the runtimes load (running containers keep their shims).
if [[ -z "$DESTDIR" && "${NO_RESTART:-0}" != 1 ]]; then
  if command -v systemctl >/dev/null && systemctl is-active --quiet containerd; then
    systemctl restart containerd && log "restarted containerd"
  else
    log "containerd is not a running systemd service: restart it yourself"
  fi
fi

# 5. Label the node for the RuntimeClasses' nodeSelector.
if [[ -n "${NODE_NAME:-}" ]] && command -v kubectl >/dev/null; then
  kubectl label node "$NODE_NAME" ward.dev/runtime=true --overwrite && log "labelled node $NODE_NAME"
fi
log "done; verify with: $PREFIX/bin/ward check"
