#!/usr/bin/env bash
# Durable SET latency at low load, beside the device's own synchronous write latency at the same
# rates, measured in the same run (docs/BENCHMARKS.md, "Durable SET latency at low load").
#
# For each rate in RATES (SET/s): `vigil serve` on a fresh store (one shard, pinned to SERVER_CORE,
# the kernel-socket backend on loopback, config/dev.toml otherwise: `[storage] backend = "uring"`,
# `durable_mode = "dsync"`, the log in DATA_DIR) and `vigil-loadgen` (core LOADGEN_CORE) offering
# that rate open loop for SECONDS_RUN seconds, one SET per datagram over KEYS keys. A SET is
# answered only once its log record is durable, so each latency is a whole durable write: the
# datagram in, the log write, the answer out. Then fio at the same rate: 4 KiB O_DIRECT + O_DSYNC
# sequential writes, io_uring, queue depth 1 (`--rate_iops`), on a file of the log's size in
# DATA_DIR written once beforehand, as Vigil writes its log file when it creates a store.
#
# Prints one table: p50/p99 of each and their ratio; keeps every JSON, log and config under OUT.
#
#   sudo bench/durable-latency.sh                     # 1k/s and 10k/s, 10 s each, ~1 minute
#   RATES="1000 10000 50000" SECONDS_RUN=20 sudo -E bench/durable-latency.sh
#   bench/durable-latency.sh --dry-run                # preflight, build, the derived config
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../scripts/lib.sh"
parse_common_flags "$@"
cd "$VIGIL_ROOT"

RATES="${RATES:-1000 10000}"          # offered SET/s, one run each
SECONDS_RUN="${SECONDS_RUN:-10}"      # measured seconds per run (after 1 s of warm-up)
KEYS="${KEYS:-10000}"                 # distinct keys
VALUE_BYTES="${VALUE_BYTES:-16}"      # bytes per value
PORT="${PORT:-9470}"                  # the server's UDP port on 127.0.0.1
SERVER_CORE="${SERVER_CORE:-1}"
LOADGEN_CORE="${LOADGEN_CORE:-0}"
DATA_DIR="${DATA_DIR:-$VIGIL_ROOT/target/durable-latency}"
OUT="${OUT:-$(mktemp -d /tmp/vigil-durable-latency.XXXXXX)}"
mkdir -p "$OUT"
VIGIL_PID=""
LOADGEN_PID=""
FIO_PID=""

cleanup() {
    stop_pid "$LOADGEN_PID"
    stop_pid "$FIO_PID"
    stop_pid "$VIGIL_PID"
}
trap cleanup EXIT INT TERM

echo "== preflight"
check_bench_storage "$DATA_DIR"

build_bench_bins

# The config: config/dev.toml with our port, core and data directory, durable (dsync).
derive_dev_config "$OUT/vigil.toml" "$PORT" "$SERVER_CORE" "$DATA_DIR/vigil" 'durable_mode = "dsync"'
info "config: $OUT/vigil.toml"
if [ "$DRY_RUN" = 1 ]; then
    echo "== (dry run) would run vigil and fio at ${RATES// /, } writes/s for $SECONDS_RUN s each; results under $OUT"
    exit 0
fi
target/release/vigil check --config "$OUT/vigil.toml" > /dev/null || die "vigil check refused $OUT/vigil.toml"
LOG_BYTES=$(awk -F'[ =#]+' '/^segment_blocks/ {b=$2} /^segment_count/ {c=$2} END {print (2 + b * c) * 4096}' "$OUT/vigil.toml")

for rate in $RATES; do
    echo "== vigil at $rate SET/s"
    rm -rf "$DATA_DIR/vigil"
    start_vigil "$OUT/vigil.toml" "$OUT/vigil-$rate.log"
    taskset -c "$LOADGEN_CORE" target/release/vigil-loadgen --backend kernel --server "127.0.0.1:$PORT" \
        --op set --keys "$KEYS" --value-bytes "$VALUE_BYTES" --rate "$rate" --duration "$SECONDS_RUN" \
        --warmup 1 --json "$OUT/vigil-$rate.json" --quiet > "$OUT/vigil-$rate.txt" 2>&1 &
    LOADGEN_PID=$!
    rc=0
    wait "$LOADGEN_PID" || rc=$?
    LOADGEN_PID=""
    sed 's/^/       /' "$OUT/vigil-$rate.txt" | head -6
    [ "$rc" = 0 ] && [ -s "$OUT/vigil-$rate.json" ] || die "vigil-loadgen failed (status $rc): $OUT/vigil-$rate.txt"
    stop_pid "$VIGIL_PID"
    VIGIL_PID=""

    echo "== fio at $rate writes/s (4 KiB, O_DIRECT + O_DSYNC, queue depth 1)"
    rm -f "$DATA_DIR/fio.dat"
    # Written once, as vigil writes a new log file (fallocate alone leaves unwritten extents,
    # which every O_DSYNC write would convert: docs/STORAGE.md section 12).
    dd if=/dev/zero of="$DATA_DIR/fio.dat" bs=1M count=$(( LOG_BYTES / 1048576 + 1 )) oflag=direct conv=fsync status=none
    fio --name="qd1-$rate" --filename="$DATA_DIR/fio.dat" --size="$LOG_BYTES" --rw=write --bs=4k \
        --direct=1 --sync=dsync --ioengine=io_uring --iodepth=1 --rate_iops="$rate" --time_based \
        --runtime="$SECONDS_RUN" --ramp_time=1 --cpus_allowed="$SERVER_CORE" \
        --output-format=json --output="$OUT/fio-$rate.json" &
    FIO_PID=$!
    wait "$FIO_PID"
    FIO_PID=""
done
rm -f "$DATA_DIR/fio.dat"
rm -rf "$DATA_DIR/vigil"

echo
echo "== results (one shard, kernel sockets on loopback, $VALUE_BYTES-byte values over $KEYS keys; in $OUT)"
python3 - "$OUT" $RATES <<'PY'
import json, sys
out, rates = sys.argv[1], [int(r) for r in sys.argv[2:]]
print("| rate | Vigil durable SET p50 / p99 | fio 4 KiB dsync write qd 1 p50 / p99 | Vigil / fio p50 | Vigil / fio p99 | lost |")
print("|---:|---:|---:|---:|---:|---:|")
results = {}
for r in rates:
    v = json.load(open(f"{out}/vigil-{r}.json"))
    f = json.load(open(f"{out}/fio-{r}.json"))["jobs"][0]["write"]["clat_ns"]["percentile"]
    vl, fp50, fp99 = v["latency_ns"], f["50.000000"], f["99.000000"]
    lost = v["timeouts"] + v["errors"]
    print(f"| {r:,}/s | {vl['p50']/1e3:,.0f} / {vl['p99']/1e3:,.0f} us | {fp50/1e3:,.0f} / {fp99/1e3:,.0f} us "
          f"| **{vl['p50']/fp50:.2f}** | **{vl['p99']/fp99:.2f}** | {lost} of {v['sent']:,} |")
    results[r] = {"vigil_p50_ns": vl["p50"], "vigil_p99_ns": vl["p99"], "fio_p50_ns": fp50, "fio_p99_ns": fp99,
                  "lost": lost, "sent": v["sent"]}
json.dump(results, open(f"{out}/results.json", "w"), indent=2)
PY
