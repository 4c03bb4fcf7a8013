#!/usr/bin/env bash
# make-bundle.sh DIR [ARGS_JSON]: a busybox bundle (rootfs + `runc spec` config.json).
set -euo pipefail
dir=$1; args=${2:-'["/bin/true"]'}
busybox=$(command -v busybox || echo /bin/busybox)
mkdir -p "$dir/rootfs"/{bin,proc,sys,dev,tmp,etc,root}
cp "$busybox" "$dir/rootfs/bin/busybox"
for app in $("$dir/rootfs/bin/busybox" --list); do
  [ "$app" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$app"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
echo 'root:x:0:' > "$dir/rootfs/etc/group"
rm -f "$dir/config.json"
(cd "$dir" && runc spec)
python3 - "$dir/config.json" "$args" <<'PY'
import json, sys
path, args = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
json.dump(c, open(path, "w"), indent=1)
PY
