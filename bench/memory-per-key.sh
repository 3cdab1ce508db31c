#!/usr/bin/env bash
# Memory per key: the resident memory of Vigil holding KEYS keys (16-byte keys, VALUE_BYTES-byte
# values), beside redis-server holding the same number of keys of the same sizes, measured in the
# same run (docs/BENCHMARKS.md, "Memory per key").
#
# Vigil: `vigil serve` on a fresh store (one shard pinned to SERVER_CORE, the kernel-socket backend
# on loopback, config/dev.toml otherwise: its own PORT, the log in DATA_DIR on a real filesystem,
# a snapshot every SNAPSHOT_EVERY log entries so that several are written while the keys go in).
# Its VmRSS (/proc/PID/status) is read once it is ready (the empty store: the fixed costs), then
# sampled every SAMPLE_S while `vigil-loadgen` (core LOADGEN_CORE) writes every key once per pass
# (`--op set --key-order sequential`, BATCH SETs per datagram, PASSES passes, pass i at FILL_RATE / i
# SET/s: the later passes write again what an earlier one lost to BUSY), and read again
# SETTLE_S after the load, before the stop; the key count comes from vigil's final counters
# (`partition 0: keys K`). Each binary in VIGIL_BINS is measured in turn (e.g. an older build
# beside the current one: VIGIL_BINS="target/vigil-before target/release/vigil").
#
# redis-server (installed with apt when missing) on REDIS_PORT, pinned to SERVER_CORE, no
# persistence (`--save "" --appendonly no`), loaded by `redis-cli --pipe` with SETs of keys
# `key:` + 12 digits (16 bytes) and VALUE_BYTES-byte values (not integers, which redis would encode
# apart); its VmRSS is read and sampled the same way, beside INFO memory and DBSIZE.
#
# Bytes per key are RSS / keys and (RSS - empty RSS) / keys. Prints one table with the ratios to
# redis-server; keeps every log, sample, JSON and config under OUT, and OUT/results.json.
#
#   sudo bench/memory-per-key.sh                 # 1 M keys, ~1 minute per server
#   KEYS=200000 OUT=/tmp/mem sudo -E bench/memory-per-key.sh
#   bench/memory-per-key.sh --dry-run            # preflight, build, the derived config; nothing run
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../scripts/lib.sh"
parse_common_flags "$@"
cd "$VIGIL_ROOT"

KEYS="${KEYS:-1000000}"               # keys written, each exactly once
VALUE_BYTES="${VALUE_BYTES:-16}"      # bytes per value (keys are 16 bytes), at least 2
FILL_RATE="${FILL_RATE:-100000}"      # SET/s offered to vigil while filling
BATCH="${BATCH:-16}"                  # SETs per datagram
SNAPSHOT_EVERY="${SNAPSHOT_EVERY:-5000}"  # storage.snapshot_every_entries
SAMPLE_S="${SAMPLE_S:-0.05}"          # RSS sampling interval while loading
PASSES="${PASSES:-3}"                 # passes over every key, pass i at FILL_RATE / i (a SET refused BUSY
                                      # in one pass, e.g. while a snapshot is encoded, is written again)
SETTLE_S="${SETTLE_S:-3}"             # wait after the load (snapshot writes finish) before the end RSS
VIGIL_BINS="${VIGIL_BINS:-target/release/vigil}"
PORT="${PORT:-9480}"                  # vigil's UDP port on 127.0.0.1
REDIS_PORT="${REDIS_PORT:-6392}"      # redis-server's TCP port on 127.0.0.1
SERVER_CORE="${SERVER_CORE:-1}"
LOADGEN_CORE="${LOADGEN_CORE:-0}"
DATA_DIR="${DATA_DIR:-$VIGIL_ROOT/target/memory-per-key}"
OUT="${OUT:-$(mktemp -d /tmp/vigil-memory-per-key.XXXXXX)}"
mkdir -p "$OUT"
VIGIL_PID=""
LOADGEN_PID=""
REDIS_PID=""
SAMPLER_PID=""

cleanup() {
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
    stop_pid "$LOADGEN_PID"
    stop_pid "$REDIS_PID"
    stop_pid "$VIGIL_PID"
}
trap cleanup EXIT INT TERM

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Samples process $1's VmRSS (kB) every SAMPLE_S into $2 until stop_sampler.
start_sampler() {
    local pid=$1 file=$2
    (while kill -0 "$pid" 2>/dev/null; do rss_kb "$pid" || true; sleep "$SAMPLE_S"; done) > "$file" 2>/dev/null &
    SAMPLER_PID=$!
}
stop_sampler() {
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
}

