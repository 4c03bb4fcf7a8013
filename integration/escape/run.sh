#!/usr/bin/env bash
# Escape-attempt suite: build the static probe and the runner, then run the
# techniques against ward (every enforcing built-in profile, through the CLI
# and through containerd 2 with Ward's shim; the shim again under Debian's
# containerd 1.6 with the first profile), runc, crun and the unconfined host
# column, then the rows of Ward's own machinery (host-user attacker, planted
# symlinks, config.json attacks, parallel creates, charging; CLI and shim, runc
# as a control), print the tables and write RESULTS.md.
#
#   integration/escape/run.sh            # full comparison (needs runc, crun)
#   integration/escape/run.sh --ci       # ward only (CLI + shim) + a short chaos pass; non-zero on any escape or leak
#   integration/escape/run.sh --chaos 60 # add chaos mode for 60 s per column
#   integration/escape/run.sh --exec     # techniques through `exec` instead of `run`
#   ESCAPE_CI_CHAOS=0 integration/escape/run.sh --ci --machinery-only  # only Ward's own machinery (5-15 s)
#
# Environment: WARD (ward binary, default $CARGO_TARGET_DIR/debug/ward, built if
# absent), WARD_SHIM_DIR (dir of containerd-shim-ward-v2, default next to ward),
# CARGO_TARGET_DIR (default target; JSON results land there),
# ESCAPE_OUT (where RESULTS.md goes, default integration/escape),
# WARD_CONTAINERD2_DIR (where `make peers` unpacked containerd 2, default
# $CARGO_TARGET_DIR/peers; missing fails unless WARD_E2E_SKIP_CONTAINERD2=1),
# ESCAPE_CI_CHAOS (seconds of chaos per column in --ci, default 15; 0 = none).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${ESCAPE_OUT:-$ROOT/integration/escape}
MODE=full
EXTRA=()
MD=RESULTS.md
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) MODE=ci ;;
    --chaos) EXTRA+=(--chaos --seconds "${2:-60}"); shift ;;
    --exec) EXTRA+=(--exec); MD=RESULTS-exec.md ;;
    *) EXTRA+=("$1") ;;
  esac
  shift
done

if [ "$(id -u)" != 0 ]; then
  echo "escape suite: needs root (creates containers, namespaces, cgroups)" >&2
  exit 77
fi

TARGET=x86_64-unknown-linux-gnu
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p ward-probe --target "$TARGET"
PROBE=$CARGO_TARGET_DIR/$TARGET/release/ward-probe
# static-pie binaries make `ldd` exit 0 ("statically linked"): look for shared libraries instead
if ldd "$PROBE" 2>&1 | grep -q '=>'; then
  echo "escape suite: $PROBE is not static" >&2
  exit 1
fi
# The runner waits on containers: a debug build is enough, and shares its
# dependencies (the containerd harness) with `cargo test`.
cargo build -p ward-escape
RUNNER=$CARGO_TARGET_DIR/debug/ward-escape

WARD=${WARD:-$CARGO_TARGET_DIR/debug/ward}
export WARD_CONTAINERD2_DIR=${WARD_CONTAINERD2_DIR:-$CARGO_TARGET_DIR/peers}
export WARD_SHIM_DIR=${WARD_SHIM_DIR:-$(dirname "$WARD")}
if [ ! -x "$WARD" ] || [ ! -x "$WARD_SHIM_DIR/containerd-shim-ward-v2" ]; then
  cargo build -p ward-runtime -p ward-shim
fi

# Every built-in profile except `record`: that one is learn mode (everything
# allowed and recorded, for drafting a profile from a trusted workload), not a
# sandbox to hold to the escape suite.
PROFILES=(--profile default --profile restricted --profile strict --profile nginx --profile python-worker)
if [ "$MODE" = ci ]; then
  CHAOS=${ESCAPE_CI_CHAOS:-15}
  CI_EXTRA=()
  if [ "$CHAOS" != 0 ]; then CI_EXTRA=(--chaos --seconds "$CHAOS"); fi
  exec "$RUNNER" --runtime ward --runtime containerd "${PROFILES[@]}" --runtime-path "ward=$WARD" \
    --probe "$PROBE" --json "$CARGO_TARGET_DIR/escape-results-ci.json" "${CI_EXTRA[@]}" "${EXTRA[@]}"
fi

RTS=(--runtime ward --runtime containerd)
command -v runc >/dev/null && RTS+=(--runtime runc) || echo "escape suite: runc not installed, column skipped" >&2
command -v crun >/dev/null && RTS+=(--runtime crun) || echo "escape suite: crun not installed, column skipped" >&2
RTS+=(--runtime host)
exec "$RUNNER" "${RTS[@]}" "${PROFILES[@]}" --runtime-path "ward=$WARD" --probe "$PROBE" \
  --markdown "$OUT/$MD" --json "$CARGO_TARGET_DIR/escape-results.json" "${EXTRA[@]}"
