#!/usr/bin/env bash
# Pull benchmark: cold pull + unpack of a Debian image from a registry on loopback,
# berthd against dockerd 20.10 and containerd 1.6, side by side in one run.
#
#   bash bench/pull.sh            (what `make bench` runs after bench/shim.sh; needs root)
#
# Environment:
#   RUNS              timed pulls per engine and image          (default: 3)
#   BENCH_PEERS_ONLY  1 = leave berth out (peers only)           (default: 0)
#   BERTHD, BERTH     the daemon and CLI under test  (default: target/dist/berthd, berth; `make dist`)
#   CACHE             where the debootstrap rootfs and the OCI layouts made from it are kept
#                     between runs                               (default: /var/cache/berth-bench)
#   MIRROR            Debian mirror for debootstrap              (default: http://deb.debian.org/debian)
#
# The images (made once, then cached under CACHE):
#   1layer   `debootstrap --variant=minbase bookworm` as ONE layer (~60 MB gzip, ~175 MB; apt's .deb cache removed)
#   5layer   the same tree as five layers of roughly equal size (top-level dirs, split
#            further where one alone is more than half a layer), to show parallel
#            download and unpack
# Both are OCI images made with umoci (init, new, unpack, copy the tree in, repack), pushed
# with skopeo to a private docker-registry 2.8 on 127.0.0.1 (storage in a temp dir).
#
# One pull = a fresh daemon with an empty data root, then the engine's own client:
#   berth       berthd --insecure-registry 127.0.0.1:PORT; `berth pull`
#   dockerd     its own data-root/exec-root/socket/pidfile, no bridge or iptables
#               (127.0.0.0/8 registries are insecure by default); Debian's `docker pull`
#   containerd  its own root/state/socket (overlayfs snapshotter; CRI disabled);
#               `ctr images pull --plain-http` (ctr downloads, containerd unpacks)
# timed from the client's start to its exit (the image is then unpacked and usable);
# afterwards the daemon's VmHWM (peak RSS since it started) is read from /proc/PID/status,
# the client's peak RSS comes from GNU time, and the data root's size from du.
# Runs are interleaved (run 1: each engine once per image, run 2: ..., engine order
# rotated per run) so all engines share the machine's noise; page cache is left alone.
#
# Everything is cleaned up on exit, also on failure: daemons (and dockerd's containerd),
# the registry, mounts under the temp dir, the temp dir. Only CACHE stays.
# Results: a table on stdout, .bench/pull.json (+ a timestamped copy), .bench/pull.txt.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
out="$here/.bench"
mkdir -p "$out"

RUNS=${RUNS:-3}
BENCH_PEERS_ONLY=${BENCH_PEERS_ONLY:-0}
BERTHD=${BERTHD:-$here/target/dist/berthd}
BERTH=${BERTH:-$here/target/dist/berth}
CACHE=${CACHE:-/var/cache/berth-bench}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

die() { echo "bench/pull: $*" >&2; exit 1; }
log() { echo "bench/pull: $*" >&2; }
[[ $(id -u) == 0 ]] || die "needs root"
for t in docker-registry dockerd containerd ctr debootstrap umoci skopeo curl ss du /usr/bin/time; do
  command -v "$t" >/dev/null || die "$t not installed (bash scripts/install-deps.sh)"
done
# dockerd 20.10 with the CLI of its own package (/usr/local/bin/docker may be a newer one).
DOCKER=/usr/bin/docker
[[ -x $DOCKER ]] || DOCKER=$(command -v docker) || die "no docker CLI (apt-get install docker.io)"

ENGINES=(berth dockerd containerd)
if [[ $BENCH_PEERS_ONLY == 1 ]]; then
  ENGINES=(dockerd containerd)
else
  if [[ ! -x $BERTHD || ! -x $BERTH ]]; then
    log "building berthd and berth (release)..."
    cargo build --release -p berth-manager >&2
  fi
  [[ -x $BERTHD ]] || die "berthd not found: $BERTHD"
  [[ -x $BERTH ]] || die "berth not found: $BERTH"
fi
IMAGES=(1layer 5layer)
declare -A LAYERS=([1layer]=1 [5layer]=5)

# Short: socket paths (dockerd's containerd's among them) are limited to 108 bytes.
work=$(mktemp -d /tmp/bpl.XXXXXX)
reg_pid=""
daemon_pid=""

