#!/usr/bin/env bash
# Learn mode on real Debian programs: build a busybox rootfs holding the program (binary +
# the libraries ldd lists + its data), run a workload in it with `ward profile record`,
# and write the draft. The shipped profiles/builtin/{nginx,python-worker}.toml were made
# from these drafts, then tuned by hand (see profiles/README.md, "How the workload
# builtins were made").
#
#   profiles/learn/learn.sh nginx         OUT.toml   # nginx from `apt-get download nginx`
#   profiles/learn/learn.sh python-worker OUT.toml   # the host's Debian python3
#   CHECK=nginx profiles/learn/learn.sh nginx OUT   # run the workload under a profile instead,
#                                                   # list its denials, fail on any
#
# Needs root, busybox-static, python3 (Debian), apt (for nginx). Environment: WARD (the
# ward binary, default `ward` on PATH). The workload talks to itself over 127.0.0.1 only:
# the learn container shares the host's network namespace (allowed by a node config made
# for this run) because a fresh network namespace has its loopback down and an unprivileged
# container cannot bring it up.
set -euo pipefail
WORKLOAD=${1:?usage: learn.sh nginx|python-worker OUT.toml}
OUT=$(realpath -m "${2:?usage: learn.sh nginx|python-worker OUT.toml}")
WARD=${WARD:-ward}
[ "$(id -u)" = 0 ] || { echo "learn.sh: needs root" >&2; exit 77; }
WORK=$(mktemp -d /tmp/ward-learn-XXXXXX)
chmod 711 "$WORK"
ROOT=$WORK/state
trap '"$WARD" --root "$ROOT" delete --force "learn-$WORKLOAD" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
B=$WORK/bundle
R=$B/rootfs
mkdir -p "$R"/{bin,etc,proc,dev,tmp,root,run,var,srv/www,usr/sbin,usr/bin}

# busybox and its applets
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n' >"$R/etc/group"

# copy_bin HOSTFILE [DEST]: a binary or library plus what ldd says it needs
copy_bin() {
  local src=$1 dst=${2:-$1}
  mkdir -p "$R$(dirname "$dst")"
  cp -L "$src" "$R$dst"
  ldd "$src" 2>/dev/null | awk '/=>/ {print $3} /^\t\// {print $1}' | while read -r lib; do
    if [ -n "$lib" ] && [ ! -e "$R$lib" ]; then
      mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib"
    fi
  done
}

