#!/usr/bin/env bash
# Debian packages berth needs to build, test, benchmark and demo. Idempotent.
set -euo pipefail
pkgs=(
  build-essential pkg-config libseccomp-dev   # libcontainer's seccomp
  runc containerd                              # peers: differential tests, integration, bench
  busybox-static umoci skopeo jq               # test images made by independent tools
  libcap2-bin attr                             # setcap, getfattr/setfattr: xattrs in test images
  docker-registry apache2-utils                # a real registry on loopback; htpasswd for its auth
  openssl curl                                 # the registry token-auth test: signing JWTs, raw HTTP checks
  docker.io debootstrap                        # pull benchmark: dockerd as a peer, a Debian rootfs image
  iproute2 procps psmisc time hyperfine strace # netns tests, ps, peak RSS, bench, profiles
  nftables tini wrk                            # NAT and published ports; --init; port throughput bench
  protobuf-compiler                            # protoc for the CRI client's bindings (shim/tests/cri.rs)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The containerd, docker.io and docker-registry packages start system services (where the
# machine runs an init that lets them); berth's tests and benches run their own private
# instances, so stop them. (docker.io's CLI goes to /usr/bin; /usr/local/bin/docker, if there,
# stays first on PATH.)
for svc in containerd docker.socket docker docker-registry; do
  if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  elif [[ $svc != *.socket && -x /etc/init.d/$svc ]] && service "$svc" status >/dev/null 2>&1; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done
