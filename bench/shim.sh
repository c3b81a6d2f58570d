#!/usr/bin/env bash
# Shim benchmark: containerd-shim-berth-v2 against containerd's Go shim
# (containerd-shim-runc-v2), side by side under one private containerd 1.6.
#
#   bash bench/shim.sh            (what `make bench` runs after bench/runtime.sh; needs root)
#
# Environment:
#   N         idle containers per shim        (default: 20)
#   BINARY    runc-compatible binary both shims run containers with: the Go shim
#             gets it as `ctr run --runc-binary` (BinaryName), the berth shim finds
#             it as the `berth-runtime` beside its binary (ctr passes runc options
#             to runc.v2 only)                 (default: target/dist/berth-runtime)
#   HOLD      seconds to keep everything running after measuring, for a look
#             with other tools                 (default: 0)
#   SHIM      the berth shim binary            (default: target/dist/containerd-shim-berth-v2, static; `make dist`)
#
# What it does: starts containerd with its own root, state and sockets under a
# temp dir (CRI and unused snapshotters disabled, as shim/tests/containerd.rs
# does), imports a static-busybox image made with umoci, then starts N idle
# containers (`sleep 100000`, --null-io) with `--runtime io.containerd.berth.v2`
# and N with `--runtime io.containerd.runc.v2`, one shim per container.
#
# Per shim process, once all 2N containers run:
#   VmRSS     /proc/PID/status                 (counts shared binary/libc pages in full)
#   Pss       /proc/PID/smaps_rollup           (shared pages divided among their users)
#   Anon      Pss_Anon from smaps_rollup       (the memory that is this shim's alone)
#   Threads   /proc/PID/status
# reported as the mean over the N shims of each kind.
# Start time: wall time of `ctr run -d` per container (ctr returns once the
# task's Start answered, i.e. the container runs), mean and median over N.
#
# Everything is cleaned up on exit, also on failure: tasks, containers, shims
# and their sockets, containerd, mounts, cgroups, runtime state, the temp dir.
# Results: a table on stdout, .bench/shim.json (+ a timestamped copy).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
out="$here/.bench"
mkdir -p "$out"

N=${N:-20}
SHIM=${SHIM:-$here/target/dist/containerd-shim-berth-v2}
BINARY=${BINARY:-$here/target/dist/berth-runtime}

die() { echo "bench/shim: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root"
for t in containerd ctr containerd-shim-runc-v2 umoci; do
  command -v "$t" >/dev/null || die "$t not installed (bash scripts/install-deps.sh)"
done
if [[ ! -x $SHIM || ! -x $here/target/release/berth-runtime ]]; then
  echo "building the shim and berth-runtime (release)..." >&2
  cargo build --release -p containerd-shim-berth-v2 -p berth-runtime >&2
fi
[[ -x $SHIM ]] || die "shim not found: $SHIM"
BINARY=$(command -v "$BINARY" || true)
[[ -x $BINARY ]] || die "runtime binary not found"
busybox=""
for b in /bin/busybox /usr/bin/busybox; do [[ -x $b ]] && busybox=$b && break; done
[[ -n $busybox ]] || die "busybox not installed (apt-get install busybox-static)"

# Short: shim and containerd socket paths are limited to 108 bytes.
work=$(mktemp -d /tmp/bsb.XXXXXX)
ns="bench-shim-$$"
sock="$work/c.sock"
bindir="$work/bin"
cd_pid=""
declare -A KIND=([berth]=io.containerd.berth.v2 [runc]=io.containerd.runc.v2)
declare -A SHIMBIN=([berth]=containerd-shim-berth-v2 [runc]=containerd-shim-runc-v2)

C() { timeout 60 ctr --address "$sock" --namespace "$ns" "$@"; }

# shim_pids <kind>: live shims serving our containerd (their -address is our socket).
shim_pids() {
  local p pid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ -r $p/cmdline ]] || continue
    local args
    args=$(tr '\0' '\n' <"$p/cmdline" 2>/dev/null) || continue
    [[ $(head -1 <<<"$args") == *"${SHIMBIN[$1]}" ]] || continue
    grep -qxF -- "$sock" <<<"$args" || continue
    grep -q '^State:.*Z' "$p/status" 2>/dev/null && continue
    echo "$pid"
  done
}

