#!/usr/bin/env bash
# demo.sh WARD: run one busybox container under Ward's default sandbox and print a report read
# from inside it.
set -euo pipefail
ward=$(realpath "${1:?ward binary}")
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/ward-demo.XXXXXX); chmod 711 "$work"
trap 'rm -rf "$work"' EXIT
report='
echo "uid_map:        $(cat /proc/self/uid_map | tr -s " ")"
grep -E "^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status | sed "s/\t/ /"
if unshare -U true 2>/dev/null; then echo "unshare -U:     ALLOWED"; else echo "unshare -U:     denied (seccomp)"; fi
if touch /ward-test 2>/dev/null; then echo "root fs:        WRITABLE"; else echo "root fs:        read-only"; fi
if echo x > /tmp/x; then echo "/tmp:           writable tmpfs"; fi
if echo x > /dev/shm/x 2>/dev/null; then :; fi
if cat /proc/kcore >/dev/null 2>&1; then echo "/proc/kcore:    READABLE"; else echo "/proc/kcore:    masked"; fi
echo "landlock:       $(if mkdir /dev/ward-x 2>/dev/null; then echo NOT ENFORCED; else echo "enforced (mkdir in the writable /dev tmpfs: $(mkdir /dev/ward-x 2>&1 | sed "s/.*: //"))"; fi)"
echo "owner of /bin/busybox inside: uid $(stat -c %u /bin/busybox)"
for f in /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max; do [ -r $f ] && echo "pids limit:     $(cat $f)"; done
for f in /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max; do [ -r $f ] && echo "memory limit:   $(cat $f)"; done
if [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then echo "cpu quota:      $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)/$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us) us"; elif [ -r /sys/fs/cgroup/cpu.max ]; then echo "cpu quota:      $(cat /sys/fs/cgroup/cpu.max)"; fi
ip -o link show lo | grep -q "UP" && echo "network:        own namespace, loopback up" || echo "network:        own namespace"
true'
"$here/make-bundle.sh" "$work/bundle" "$(python3 -c 'import json,sys; print(json.dumps(["sh","-c",sys.argv[1]]))' "$report")" >/dev/null
echo "== Ward $("$ward" --version) — container report (read from inside) =="
cd "$work/bundle"
"$ward" --root "$work/state" run demo
echo "== after delete: state dir entries: $(ls -A "$work/state" | grep -v '^.ward$' | wc -l), uid ranges held: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["slots"]))' "$work/state/.ward/ranges.json")"