# Processes we started: the recorded daemon and registry, and anything whose command
# line names our temp dir (dockerd's own containerd, a straggling client).
our_pids() {
  local p pid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$work/" && echo "$pid"
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
cleanup() {
  set +e
  trap - EXIT INT TERM
  stop_pid "$daemon_pid"
  stop_pid "$reg_pid"
  local pid
  for pid in $(our_pids); do kill -9 "$pid" 2>/dev/null; done
  sleep 0.2
  umount_under "$work"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# the images: a cached debootstrap tree, turned into two OCI layouts (cached too)

rootfs="$CACHE/bookworm-minbase"
if [[ ! -e $rootfs.done ]]; then
  log "debootstrap --variant=minbase bookworm (once; cached in $rootfs)..."
  mkdir -p "$CACHE"
  rm -rf "$rootfs" "$rootfs.tmp" "$CACHE/oci" "$CACHE/oci.done"
  debootstrap --variant=minbase bookworm "$rootfs.tmp" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; rm -rf "$rootfs.tmp"; die "debootstrap failed"; }
  rm -rf "$rootfs.tmp/var/cache/apt/archives/"*.deb
  mv "$rootfs.tmp" "$rootfs"
  touch "$rootfs.done"
fi

# split_parts <tree> <n>: lines "<part>\t<path>" that put the tree's top-level entries in n
# parts of similar size (greedy, largest first); a directory bigger than half a part is
# split into its entries instead, and is listed as "0\t<dir>" (made in part 1, no contents).
split_parts() {
  local root=$1 n=$2 total target e s
  total=$(du -sk "$root" | cut -f1)
  target=$((total / n))
  local queue=() sizes=()
  mapfile -t queue < <(cd "$root" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort)
  while ((${#queue[@]})); do
    e=${queue[0]}
    queue=("${queue[@]:1}")
    s=$(du -sk "$root/$e" | cut -f1)
    if [[ -d $root/$e && ! -L $root/$e ]] && ((s > target / 2)); then
      printf '0\t%s\n' "$e"
      mapfile -t -O "${#queue[@]}" queue < <(cd "$root" && find "$e" -mindepth 1 -maxdepth 1 | sort)
    else
      sizes+=("$s"$'\t'"$e")
    fi
  done
  printf '%s\n' "${sizes[@]}" | sort -t$'\t' -k1,1rn |
    awk -F'\t' -v n="$n" '{ b = 1; for (i = 2; i <= n; i++) if (sum[i] < sum[b]) b = i; sum[b] += $1; print b "\t" $2 }'
}

# build_image <layout> <tag> <parts>: umoci new + unpack, then per part: copy that part of
# the tree into the bundle's rootfs and `umoci repack` it as one more layer.
build_image() {
  local layout=$1 tag=$2 n=$3 bundle="$work/bundle-$2" list="$work/parts-$2" p
  umoci new --image "$layout:$tag"
  umoci config --image "$layout:$tag" --config.cmd /bin/bash \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --author berth-bench --history.created_by "bench/pull.sh: config"
  umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  if ((n == 1)); then
    tar -C "$rootfs" --xattrs --xattrs-include='*' -cf - . |
      tar -C "$bundle/rootfs" --xattrs --xattrs-include='*' --numeric-owner -xpf -
    umoci repack --image "$layout:$tag" --history.created_by "debootstrap --variant=minbase bookworm" "$bundle"
  else
    split_parts "$rootfs" "$n" >"$list"
    for ((p = 1; p <= n; p++)); do
      {
        ((p == 1)) && awk -F'\t' '$1 == 0 {print $2}' "$list" | tar -C "$rootfs" --no-recursion --xattrs --xattrs-include='*' -cf - -T - 
        awk -F'\t' -v p="$p" '$1 == p {print $2}' "$list" | tar -C "$rootfs" --xattrs --xattrs-include='*' -cf - -T -
      } | tar -C "$bundle/rootfs" --xattrs --xattrs-include='*' --numeric-owner -ixpf -
      umoci repack --refresh-bundle --image "$layout:$tag" \
        --history.created_by "debootstrap --variant=minbase bookworm, part $p of $n" "$bundle"
    done
  fi
  rm -rf "$bundle"
}

layout="$CACHE/oci"
if [[ ! -e $layout.done ]]; then
  log "making the OCI images with umoci (once; cached in $layout)..."
  rm -rf "$layout" "$layout.tmp"
  umoci init --layout "$layout.tmp"
  for img in "${IMAGES[@]}"; do build_image "$layout.tmp" "$img" "${LAYERS[$img]}"; done
  umoci gc --layout "$layout.tmp"
  mv "$layout.tmp" "$layout"
  touch "$layout.done"
fi

# ---------------------------------------------------------------------------
# the registry

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
declare -A GZ_MB
for img in "${IMAGES[@]}"; do
  skopeo copy --quiet --dest-tls-verify=false "oci:$layout:$img" "docker://$reg/bench/bookworm:$img" >&2 ||
    die "skopeo copy $img to the registry failed"
  GZ_MB[$img]=$(skopeo inspect --raw --tls-verify=false "docker://$reg/bench/bookworm:$img" |
    jq '[.layers[].size] | add / 1048576 | . * 10 | round / 10')
done
unpacked_mb=$(du -sm "$rootfs" | cut -f1)

# ---------------------------------------------------------------------------
# the engines: start <engine> <dir> (sets daemon_pid), pull <engine> <dir> <ref>, check, stop

wait_sock() { # <socket> <name> <log>
  local i
  for i in $(seq 300); do
    [[ -S $1 ]] && curl -fsS --unix-socket "$1" http://d/_ping >/dev/null 2>&1 && return 0
    kill -0 "$daemon_pid" 2>/dev/null || { tail -20 "$3" >&2; die "$2 exited"; }
    sleep 0.1
  done
  tail -20 "$3" >&2
  die "$2 did not answer /_ping in 30 s"
}

start_engine() {
  local e=$1 d=$2 i
  mkdir -p "$d"
  case $e in
    berth)
      "$BERTHD" --data-root "$d/data" --exec-root "$d/exec" -H "unix://$d/s.sock" \
        --pidfile "$d/berthd.pid" --insecure-registry "$reg" >"$d/log" 2>&1 &
      daemon_pid=$!
      wait_sock "$d/s.sock" berthd "$d/log"
      ;;
    dockerd)
      echo '{}' >"$d/daemon.json"
      dockerd --config-file "$d/daemon.json" --data-root "$d/data" --exec-root "$d/exec" \
        -H "unix://$d/s.sock" --pidfile "$d/dockerd.pid" --storage-driver overlay2 \
        --bridge none --iptables=false --ip-masq=false --log-level warn >"$d/log" 2>&1 &
      daemon_pid=$!
      wait_sock "$d/s.sock" dockerd "$d/log"
      ;;
    containerd)
      cat >"$d/config.toml" <<EOF
version = 2
root = "$d/data"
state = "$d/exec"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.opt"]
[grpc]
  address = "$d/s.sock"
[ttrpc]
  address = "$d/s.sock.ttrpc"
EOF
      containerd --config "$d/config.toml" >"$d/log" 2>&1 &
      daemon_pid=$!
      for i in $(seq 300); do
        [[ -S $d/s.sock ]] && ctr --address "$d/s.sock" version >/dev/null 2>&1 && return 0
        kill -0 "$daemon_pid" 2>/dev/null || { tail -20 "$d/log" >&2; die "containerd exited"; }
        sleep 0.1
      done
      die "containerd did not come up in 30 s"
      ;;
  esac
}

pull_cmd() { # <engine> <dir> <ref>: the client command line, one word per line
  case $1 in
    berth) printf '%s\n' "$BERTH" -H "unix://$2/s.sock" pull "$3" ;;
    dockerd) printf '%s\n' "$DOCKER" -H "unix://$2/s.sock" pull "$3" ;;
    containerd) printf '%s\n' ctr --address "$2/s.sock" --namespace bench images pull --plain-http "$3" ;;
  esac
}

