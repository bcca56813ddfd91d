#!/usr/bin/env bash
# T5 of the hot-path issue: 1 KiB gRPC Ingest with SHA-256 on, against the
# same run with the hot path's hashing stubbed out. The stub exists only in a
# build with RUSTFLAGS="--cfg wormbox_bench_unhashed", made here in a target
# directory of its own; nothing else ever sets that flag. Both builds link
# the machine's prebuilt RocksDB (scripts/rocksdb-lib.sh, asked before the
# flag is set: a --cfg changes no C++). Runs alternate between the two binaries
# to spread the machine's noise, and the ratio is of the medians.
#
#   benches/t5.sh [RUNS] [SECONDS]      (default 5 runs of 10 s each)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
secs="${2:-10}"
hashed_target="${CARGO_TARGET_DIR:-$PWD/target}"
unhashed_target="${UNHASHED_TARGET_DIR:-/var/tmp/wormbox-unhashed-target}"

bench_binary() { # target_dir [env...]
    local target="$1"
    shift
    env "$@" CARGO_TARGET_DIR="$target" cargo bench --locked -p wormbox-benches --bench loadgen --no-run \
        --message-format=json 2>/dev/null \
        | grep '"target":{[^}]*"name":"loadgen"' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1
}
ROCKSDB_LIB_DIR="${ROCKSDB_LIB_DIR:-$(scripts/rocksdb-lib.sh)}"
export ROCKSDB_LIB_DIR ROCKSDB_STATIC=1
hashed="$(bench_binary "$hashed_target")"
unhashed="$(bench_binary "$unhashed_target" RUSTFLAGS="--cfg wormbox_bench_unhashed")"
[ -x "$hashed" ] && [ -x "$unhashed" ] || { echo "t5: could not build both load generators" >&2; exit 1; }

rate() { "$1" --ingest-only --record-bytes 1024 --duration-secs "$secs" | sed -n 's/.*ingest records\/s: \([0-9]*\).*/\1/p'; }
on=()
off=()
for i in $(seq 1 "$runs"); do
    echo "t5: run $i of $runs" >&2
    on+=("$(rate "$hashed")")
    off+=("$(rate "$unhashed")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
m_on="$(median "${on[@]}")"
m_off="$(median "${off[@]}")"
echo "| hashing | runs (records/s) | median |"
echo "| --- | --- | ---: |"
echo "| on | ${on[*]} | $m_on |"
echo "| stubbed | ${off[*]} | $m_off |"
awk -v a="$m_on" -v b="$m_off" 'BEGIN { r = a / b; printf "T5 = %.3f (want >= 0.95): %s\n", r, (r >= 0.95) ? "met" : "NOT met" }'
