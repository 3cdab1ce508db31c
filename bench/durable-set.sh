#!/usr/bin/env bash
# Durable single-node SET over memif with group commit, against the raw sequential O_DIRECT write
# bandwidth of the same filesystem (fio), measured in the same run (docs/BENCHMARKS.md).
#
# `vigil serve` runs one shard (core SERVER_CORE) on a config derived from config/dpdk-memif.toml:
# its own memif socket and EAL file prefix, no kernel fallback, `[storage] backend = "uring"` with
# `durable_mode = "dsync"` (every group commit is one RWF_DSYNC write) on DATA_DIR, which must be on
# a real filesystem (not tmpfs). `vigil-loadgen` is the memif client (core LOADGEN_CORE), open loop,
# `--op set` over KEYS keys with VALUE_BYTES-byte values, BATCH requests per datagram. A SET is
# answered only once its log record is durable, so every answer is a durable write.
#
#  1. maximum rate, the RFC 2544 way as bench/peers/run does it: open-loop trials of SEARCH_SECONDS,
#     bisected between 0 and RATE_MAX, for the highest offered rate whose loss (timeouts + errors,
#     BUSY included) is at most LOSS_MAX of what was sent and whose achieved rate is within 1% of
#     the offered one;
#  2. a run of SECONDS_RUN at that maximum on a fresh log: achieved SET/s, and from Vigil's shutdown
#     counters and /proc/PID/io, its group commits: SETs per write and bytes per write;
#  2p. (PROFILE=1, the default) a run of PROFILE_SECONDS at the maximum on a fresh log under
#     `perf record --call-graph dwarf` on vigil: a flame graph (OUT/flame.svg, by inferno, installed
#     with cargo when missing) and the symbols with the most self time, of what the shard spends;
#     and the same at 90% of step 1m's maximum with the log in memory (OUT/flame-memory.svg), where
#     the shard never waits for the device: the cost of a write;
#  3. a run of SECONDS_RUN at half the maximum on a fresh log: p50/p99/p99.9; then Vigil is
#     restarted on that log and must recover every key it reported (a durability check);
#  4. fio: sequential writes, O_DIRECT, O_DSYNC (the RWF_DSYNC equivalent), io_uring, with the mean
#     size of Vigil's log writes in step 2 as the block size, on a fresh preallocated file of the
#     size of Vigil's log in DATA_DIR, wrapping around it like the log's ring, at queue depth 1
#     and at FIO_DEPTH_MAX (Vigil's writes_in_flight_max: its group commits are pipelined up to
#     that many); each twice: on idle CPUs, and with both cores busy
#     (a shell loop pinned to SERVER_CORE and one to LOADGEN_CORE, as the polling shard and load
#     generator keep them during steps 1-3: on a VM that slows each durable write down, see
#     docs/BENCHMARKS.md);
#  1m. the same search with `[storage] backend = "memory"` (nothing written anywhere): the CPU
#     ceiling of the write path without the device, the same shard, batches and Raft;
#  5. redis-server 7 with `appendonly yes`, `appendfsync always` (an fsync before each event-loop
#     iteration's replies) on DATA_DIR, pinned to SERVER_CORE, driven by redis-benchmark on
#     LOADGEN_CORE with 50 connections, SETs of VALUE_BYTES-byte values over KEYS keys, pipelined 16
#     deep and not pipelined (installed with apt when missing).
#
# Prints one table with the ratios; keeps every JSON, log and config under OUT.
#
#   sudo bench/durable-set.sh                 # defaults below, ~3 minutes
#   RATE_MAX=1000000 SECONDS_RUN=10 OUT=/tmp/ds sudo -E bench/durable-set.sh
#   bench/durable-set.sh --dry-run            # preflight, build, the derived config; nothing run
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../scripts/lib.sh"
parse_common_flags "$@"
cd "$VIGIL_ROOT"

