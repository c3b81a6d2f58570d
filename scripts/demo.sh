#!/usr/bin/env bash
# berth's main job end to end, for a newcomer: a busybox bundle through berth-runtime's whole
# lifecycle, then the same runtime under real containerd (ctr --runc-binary).
set -euo pipefail
cd "$(dirname "$0")/.."
RT=${RUNTIME:-$PWD/target/release/berth-runtime}
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
root=$work/state
id=demo-$$
cleanup() {
  "$RT" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
  [[ -n "${CTRD_PID:-}" ]] && kill "$CTRD_PID" 2>/dev/null && wait "$CTRD_PID" 2>/dev/null || true
  if [[ -n "${BERTHD_PID:-}" ]]; then
    "$(dirname "$RT")/berth" rm -f demo-web >/dev/null 2>&1 || true
    "$(dirname "$RT")/berth" network rm demo-net >/dev/null 2>&1 || true
    kill "$BERTHD_PID" 2>/dev/null && wait "$BERTHD_PID" 2>/dev/null || true
    for c in /sys/fs/cgroup/*/berth; do rmdir "$c" 2>/dev/null || true; done
  fi
  [[ -n "${REG_PID:-}" ]] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null || true
  for c in /sys/fs/cgroup/*/; do rmdir "$c/berth-demo" 2>/dev/null || true; done
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "a bundle: busybox-static rootfs + 'berth-runtime spec'"
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for c in sh echo sleep ps hostname id cat true wget; do ln -s busybox "$work/bundle/rootfs/bin/$c"; done
(cd "$work/bundle" && "$RT" spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo hello from $(hostname), pid $$; exit 42"]
json.dump(c, open(p, "w"), indent=2)
PY

say "berth-runtime run (foreground; exit code comes through)"
set +e; "$RT" --root "$root" run --bundle "$work/bundle" "$id"; rc=$?; set -e
echo "exit code: $rc"

say "create / start / state / exec / ps / pause / resume / kill / delete"
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); c["process"]["args"] = ["sleep", "1000"]
json.dump(c, open(p, "w"), indent=2)
PY
"$RT" --root "$root" create --bundle "$work/bundle" "$id"
"$RT" --root "$root" state "$id" | grep '"status"'
"$RT" --root "$root" start "$id"
"$RT" --root "$root" state "$id" | grep '"status"'
"$RT" --root "$root" exec "$id" sh -c 'echo "exec sees: $(ps | wc -l) lines of ps"'
"$RT" --root "$root" ps --format json "$id"; echo
"$RT" --root "$root" pause "$id";  "$RT" --root "$root" state "$id" | grep '"status"'
"$RT" --root "$root" resume "$id"; "$RT" --root "$root" state "$id" | grep '"status"'
"$RT" --root "$root" kill "$id" KILL; sleep 0.2
"$RT" --root "$root" state "$id" | grep '"status"'
"$RT" --root "$root" delete "$id"
"$RT" --root "$root" list

if command -v containerd >/dev/null && command -v umoci >/dev/null; then
  say "the same runtime under real containerd: ctr run --runc-binary berth-runtime"
  mkdir -p "$work/ctrd" "$work/img"
  cat > "$work/ctrd/config.toml" <<TOML
version = 2
root = "$work/ctrd/root"
state = "$work/ctrd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/ctrd/ctrd.sock"
[ttrpc]
  address = "$work/ctrd/ctrd.sock.ttrpc"
TOML
  containerd --config "$work/ctrd/config.toml" >"$work/ctrd/log" 2>&1 & CTRD_PID=$!
  for _ in $(seq 50); do [[ -S $work/ctrd/ctrd.sock ]] && break; sleep 0.1; done
  umoci init --layout "$work/img/oci" && umoci new --image "$work/img/oci:demo"
  umoci unpack --image "$work/img/oci:demo" "$work/img/unpacked" >/dev/null
  cp -a "$work/bundle/rootfs/." "$work/img/unpacked/rootfs/"
  umoci repack --image "$work/img/oci:demo" "$work/img/unpacked"
  umoci config --image "$work/img/oci:demo" --config.cmd sh
  python3 - "$work/img/oci/index.json" <<'PY'
import json, sys
p = sys.argv[1]; i = json.load(open(p))
for m in i["manifests"]:
    m.setdefault("annotations", {})["io.containerd.image.name"] = "docker.io/library/berth-demo:latest"
json.dump(i, open(p, "w"))
PY
  tar -C "$work/img/oci" -cf "$work/img/demo.tar" .
  # Our own namespace: containerd puts its containers' cgroups under /<namespace>.
  ctr() { command ctr --address "$work/ctrd/ctrd.sock" --namespace berth-demo "$@"; }
  ctr images import --all-platforms "$work/img/demo.tar" >/dev/null
  set +e
  ctr run --rm --runc-binary "$RT" docker.io/library/berth-demo:latest "c$$" sh -c 'echo "hello from containerd + berth-runtime"; exit 7'
  rc=$?; set -e
  echo "exit code through containerd: $rc"
fi

if command -v docker-registry >/dev/null && [[ -d $work/img/oci ]]; then
  say "berthd + berth: pull from a local registry, inspect, mount, push, save/load"
  BIN=$(dirname "$RT")
  port=$((20000 + RANDOM % 20000))
  cat >"$work/reg.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/reg
http:
  addr: 127.0.0.1:$port
YML
  docker-registry serve "$work/reg.yml" >"$work/reg.log" 2>&1 & REG_PID=$!
  "$BIN/berthd" --data-root "$work/berthd/data" --exec-root "$work/berthd/exec" \
    -H "unix://$work/berthd/berth.sock" --insecure-registry "127.0.0.1:$port" >"$work/berthd.log" 2>&1 & BERTHD_PID=$!
  export BERTH_HOST=unix://$work/berthd/berth.sock
  for _ in $(seq 50); do [[ -S $work/berthd/berth.sock ]] && curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  skopeo copy -q --dest-tls-verify=false "oci:$work/img/oci:demo" "docker://127.0.0.1:$port/demo:latest"
  berth() { "$BIN/berth" "$@"; }
  berth pull "127.0.0.1:$port/demo:latest"
  berth images
  berth image inspect --format 'id {{.Id}}  layers {{len .RootFS.Layers}}  cmd {{json .Config.Cmd}}' "127.0.0.1:$port/demo"
  m=$(berth image mount "127.0.0.1:$port/demo"); echo "mounted read-only at $m:"; ls "$m/bin" | head -5
  berth image unmount "127.0.0.1:$port/demo"
  berth tag "127.0.0.1:$port/demo" "127.0.0.1:$port/copy:v1" && berth push "127.0.0.1:$port/copy:v1"
  berth save -o "$work/demo-save.tar" "127.0.0.1:$port/copy:v1" && berth rmi "127.0.0.1:$port/copy:v1" "127.0.0.1:$port/demo"
  berth load -i "$work/demo-save.tar"
  berth history "127.0.0.1:$port/copy:v1"

  say "a Dockerfile build: berth build, then the same build again from the cache"
  mkdir -p "$work/web"
  echo "hello from an image berth built" >"$work/web/index.html"
  cat >"$work/web/Dockerfile" <<EOF
FROM 127.0.0.1:$port/copy:v1
LABEL org.example.demo=web
RUN mkdir -p /www && echo "built by RUN" > /www/run.txt
COPY index.html /www/index.html
EXPOSE 80
CMD ["/bin/busybox", "httpd", "-f", "-v", "-p", "80", "-h", "/www"]
EOF
  berth build -t demo-web:1 "$work/web"
  echo "again, unchanged: $(berth build -t demo-web:1 "$work/web" | grep -c 'Using cache') steps from the cache"
  berth history demo-web:1 | head -6

  say "containers through berthd: the built web server on a user network, a named volume, a published port"
  web_port=$((20000 + RANDOM % 20000))
  berth network create --subnet 10.199.$((RANDOM % 200)).0/24 -o com.docker.network.bridge.name=berth-demo demo-net
  berth run -d --name demo-web --network demo-net --network-alias www -p "$web_port:80" -v demo-www:/www demo-web:1
  berth ps
  echo "the published port, from the host (the new volume was filled from the image):"
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$web_port/" && break; sleep 0.1; done
  berth exec demo-web sh -c 'echo "hello from a berth container, $(hostname)" > /www/index.html' 
  echo "another container on demo-net, by name and by alias (berthd's DNS):"
  berth run --rm --network demo-net "127.0.0.1:$port/copy:v1" sh -c 'wget -qO- http://demo-web/; wget -qO- http://www/'
  berth inspect -f '{{range $n, $e := .NetworkSettings.Networks}}{{$n}}: {{$e.IPAddress}}/{{$e.IPPrefixLen}} via {{$e.Gateway}}{{end}}' demo-web
  berth logs demo-web | tail -3
  berth stop demo-web >/dev/null && berth rm demo-web >/dev/null
  berth network rm demo-net >/dev/null
  set +e; berth run --rm "127.0.0.1:$port/copy:v1" sh -c 'echo "exit code comes through"; exit 5'; rc=$?; set -e
  echo "berth run exit code: $rc"
fi
say "done"
