#!/usr/bin/env bash
# Run benchmark: starting containers from a local image, berthd against dockerd 20.10 and
# containerd 1.6, side by side in one run.
#
#   bash bench/run.sh             (what `make bench` runs after bench/pull.sh; needs root)
#
# Environment:
#   RUNS       timed `run --rm IMAGE true` per client, after WARMUP warm-ups   (default: 20)
#   WARMUP     untimed warm-up runs per client                                 (default: 2)
#   N          containers started with `run -d IMAGE sleep 3600` per engine    (default: 100)
#   BERTHD, BERTH  the daemon and CLI under test (default: target/dist/berthd, berth; `make dist`); berthd
#              runs containerd-shim-berth-v2 and berth-runtime from beside its own binary
#   DOCKER_NEW a newer docker CLI, run against berthd as a second berth row   (default:
#              /usr/local/bin/docker if there; the row is left out without one)
#
# The image: static busybox (/bin/busybox and links sh, sleep, true) as one layer, made with
# umoci, pushed with skopeo to a private docker-registry on 127.0.0.1 and pulled from there
# into every engine (`berth pull`, `docker pull`, `ctr images pull --plain-http`), so all
# three start the same image from their own store.
#
# The engines run side by side for the whole bench, each with its own state:
#   berth       berthd --insecure-registry; containers through containerd-shim-berth-v2 and
#               berth-runtime (cgroups /berth/<id>, which berthd fixes)
#   dockerd     its own data-root/exec-root/socket/pidfile, --bridge none --iptables=false,
#               --cgroup-parent of its own; its own containerd (namespace moby) and
#               containerd-shim-runc-v2 + runc
#   containerd  its own root/state/socket (CRI and unused snapshotters disabled), a namespace of
#               its own (cgroups /<namespace>/<id>); containerd-shim-runc-v2 + runc
# Data roots live on a fresh, journaled ext4 of their own (a loop device; see bench/pull.sh for
# why), exec roots and sockets on a tmpfs (as /run is in real use).
#
# 1. `run --rm IMAGE true`, image local, timed from the client's start to its exit, the median
#    of RUNS after WARMUP warm-ups; runs are interleaved (one of each client per round, order
#    rotated per round) so all share the machine's noise:
#      berth          berth run --rm --network none IMAGE true
#      berth (docker) DOCKER_NEW run --rm --network none IMAGE true, against berthd
#      dockerd        /usr/bin/docker (20.10, its own package's CLI) run --rm --network none …
#      containerd     ctr run --rm IMAGE ID true (ctr's own default spec and runc shim)
#    Ratio: berth / containerd (ctr). The issue's floor is berth <= 0.5x ctr (aim: <= 50 ms);
#    the issue's reference numbers are from another machine, the ones measured here count.
# 2. N containers started one after another, `run -d IMAGE sleep 3600` (berth run -d --network
#    none; docker run -d --network none; ctr run -d --null-io), total wall time; with all N
#    running (and 2 s to settle), the memory of the engine's daemon(s) and all its shims,
#    summed: VmRSS from /proc/PID/status (shared pages counted in every process) and Pss from
#    /proc/PID/smaps_rollup (shared pages divided among their users):
#      berth       berthd + containerd-shim-berth-v2 x N
#      dockerd     dockerd + its containerd + containerd-shim-runc-v2 x N
#      containerd  containerd + containerd-shim-runc-v2 x N
#    then all N are removed (berth rm -f / docker rm -f with all ids; ctr task rm -f + ctr
#    containers rm), timed separately. One engine at a time.
#
# Everything is cleaned up on exit, also on failure: containers, daemons (and dockerd's
# containerd), shims and their sockets, container processes, the registry, mounts (overlays,
# netns files, the loop fs, the tmpfs), runtime state, the cgroups the run made, the temp dir.
# Results: tables on stdout, .bench/run.json (+ a timestamped copy), .bench/run.txt.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
out="$here/.bench"
mkdir -p "$out"

RUNS=${RUNS:-20}
WARMUP=${WARMUP:-2}
N=${N:-100}
BERTHD=${BERTHD:-$here/target/dist/berthd}
BERTH=${BERTH:-$here/target/dist/berth}
DOCKER_NEW=${DOCKER_NEW:-/usr/local/bin/docker}