RATE_MAX="${RATE_MAX:-1000000}"        # top of the search range, SET/s
MEMORY_RATE_MAX="${MEMORY_RATE_MAX:-4000000}"  # top of step 1m's range (the log in memory)
SEARCH_STEPS="${SEARCH_STEPS:-9}"      # bisection steps after the first trial at RATE_MAX
SEARCH_SECONDS="${SEARCH_SECONDS:-2}"  # measured seconds per search trial (after 0.5 s warm-up)
LOSS_MAX="${LOSS_MAX:-0.001}"          # tolerated loss per trial (timeouts + errors, BUSY included)
SECONDS_RUN="${SECONDS_RUN:-10}"       # measured seconds of the runs at the maximum and at half
KEYS="${KEYS:-100000}"                 # distinct keys (16-byte decimal), drawn uniformly
VALUE_BYTES="${VALUE_BYTES:-16}"       # bytes per value
BATCH="${BATCH:-1}"                    # SETs per datagram
FIO_SECONDS="${FIO_SECONDS:-5}"
PROFILE="${PROFILE:-1}"                # step 2p: profile vigil at the maximum (0: skip)
PROFILE_SECONDS="${PROFILE_SECONDS:-4}"
FIO_DEPTH_MAX="${FIO_DEPTH_MAX:-8}"    # the second fio depth (storage.writes_in_flight_max's default)
REDIS_PORT="${REDIS_PORT:-6391}"        # redis-server's port on 127.0.0.1 (step 5)
REDIS_REQUESTS="${REDIS_REQUESTS:-1000000}"  # SETs per redis-benchmark run with -P 16 (a fifth with -P 1)
SERVER_CORE="${SERVER_CORE:-1}"
LOADGEN_CORE="${LOADGEN_CORE:-0}"
DATA_DIR="${DATA_DIR:-$VIGIL_ROOT/target/durable-set}"
OUT="${OUT:-$(mktemp -d /tmp/vigil-durable-set.XXXXXX)}"
# One SET alone in its log record: 32-byte record header, 17-byte command header, u16 key length,
# the 16-byte key, u32 value length, the value (in a batch entry: 4 frame bytes instead of the record
# header, whose 32 bytes and the batch's 12 are shared by the entry's SETs).
RECORD_BYTES=$(( 32 + 17 + 2 + 16 + 4 + VALUE_BYTES ))

mkdir -p "$OUT"
SOCK="$OUT/memif.sock"
VIGIL_PID=""
LOADGEN_PID=""
FIO_PID=""
REDIS_PID=""
PERF_PID=""
SPINNER_PIDS=()

