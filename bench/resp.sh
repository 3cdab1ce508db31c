#!/usr/bin/env bash
# Vigil's RESP port against redis-server, driven by the same unmodified redis-benchmark in the same
# run (docs/BENCHMARKS.md, "RESP").
#
# `vigil serve` on kernel sockets (config/dev.toml: one shard pinned to SERVER_CORE, TCP on
# 127.0.0.1:PORT, the store durable in DATA_DIR with `durable_mode = "dsync"`: every write answered
# once it is on disk), then redis-server 7 pinned to the same core twice: `appendonly yes,
# appendfsync always` (the same durability) and `appendonly no` (none). Each is driven by
# `redis-benchmark -t ping,set,get,incr,mset -c 50 -n REQUESTS -P 1` and `-P 16` on LOADGEN_CORE.
# Prints one table of requests/s with the ratios Vigil / redis (always) and Vigil / redis (none);
# keeps the CSVs and logs under OUT.
#
#   sudo bench/resp.sh                      # ~2 minutes
#   REQUESTS=200000 OUT=/tmp/resp sudo -E bench/resp.sh
#   bench/resp.sh --dry-run
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../scripts/lib.sh"
parse_common_flags "$@"
cd "$VIGIL_ROOT"

REQUESTS="${REQUESTS:-1000000}"  # requests per test with -P 16 (a fifth with -P 1)
CLIENTS="${CLIENTS:-50}"
TESTS="${TESTS:-ping,set,get,incr,mset}"
PORT="${PORT:-9300}"             # Vigil's port (UDP and TCP) on 127.0.0.1
REDIS_PORT="${REDIS_PORT:-6392}"
SERVER_CORE="${SERVER_CORE:-1}"
LOADGEN_CORE="${LOADGEN_CORE:-0}"
DATA_DIR="${DATA_DIR:-$VIGIL_ROOT/target/resp-bench}"
OUT="${OUT:-$(mktemp -d /tmp/vigil-resp.XXXXXX)}"
mkdir -p "$OUT"
VIGIL_PID=""
REDIS_PID=""
cleanup() {
    stop_pid "$VIGIL_PID"
    stop_pid "$REDIS_PID"
}
trap cleanup EXIT INT TERM

echo "== preflight"
ensure_packages
check_bench_storage "$DATA_DIR"
for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || run apt-get install -y redis-server redis-tools > "$OUT/redis-install.log" 2>&1 \
        || die "cannot install $tool (see $OUT/redis-install.log)"
done
ok "$(redis-server --version | cut -d' ' -f1-3)"
build_bench_bins
rm -rf "$DATA_DIR/vigil"
derive_dev_config "$OUT/vigil.toml" "$PORT" "$SERVER_CORE" "$DATA_DIR/vigil" 'durable_mode = "dsync"'
info "config: $OUT/vigil.toml"
if [ "$DRY_RUN" = 1 ]; then
    echo "== (dry run) would run redis-benchmark -t $TESTS -c $CLIENTS -P 1 and -P 16 against vigil on $PORT,"
    echo "   redis-server (appendfsync always) and redis-server (appendonly no); results under $OUT"
    exit 0
fi

# Runs redis-benchmark against port $1, writing $OUT/$2-P<n>.csv for -P 1 and -P 16.
bench() {
    local port=$1 name=$2 pipeline n
    for pipeline in 1 16; do
        n=$REQUESTS
        [ "$pipeline" = 1 ] && n=$(( REQUESTS / 5 ))
        taskset -c "$LOADGEN_CORE" redis-benchmark -p "$port" -c "$CLIENTS" -P "$pipeline" -t "$TESTS" \
            -n "$n" -r 100000 --csv > "$OUT/$name-P$pipeline.csv" 2> "$OUT/$name-P$pipeline.err" \
            || die "redis-benchmark against $name failed (see $OUT/$name-P$pipeline.err)"
        if grep -qi error "$OUT/$name-P$pipeline.err" "$OUT/$name-P$pipeline.csv"; then
            die "redis-benchmark against $name reported errors (see $OUT/$name-P$pipeline.*)"
        fi
        sed "s/^/       -P $pipeline: /" "$OUT/$name-P$pipeline.csv" | tail -n +2
    done
}

echo "== 1. vigil (kernel sockets, durable: dsync), redis-benchmark -c $CLIENTS -P 1 and -P 16"
start_vigil "$OUT/vigil.toml" "$OUT/vigil.log"
taskset -cp "$SERVER_CORE" "$VIGIL_PID" > /dev/null
bench "$PORT" vigil
stop_pid "$VIGIL_PID"; VIGIL_PID=""

# Starts redis-server on SERVER_CORE with the persistence options given.
start_redis() {
    rm -rf "$DATA_DIR/redis"; mkdir -p "$DATA_DIR/redis"
    taskset -c "$SERVER_CORE" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DATA_DIR/redis" \
        --save "" --daemonize no "$@" > "$OUT/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
    die "redis-server did not start (see $OUT/redis.log)"
}

echo "== 2. redis-server, appendonly yes, appendfsync always"
start_redis --appendonly yes --appendfsync always
bench "$REDIS_PORT" redis-always
stop_pid "$REDIS_PID"; REDIS_PID=""
echo "== 3. redis-server, appendonly no"
start_redis --appendonly no
bench "$REDIS_PORT" redis-none
stop_pid "$REDIS_PID"; REDIS_PID=""
rm -rf "$DATA_DIR/redis" "$DATA_DIR/vigil"

echo "== results (requests/s; redis-benchmark -c $CLIENTS, $(nproc) cores)"
python3 - "$OUT" <<'EOF'
import csv, json, sys
out = sys.argv[1]
def load(name, p):
    rows = [r for r in csv.reader(open(f"{out}/{name}-P{p}.csv")) if r and r[0] != "test"]
    return {r[0]: float(r[1]) for r in rows}
table = {}
print("| test | -P | vigil | redis always | redis none | vigil / always | vigil / none |")
print("|---|---:|---:|---:|---:|---:|---:|")
for p in (1, 16):
    v, a, n = load("vigil", p), load("redis-always", p), load("redis-none", p)
    for test in v:
        table[f"{test} -P {p}"] = {"vigil": v[test], "redis_always": a.get(test), "redis_none": n.get(test)}
        ra = v[test] / a[test] if a.get(test) else float("nan")
        rn = v[test] / n[test] if n.get(test) else float("nan")
        print(f"| {test} | {p} | {v[test]:,.0f} | {a.get(test, 0):,.0f} | {n.get(test, 0):,.0f} | **{ra:.2f}** | {rn:.2f} |")
json.dump(table, open(f"{out}/resp.json", "w"), indent=1)
EOF
echo "== all results under $OUT"
