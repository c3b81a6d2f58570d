#!/usr/bin/env bash
# Build benchmark: a cold build and a rebuild after one COPY source changed, for the same
# Dockerfile and context, berthd against dockerd 20.10's classic builder, in one run.
#
#   bash bench/build.sh           (what `make bench` runs; needs root)
#
# Environment:
#   RUNS      timed builds per engine and kind, after WARMUP                 (default: 10)
#   WARMUP    untimed builds per engine and kind                             (default: 1)
#   BERTHD, BERTH  the daemon and CLI under test (default: target/dist/berthd, berth; `make dist`)
#
# The base image: static busybox, one layer, pushed to a private docker-registry on loopback
# and pulled into each engine. The Dockerfile (below) has the usual shape: ENV, WORKDIR, a
# COPY of dependencies (4 MiB in 64 files), a RUN that writes 200 files, a COPY of the sources
# (20 small files), a RUN over the result, CMD. Both engines build with `--network none`
# (dockerd runs with --bridge none --iptables=false, so nothing lands in the host's rules).
#   cold      build --no-cache -t bench:cold CONTEXT: every step runs
#   rebuild   one source file changed, then build -t bench:re CONTEXT: the steps up to the
#             sources' COPY come from the cache, the rest run
# Runs are interleaved (berth, dockerd, order rotated per round). Reported: medians, ms, and
# berth/dockerd; the issue's floor is berth <= 0.7x dockerd on both.
# Everything is cleaned up on exit, also on failure. Results: .bench/build.txt, .bench/build.json.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
out="$here/.bench"
mkdir -p "$out"
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-1}
BERTHD=${BERTHD:-$here/target/dist/berthd}
BERTH=${BERTH:-$here/target/dist/berth}
DOCKER=/usr/bin/docker

die() { echo "bench/build: $*" >&2; exit 1; }
log() { echo "bench/build: $*" >&2; }
[[ $(id -u) == 0 ]] || die "needs root"
for t in docker-registry dockerd umoci skopeo curl jq; do
  command -v "$t" >/dev/null || die "$t not installed (bash scripts/install-deps.sh)"
done
[[ -x $DOCKER ]] || die "no /usr/bin/docker (apt-get install docker.io)"
[[ -x $BERTHD && -x $BERTH ]] || die "berthd/berth not built (make dist)"
busybox=/bin/busybox
[[ -x $busybox ]] || die "busybox-static not installed"

work=$(mktemp -d /tmp/bbld.XXXXXX)
bsock="$work/b.sock" dsock="$work/d.sock"
export DOCKER_CONFIG="$work/cli-docker" BERTH_CONFIG="$work/cli-berth" DOCKER_BUILDKIT=0
mkdir -p "$DOCKER_CONFIG" "$BERTH_CONFIG" "$work/berth-exec" "$work/docker-exec"
reg_pid="" berthd_pid="" dockerd_pid=""
B() { timeout 300 "$BERTH" -H "unix://$bsock" "$@"; }
D() { timeout 300 "$DOCKER" -H "unix://$dsock" "$@"; }

