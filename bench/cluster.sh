#!/usr/bin/env bash
# Replication's figures (docs/BENCHMARKS.md, "Replication"), three nodes against one in the same
# run, on kernel UDP sockets on loopback (this VM has two cores and no NICs: every node, shard
# and the load generator share them; the ratios, not the absolute times, are the figures):
#
#  1. one node (one shard, durable io_uring log, dsync) and three nodes (each the same, a
#     `[cluster]` of three voters): the maximum durable SET rate, vigil-loadgen's search
#     (bisection, trials of SEARCH_SECONDS, loss <= LOSS_MAX, achieved >= 99% of offered),
#     against the single node at its address and against the cluster with `--cluster` (each
#     SET sent to its partition's leader, learned from NOT_LEADER hints);
#  2. SECONDS_RUN of SETs at a fixed RATE against each: p50 / p99 / p99.9 from the intended send
#     times (a replicated SET is answered once a quorum, the leader's log included, has it
#     durably);
#  3-4. client/examples/failover: its steady part gives the bytes of peer datagrams per
#     replicated write (the three nodes' `peer: out ... bytes` over the writes one client got
#     acknowledged, heartbeats included), then KILLS kills of the leader of a key's partition,
#     the time to the first write another node acknowledges (a distribution).
#
# Prints one table with the ratios; keeps every JSON, log and config under OUT.
#
#   sudo bench/cluster.sh                     # defaults below, ~3 minutes
#   RATE=1000 KILLS=5 OUT=/tmp/cl sudo -E bench/cluster.sh
#   bench/cluster.sh --dry-run                # preflight, build, the configs; nothing run
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../scripts/lib.sh"
parse_common_flags "$@"
cd "$VIGIL_ROOT"