die() { echo "bench/run: $*" >&2; exit 1; }
log() { echo "bench/run: $*" >&2; }
[[ $(id -u) == 0 ]] || die "needs root"
((RUNS >= 1 && N >= 1)) || die "RUNS and N must be at least 1"
for t in docker-registry dockerd containerd ctr containerd-shim-runc-v2 runc umoci skopeo curl jq ss mkfs.ext4; do
  command -v "$t" >/dev/null || die "$t not installed (bash scripts/install-deps.sh)"
done
# dockerd 20.10 with the CLI of its own package (/usr/local/bin/docker may be a newer one).
DOCKER=/usr/bin/docker
[[ -x $DOCKER ]] || die "no /usr/bin/docker (apt-get install docker.io)"
[[ -x $DOCKER_NEW && $(readlink -f "$DOCKER_NEW") != "$(readlink -f "$DOCKER")" ]] || DOCKER_NEW=""
busybox=""
for b in /bin/busybox /usr/bin/busybox; do [[ -x $b ]] && busybox=$b && break; done
[[ -n $busybox ]] || die "busybox not installed (apt-get install busybox-static)"
if command -v ldd >/dev/null && ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is dynamically linked; the image needs busybox-static"
fi
[[ -x $BERTHD ]] || die "berthd not found: $BERTHD (make dist)"
[[ -x $BERTH ]] || die "berth not found: $BERTH (make dist)"
"$BERTH" run --help >/dev/null 2>&1 || die "$BERTH has no 'run' command: it predates containers (make dist)"
bindir=$(dirname "$(readlink -f "$BERTHD")")
for b in containerd-shim-berth-v2 berth-runtime; do
  [[ -x $bindir/$b ]] || command -v "$b" >/dev/null || die "$b is neither beside $BERTHD nor on PATH (make dist)"
done
# Say so when the binaries are older than the sources (they are used all the same).
stale=()
for b in "$BERTHD" "$BERTH" "$bindir/containerd-shim-berth-v2" "$bindir/berth-runtime"; do
  [[ -e $b ]] || continue
  [[ -n $(find manager shim runtime Cargo.toml Cargo.lock -newer "$b" -type f 2>/dev/null | head -1) ]] && stale+=("${b#"$here"/}")