echo "== preflight"
[ "$VALUE_BYTES" -ge 2 ] || die "VALUE_BYTES must be at least 2"
check_root "reads other processes' /proc/PID/status and installs redis-server when missing" || exit 1
[ "$(nproc)" -ge 2 ] && ok "$(nproc) cores: servers on core $SERVER_CORE, load generator on core $LOADGEN_CORE" \
    || die "needs 2 cores (one server core, one load-generator core)"
mkdir -p "$DATA_DIR"
case "$(stat -f -c %T "$DATA_DIR")" in
    tmpfs|ramfs) die "DATA_DIR $DATA_DIR is on tmpfs: vigil's O_DIRECT log needs a real filesystem" ;;
    *) ok "DATA_DIR $DATA_DIR on $(stat -f -c %T "$DATA_DIR")" ;;
esac
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    run apt-get install -y redis-server redis-tools > "$OUT/redis-install.log" 2>&1 || die "cannot install redis-server (see $OUT/redis-install.log)"
fi
[ "$DRY_RUN" = 1 ] || ok "$(redis-server --version | cut -d' ' -f1-3)"

build_bench_bins
for bin in $VIGIL_BINS; do [ "$DRY_RUN" = 1 ] || [ -x "$bin" ] || die "no vigil binary $bin"; done

# The config: config/dev.toml with our port, core, data directory and snapshot interval.
derive_dev_config "$OUT/vigil.toml" "$PORT" "$SERVER_CORE" "$DATA_DIR/vigil" "snapshot_every_entries = $SNAPSHOT_EVERY"
info "config: $OUT/vigil.toml (kv.keys_max and kv.data_bytes_max at their defaults, 10 M keys and 4 GiB)"
if [ "$DRY_RUN" = 1 ]; then
    echo "== (dry run) would fill ${VIGIL_BINS// /, } and redis-server with $KEYS keys each; results under $OUT"
    exit 0
fi
target/release/vigil check --config "$OUT/vigil.toml" > "$OUT/vigil-check.txt" 2>&1 || die "vigil check refused $OUT/vigil.toml"
grep "memory:" "$OUT/vigil-check.txt" | sed 's/^/       /' || true

NAMES=()
n=0
for bin in $VIGIL_BINS; do
    n=$((n + 1))
    name="vigil-$n"
    NAMES+=("$name")
    echo "== $name: $bin, $KEYS keys in $PASSES passes from $FILL_RATE SET/s ($BATCH per datagram), a snapshot every $SNAPSHOT_EVERY entries"
    echo "$bin" > "$OUT/$name.bin"
    rm -rf "$DATA_DIR/vigil"
    start_vigil "$OUT/vigil.toml" "$OUT/$name.log" "$bin"
    sleep 1
    rss_kb "$VIGIL_PID" > "$OUT/$name.empty-kb"
    start_sampler "$VIGIL_PID" "$OUT/$name.samples-kb"
    for pass in $(seq 1 "$PASSES"); do
        rate=$(( FILL_RATE / pass ))
        secs=$(python3 -c "print($KEYS / $rate)")
        taskset -c "$LOADGEN_CORE" target/release/vigil-loadgen --backend kernel --server "127.0.0.1:$PORT" \
            --op set --keys "$KEYS" --key-order sequential --value-bytes "$VALUE_BYTES" --batch "$BATCH" \
            --rate "$rate" --duration "$secs" --warmup 0 --timeout-ms 5000 \
            --json "$OUT/$name-pass$pass.json" --quiet > "$OUT/$name-pass$pass.txt" 2>&1 &
        LOADGEN_PID=$!
        rc=0
        wait "$LOADGEN_PID" || rc=$?
        LOADGEN_PID=""
        info "pass $pass at $rate SET/s: $(grep -o 'sent.*timeouts [0-9]*' "$OUT/$name-pass$pass.txt" | head -1)"
        [ "$rc" = 0 ] && [ -s "$OUT/$name-pass$pass.json" ] || die "vigil-loadgen failed (status $rc): $OUT/$name-pass$pass.txt"
    done
    sleep "$SETTLE_S"
    rss_kb "$VIGIL_PID" > "$OUT/$name.end-kb"
    stop_sampler
    kill -INT "$VIGIL_PID"
    rc=0
    wait "$VIGIL_PID" || rc=$?
    VIGIL_PID=""
    [ "$rc" = 0 ] || { tail -20 "$OUT/$name.log"; die "vigil exited with status $rc (see $OUT/$name.log)"; }
    grep -E "partition 0: keys" "$OUT/$name.log" | cut -c1-120 | sed 's/^/       /'
    info "RSS: empty $(cat "$OUT/$name.empty-kb") kB, end $(cat "$OUT/$name.end-kb") kB"
done
rm -rf "$DATA_DIR/vigil"

