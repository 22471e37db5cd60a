#!/usr/bin/env bash
# Benchmark: whole-chunk writes and reads through the engine vs raw libhdfs
# files of the same size on the same cluster, measured in the same run; for
# each chunk size in OZBD_BENCH_CHUNKS. Prints one table per chunk size; the
# ratio (engine / raw) is the figure, since the machine is shared and noisy.
# Owns: nothing but a scratch directory under ofs://$OZONE_OM_ADDRESS/ozbdbench/, removed afterwards.
# Never: asserts an absolute speed.
# Usage: bench/engine-vs-libhdfs.sh   (after: eval "$(scripts/ozone-local env)")
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${OZONE_OM_ADDRESS:?run: eval \"\$(scripts/ozone-local env)\" (and scripts/ozone-local start)}"
SIZE=${OZBD_BENCH_SIZE:-128M}
DEPTH=${OZBD_BENCH_DEPTH:-8}
ROUNDS=${OZBD_BENCH_ROUNDS:-3}
CHUNKS=${OZBD_BENCH_CHUNKS:-1M 4M 16M}
cargo build --quiet --release -p ozbd-cli --manifest-path "$REPO/Cargo.toml"
OZBD=$REPO/target/release/ozbd
for cs in $CHUNKS; do
  uri="ofs://$OZONE_OM_ADDRESS/ozbdbench/bench/run-$$-$cs"
  echo "## chunk size $cs: $SIZE, $DEPTH in flight, median of $ROUNDS rounds"
  "$OZBD" --workers "$DEPTH" bench "$uri" --size "$SIZE" --chunk-size "$cs" --depth "$DEPTH" --rounds "$ROUNDS" 2> >(grep '^bench:' >&2)
  echo
done