done
((${#stale[@]} == 0)) || log "note: older than the sources (used as they are): ${stale[*]}"

# Short: socket paths (dockerd's containerd's among them) are limited to 108 bytes.
work=$(mktemp -d /tmp/brn.XXXXXX)
fs="$work/fs"   # data roots: a journaled ext4 on a loop device
run="$work/run" # exec roots and sockets: a tmpfs
ns="brun-$$"    # containerd's namespace (its containers' cgroups: /<ns>/<id>)
dcg="brun-docker-$$" # dockerd's --cgroup-parent
export DOCKER_CONFIG="$work/cli-docker" BERTH_CONFIG="$work/cli-berth"
mkdir -p "$DOCKER_CONFIG" "$BERTH_CONFIG"
bsock="$run/berth/s.sock"
dsock="$run/docker/s.sock"
csock="$run/containerd/c.sock"
reg_pid="" berthd_pid="" dockerd_pid="" ctrd_pid=""
berth_ids="$work/berth-ids" # every container id berthd made for us (cgroups /berth/<id>)
: >"$berth_ids"
# cgroup directories that were there before we started: never removed by us
declare -A PRE_CG
for d in /sys/fs/cgroup/*/berth /sys/fs/cgroup/*/docker /sys/fs/cgroup/*/moby; do
  [[ -d $d ]] && PRE_CG[$d]=1
done

B() { timeout 120 "$BERTH" -H "unix://$bsock" "$@"; }
D() { timeout 120 "$DOCKER" -H "unix://$dsock" "$@"; }
C() { timeout 120 ctr --address "$csock" --namespace "$ns" "$@"; }

# Processes whose command line names our temp dir: the daemons, dockerd's containerd, every
# shim of ours (their -address is one of our sockets), the registry, a straggling client.
our_pids() {
  local p pid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$work/" && echo "$pid"
  done
  return 0
}
# shim_pids <engine>: live shims serving that engine
shim_pids() {
  local p pid args name addr
  case $1 in
    berth) name=containerd-shim-berth-v2 addr="$run/berth/" ;;
    dockerd) name=containerd-shim-runc-v2 addr="$run/docker/" ;;
    containerd) name=containerd-shim-runc-v2 addr="$csock" ;;
  esac
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    args=$({ tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null) || continue
    [[ $(head -1 <<<"$args") == *"$name" ]] || continue
    grep -qF -- "$addr" <<<"$args" || continue
    grep -q '^State:.*Z' "$p/status" 2>/dev/null && continue
    echo "$pid"
  done
  return 0
}
# the daemon processes of an engine
daemon_pids() {
  case $1 in
    berth) echo "$berthd_pid" ;;
    dockerd)
      echo "$dockerd_pid"
      local p
      for p in /proc/[0-9]*; do
        [[ $(cat "$p/comm" 2>/dev/null) == containerd ]] || continue
        { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$run/docker/" && echo "${p#/proc/}"
      done
      ;;
    containerd) echo "$ctrd_pid" ;;
  esac
  return 0
}
# unix sockets a process listens on or holds, by path (the shims' /run/containerd/s/<hash>)
sock_paths() {
  local pid=$1 s
  for s in $(ls -l "/proc/$pid/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\]/\1/p'); do
    awk -v i="$s" '$7 == i && $8 ~ "^/run/containerd/s/" {print $8}' /proc/net/unix
  done
  return 0
}
stop_pid() { # <pid>: TERM, up to 20 s, then KILL
  local pid=$1
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
umount_under() { # <dir>: every mount at or below it, deepest first
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo |
    sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}
# our_cgroups: every cgroup directory (all hierarchies) our containers were put in
our_cgroups() {
  local d id
  for d in /sys/fs/cgroup/*/"$dcg" /sys/fs/cgroup/*/"$ns"; do
    [[ -d $d ]] && echo "$d"
  done
  sort -u "$berth_ids" | while read -r id; do
    [[ -n $id ]] || continue
    for d in /sys/fs/cgroup/*/berth/"$id"; do [[ -d $d ]] && echo "$d"; done
  done
  return 0
}
# record the ids of berthd's containers: those it still has, and those its event backlog names
harvest_berth_ids() {
  [[ -n $berthd_pid ]] && kill -0 "$berthd_pid" 2>/dev/null || return 0
  {
    timeout 30 curl -fsS --unix-socket "$bsock" "http://d/events?since=0&until=$(date +%s)" 2>/dev/null |
      jq -r 'select(.Type == "container") | .Actor.ID' 2>/dev/null
    B ps -aq --no-trunc 2>/dev/null
  } | awk 'NF' >>"$berth_ids" || true
}

cleanup() {
  set +e
  trap - EXIT INT TERM
  log "cleaning up..."
  # containers, through their engines while those are up
  harvest_berth_ids
  if [[ -n $berthd_pid ]] && kill -0 "$berthd_pid" 2>/dev/null; then
    ids=$(B ps -aq --no-trunc 2>/dev/null)
    [[ -n $ids ]] && B rm -f $ids >/dev/null 2>&1
  fi
  ls "$fs/berth/containers" 2>/dev/null >>"$berth_ids"
  if [[ -n $dockerd_pid ]] && kill -0 "$dockerd_pid" 2>/dev/null; then
    ids=$(D ps -aq 2>/dev/null)
    [[ -n $ids ]] && D rm -f $ids >/dev/null 2>&1
  fi
  if [[ -n $ctrd_pid ]] && kill -0 "$ctrd_pid" 2>/dev/null; then
    ids=$(C task ls -q 2>/dev/null)
    [[ -n $ids ]] && C task rm -f $ids >/dev/null 2>&1
    ids=$(C containers ls -q 2>/dev/null)
    [[ -n $ids ]] && C containers rm $ids >/dev/null 2>&1
  fi
  # the shims' sockets outside our dir, in case a shim has to be killed
  local socks=() pid e d c
  for e in berth dockerd containerd; do
    for pid in $(shim_pids "$e"); do mapfile -t -O "${#socks[@]}" socks < <(sock_paths "$pid"); done
  done
  stop_pid "$berthd_pid"
  stop_pid "$dockerd_pid" # stops its containerd
  stop_pid "$ctrd_pid"
  stop_pid "$reg_pid"
  for pid in $(our_pids); do kill -9 "$pid" 2>/dev/null; done
  # container processes still in our cgroups
  for d in $(our_cgroups); do
    find "$d" -depth -type d | while read -r c; do
      [[ -f $c/freezer.state ]] && echo THAWED >"$c/freezer.state" 2>/dev/null
      xargs -r kill -9 <"$c/cgroup.procs" 2>/dev/null
    done
  done
  sleep 0.2
  ((${#socks[@]})) && rm -f "${socks[@]}"
  umount_under "$work"
  for _ in 1 2 3 4 5; do
    for d in $(our_cgroups); do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
    [[ -z $(our_cgroups) ]] && break
    sleep 0.2
  done
  for d in /sys/fs/cgroup/*/berth /sys/fs/cgroup/*/docker /sys/fs/cgroup/*/moby; do
    [[ -d $d && -z ${PRE_CG[$d]:-} ]] && rmdir "$d" 2>/dev/null
  done
  # runtime state outside our dir: the runc shim's runc root per namespace, berth's shim's
  rm -rf "/run/containerd/runc/$ns"
  sort -u "$berth_ids" | while read -r id; do
    [[ -n $id ]] && rm -rf "/run/containerd/berth/berth/$id"
  done
  # what is left, if anything
  local left=()
  [[ -n $(our_pids) ]] && left+=("processes: $(our_pids | paste -sd' ')")
  [[ -n $(our_cgroups) ]] && left+=("cgroups: $(our_cgroups | paste -sd' ')")
  for d in /sys/fs/cgroup/*/berth /sys/fs/cgroup/*/docker /sys/fs/cgroup/*/moby; do
    [[ -d $d && -z ${PRE_CG[$d]:-} ]] && left+=("cgroup: $d")
  done
  [[ -n $(awk -v p="$work/" 'index($5, p) == 1' /proc/self/mountinfo) ]] && left+=("mounts under $work")
  for s in "${socks[@]}"; do [[ -e $s ]] && left+=("socket: $s"); done
  rm -rf "$work"
  [[ -e $work ]] && left+=("$work")
  ((${#left[@]} == 0)) || log "cleanup left behind: ${left[*]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'log "line $LINENO: exit $?: $BASH_COMMAND"' ERR

# ---------------------------------------------------------------------------
# file systems, the image, the registry

truncate -s 8G "$work/disk.img"
mkfs.ext4 -q -F "$work/disk.img"
mkdir -p "$fs" "$run"
mount -o loop "$work/disk.img" "$fs"
mount -t tmpfs -o mode=0711 brun "$run"

rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" "$rootfs/etc"
cp "$busybox" "$rootfs/bin/busybox"
for a in sh sleep true; do ln -s busybox "$rootfs/bin/$a"; done
layout="$work/layout"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci insert --image "$layout:latest" "$rootfs" / >/dev/null
umoci config --image "$layout:latest" --config.cmd /bin/sh --config.env PATH=/bin \
  --author berth-bench --history.created_by "bench/run.sh: config"
umoci gc --layout "$layout"

free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 30000))
    [[ -z $(ss -Hltn "sport = :$p") ]] && echo "$p" && return 0
  done
  return 1
}
port=$(free_port) || die "no free port"
reg="127.0.0.1:$port"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $reg
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for i in $(seq 100); do
  curl -fsS "http://$reg/v2/" >/dev/null 2>&1 && break
  kill -0 "$reg_pid" 2>/dev/null || { cat "$work/registry.log" >&2; die "docker-registry exited"; }
  [[ $i == 100 ]] && die "docker-registry did not come up in 10 s"
  sleep 0.1
done
img="$reg/bench/busybox:latest"
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:latest" "docker://$img" >&2 ||
  die "skopeo copy to the registry failed"
img_kb=$(skopeo inspect --raw --tls-verify=false "docker://$img" | jq '[.layers[].size] | add / 1024 | round')

# ---------------------------------------------------------------------------
# the engines

wait_sock() { # <socket> <pid> <name> <log>
  local i
  for i in $(seq 300); do
    [[ -S $1 ]] && curl -fsS --unix-socket "$1" http://d/_ping >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || { tail -20 "$4" >&2; die "$3 exited"; }
    sleep 0.1
  done
  tail -20 "$4" >&2
  die "$3 did not answer /_ping in 30 s"
}

mkdir -p "$run/berth" "$run/docker" "$run/containerd"
"$BERTHD" --data-root "$fs/berth" --exec-root "$run/berth" -H "unix://$bsock" \
  --pidfile "$run/berth/berthd.pid" --insecure-registry "$reg" >"$work/berthd.log" 2>&1 &
berthd_pid=$!
echo '{}' >"$work/daemon.json"
dockerd --config-file "$work/daemon.json" --data-root "$fs/docker" --exec-root "$run/docker" \
  -H "unix://$dsock" --pidfile "$run/docker/dockerd.pid" --storage-driver overlay2 \
  --bridge none --iptables=false --ip-masq=false --cgroup-parent "/$dcg" \
  --log-level warn >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
cat >"$work/containerd.toml" <<EOF
version = 2
root = "$fs/containerd"
state = "$run/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.opt"]
[grpc]
  address = "$csock"
[ttrpc]
  address = "$csock.ttrpc"
EOF
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
ctrd_pid=$!
wait_sock "$bsock" "$berthd_pid" berthd "$work/berthd.log"
wait_sock "$dsock" "$dockerd_pid" dockerd "$work/dockerd.log"
for i in $(seq 300); do
  [[ -S $csock ]] && C version >/dev/null 2>&1 && break
  kill -0 "$ctrd_pid" 2>/dev/null || { tail -20 "$work/containerd.log" >&2; die "containerd exited"; }
  [[ $i == 300 ]] && die "containerd did not come up in 30 s"
  sleep 0.1
done

logs_tail() { # <engine>: the tail of its daemon's log, on stderr
  local f
  case $1 in berth*) f=berthd ;; *) f=$1 ;; esac
  echo "--- $f log (tail):" >&2
  tail -20 "$work/$f.log" >&2
}
B pull "$img" >"$work/pull.out" 2>&1 || { cat "$work/pull.out" >&2; logs_tail berth; die "berth pull failed"; }
D pull "$img" >"$work/pull.out" 2>&1 || { cat "$work/pull.out" >&2; logs_tail dockerd; die "docker pull failed"; }
C images pull --plain-http "$img" >"$work/pull.out" 2>&1 || { cat "$work/pull.out" >&2; logs_tail containerd; die "ctr images pull failed"; }

# ---------------------------------------------------------------------------
# 1. run --rm IMAGE true

CLIENTS=(berth)
[[ -n $DOCKER_NEW ]] && CLIENTS+=(berth-docker)
CLIENTS+=(dockerd containerd)
rm_cmd() { # <client> <seq>: the command line, one word per line
  case $1 in
    berth) printf '%s\n' "$BERTH" -H "unix://$bsock" run --rm --network none "$img" true ;;
    berth-docker) printf '%s\n' "$DOCKER_NEW" -H "unix://$bsock" run --rm --network none "$img" true ;;
    dockerd) printf '%s\n' "$DOCKER" -H "unix://$dsock" run --rm --network none "$img" true ;;
    containerd) printf '%s\n' ctr --address "$csock" --namespace "$ns" run --rm --fifo-dir "$run/fifo" "$img" "rm-$2" true ;;
  esac
}
declare -A MS # client -> timed runs, ms
rounds=$((WARMUP + RUNS))
log "run --rm: $WARMUP warm-up + $RUNS timed rounds of ${CLIENTS[*]}"
for ((r = 1; r <= rounds; r++)); do
  nc=${#CLIENTS[@]}
  order=("${CLIENTS[@]:r % nc}" "${CLIENTS[@]:0:r % nc}")
  for c in "${order[@]}"; do
    mapfile -t cmd < <(rm_cmd "$c" "$r")
    t0=$EPOCHREALTIME
    rc=0
    timeout 60 "${cmd[@]}" >"$work/run.out" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    if ((rc != 0)); then
      echo "--- ${cmd[*]}: exit $rc" >&2
      tail -20 "$work/run.out" >&2
      logs_tail "$c"
      die "round $r: $c: run --rm failed"
    fi
    [[ -s $work/run.out ]] && { echo "--- ${cmd[*]} said:" >&2; head -5 "$work/run.out" >&2; }
    ((r > WARMUP)) && MS[$c]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b - a) * 1000}') "
  done
  ((r % 20 == 0)) && harvest_berth_ids