cleanup() {
    stop_pid "$LOADGEN_PID"
    stop_pid "$FIO_PID"
    stop_pid "$REDIS_PID"
    stop_pid "$PERF_PID"
    stop_pid "$VIGIL_PID"
    for pid in "${SPINNER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

echo "== preflight"
check_root "the benchmark drives DPDK vdevs and O_DIRECT files" || exit 1
ensure_packages
check_dpdk || exit 1
check_bench_storage "$DATA_DIR"

build_bench_bins

# The config: config/dpdk-memif.toml with our socket, prefix and cores, no fallback, the log on
# DATA_DIR, durable (dsync).
sed -e "s|socket=/tmp/vigil-memif.sock|socket=$SOCK|" -e "s|cores = \[1\]|cores = [$SERVER_CORE]|" \
    -e "s|main_lcore = 0|main_lcore = $LOADGEN_CORE|" -e "s|fallback = \"kernel\"|fallback = \"none\"|" \
    -e "s|file_prefix = \"vigil-memif\"|file_prefix = \"vigil-ds-$$\"|" \
    -e "s|^dir = .*|dir = \"$DATA_DIR/vigil\"|" \
    -e "s|^backend = \"uring\".*|backend = \"uring\"\ndurable_mode = \"dsync\"|" \
    config/dpdk-memif.toml > "$OUT/vigil.toml"
grep -q '^durable_mode = "dsync"' "$OUT/vigil.toml" || die "could not derive the config (no [storage] backend line?)"
# Step 1m's config: the same, with the log in memory.
sed -e 's|^backend = "uring"|backend = "memory"|' -e '/^durable_mode = /d' "$OUT/vigil.toml" > "$OUT/vigil-memory.toml"
grep -q '^backend = "memory"' "$OUT/vigil-memory.toml" || die "could not derive the memory-backend config"
info "config: $OUT/vigil.toml ([storage] below)"
sed -n '/^\[storage\]/,$p' "$OUT/vigil.toml" | sed 's/^/         /'
if [ "$DRY_RUN" = 1 ]; then
    echo "== (dry run) would search the maximum durable SET rate up to $RATE_MAX/s, run $SECONDS_RUN s at it and at half"
    echo "   of it, restart vigil to check recovery, and run fio on $DATA_DIR; results under $OUT"
    exit 0
fi
target/release/vigil check --config "$OUT/vigil.toml" > /dev/null || die "vigil check refused $OUT/vigil.toml"
# The log's file size (two superblock blocks + the ring), for fio.
LOG_BYTES=$(awk -F'[ =#]+' '/^segment_blocks/ {b=$2} /^segment_count/ {c=$2} END {print (2 + b * c) * 4096}' "$OUT/vigil.toml")

VIGIL_CONFIG="$OUT/vigil.toml"
vigil_start() {  # $1 = name; a fresh log unless $2 = keep; runs $VIGIL_CONFIG
    local name=$1
    [ "${2:-}" = keep ] || rm -rf "$DATA_DIR/vigil"
    rm -f "$SOCK"
    start_vigil "$VIGIL_CONFIG" "$OUT/vigil-$name.log"
    grep "recovered:" "$OUT/vigil-$name.log" | sed 's/^/       /' | cut -c1-220
    awk '/^write_bytes/ {print $2}' "/proc/$VIGIL_PID/io" > "$OUT/vigil-$name.io-start"
}

vigil_stop() {  # $1 = name; saves the bytes vigil wrote (/proc/PID/io) and its final counters
    local name=$1
    awk '/^write_bytes/ {print $2}' "/proc/$VIGIL_PID/io" > "$OUT/vigil-$name.io-end"
    kill -INT "$VIGIL_PID"
    local rc=0
    wait "$VIGIL_PID" || rc=$?
    VIGIL_PID=""
    [ "$rc" = 0 ] || { tail -20 "$OUT/vigil-$name.log"; die "vigil exited with status $rc (see $OUT/vigil-$name.log)"; }
    sed -n '/final counters/,$p' "$OUT/vigil-$name.log" | grep -E "shard 0:|partition" | sed 's/^/       /'
}

loadgen() {  # $1 = run name, $2 = rate, $3 = seconds; writes $OUT/$1.json and .hlog
    local name=$1 rate=$2 secs=$3
    target/release/vigil-loadgen --backend dpdk --vdev "net_memif0,role=client,socket=$SOCK,id=0" \
        --file-prefix "vigil-ds-lg-$$-$name" --server 10.77.0.1:9000 --local-ip 10.77.0.2 \
        --core "$LOADGEN_CORE" --op set --keys "$KEYS" --value-bytes "$VALUE_BYTES" --batch "$BATCH" \
        --rate "$rate" --duration "$secs" --warmup 0.5 \
        --json "$OUT/$name.json" --hist-log "$OUT/$name.hlog" --quiet > "$OUT/$name.txt" 2>&1 &
    LOADGEN_PID=$!
    local rc=0
    wait "$LOADGEN_PID" || rc=$?
    LOADGEN_PID=""
    grep -v '^EAL:\|^TELEMETRY\|memif_connect' "$OUT/$name.txt" | sed 's/^/       /'
    [ "$rc" = 0 ] && [ -s "$OUT/$name.json" ] || die "vigil-loadgen failed (status $rc): $OUT/$name.txt"
}

# Passes when loss <= LOSS_MAX and achieved >= 99% of offered (bench/peers/run's criterion).
trial_passes() {
    python3 -c "
import json; d = json.load(open('$OUT/$1.json'))
lost = d['timeouts'] + d['errors']
ok = lost <= $LOSS_MAX * max(d['sent'], 1) and d['achieved_rps'] >= 0.99 * d['offered_rps']
print(f\"       trial {d['offered_rps']:>12,.0f}/s: achieved {d['achieved_rps']:>12,.0f}/s, lost {lost} of {d['sent']}: {'pass' if ok else 'FAIL'}\")
raise SystemExit(0 if ok else 1)"
}

# Bisects the highest rate a trial passes at, up to RATE_MAX, on vigil started as $1; sets FOUND.
# (Not in a $(...) subshell: the EXIT trap must still see the PIDs it started.)
search_max() {  # $1 = name, $2 = top of the range
    local name=$1 lo=0 hi=$2 trial=0
    vigil_start "$name"
    loadgen "$name-$trial" "$hi" "$SEARCH_SECONDS" > /dev/null
    if trial_passes "$name-$trial"; then lo=$hi; else
        for step in $(seq 1 "$SEARCH_STEPS"); do
            local mid=$(( (lo + hi) / 2 )); trial=$step
            loadgen "$name-$trial" "$mid" "$SEARCH_SECONDS" > /dev/null
            if trial_passes "$name-$trial"; then lo=$mid; else hi=$mid; fi
        done
    fi
    vigil_stop "$name"
    FOUND=$lo
}

echo "== 1. maximum durable SET rate, searched up to $RATE_MAX/s (loss <= $LOSS_MAX, trials of $SEARCH_SECONDS s)"
search_max search "$RATE_MAX"
MAX=$FOUND
[ "$MAX" -gt 0 ] || die "no trial passed: vigil did not sustain even $(( RATE_MAX >> SEARCH_STEPS ))/s (see $OUT/search-*.txt)"
ok "maximum: $MAX SET/s"

echo "== 1m. the same search up to $MEMORY_RATE_MAX/s with the log in memory (storage.backend = \"memory\": the CPU ceiling without the device)"
VIGIL_CONFIG="$OUT/vigil-memory.toml"
search_max memory "$MEMORY_RATE_MAX"
MEMORY_MAX=$FOUND
VIGIL_CONFIG="$OUT/vigil.toml"
ok "maximum with the memory backend: $MEMORY_MAX SET/s"

echo "== 2. $SECONDS_RUN s at the maximum, $MAX/s, on a fresh log"
vigil_start max
loadgen max "$MAX" "$SECONDS_RUN"
vigil_stop max
SNAP_BYTES=$(stat -c %s "$DATA_DIR/vigil/partition-0.snap" 2>/dev/null || echo 0)

if [ "$PROFILE" = 1 ]; then
    echo "== 2p. profiles: $PROFILE_SECONDS s at the maximum, and with the log in memory, under perf (call graphs by DWARF), flame graphs"
    command -v perf >/dev/null || run apt-get install -y linux-perf > "$OUT/perf-install.log" 2>&1 \
        || die "cannot install perf (see $OUT/perf-install.log)"
    if ! command -v inferno-flamegraph >/dev/null; then
        run cargo install inferno --locked > "$OUT/inferno-install.log" 2>&1 \
            || die "cannot install inferno (see $OUT/inferno-install.log)"
    fi
    # $1 = name (the files' prefix), $2 = rate, $3 = title: vigil on $VIGIL_CONFIG under perf.
    profile_run() {
        local name=$1 rate=$2 title=$3
        vigil_start "$name" > /dev/null
        # perf starts after the load generator's warm-up and stops before it ends.
        (sleep 1; exec perf record -F 499 --call-graph dwarf,16384 -o "$OUT/$name.data" -p "$VIGIL_PID" \
            -- sleep "$PROFILE_SECONDS") > "$OUT/$name-record.log" 2>&1 &
        PERF_PID=$!
        loadgen "$name" "$rate" "$(( PROFILE_SECONDS + 2 ))" > /dev/null
        wait "$PERF_PID" || die "perf record failed (see $OUT/$name-record.log)"
        PERF_PID=""
        vigil_stop "$name" > /dev/null
        perf script -i "$OUT/$name.data" 2> /dev/null | inferno-collapse-perf > "$OUT/$name.folded"
        inferno-flamegraph --title "$title" < "$OUT/$name.folded" > "$OUT/$name.svg"
        perf report -i "$OUT/$name.data" --no-children --sort symbol --stdio > "$OUT/$name-report.txt" 2> /dev/null
        # awk, not head: a reader that stops early would end the pipeline with SIGPIPE under pipefail.
        awk '/^ +[0-9.]+%/ && n++ < 15' "$OUT/$name-report.txt" > "$OUT/$name-top.txt"
        ok "flame graph: $OUT/$name.svg; most self time:"
        sed 's/^/       /' "$OUT/$name-top.txt"
    }
    profile_run flame "$MAX" "vigil at $MAX durable SET/s"
    # The same at 90% of the memory backend's maximum: where the shard never waits for the device,
    # what a write costs.
    VIGIL_CONFIG="$OUT/vigil-memory.toml"
    profile_run flame-memory "$(( MEMORY_MAX * 9 / 10 ))" "vigil at $(( MEMORY_MAX * 9 / 10 )) SET/s, log in memory"
    VIGIL_CONFIG="$OUT/vigil.toml"
fi

HALF=$(( MAX / 2 ))
echo "== 3. $SECONDS_RUN s at half the maximum, $HALF/s, on a fresh log; then a restart must recover every key"
vigil_start half
loadgen half "$HALF" "$SECONDS_RUN"
vigil_stop half
vigil_start recovered keep
vigil_stop recovered > /dev/null
python3 - "$OUT" <<'PY'
import re, sys
out = sys.argv[1]
final = open(f"{out}/vigil-half.log").read()
rec = open(f"{out}/vigil-recovered.log").read()
keys = int(re.search(r"partition 0: keys (\d+)", final).group(1))
commit = int(re.search(r"raft term \d+ commit (\d+)", final).group(1))
m = re.search(r"replayed \d+ entries to index (\d+) .*?, (\d+) keys", rec)
got_index, got_keys = int(m.group(1)), int(m.group(2))
ok = got_keys == keys and got_index >= commit
print(f"[{'OK' if ok else 'FAIL'}]   restart: {got_keys} keys recovered to index {got_index}; before the restart {keys} keys, commit {commit}")
raise SystemExit(0 if ok else 1)
PY

# Vigil's group commits in step 2: log writes, SETs per write, bytes per write, from its shutdown
# counters (`write-blocks` are the 4 KiB blocks its log writes carried). /proc/PID/io's write_bytes
# (log writes, superblocks and snapshot files together) is printed alongside as a cross-check.
read -r WRITES APPENDS SNAPSHOTS WRITE_BLOCKS SB_WRITES < <(sed -n 's/.*snapshots \([0-9]*\) .*log appends \([0-9]*\) writes \([0-9]*\) write-blocks \([0-9]*\) superblock-writes \([0-9]*\).*/\3 \2 \1 \4 \5/p' "$OUT/vigil-max.log")
[ -n "${WRITE_BLOCKS:-}" ] || die "cannot read the log counters from $OUT/vigil-max.log"
# SETs logged (a log append is one batch entry, holding the SETs of one or more poll iterations).
SETS=$(sed -n 's/.*| proposed \([0-9]*\) .*/\1/p' "$OUT/vigil-max.log" | head -1)
[ -n "${SETS:-}" ] || die "cannot read the partition's proposed writes from $OUT/vigil-max.log"
IO_BYTES=$(( $(cat "$OUT/vigil-max.io-end") - $(cat "$OUT/vigil-max.io-start") ))
LOG_WRITE_BYTES=$(( WRITE_BLOCKS * 4096 ))
BS=$(( (LOG_WRITE_BYTES / WRITES + 2048) / 4096 * 4096 ))
[ "$BS" -ge 4096 ] || BS=4096
info "step 2: $SETS SETs in $APPENDS log entries in $WRITES writes ($SB_WRITES superblock writes, $SNAPSHOTS snapshots of <= $SNAP_BYTES bytes);"
info "        $IO_BYTES bytes written by vigil, $LOG_WRITE_BYTES of them log writes: $(( LOG_WRITE_BYTES / WRITES )) bytes per write -> fio bs $BS"

echo "== 4. fio: sequential O_DIRECT + O_DSYNC writes of $BS bytes (io_uring), a fresh $LOG_BYTES-byte file in $DATA_DIR, $FIO_SECONDS s each"
for cpus in idle busy; do
    if [ "$cpus" = busy ]; then
        for core in "$SERVER_CORE" "$LOADGEN_CORE"; do
            taskset -c "$core" bash -c 'while :; do :; done' &
            SPINNER_PIDS+=($!)
        done
    fi
    for depth in 1 "$FIO_DEPTH_MAX"; do
        rm -f "$DATA_DIR/fio.dat"
        fio --name="seq-dsync-qd$depth-$cpus" --filename="$DATA_DIR/fio.dat" --size="$LOG_BYTES" --rw=write \
            --bs="$BS" --direct=1 --sync=dsync --ioengine=io_uring --iodepth="$depth" --time_based \
            --runtime="$FIO_SECONDS" --output-format=json --output="$OUT/fio-qd$depth-$cpus.json" &
        FIO_PID=$!
        wait "$FIO_PID"
        FIO_PID=""
        python3 -c "
import json; w = json.load(open('$OUT/fio-qd$depth-$cpus.json'))['jobs'][0]['write']
print(f\"       qd $depth, CPUs $cpus: {w['iops']:,.0f} writes/s, {w['bw_bytes']/1e6:,.1f} MB/s, mean latency {w['clat_ns']['mean']/1e3:,.0f} us\")"
    done
    for pid in "${SPINNER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    SPINNER_PIDS=()
done
rm -f "$DATA_DIR/fio.dat"

echo "== 5. redis-server 7 (appendonly yes, appendfsync always) on $DATA_DIR, redis-benchmark -c 50 -P 16 and -P 1, SET of $VALUE_BYTES-byte values over $KEYS keys"
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    run apt-get install -y redis-server redis-tools > "$OUT/redis-install.log" 2>&1 || die "cannot install redis-server (see $OUT/redis-install.log)"
fi
rm -rf "$DATA_DIR/redis"
mkdir -p "$DATA_DIR/redis"
taskset -c "$SERVER_CORE" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA_DIR/redis" \
    --appendonly yes --appendfsync always --save "" --daemonize no > "$OUT/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || die "redis-server did not start (see $OUT/redis.log)"
for pipeline in 16 1; do
    requests=$(( pipeline == 1 ? REDIS_REQUESTS / 5 : REDIS_REQUESTS ))
    taskset -c "$LOADGEN_CORE" redis-benchmark -p "$REDIS_PORT" -c 50 -P "$pipeline" -d "$VALUE_BYTES" -t set \
        -n "$requests" -r "$KEYS" --csv > "$OUT/redis-P$pipeline.csv" 2>&1
    tail -1 "$OUT/redis-P$pipeline.csv" | sed "s/^/       -P $pipeline: /"
done
stop_pid "$REDIS_PID"
REDIS_PID=""
rm -rf "$DATA_DIR/redis"

echo
echo "== results (one shard, one load-generator core, memif --no-huge, batch $BATCH, $KEYS keys, $VALUE_BYTES-byte values; in $OUT)"
python3 - "$OUT" "$MAX" "$HALF" "$SETS" "$WRITES" "$LOG_WRITE_BYTES" "$BS" "$RECORD_BYTES" "$FIO_DEPTH_MAX" "$APPENDS" "$MEMORY_MAX" <<'PY'
import json, sys
out, mx, half, appends, writes, log_bytes, bs, record, depth_max, entries, memory_max = sys.argv[1], *map(int, sys.argv[2:])
run = json.load(open(f"{out}/max.json"))
lat = json.load(open(f"{out}/half.json"))
sets = run["achieved_rps"]
per_write = appends / writes
dev_per_set = log_bytes / appends
vigil_bps = sets * dev_per_set
fio = {(d, c): json.load(open(f"{out}/fio-qd{d}-{c}.json"))["jobs"][0]["write"]
       for c in ("idle", "busy") for d in (1, depth_max)}
l = lat["latency_ns"]
print(f"| | value |")
print(f"|---|---:|")
print(f"| maximum durable SET rate (loss <= 0.1%) | **{mx:,} SET/s** |")
print(f"| maximum SET rate with the log in memory (the CPU ceiling) | {memory_max:,} SET/s (durable / memory: {mx / max(memory_max, 1):.2f}) |")
print(f"| achieved in {run['duration_s']:g} s at it | {sets:,.0f} SET/s ({run['timeouts'] + run['errors']} lost of {run['sent']:,}) |")
print(f"| group commits | {writes:,} writes, {per_write:,.0f} SETs each in {entries / writes:,.1f} batch entries, {log_bytes / writes / 1024:,.1f} KiB each (fio bs {bs // 1024} KiB) |")
print(f"| log bytes written | {vigil_bps / 1e6:,.1f} MB/s ({dev_per_set:,.0f} B per SET; the record is {record} B) |")
print(f"| latency at {half:,}/s: p50 / p99 / p99.9 / max | {l['p50']/1e3:,.0f} / {l['p99']/1e3:,.0f} / {l['p999']/1e3:,.0f} / {l['max']/1e3:,.0f} us ({lat['timeouts'] + lat['errors']} lost of {lat['sent']:,}) |")
for (d, c), w in fio.items():
    print(f"| fio qd {d}, CPUs {c}: {bs // 1024} KiB O_DIRECT+O_DSYNC sequential writes | {w['iops']:,.0f} writes/s, {w['bw_bytes']/1e6:,.1f} MB/s, mean {w['clat_ns']['mean']/1e3:,.0f} us |")
print(f"| Vigil's own log writes | {sets / per_write:,.0f} writes/s |")
import csv
redis = {}
for pipeline in (16, 1):
    rows = [r for r in csv.reader(open(f"{out}/redis-P{pipeline}.csv")) if r and r[0] == "SET"]
    rps, p50, p99 = float(rows[-1][1]), float(rows[-1][4]), float(rows[-1][6])
    redis[pipeline] = {"rps": rps, "p50_ms": p50, "p99_ms": p99}
    print(f"| redis-server appendfsync always, redis-benchmark -c 50 -P {pipeline} | {rps:,.0f} SET/s, p50 {p50 * 1e3:,.0f} us, p99 {p99 * 1e3:,.0f} us |")
for pipeline in (16, 1):
    print(f"| **Vigil maximum / redis -P {pipeline}** | **{mx / redis[pipeline]['rps']:.2f}** (memory backend: {memory_max / redis[pipeline]['rps']:.2f}) |")
for (d, c), w in fio.items():
    print(f"| **Vigil log bytes/s / fio qd {d}, CPUs {c}** | **{vigil_bps / w['bw_bytes']:.3f}** (SET/s / fio writes/s: **{sets / w['iops']:,.1f}**; Vigil writes/s / fio writes/s: {sets / per_write / w['iops']:.3f}) |")
json.dump({"redis": redis, "max_rps": mx, "memory_max_rps": memory_max, "achieved_rps": sets, "half_rps": half, "latency_ns_at_half": l,
           "log_writes": writes, "log_appends": appends, "log_write_bytes": log_bytes, "fio_bs": bs,
           "vigil_log_bytes_per_s": vigil_bps,
           "fio": {f"qd{d}-{c}": {"iops": w["iops"], "bw_bytes": w["bw_bytes"], "clat_mean_ns": w["clat_ns"]["mean"]}
                   for (d, c), w in fio.items()},
           "ratio_bytes": {f"qd{d}-{c}": vigil_bps / w["bw_bytes"] for (d, c), w in fio.items()},
           "sets_per_fio_write": {f"qd{d}-{c}": sets / w["iops"] for (d, c), w in fio.items()}},
          open(f"{out}/results.json", "w"), indent=2)
PY
