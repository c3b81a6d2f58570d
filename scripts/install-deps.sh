#!/usr/bin/env bash
# Debian packages berth needs to build, test, benchmark and demo. Idempotent.
set -euo pipefail
pkgs=(
  build-essential pkg-config libseccomp-dev   # libcontainer's seccomp
  runc containerd                              # peers: differential tests, integration, bench
  busybox-static umoci skopeo                  # test images made by independent tools
  iproute2 procps psmisc time hyperfine strace # netns tests, ps, peak RSS, bench, profiles
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
# containerd's package starts a system containerd; berth's tests run their own, so stop it.
if command -v systemctl >/dev/null && systemctl is-active -q containerd 2>/dev/null; then
  systemctl stop containerd || true
fi