done
harvest_berth_ids
# nothing may be left: every --rm container gone from its engine
[[ -z $(B ps -aq) ]] || die "berth ps -a lists containers after run --rm: $(B ps -a)"
[[ -z $(D ps -aq) ]] || die "docker ps -a lists containers after run --rm: $(D ps -a)"
[[ -z $(C containers ls -q) ]] || die "ctr lists containers after run --rm: $(C containers ls -q | paste -sd' ')"
sleep 0.5
left_cg=$(our_cgroups | grep '/berth/' || true)
[[ -z $left_cg ]] || log "warning: cgroups of berth's removed containers are still there: $(paste -sd' ' <<<"$left_cg")"

# ---------------------------------------------------------------------------
# 2. N containers: run -d IMAGE sleep 3600, memory, removal

ENGINES=(berth dockerd containerd)
bulk_cmd() { # <engine> <i>
  case $1 in
    berth) printf '%s\n' "$BERTH" -H "unix://$bsock" run -d --network none --name "bulk-$2" "$img" sleep 3600 ;;
    dockerd) printf '%s\n' "$DOCKER" -H "unix://$dsock" run -d --network none --name "bulk-$2" "$img" sleep 3600 ;;
    containerd) printf '%s\n' ctr --address "$csock" --namespace "$ns" run -d --null-io --fifo-dir "$run/fifo" "$img" "bulk-$2" sleep 3600 ;;
  esac
}
running() { # <engine>: how many of its containers run
  case $1 in
    berth) B ps -q | awk 'NF' | wc -l ;;
    dockerd) D ps -q | awk 'NF' | wc -l ;;
    containerd) C task ls | awk '$3 == "RUNNING"' | wc -l ;;
  esac
}
remove_all() { # <engine>
  local ids
  case $1 in
    berth) ids=$(B ps -aq --no-trunc) && B rm -f $ids ;;
    dockerd) ids=$(D ps -aq) && D rm -f $ids ;;
    containerd) ids=$(C task ls -q) && C task rm -f $ids && C containers rm $(C containers ls -q) ;;
  esac
}
declare -A START_S REMOVE_S RSS PSS DPSS SPSS NSHIM NDAEMON
for e in "${ENGINES[@]}"; do
  log "$e: starting $N containers (run -d ... sleep 3600)"
  t0=$EPOCHREALTIME
  for ((i = 1; i <= N; i++)); do
    mapfile -t cmd < <(bulk_cmd "$e" "$i")
    if ! timeout 60 "${cmd[@]}" >"$work/run.out" 2>&1; then
      echo "--- ${cmd[*]}:" >&2
      tail -20 "$work/run.out" >&2
      logs_tail "$e"
      die "$e: container $i of $N did not start"
    fi
    [[ $e == berth ]] && tail -1 "$work/run.out" >>"$berth_ids"
  done
  t1=$EPOCHREALTIME
  START_S[$e]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')
  n=$(running "$e") || { logs_tail "$e"; die "$e: cannot list its containers"; }
  [[ $n == "$N" ]] || die "$e: $n of $N containers are running"
  sleep 2 # let things settle (the Go runtime's first GC, lazily started threads)
  rss=0 pss=0 dpss=0 spss=0 ns_=0 nd=0
  for kind in daemon shim; do
    if [[ $kind == daemon ]]; then pids=$(daemon_pids "$e"); else pids=$(shim_pids "$e"); fi
    for pid in $pids; do
      r_=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")
      p_=$(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup")
      [[ -n $r_ && -n $p_ ]] || die "$e: cannot read the memory of pid $pid"
      rss=$((rss + r_)) pss=$((pss + p_))
      if [[ $kind == daemon ]]; then dpss=$((dpss + p_)) nd=$((nd + 1)); else spss=$((spss + p_)) ns_=$((ns_ + 1)); fi
    done
  done
  [[ $ns_ -ge $N ]] || die "$e: found $ns_ shim processes for $N containers"
  RSS[$e]=$rss PSS[$e]=$pss DPSS[$e]=$dpss SPSS[$e]=$spss NSHIM[$e]=$ns_ NDAEMON[$e]=$nd
  log "$e: $N started in ${START_S[$e]} s; VmRSS $((rss / 1024)) MiB, Pss $((pss / 1024)) MiB ($nd daemon processes, $ns_ shims)"
  t0=$EPOCHREALTIME
  remove_all "$e" >"$work/rm.out" 2>&1 || { tail -20 "$work/rm.out" >&2; logs_tail "$e"; die "$e: removing the containers failed"; }
  t1=$EPOCHREALTIME
  REMOVE_S[$e]=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')
  case $e in
    berth) [[ -z $(B ps -aq) ]] || die "berth: containers left after rm -f" ;;
    dockerd) [[ -z $(D ps -aq) ]] || die "dockerd: containers left after rm -f" ;;
    containerd) [[ -z $(C containers ls -q) ]] || die "containerd: containers left after removal" ;;
  esac