cleanup() {
  set +e
  trap - EXIT INT TERM
  if [[ -n $cd_pid ]] && kill -0 "$cd_pid" 2>/dev/null; then
    for id in $(C task ls -q 2>/dev/null); do
      C task resume "$id" >/dev/null 2>&1
      C task kill -a -s SIGKILL "$id" >/dev/null 2>&1
    done
    for id in $(C task ls -q 2>/dev/null); do C task delete -f "$id" >/dev/null 2>&1; done
    for id in $(C containers ls -q 2>/dev/null); do C containers rm "$id" >/dev/null 2>&1; done
  fi
  local k pid s
  for k in berth runc; do
    for pid in $(shim_pids "$k"); do
      # their sockets under /run/containerd/s/
      for s in $(ls -l "/proc/$pid/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\]/\1/p'); do
        awk -v i="$s" '$7==i && $8 ~ "^/run/containerd/s/" {print $8}' /proc/net/unix | xargs -r rm -f
      done
      kill -9 "$pid" 2>/dev/null
    done
  done
  if [[ -n $cd_pid ]]; then
    kill "$cd_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$cd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$cd_pid" 2>/dev/null
    wait "$cd_pid" 2>/dev/null
  fi
  # container processes left in the namespace's cgroups, then the cgroups
  local d
  for d in /sys/fs/cgroup/*/"$ns"; do
    [[ -d $d ]] || continue
    find "$d" -depth -type d | while read -r c; do
      [[ -f $c/freezer.state ]] && echo THAWED >"$c/freezer.state" 2>/dev/null
      xargs -r kill -9 <"$c/cgroup.procs" 2>/dev/null
    done
  done
  awk -v p="$work/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for d in /sys/fs/cgroup/*/"$ns"; do
    [[ -d $d ]] || continue
    for _ in 1 2 3 4 5; do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; [[ -d $d ]] || break; sleep 0.2; done
  done
  rm -rf "/run/containerd/berth/$ns" "/run/containerd/runc/$ns" "/run/containerd/io.containerd.runtime.v2.task/$ns"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# containerd, with the berth shim first on its PATH

mkdir -p "$bindir"
# A copy, not a link: the shim looks for `berth-runtime` beside its own (resolved)
# binary, and that is BINARY here, so both shims run the same runtime.
cp "$(readlink -f "$SHIM")" "$bindir/containerd-shim-berth-v2"
ln -s "$BINARY" "$bindir/berth-runtime"
cat >"$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.opt"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
EOF
PATH="$bindir:$PATH" containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
cd_pid=$!
for i in $(seq 300); do
  [[ -S $sock ]] && C version >/dev/null 2>&1 && break
  kill -0 "$cd_pid" 2>/dev/null || { tail -20 "$work/containerd.log" >&2; die "containerd exited"; }
  [[ $i == 300 ]] && die "containerd did not come up in 30 s"
  sleep 0.1
done

# ---------------------------------------------------------------------------
# the image: static busybox, made with umoci

rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" "$rootfs/etc"
cp "$busybox" "$rootfs/bin/busybox"
for a in sh sleep true; do ln -s busybox "$rootfs/bin/$a"; done
layout="$work/layout"
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci insert --image "$layout:latest" "$rootfs" / >/dev/null
umoci config --image "$layout:latest" --config.cmd /bin/sh --config.env PATH=/bin
umoci gc --layout "$layout"
tar -C "$layout" -cf "$work/image.tar" .
image=berth.bench/busybox:latest
C images import --base-name berth.bench/busybox "$work/image.tar" >/dev/null

# ---------------------------------------------------------------------------
# N idle containers per shim, alternating kinds so neither gets a warmer machine

declare -A START_MS=([berth]="" [runc]="")
# ctr passes --runc-binary only to io.containerd.runc.v2; the berth shim finds
# BINARY as the berth-runtime beside it (see above).
declare -A RUNC_BINARY=([berth]="" [runc]="--runc-binary $BINARY")
now_ns() { date +%s%N; }
for ((i = 0; i < N; i++)); do
  for k in berth runc; do
    id="$k-$i"
    t0=$(now_ns)
    C run -d --null-io --runtime "${KIND[$k]}" ${RUNC_BINARY[$k]} "$image" "$id" sleep 100000 >/dev/null 2>"$work/run.err" ||
      { cat "$work/run.err" >&2; grep -iE "error|warn" "$work/containerd.log" | tail -10 >&2; die "ctr run -d $id ($k) failed"; }
    t1=$(now_ns)
    START_MS[$k]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e6}') "
  done
done
running=$(C task ls | awk '$3=="RUNNING"' | wc -l)
[[ $running == $((2 * N)) ]] || die "$running of $((2 * N)) tasks are running"
sleep 2 # let both kinds settle (the Go runtime's first GC, lazily started threads)

# ---------------------------------------------------------------------------
# memory per shim

declare -A RSS PSS ANON THR CNT
for k in berth runc; do
  pids=$(shim_pids "$k")
  n=0 rss=0 pss=0 anon=0 thr=0
  for pid in $pids; do
    r=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")
    t=$(awk '/^Threads:/{print $2}' "/proc/$pid/status")
    p=$(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup")
    a=$(awk '/^Pss_Anon:/{print $2}' "/proc/$pid/smaps_rollup")
    n=$((n + 1)) rss=$((rss + r)) pss=$((pss + p)) anon=$((anon + ${a:-0})) thr=$((thr + t))
  done
  [[ $n -gt 0 ]] || die "no $k shim processes found"
  CNT[$k]=$n
  RSS[$k]=$(awk -v s=$rss -v n=$n 'BEGIN{printf "%.0f", s/n}')
  PSS[$k]=$(awk -v s=$pss -v n=$n 'BEGIN{printf "%.0f", s/n}')
  ANON[$k]=$(awk -v s=$anon -v n=$n 'BEGIN{printf "%.0f", s/n}')
  THR[$k]=$(awk -v s=$thr -v n=$n 'BEGIN{printf "%.1f", s/n}')
done

stat_ms() { # <list> <mean|median>
  tr ' ' '\n' <<<"$1" | awk 'NF' | sort -n | awk -v w="$2" '{a[NR]=$1; s+=$1}
    END{ if (w=="mean") printf "%.1f", s/NR; else printf "%.1f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "nan"}'; }
for k in berth runc; do
  declare "MEAN_$k=$(stat_ms "${START_MS[$k]}" mean)" "MED_$k=$(stat_ms "${START_MS[$k]}" median)"
done
berth_size=$(stat -c %s "$(readlink -f "$SHIM")")
runc_size=$(stat -c %s "$(readlink -f "$(command -v containerd-shim-runc-v2)")")

{
  printf '\nshims under containerd %s, %s idle containers each (sleep 100000), runtime binary: %s\n' \
    "$(containerd --version | awk '{print $3}')" "$N" "$BINARY"
  printf '%-30s %12s %12s %7s\n' "per shim (mean)" berth "runc-v2 (Go)" ratio
  printf '%-30s %12s %12s %7s\n' "VmRSS, KiB" "${RSS[berth]}" "${RSS[runc]}" "$(ratio "${RSS[berth]}" "${RSS[runc]}")"
  printf '%-30s %12s %12s %7s\n' "Pss, KiB" "${PSS[berth]}" "${PSS[runc]}" "$(ratio "${PSS[berth]}" "${PSS[runc]}")"
  printf '%-30s %12s %12s %7s\n' "Pss_Anon, KiB" "${ANON[berth]}" "${ANON[runc]}" "$(ratio "${ANON[berth]}" "${ANON[runc]}")"
  printf '%-30s %12s %12s %7s\n' "threads" "${THR[berth]}" "${THR[runc]}" "$(ratio "${THR[berth]}" "${THR[runc]}")"
  printf '%-30s %12s %12s %7s\n' "ctr run -d, ms (mean)" "$MEAN_berth" "$MEAN_runc" "$(ratio "$MEAN_berth" "$MEAN_runc")"
  printf '%-30s %12s %12s %7s\n' "ctr run -d, ms (median)" "$MED_berth" "$MED_runc" "$(ratio "$MED_berth" "$MED_runc")"
  printf '%-30s %12s %12s %7s\n' "shim binary, bytes" "$berth_size" "$runc_size" "$(ratio "$berth_size" "$runc_size")"
  printf '(%s berth shims, %s Go shims measured)\n' "${CNT[berth]}" "${CNT[runc]}"
} | tee "$out/shim.txt"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
{
  printf '{\n  "date": "%s",\n  "kernel": "%s",\n  "containerd": "%s",\n' "$stamp" "$(uname -r)" "$(containerd --version | awk '{print $3}')"
  printf '  "containers_per_shim_kind": %s,\n  "runtime_binary": "%s",\n' "$N" "$BINARY"
  for k in berth runc; do
    printf '  "%s": {"shims": %s, "vmrss_kib": %s, "pss_kib": %s, "pss_anon_kib": %s, "threads": %s, ' \
      "$k" "${CNT[$k]}" "${RSS[$k]}" "${PSS[$k]}" "${ANON[$k]}" "${THR[$k]}"
    m="MEAN_$k" d="MED_$k"
    printf '"run_d_ms_mean": %s, "run_d_ms_median": %s, "run_d_ms": [%s]},\n' "${!m}" "${!d}" \
      "$(tr ' ' '\n' <<<"${START_MS[$k]}" | awk 'NF' | paste -sd, -)"
  done
  printf '  "binary_bytes": {"berth": %s, "runc": %s},\n' "$berth_size" "$runc_size"
  printf '  "ratio": {"vmrss": %s, "pss": %s, "run_d_mean": %s}\n}\n' "$(ratio "${RSS[berth]}" "${RSS[runc]}")" \
    "$(ratio "${PSS[berth]}" "${PSS[runc]}")" "$(ratio "$MEAN_berth" "$MEAN_runc")"
} >"$out/shim.json"
cp "$out/shim.json" "$out/shim-$stamp.json"
echo "results: $out/shim.json, $out/shim.txt" >&2
if [[ ${HOLD:-0} != 0 ]]; then
  echo "holding for ${HOLD}s: berth shims $(shim_pids berth | paste -sd' '), Go shims $(shim_pids runc | paste -sd' ')" >&2
  sleep "$HOLD"
fi