echo "== redis-server (no persistence), $KEYS keys by redis-cli --pipe"
taskset -c "$SERVER_CORE" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no > "$OUT/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || die "redis-server did not start (see $OUT/redis.log)"
sleep 1
rss_kb "$REDIS_PID" > "$OUT/redis.empty-kb"
start_sampler "$REDIS_PID" "$OUT/redis.samples-kb"
# RESP SETs: key:%012d (16 bytes), a value of VALUE_BYTES bytes starting with a letter.
python3 - "$KEYS" "$VALUE_BYTES" <<'PY' | taskset -c "$LOADGEN_CORE" redis-cli -p "$REDIS_PORT" --pipe > "$OUT/redis-pipe.txt" 2>&1
import sys
keys, vb = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
chunk = []
for i in range(keys):
    k = b"key:%012d" % i
    v = b"v" + (b"%0*d" % (vb - 1, i))[-(vb - 1):]
    chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
    if len(chunk) == 10000:
        out.write(b"".join(chunk)); chunk = []
out.write(b"".join(chunk))
PY
tail -2 "$OUT/redis-pipe.txt" | sed 's/^/       /'
sleep "$SETTLE_S"
rss_kb "$REDIS_PID" > "$OUT/redis.end-kb"
stop_sampler
redis-cli -p "$REDIS_PORT" info memory | tr -d '\r' > "$OUT/redis-info-memory.txt"
redis-cli -p "$REDIS_PORT" dbsize | tr -d '\r' > "$OUT/redis.keys"
stop_pid "$REDIS_PID"
REDIS_PID=""
info "RSS: empty $(cat "$OUT/redis.empty-kb") kB, end $(cat "$OUT/redis.end-kb") kB, $(cat "$OUT/redis.keys") keys"

echo
echo "== results ($KEYS keys written, 16-byte keys, $VALUE_BYTES-byte values; in $OUT)"
python3 - "$OUT" "${NAMES[@]}" <<'PY'
import json, os, re, sys
out, names = sys.argv[1], sys.argv[2:]
def kb(path):
    return int(open(path).read().split()[0]) * 1024
def peak(name):
    samples = [int(x) * 1024 for x in open(f"{out}/{name}.samples-kb").read().split()]
    return max(samples) if samples else 0
rows = {}
for name in names:
    log = open(f"{out}/{name}.log").read()
    m = re.search(r"partition 0: keys (\d+) .*? snapshots (\d+) snapshot-failures (\d+)", log)
    passes = [json.load(open(f"{out}/{p}")) for p in sorted(os.listdir(out)) if p.startswith(f"{name}-pass") and p.endswith(".json")]
    rows[name] = {"server": open(f"{out}/{name}.bin").read().strip(), "keys": int(m.group(1)),
                  "snapshots": int(m.group(2)), "snapshot_failures": int(m.group(3)),
                  "lost": [p["timeouts"] + p["errors"] for p in passes], "sent": [p["sent"] for p in passes],
                  "empty": kb(f"{out}/{name}.empty-kb"), "end": kb(f"{out}/{name}.end-kb"), "peak": peak(name)}
info = dict(l.split(":", 1) for l in open(f"{out}/redis-info-memory.txt").read().splitlines() if ":" in l)
rows["redis"] = {"server": "redis-server", "keys": int(open(f"{out}/redis.keys").read().split()[-1]),
                 "empty": kb(f"{out}/redis.empty-kb"), "end": kb(f"{out}/redis.end-kb"), "peak": peak("redis"),
                 "used_memory": int(info["used_memory"]), "used_memory_rss": int(info["used_memory_rss"])}
for r in rows.values():
    r["per_key"] = r["end"] / max(r["keys"], 1)
    r["per_key_above_empty"] = (r["end"] - r["empty"]) / max(r["keys"], 1)
redis = rows["redis"]
print("| server | keys | RSS empty | RSS end | peak RSS while loading | B/key (RSS / keys) | B/key ((RSS - empty) / keys) | / redis (RSS) | / redis (above empty) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, r in rows.items():
    lost = " + ".join(f"{l:,}" for l in r.get("lost", []))
    extra = f" ({r['snapshots']} snapshots; SETs lost per pass: {lost})" if "snapshots" in r else ""
    print(f"| {r['server']}{extra} | {r['keys']:,} | {r['empty']/1e6:,.1f} MB | {r['end']/1e6:,.1f} MB | {r['peak']/1e6:,.1f} MB "
          f"| {r['per_key']:,.0f} | {r['per_key_above_empty']:,.0f} "
          f"| **{r['per_key']/redis['per_key']:.2f}** | **{r['per_key_above_empty']/redis['per_key_above_empty']:.2f}** |")
print(f"(redis INFO memory: used_memory {redis['used_memory']/1e6:,.1f} MB, used_memory_rss {redis['used_memory_rss']/1e6:,.1f} MB)")
json.dump(rows, open(f"{out}/results.json", "w"), indent=2)
PY
