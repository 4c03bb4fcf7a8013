#!/usr/bin/env bash
# Reverse deploy/install.sh: same environment (DESTDIR, PREFIX, CONTAINERD_CONFIG,
# NO_RESTART, NODE_NAME). Node configs an admin edited are kept.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DESTDIR="${DESTDIR:-}"
CONTAINERD_CONFIG="${CONTAINERD_CONFIG:-$DESTDIR/etc/containerd/config.toml}"
ETC="$DESTDIR/etc/ward"
STATE="$ETC/.install"
PREFIX="${PREFIX:-$(cat "$STATE/prefix" 2>/dev/null || echo /usr/local)}"
BIN="$DESTDIR$PREFIX/bin"
BEGIN="# BEGIN ward (managed by ward deploy/install.sh; uninstall.sh removes it)"
END="# END ward"

log() { echo "ward-uninstall: $*"; }

# 1. containerd config: drop the managed block (or the file if we created it).
if [[ -f "$STATE/created-containerd-config" ]]; then
  rm -f "$CONTAINERD_CONFIG"
  log "removed $CONTAINERD_CONFIG (created by install.sh)"
elif [[ -f "$CONTAINERD_CONFIG" ]]; then
  tmp="$(mktemp)"
  awk -v b="$BEGIN" -v e="$END" '$0==b{skip=1;next} skip&&$0==e{skip=0;next} !skip' "$CONTAINERD_CONFIG" > "$tmp"
  if [[ -f "$STATE/containerd-config.orig" ]] && cmp -s <(sed -e '$a\' "$tmp") <(sed -e '$a\' "$STATE/containerd-config.orig"); then
    cp "$STATE/containerd-config.orig" "$tmp"   # byte for byte what it was
  fi
  cat "$tmp" > "$CONTAINERD_CONFIG"
  rm -f "$tmp"
  log "removed the ward block from $CONTAINERD_CONFIG"
fi

# 2. Binaries.
for b in ward containerd-shim-ward-v2; do
  rm -f "$BIN/$b" && log "removed $BIN/$b"
done

# 3. Profiles and node configs (kept when edited since install).
rm -rf "$ETC/profiles"
for f in ward.toml ward-strict.toml; do
  if [[ -f "$STATE/created-$f" ]] && cmp -s "$ETC/$f" "$here/etc/$f"; then
    rm -f "$ETC/$f"
  elif [[ -e "$ETC/$f" ]]; then
    log "kept $ETC/$f (not created by install.sh, or edited)"
  fi
done
if [[ -f "$STATE/created-dirs" ]]; then
  while read -r d; do rmdir "$d" 2>/dev/null || true; done < "$STATE/created-dirs"
fi
rm -rf "$STATE"
rmdir "$ETC" 2>/dev/null || true

# 4. Restart containerd without the runtimes; unlabel the node.
if [[ -z "$DESTDIR" && "${NO_RESTART:-0}" != 1 ]]; then
  if command -v systemctl >/dev/null && systemctl is-active --quiet containerd; then
    systemctl restart containerd && log "restarted containerd"
  fi
fi
if [[ -n "${NODE_NAME:-}" ]] && command -v kubectl >/dev/null; then
  kubectl label node "$NODE_NAME" ward.dev/runtime- || true
fi
log "done"
