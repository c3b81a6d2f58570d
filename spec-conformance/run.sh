#!/bin/sh
# Run the OCI conformance suite against berth-runtime and, when installed,
# runc; print one table. Called by `make conformance`.
#   RUNTIME=/path/to/runtime   runtime under test (default target/release/berth-runtime)
#   extra args go to the runner, e.g. --filter hooks, --jobs 1
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ws=$(dirname "$here")
target=x86_64-unknown-linux-gnu

# The checker is static and built in its own target dir so its RUSTFLAGS do
# not touch the workspace's build cache.
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
    --manifest-path "$here/checker/Cargo.toml" --target "$target" \
    --target-dir "$ws/target/conformance-checker"
export CONFORMANCE_CHECKER="$ws/target/conformance-checker/$target/release/checker"

cargo build --quiet --manifest-path "$ws/Cargo.toml" -p spec-conformance --bin conformance

berth=${RUNTIME:-$ws/target/release/berth-runtime}
if [ ! -x "$berth" ]; then
    echo "conformance: $berth not found; build it first (cargo build --release -p berth-runtime) or set RUNTIME" >&2
    exit 2
fi
set -- --runtime "berth=$berth" "$@"
runc=$(command -v runc || true)
[ -x /usr/sbin/runc ] && runc=/usr/sbin/runc
[ -n "$runc" ] && set -- "$@" --runtime "runc=$runc"
exec "$ws/target/debug/conformance" "$@"