UID_GID=0
case "$WORKLOAD" in
nginx)
  mkdir -p "$WORK/debs" && (cd "$WORK/debs" && apt-get download nginx nginx-common >/dev/null 2>&1)
  for d in "$WORK"/debs/*.deb; do dpkg -x "$d" "$WORK/x"; done
  copy_bin "$WORK/x/usr/sbin/nginx" /usr/sbin/nginx
  mkdir -p "$R/etc/nginx"
  cp "$WORK/x/etc/nginx/mime.types" "$R/etc/nginx/"
  echo '<h1>ward</h1>' >"$R/srv/www/index.html"
  head -c 200000 /dev/zero | tr '\0' a >"$R/srv/www/big.txt"
  cat >"$R/etc/nginx/nginx.conf" <<'CONF'
worker_processes 2;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
  include /etc/nginx/mime.types;
  access_log /tmp/access.log;
  client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy; fastcgi_temp_path /tmp/fcgi;
  uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;
  sendfile on; tcp_nopush on; gzip on; gzip_types text/plain; keepalive_timeout 5;
  server {
    listen 127.0.0.1:8080;
    root /srv/www;
    location /proxy/ { proxy_pass http://127.0.0.1:8080/backend/; }
    location /upload { client_max_body_size 1m; proxy_pass http://127.0.0.1:8080/backend/; }
    location /backend/ { return 200 "backend\n"; }
  }
}
CONF
  UID_GID=33
  SCRIPT='set -e
nginx -t -e stderr -c /etc/nginx/nginx.conf
nginx -e stderr -c /etc/nginx/nginx.conf
sleep 0.5
for i in 1 2 3; do
  wget -q -O - http://127.0.0.1:8080/index.html
  wget -q -O /dev/null http://127.0.0.1:8080/big.txt
  wget -q -O - http://127.0.0.1:8080/proxy/x
  wget -q -O - --post-data=hello http://127.0.0.1:8080/upload
  wget -q -O /dev/null http://127.0.0.1:8080/missing || true
done
nginx -e stderr -c /etc/nginx/nginx.conf -s reload
sleep 0.5
wget -q -O - http://127.0.0.1:8080/index.html
nginx -e stderr -c /etc/nginx/nginx.conf -s quit
sleep 1
echo nginx-workload-done'
  ;;
python-worker)
  PY=$(readlink -f /usr/bin/python3)
  copy_bin "$PY" /usr/bin/python3
  STDLIB=/usr/lib/$(basename "$PY")
  mkdir -p "$R/usr/lib"
  cp -a "$STDLIB" "$R/usr/lib/"
  for so in "$STDLIB"/lib-dynload/*.so; do copy_bin "$so"; done
  cat >"$R/srv/worker.py" <<'PYW'
# A queue-consumer-like worker: stdlib only.
import hashlib, json, logging, multiprocessing as mp, os, queue, signal, socket
import sqlite3, subprocess, sys, tempfile, threading, time, zlib

logging.basicConfig(level=logging.INFO, stream=sys.stderr)

def work(item):
    data = json.dumps({"item": item, "pid": os.getpid()}).encode()
    return hashlib.sha256(zlib.compress(data)).hexdigest()

def main():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    q = queue.Queue()
    results = []
    def consumer():
        while (x := q.get()) is not None:
            results.append(work(x))
    ts = [threading.Thread(target=consumer) for _ in range(4)]
    for t in ts: t.start()
    for i in range(100): q.put(i)
    for _ in ts: q.put(None)
    for t in ts: t.join()
    with mp.Pool(2) as pool:
        results += pool.map(work, range(20))
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(os.path.join(d, "state.db"))
        db.execute("create table r (h text)")
        db.executemany("insert into r values (?)", [(r,) for r in results])
        db.commit()
        n = db.execute("select count(*) from r").fetchone()[0]
        db.close()
    a, b = socket.socketpair()
    a.sendall(b"ping"); assert b.recv(4) == b"ping"
    try:
        socket.create_connection(("127.0.0.1", 18099), timeout=1).close()
    except OSError as e:
        logging.info("outbound connect: %s", e)
    subprocess.run(["/bin/true"], check=True)
    time.sleep(0.05)
    logging.info("processed %d items", n)
    print("python-worker-done", n)

if __name__ == "__main__":
    main()
PYW
  SCRIPT='exec /usr/bin/python3 /srv/worker.py'
  ;;
*) echo "learn.sh: unknown workload $WORKLOAD (nginx, python-worker)" >&2; exit 2 ;;
esac

python3 - "$B" "$UID_GID" "$SCRIPT" <<'PY'
import json, sys
bundle, uid, script = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg = {
  "ociVersion": "1.0.2",
  "process": {"terminal": False, "user": {"uid": uid, "gid": uid},
              "args": ["sh", "-c", script],
              "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"], "cwd": "/"},
  "root": {"path": "rootfs", "readonly": True},
  "hostname": "learn",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}
  ],
  "linux": {"namespaces": [{"type": t} for t in ["pid", "ipc", "uts", "mount", "cgroup"]]}
}
json.dump(cfg, open(bundle + "/config.json", "w"), indent=1)
PY
printf 'allowed_profiles = ["default", "record"]\n[namespaces]\nallow_host = ["network"]\n' >"$WORK/ward.toml"
if [ -n "${CHECK:-}" ]; then
  # Check mode: run the same workload under profile $CHECK (report mode) and list what
  # it denied; non-zero if the workload failed or anything was denied.
  LOG=$WORK/ward.log
  set +e
  "$WARD" ${WARD_FLAGS:-} --root "$ROOT" --config "$WORK/ward.toml" --profile "$CHECK" \
    --log "$LOG" --log-format json run --bundle "$B" "learn-$WORKLOAD" >"$OUT"
  code=$?
  set -e
  # ENOSYS answers (clone3, glibc falls back to clone) are compatibility, not denials.
  denials=$(python3 - "$LOG" <<'PY'
import json, sys
n = 0
for l in open(sys.argv[1]):
    if '"type":"seccomp-denial"' not in l:
        continue
    e = json.loads(l)
    if e["action"] != "errno:ENOSYS":
        n += 1
        print("denied:", e["syscall"], e["args"][:3], e["action"], file=sys.stderr)
print(n)
PY
)
  echo "learn.sh: $WORKLOAD under $CHECK: exit $code, $denials denial(s)" >&2
  [ "$code" = 0 ] && [ "$denials" = 0 ]
  exit
fi
"$WARD" ${WARD_FLAGS:-} --root "$ROOT" --config "$WORK/ward.toml" profile record --bundle "$B" -o "$OUT" \
  --name "$WORKLOAD" --id "learn-$WORKLOAD" --recording "${OUT%.toml}.recording.json"