RATE="${RATE:-2000}"                 # step 2's fixed rate, SET/s
RATE_MAX="${RATE_MAX:-100000}"       # top of step 1's search range, SET/s
SEARCH_STEPS="${SEARCH_STEPS:-7}"
SEARCH_SECONDS="${SEARCH_SECONDS:-2}"
LOSS_MAX="${LOSS_MAX:-0.001}"
SECONDS_RUN="${SECONDS_RUN:-10}"
KILLS="${KILLS:-20}"
TICK_MS="${TICK_MS:-10}"             # cluster.tick_ms: elections after 10-20 silent ticks
KEYS="${KEYS:-10000}"
VALUE_BYTES="${VALUE_BYTES:-16}"
BASE_PORT="${BASE_PORT:-9510}"       # the single node on BASE_PORT, the cluster on the next three
DATA_DIR="${DATA_DIR:-$VIGIL_ROOT/target/cluster-bench}"
# Nodes and load generator are left unpinned: three nodes share two cores (check_bench_storage's
# line names these).
SERVER_CORE="(unpinned)"
LOADGEN_CORE="(unpinned)"
OUT="${OUT:-$(mktemp -d /tmp/vigil-cluster-bench.XXXXXX)}"
mkdir -p "$OUT"
bench_stop_pids_on_exit
bench_storage_preflight "$DATA_DIR"
if [ "$DRY_RUN" != 1 ] && [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --locked -p vigil-client --example failover 2>&1 | tail -1
fi

node_config() {  # $1 = name, $2 = port, $3 = node id (0: alone), then the cluster's ports
    local name=$1 port=$2 id=$3
    shift 3
    bench_uring_node_toml "$OUT/$name.toml" "$port" "" "$DATA_DIR/$name"
    [ "$id" = 0 ] && return
    printf '[cluster]\ntick_ms = %s\nnode_id = %s\nnodes = [\n' "$TICK_MS" "$id" >> "$OUT/$name.toml"
    local n=1
    for p in "$@"; do
        printf '  { id = %s, address = "127.0.0.1:%s" },\n' "$n" "$p" >> "$OUT/$name.toml"
        n=$((n + 1))
    done
    echo "]" >> "$OUT/$name.toml"
}

P=("$((BASE_PORT + 1))" "$((BASE_PORT + 2))" "$((BASE_PORT + 3))")
node_config single "$BASE_PORT" 0
for i in 1 2 3; do node_config "node$i" "${P[$((i - 1))]}" "$i" "${P[@]}"; done
for c in single node1 node2 node3; do
    target/release/vigil check --config "$OUT/$c.toml" > /dev/null || die "vigil check refused $OUT/$c.toml"
done
ok "configs: $OUT/{single,node1,node2,node3}.toml"
CLUSTER="127.0.0.1:${P[0]},127.0.0.1:${P[1]},127.0.0.1:${P[2]}"
if [ "$DRY_RUN" = 1 ]; then
    echo "== (dry run) would search SET up to $RATE_MAX/s and run $SECONDS_RUN s at $RATE/s against one node and three,"
    echo "   then kill the leader $KILLS times; results under $OUT"
    exit 0
fi

start_nodes() {  # names...
    PIDS=()
    for c in "$@"; do
        rm -rf "${DATA_DIR:?}/$c"
        start_vigil "$OUT/$c.toml" "$OUT/$c.log"
        PIDS+=("$VIGIL_PID")
    done
}

stop_nodes() {
    for pid in "${PIDS[@]}"; do
        kill -INT "$pid"
        wait "$pid" || die "vigil $pid exited badly (see $OUT/*.log)"
    done
    PIDS=()
}

loadgen() {  # $1 = run name, then flags; writes $OUT/$1.json
    local name=$1
    shift
    target/release/vigil-loadgen --op set --keys "$KEYS" --value-bytes "$VALUE_BYTES" --warmup 0.5 \
        "$@" --json "$OUT/$name.json" --quiet > "$OUT/$name.txt" 2>&1 || die "vigil-loadgen failed: $OUT/$name.txt"
    tail -6 "$OUT/$name.txt" | sed 's/^/       /'
}

search() {  # $1 = name, then the target flags
    local name=$1
    shift
    loadgen "$name" "$@" --rate "$RATE_MAX" --search-p99-us 1000000 --search-loss-max "$LOSS_MAX" \
        --search-trial-s "$SEARCH_SECONDS" --search-steps "$SEARCH_STEPS"
}

field() {  # $1 = run, $2 = python expression over j (the JSON)
    python3 -c "import json; j = json.load(open('$OUT/$1.json')); print($2)"
}

echo "== 1-2. one node"
start_nodes single
search single-search --server "127.0.0.1:$BASE_PORT"
loadgen single-fixed --server "127.0.0.1:$BASE_PORT" --rate "$RATE" --duration "$SECONDS_RUN"
stop_nodes

echo "== 1-2. three nodes (tick $TICK_MS ms)"
start_nodes node1 node2 node3
sleep 1   # the partitions elect their leaders
search cluster-search --cluster "$CLUSTER"
loadgen cluster-fixed --cluster "$CLUSTER" --rate "$RATE" --duration "$SECONDS_RUN"
stop_nodes

echo "== 3. bytes of peer datagrams per replicated write: in step 4's steady part (one client, one key)"

echo "== 4. failover: $KILLS kills of the leader"
target/release/examples/failover "$KILLS" "$TICK_MS" "$DATA_DIR" | tee "$OUT/failover.txt" | tail -3 | sed 's/^/       /'

echo
echo "== results (kernel UDP on loopback, 2-core VM, every process sharing the cores)"
S_MAX=$(field single-search "int(j['search'].get('best_rate') or 0)")
C_MAX=$(field cluster-search "int(j['search'].get('best_rate') or 0)")
pct() { field "$1" "round(j['latency_ns']['$2'] / 1e3, 1)"; }
printf '  %-34s %12s %12s %8s\n' "" "one node" "three nodes" "ratio"
printf '  %-34s %12s %12s %8s\n' "max durable SET/s (loss <= $LOSS_MAX)" "$S_MAX" "$C_MAX" \
    "$(python3 -c "print(f'{$C_MAX / max($S_MAX, 1):.2f}')")"
for q in p50 p99 p999; do
    s=$(pct single-fixed "$q"); c=$(pct cluster-fixed "$q")
    printf '  %-34s %12s %12s %8s\n' "SET at $RATE/s, $q (us)" "$s" "$c" "$(python3 -c "print(f'{$c / max($s, 0.001):.2f}')")"
done
grep '^failover' "$OUT/failover.txt" | sed 's/^/  /'
grep '^steady' "$OUT/failover.txt" | sed 's/^/  /'
info "everything under $OUT"