done
sleep 0.5
left_cg=$(our_cgroups | grep '/berth/' || true)
[[ -z $left_cg ]] || log "warning: cgroups of berth's removed containers are still there: $(paste -sd' ' <<<"$left_cg")"
for e in "${ENGINES[@]}"; do
  n=$(shim_pids "$e" | wc -l)
  [[ $n == 0 ]] || log "warning: $e: $n shims still running after all containers were removed"
done

# ---------------------------------------------------------------------------
# report

stat_of() { # <list> <median|min|max>
  tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk -v w="$2" '{a[NR] = $1}
    END{ if (NR == 0) print "nan"; else if (w == "min") print a[1]; else if (w == "max") print a[NR];
         else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || a == "nan" || b == "" || b == "nan" || b <= 0) print "-"; else printf "%.2f", a / b }'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN{ if (v == "nan" || v == "") print "-"; else printf f, v }'; }
declare -A MED MIN MAX
for c in berth berth-docker dockerd containerd; do
  MED[$c]=$(stat_of "${MS[$c]:-}" median)
  MIN[$c]=$(stat_of "${MS[$c]:-}" min)
  MAX[$c]=$(stat_of "${MS[$c]:-}" max)
done
dockerd_v=$(dockerd --version | awk '{print $3}' | sed 's/[+~,].*//')
containerd_v=$(containerd --version | awk '{print $3}' | sed 's/[+~,].*//')
docker_new_v=$([[ -n $DOCKER_NEW ]] && "$DOCKER_NEW" --version | awk '{print $3}' | sed 's/[+~,].*//' || echo "-")
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k / 1024}'; }
row1() { # <label> <assoc name>
  local -n a=$2
  printf '%-30s %9s %16s %10s %11s %10s\n' "$1" "$(fmt "${a[berth]}" '%.1f')" "$(fmt "${a[berth-docker]}" '%.1f')" \
    "$(fmt "${a[dockerd]}" '%.1f')" "$(fmt "${a[containerd]}" '%.1f')" "$(ratio "${a[berth]}" "${a[containerd]}")"
}
row2() { # <label> <berth> <dockerd> <containerd> [noratio]
  if [[ -n ${5:-} ]]; then
    printf '%-34s %9s %9s %11s %10s %14s\n' "$1" "$2" "$3" "$4" - -
  else
    printf '%-34s %9s %9s %11s %10s %14s\n' "$1" "$2" "$3" "$4" "$(ratio "$2" "$4")" "$(ratio "$2" "$3")"
  fi
}
{
  printf '\nrun --rm IMAGE true, image local, client start to exit, ms: median of %s runs after %s warm-ups (%s, %s CPUs)\n' \
    "$RUNS" "$WARMUP" "$(uname -r)" "$(nproc)"
  printf 'image: static busybox, 1 layer, %s KiB gz, from docker-registry on loopback; berth: %s\n' "$img_kb" "$BERTHD"
  printf '%-30s %9s %16s %10s %11s %10s\n' "" berth "berth" dockerd containerd "berth/ctr"
  printf '%-30s %9s %16s %10s %11s %10s\n' "" "(berth)" "(docker $docker_new_v)" "$dockerd_v" "$containerd_v" ""
  row1 "run --rm true, ms (median)" MED
  row1 "  fastest" MIN
  row1 "  slowest" MAX
  printf '(berth run --rm --network none; %s run --rm --network none; ctr run --rm: runc shim, ctr'"'"'s default spec)\n' "$DOCKER"
  printf '(the issue'"'"'s floor: berth <= 0.50x ctr, aiming at <= 50 ms; its reference numbers are from another machine, these count)\n'
  printf '\n%s containers, run -d IMAGE sleep 3600, one after another; memory with all %s running\n' "$N" "$N"
  printf '%-34s %9s %9s %11s %10s %14s\n' "" berth dockerd containerd "berth/ctr" "berth/dockerd"
  row2 "start $N, s (total)" "${START_S[berth]}" "${START_S[dockerd]}" "${START_S[containerd]}"
  row2 "  per container, ms (mean)" "$(awk -v s="${START_S[berth]}" -v n="$N" 'BEGIN{printf "%.1f", s * 1000 / n}')" \
    "$(awk -v s="${START_S[dockerd]}" -v n="$N" 'BEGIN{printf "%.1f", s * 1000 / n}')" \
    "$(awk -v s="${START_S[containerd]}" -v n="$N" 'BEGIN{printf "%.1f", s * 1000 / n}')"
  row2 "VmRSS, daemon(s) + shims, MiB" "$(mib "${RSS[berth]}")" "$(mib "${RSS[dockerd]}")" "$(mib "${RSS[containerd]}")"
  row2 "Pss, daemon(s) + shims, MiB" "$(mib "${PSS[berth]}")" "$(mib "${PSS[dockerd]}")" "$(mib "${PSS[containerd]}")"
  row2 "  Pss of the daemon(s), MiB" "$(mib "${DPSS[berth]}")" "$(mib "${DPSS[dockerd]}")" "$(mib "${DPSS[containerd]}")"
  row2 "  Pss of the shims, MiB" "$(mib "${SPSS[berth]}")" "$(mib "${SPSS[dockerd]}")" "$(mib "${SPSS[containerd]}")"
  row2 "  processes (daemons + shims)" "${NDAEMON[berth]}+${NSHIM[berth]}" "${NDAEMON[dockerd]}+${NSHIM[dockerd]}" "${NDAEMON[containerd]}+${NSHIM[containerd]}" noratio
  row2 "remove all $N, s (separately)" "${REMOVE_S[berth]}" "${REMOVE_S[dockerd]}" "${REMOVE_S[containerd]}"
  printf '(berth: berthd + containerd-shim-berth-v2; dockerd: dockerd + its containerd + containerd-shim-runc-v2;\n'
  printf ' containerd: containerd + containerd-shim-runc-v2. removal: berth/docker rm -f with all ids; ctr task rm -f, containers rm)\n'
} | tee "$out/run.txt"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
list() { tr ' ' '\n' <<<"$1" | awk 'NF' | paste -sd, -; }
num() { [[ $1 == nan || -z $1 ]] && echo null || echo "$1"; }
{
  printf '{\n  "date": "%s",\n  "kernel": "%s",\n  "cpus": %s,\n  "runs": %s,\n  "warmup": %s,\n  "containers": %s,\n' \
    "$stamp" "$(uname -r)" "$(nproc)" "$RUNS" "$WARMUP" "$N"
  printf '  "berthd": "%s",\n  "dockerd": "%s",\n  "containerd": "%s",\n  "docker_cli_against_berthd": "%s",\n  "image_gzip_kib": %s,\n' \
    "$BERTHD" "$dockerd_v" "$containerd_v" "$docker_new_v" "$img_kb"
  printf '  "run_rm_true_ms": {'
  sep=""
  for c in "${CLIENTS[@]}"; do
    printf '%s\n    "%s": {"median": %s, "min": %s, "max": %s, "runs": [%s]}' "$sep" "$c" "$(num "${MED[$c]}")" \
      "$(num "${MIN[$c]}")" "$(num "${MAX[$c]}")" "$(list "${MS[$c]}")"
    sep=","
  done
  printf '\n  },\n  "ratio_run_rm_berth_to_ctr": %s,\n' "$(ratio "${MED[berth]}" "${MED[containerd]}" | sed 's/^-$/null/')"
  printf '  "run_d": {'
  sep=""
  for e in "${ENGINES[@]}"; do
    printf '%s\n    "%s": {"start_all_s": %s, "remove_all_s": %s, "vmrss_kib": %s, "pss_kib": %s, "daemon_pss_kib": %s, "shims_pss_kib": %s, "daemon_processes": %s, "shims": %s}' \
      "$sep" "$e" "${START_S[$e]}" "${REMOVE_S[$e]}" "${RSS[$e]}" "${PSS[$e]}" "${DPSS[$e]}" "${SPSS[$e]}" "${NDAEMON[$e]}" "${NSHIM[$e]}"
    sep=","
  done
  printf '\n  },\n  "ratio_berth_to_ctr": {"start_all": %s, "vmrss": %s, "pss": %s}\n}\n' \
    "$(ratio "${START_S[berth]}" "${START_S[containerd]}")" "$(ratio "${RSS[berth]}" "${RSS[containerd]}")" \
    "$(ratio "${PSS[berth]}" "${PSS[containerd]}")"
} >"$out/run.json"
jq . "$out/run.json" >/dev/null || die "wrote invalid JSON: $out/run.json"
cp "$out/run.json" "$out/run-$stamp.json"
echo "results: $out/run.json, $out/run.txt" >&2