stop_pid() {
  local pid=$1
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  set +e
  trap - EXIT INT TERM
  log "cleaning up..."
  if [[ -n $berthd_pid ]] && kill -0 "$berthd_pid" 2>/dev/null; then
    ids=$(B ps -aq --no-trunc 2>/dev/null); [[ -n $ids ]] && B rm -f $ids >/dev/null 2>&1
  fi
  if [[ -n $dockerd_pid ]] && kill -0 "$dockerd_pid" 2>/dev/null; then
    ids=$(D ps -aq 2>/dev/null); [[ -n $ids ]] && D rm -f $ids >/dev/null 2>&1
  fi
  stop_pid "$berthd_pid"
  stop_pid "$dockerd_pid"
  stop_pid "$reg_pid"
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$work/" && kill -9 "${p#/proc/}" 2>/dev/null
  done
  sleep 0.2
  awk -v p="$work/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  nft delete table ip berth 2>/dev/null
  ip link del berth0 2>/dev/null
  for d in /sys/fs/cgroup/*/bbld-docker-$$; do [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
  rm -rf "$work"
  [[ -e $work ]] && log "cleanup left behind: $work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the base image, in a registry on loopback
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" "$rootfs/etc"
cp "$busybox" "$rootfs/bin/busybox"
for a in sh sleep true seq ls cat echo mkdir; do ln -s busybox "$rootfs/bin/$a"; done
layout="$work/layout"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci insert --image "$layout:latest" "$rootfs" / >/dev/null
umoci config --image "$layout:latest" --config.cmd /bin/sh --config.env PATH=/bin
port=$((20000 + RANDOM % 20000))
reg="127.0.0.1:$port"
printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' "$work/registry" "$reg" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for i in $(seq 100); do curl -fsS "http://$reg/v2/" >/dev/null 2>&1 && break; [[ $i == 100 ]] && die "registry did not start"; sleep 0.1; done
img="$reg/bench/buildbase:latest"
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:latest" "docker://$img" >&2

# the context
ctx="$work/ctx"
mkdir -p "$ctx/deps" "$ctx/src"
for i in $(seq 64); do head -c 65536 /dev/urandom >"$ctx/deps/dep$i.bin"; done
for i in $(seq 20); do echo "echo source $i" >"$ctx/src/mod$i.sh"; done
cat >"$ctx/Dockerfile" <<DF
FROM $img
ENV APP=/app GREETING=hello
WORKDIR /app
COPY deps/ /app/deps/
RUN for i in \$(seq 1 200); do echo "\$GREETING \$i" > /app/gen\$i; done
COPY src/ /app/src/
RUN ls /app/src /app/deps > /app/manifest.txt
CMD ["sh", "/app/src/mod1.sh"]
DF

"$BERTHD" --data-root "$work/berth-data" --exec-root "$work/berth-exec" -H "unix://$bsock" \
  --pidfile "$work/berthd.pid" --insecure-registry "$reg" >"$work/berthd.log" 2>&1 &
berthd_pid=$!
echo '{}' >"$work/daemon.json"
dockerd --config-file "$work/daemon.json" --data-root "$work/docker-data" --exec-root "$work/docker-exec" \
  -H "unix://$dsock" --pidfile "$work/dockerd.pid" --storage-driver overlay2 --bridge none \
  --iptables=false --insecure-registry "$reg" --cgroup-parent "/bbld-docker-$$" --log-level warn >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for s in "$bsock" "$dsock"; do
  for i in $(seq 300); do curl -fsS --unix-socket "$s" http://d/_ping >/dev/null 2>&1 && break; [[ $i == 300 ]] && { tail "$work"/*.log >&2; die "$s: no daemon"; }; sleep 0.1; done
done
B pull -q "$img" >/dev/null
D pull -q "$img" >/dev/null

# One build, timed; its output checked for what the kind must show.
declare -A MS
n=0
build() { # <engine> <kind> <timed>
  local e=$1 k=$2 cli t0 t1 o
  case $e in berth) cli=("$BERTH" -H "unix://$bsock") ;; dockerd) cli=("$DOCKER" -H "unix://$dsock") ;; esac
  local args=(build --network none)
  if [[ $k == cold ]]; then
    args+=(--no-cache -t bench:cold)
  else
    n=$((n + 1))
    echo "echo source 1, edit $n of $e" >"$ctx/src/mod1.sh"
    args+=(-t bench:re)
  fi
  t0=$EPOCHREALTIME
  o=$(timeout 300 "${cli[@]}" "${args[@]}" "$ctx" 2>&1) || { echo "$o" >&2; die "$e: $k build failed"; }
  t1=$EPOCHREALTIME
  local cached
  cached=$(grep -c 'Using cache' <<<"$o" || true)
  if [[ $k == cold ]]; then
    ((cached == 0)) || { echo "$o" >&2; die "$e: a --no-cache build used the cache"; }
  else
    ((cached == 4)) || { echo "$o" >&2; die "$e: the rebuild used the cache for $cached steps, not 4"; }
  fi
  [[ $3 == 1 ]] && MS[$e-$k]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b - a) * 1000}') "
  return 0
}
# A first build of each so the rebuilds have a cache to use.
build berth cold 0
build dockerd cold 0
ENGINES=(berth dockerd)
for ((r = 1; r <= WARMUP + RUNS; r++)); do
  ne=${#ENGINES[@]}
  for e in "${ENGINES[@]:r % ne}" "${ENGINES[@]:0:r % ne}"; do
    build "$e" cold $((r > WARMUP))
    build "$e" rebuild $((r > WARMUP))
  done
done
# The results run.
got=$(B run --rm --network none bench:re 2>&1); [[ $got == "source 1, edit"* ]] || die "berth: the rebuilt image runs wrong: $got"
got=$(D run --rm --network none bench:re 2>&1); [[ $got == "source 1, edit"* ]] || die "dockerd: the rebuilt image runs wrong: $got"

median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{a[NR] = $1} END{ if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b <= 0) print "-"; else printf "%.2f", a / b }'; }
declare -A MED
for k in berth-cold dockerd-cold berth-rebuild dockerd-rebuild; do MED[$k]=$(median "${MS[$k]}"); done
dockerd_v=$(dockerd --version | awk '{print $3}' | sed 's/[+~,].*//')
{
  printf '\nDockerfile build, ms, median of %s runs after %s warm-ups (%s, %s CPUs)\n' "$RUNS" "$WARMUP" "$(uname -r)" "$(nproc)"
  printf '%-34s %10s %16s %16s\n' "" "berth" "dockerd $dockerd_v" "berth/dockerd"
  printf '%-34s %10s %16s %16s\n' "cold (--no-cache, 7 steps)" "${MED[berth-cold]}" "${MED[dockerd-cold]}" "$(ratio "${MED[berth-cold]}" "${MED[dockerd-cold]}")"
  printf '%-34s %10s %16s %16s\n' "rebuild (1 COPY source changed)" "${MED[berth-rebuild]}" "${MED[dockerd-rebuild]}" "$(ratio "${MED[berth-rebuild]}" "${MED[dockerd-rebuild]}")"
  printf '(berth: berth build; dockerd: docker build with DOCKER_BUILDKIT=0; both --network none. The issue'"'"'s floor: berth <= 0.7x dockerd on both)\n'
} | tee "$out/build.txt"
jq -n --arg bc "${MED[berth-cold]}" --arg dc "${MED[dockerd-cold]}" --arg br "${MED[berth-rebuild]}" --arg dr "${MED[dockerd-rebuild]}" --argjson runs "$RUNS" \
  '{runs: $runs, cold_ms: {berth: ($bc|tonumber), dockerd: ($dc|tonumber)}, rebuild_ms: {berth: ($br|tonumber), dockerd: ($dr|tonumber)}}' >"$out/build.json"
