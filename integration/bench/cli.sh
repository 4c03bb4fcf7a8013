#!/usr/bin/env bash
# CLI benchmark: create+start+wait+delete of a /bin/true busybox container
# (`RUNTIME run`), Ward with the full sandbox vs runc and crun on the same bundle,
# side by side in one hyperfine run. Prints medians and ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
ward=${WARD_BIN:-$top/target/release/ward}
runs=${BENCH_RUNS:-30}
work=$(mktemp -d /tmp/ward-bench.XXXXXX); chmod 711 "$work"
# State roots live on tmpfs, as each runtime's default does (/run/runc, /run/crun, /run/ward)
# and as containerd passes them (/run/containerd/...); the bundle stays on disk for all three.
state=$(mktemp -d /run/ward-bench.XXXXXX); chmod 711 "$state"
trap 'rm -rf "$work" "$state"' EXIT
"$here/make-bundle.sh" "$work/bundle" '["/bin/true"]' >/dev/null

# crun refuses this host's hybrid layout while hugetlb sits on cgroup2: give it hugetlb as a
# v1 hierarchy (the only change to the host's cgroup mounts a benchmark may make).
cmds=()
names=()
if ! grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo && [ -d /sys/fs/cgroup/unified ]; then
  mkdir -p /sys/fs/cgroup/hugetlb 2>/dev/null && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>/dev/null || true
fi
cd "$work/bundle"
cmds+=("$ward --root $state/ward run wb"); names+=(ward)
command -v runc >/dev/null && { cmds+=("runc --root $state/runc run rb"); names+=(runc); }
if command -v crun >/dev/null && crun --root "$state/crun" run cb >/dev/null 2>&1; then
  cmds+=("crun --root $state/crun run cb"); names+=(crun)
else
  echo "note: crun cannot run here ($(crun --root "$state/crun" run cb 2>&1 | tail -1)); left out" >&2
fi
args=()
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/h.json" "${args[@]}" >/dev/null
python3 - "$work/h.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in r.items()}
print("| runtime | median (ms) | min (ms) | ward / runtime |")
print("|---|---|---|---|")
for k, v in r.items():
    ratio = med["ward"] / med[k]
    print(f"| {k} | {med[k]:.1f} | {v['min']*1000:.1f} | {ratio:.2f}x |")
PY