check_pulled() { # <engine> <dir> <ref> <layers>: the image is there and unpacked
  local e=$1 d=$2 ref=$3 n=$4
  case $e in
    berth) "$BERTH" -H "unix://$d/s.sock" image inspect --format '{{.Id}}' "$ref" >/dev/null ;;
    dockerd) DOCKER_CONFIG="$d/cli" "$DOCKER" -H "unix://$d/s.sock" image inspect --format '{{.Id}}' "$ref" >/dev/null ;;
    containerd)
      ctr --address "$d/s.sock" --namespace bench images ls -q | grep -qxF "$ref" || return 1
      [[ $(ctr --address "$d/s.sock" --namespace bench snapshots ls | tail -n +2 | wc -l) -ge $n ]]
      ;;
  esac
}

stop_engine() { # <dir>
  stop_pid "$daemon_pid"
  daemon_pid=""
  local pid
  for pid in $(our_pids); do
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$1/" && kill -9 "$pid" 2>/dev/null
  done
  umount_under "$1"
  rm -rf "$1"
}

now_ns() { date +%s%N; }
layer_blobs() { # <image>: paths of its layer blobs in the cached layout, bottom first
  local m
  m=$(jq -r --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$layout/index.json")
  jq -r '.layers[].digest' "$layout/blobs/${m/://}" | sed "s|^sha256:|$layout/blobs/sha256/|"
}
# The engines' data roots go on a fresh, journaled ext4 of their own (a loop device), the same
# for every engine. The machine's root filesystem has no journal, and without one ext4 checks
# every recently deleted inode when it allocates a new one: right after the previous run's
# data root is removed, creating files costs ~0.7 ms each, and that kernel time, not the
# engines, decides the result.
truncate -s 16G "$work/disk.img"
mkfs.ext4 -q -F "$work/disk.img"
mkdir -p "$work/fs"
mount -o loop "$work/disk.img" "$work/fs"
declare -A SECS HWM CLI DISK TAR  # key "<engine> <image>" (TAR: "<image>"): values, one per run
for ((r = 1; r <= RUNS; r++)); do
  order=("${ENGINES[@]:r % ${#ENGINES[@]}}" "${ENGINES[@]:0:r % ${#ENGINES[@]}}")
  for img in "${IMAGES[@]}"; do
    ref="$reg/bench/bookworm:$img"
    for e in "${order[@]}"; do
      d="$work/fs/$r-$e-$img"
      start_engine "$e" "$d"
      mapfile -t cmd < <(pull_cmd "$e" "$d" "$ref")
      t0=$(now_ns)
      if ! DOCKER_CONFIG="$d/cli" BERTH_CONFIG="$d/cli" timeout 600 \
        /usr/bin/time -f %M -o "$d/client.rss" "${cmd[@]}" >"$d/pull.out" 2>&1; then
        tail -20 "$d/pull.out" >&2
        tail -20 "$d/log" >&2
        die "run $r: $e failed to pull $ref"
      fi
      t1=$(now_ns)
      hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$daemon_pid/status")
      check_pulled "$e" "$d" "$ref" "${LAYERS[$img]}" ||
        { tail -20 "$d/log" >&2; die "run $r: $e says it pulled $ref but the image is not there"; }
      k="$e $img"
      SECS[$k]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}') "
      HWM[$k]+="$hwm "
      CLI[$k]+="$(tail -1 "$d/client.rss") "
      DISK[$k]+="$(du -sxm "$d/data" | cut -f1) "
      log "run $r/$RUNS $img $e: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", (b-a)/1e9}') s, daemon VmHWM ${hwm} KiB"
      stop_engine "$d"
    done
    # the floor: GNU tar -xzf of the same layer blobs, one after the other, no daemon
    d="$work/fs/$r-tar-$img"
    mkdir -p "$d"
    t0=$(now_ns)
    for b in $(layer_blobs "$img"); do tar -C "$d" --numeric-owner -xzpf "$b"; done
    t1=$(now_ns)
    TAR[$img]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}') "
    rm -rf "$d"
  done
