#!/usr/bin/env bash
# CLI benchmark: create+start+wait+delete of a /bin/true busybox container
# (`RUNTIME run`), Ward with the full sandbox vs runc and crun on the same bundle,
# side by side, taking turns. Prints medians and ratios.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
ward=${WARD_BIN:-$top/target/release/ward}
runs=${BENCH_RUNS:-30}
work=$(mktemp -d /tmp/ward-bench.XXXXXX); chmod 711 "$work"
# State roots live on a private tmpfs, as each runtime's default does on a usual host
# (/run/runc, /run/crun, /run/ward) and as containerd passes them (/run/containerd/...);
# on this machine kind /run is on the root disk, so the bench mounts its own. The bundle
# stays on disk for all three.
state=$(mktemp -d /tmp/ward-bench-state.XXXXXX)
mount -t tmpfs -o mode=711,size=64m ward-bench "$state"
trap 'umount "$state" 2>/dev/null; rmdir "$state"; rm -rf "$work"' EXIT
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
# A baseline build of Ward (e.g. the previous commit's release binary) side by side, to say
# what a change to the create path costs: WARD_BASE_BIN=/path/to/old/ward make bench.
if [ -n "${WARD_BASE_BIN:-}" ]; then
  cmds+=("$WARD_BASE_BIN --root $state/ward-base run wbase"); names+=(ward-base)
fi
# The same sandbox with denials refused in the kernel only (no supervisor process).
cmds+=("$ward --root $state/ward-enforce --seccomp-mode enforce run we"); names+=(ward-enforce)
command -v runc >/dev/null && { cmds+=("runc --root $state/runc run rb"); names+=(runc); }
if command -v crun >/dev/null && crun --root "$state/crun" run cb >/dev/null 2>&1; then
  cmds+=("crun --root $state/crun run cb"); names+=(crun)
else
  echo "note: crun cannot run here ($(crun --root "$state/crun" run cb 2>&1 | tail -1)); left out" >&2
fi
# The runtimes take turns (ward, runc, crun, ward, ...) so that a change of load on this
# noisy machine hits all of them alike; hyperfine would run all of one, then all of the next.
#
# Two rounds, because the kernel couples consecutive starts: the first write of a pid to any
# cgroup.procs waits for an RCU grace period (~8 ms here), and a write within ~10-20 ms of
# the previous one does not. Back to back, a short run inherits the grace period of the run
# before it (whichever runtime that was); 100 ms apart, every start pays its own, as an
# isolated container start on a node does. Both are printed; neither is the "real" one.
python3 - "$runs" "${#cmds[@]}" "${names[@]}" "${cmds[@]}" <<'PY'
import resource, shlex, statistics, subprocess, sys, time
runs, n = int(sys.argv[1]), int(sys.argv[2])
names, cmds = sys.argv[3:3 + n], [shlex.split(c) for c in sys.argv[3 + n:3 + 2 * n]]
for title, gap in (("back to back", 0.0), ("isolated: 100 ms apart", 0.1)):
    times = {k: [] for k in names}
    # CPU time of the runtime and the children it waits for (less sensitive to other load on
    # the machine than wall time).
    cpu = {k: [] for k in names}
    for i in range(runs + 3):
        for name, cmd in zip(names, cmds):
            time.sleep(gap)
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            dt = time.perf_counter() - t
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            dcpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            if r.returncode != 0:
                sys.exit(f"{name}: {' '.join(cmd)} exited {r.returncode}")
            if i >= 3:  # warm-up rounds
                times[name].append(dt * 1000)
                cpu[name].append(dcpu * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{title} ({runs} interleaved runs each)\n")
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    print("| runtime | median (ms) | min (ms) | ward / runtime | CPU median (ms) |")
    print("|---|---|---|---|---|")
    for k in names:
        print(f"| {k} | {med[k]:.1f} | {min(times[k]):.1f} | {med['ward'] / med[k]:.2f}x | {mcpu[k]:.1f} |")
PY