done

# ---------------------------------------------------------------------------
# report

median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{a[NR]=$1} END{ if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN{ if (v == "nan" || v == "") print "-"; else printf f, v }'; }
# ratio of berth to the better (smaller) peer
vs_best() {
  awk -v b="$1" -v x="$2" -v y="$3" 'BEGIN{ m = (x < y ? x : y); if (b == "" || b == "nan" || m <= 0) print "-"; else printf "%.2f", b / m }'
}
declare -A MED
for img in "${IMAGES[@]}"; do
  for e in berth dockerd containerd; do
    k="$e $img"
    MED[s $k]=$(median "${SECS[$k]:-}")
    MED[h $k]=$(median "${HWM[$k]:-}")
    MED[c $k]=$(median "${CLI[$k]:-}")
    MED[d $k]=$(median "${DISK[$k]:-}")
  done
done
dockerd_v=$(dockerd --version | awk '{print $3}' | sed 's/[+~,].*//')
containerd_v=$(containerd --version | awk '{print $3}' | sed 's/[+~,].*//')
row() { # <label> <kind> <image> <printf format> <divisor>
  local b d c
  b=$(awk -v v="${MED[$2 berth $3]}" -v q="$5" 'BEGIN{ if (v == "nan") print "nan"; else print v / q }')
  d=$(awk -v v="${MED[$2 dockerd $3]}" -v q="$5" 'BEGIN{ print v / q }')
  c=$(awk -v v="${MED[$2 containerd $3]}" -v q="$5" 'BEGIN{ print v / q }')
  printf '%-34s %10s %10s %11s %11s\n' "$1" "$(fmt "$b" "$4")" "$(fmt "$d" "$4")" "$(fmt "$c" "$4")" "$(vs_best "$b" "$d" "$c")"
}
{
  printf '\ncold pull + unpack from docker-registry on loopback, median of %s runs (%s)\n' "$RUNS" "$(uname -r)"
  printf 'image: debootstrap --variant=minbase bookworm, %s MB unpacked\n' "$unpacked_mb"
  [[ $BENCH_PEERS_ONLY == 1 ]] || printf 'berth: %s\n' "$BERTHD"
  printf '%-34s %10s %10s %11s %11s\n' "" berth "dockerd" "containerd" "berth/best"
  printf '%-34s %10s %10s %11s %11s\n' "" "" "$dockerd_v" "$containerd_v" ""
  for img in "${IMAGES[@]}"; do
    row "pull, s: ${LAYERS[$img]} layer(s), ${GZ_MB[$img]} MB gz" s "$img" '%.2f' 1
  done
  for img in "${IMAGES[@]}"; do
    row "daemon peak RSS, MiB: $img" h "$img" '%.1f' 1024
  done
  for img in "${IMAGES[@]}"; do
    row "client peak RSS, MiB: $img" c "$img" '%.1f' 1024
  done
  for img in "${IMAGES[@]}"; do
    row "data root after pull, MiB: $img" d "$img" '%.0f' 1
  done
  for img in "${IMAGES[@]}"; do
    printf '%-34s %10s\n' "floor, s: tar -xzf of $img's layers" "$(fmt "$(median "${TAR[$img]}")" '%.2f')"
  done
  printf '(clients: berth pull, docker pull (%s), ctr images pull --plain-http: ctr itself downloads)\n' "$DOCKER"
} | tee "$out/pull.txt"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
list() { tr ' ' '\n' <<<"$1" | awk 'NF' | paste -sd, -; }
{
  printf '{\n  "date": "%s",\n  "kernel": "%s",\n  "runs": %s,\n' "$stamp" "$(uname -r)" "$RUNS"
  printf '  "berthd": "%s",\n' "$([[ $BENCH_PEERS_ONLY == 1 ]] || echo "$BERTHD")"
  printf '  "dockerd": "%s",\n  "containerd": "%s",\n  "unpacked_mb": %s,\n  "images": {\n' "$dockerd_v" "$containerd_v" "$unpacked_mb"
  si=""
  for img in "${IMAGES[@]}"; do
    printf '%s    "%s": {"layers": %s, "gzip_mb": %s, "tar_xzf_s": [%s]' "$si" "$img" "${LAYERS[$img]}" "${GZ_MB[$img]}" "$(list "${TAR[$img]}")"
    si=$',\n'
    for e in "${ENGINES[@]}"; do
      k="$e $img"
      printf ', "%s": {"median_s": %s, "s": [%s], "daemon_vmhwm_kib": [%s], "client_maxrss_kib": [%s], "data_root_mib": [%s]}' \
        "$e" "${MED[s $k]}" "$(list "${SECS[$k]}")" "$(list "${HWM[$k]}")" "$(list "${CLI[$k]}")" "$(list "${DISK[$k]}")"
    done
    if [[ -n ${SECS[berth $img]:-} ]]; then
      printf ', "ratio_berth_to_best": %s' "$(vs_best "${MED[s berth $img]}" "${MED[s dockerd $img]}" "${MED[s containerd $img]}")"
    fi
    printf '}'
  done
  printf '\n  }\n}\n'
} >"$out/pull.json"
cp "$out/pull.json" "$out/pull-$stamp.json"
echo "results: $out/pull.json, $out/pull.txt" >&2
