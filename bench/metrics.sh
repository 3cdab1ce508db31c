#!/usr/bin/env bash
# What live metrics cost (docs/BENCHMARKS.md, "Metrics"): the maximum PING rate and the maximum
# durable SET rate of one node (one shard, kernel UDP on loopback, durable io_uring log) with its
# metrics endpoint off, on (the shard publishing its snapshots, nobody scraping), and on with
# /metrics scraped every second, in the same run, in two rounds so that drift of the VM shows.
# vigil-loadgen's search (bisection, trials of SEARCH_SECONDS, loss <= LOSS_MAX, achieved >= 99%
# of offered).
#
# Prints one table with the ratios; keeps every JSON, log, config and scrape under OUT.
#
#   sudo bench/metrics.sh                 # ~7 minutes
#   bench/metrics.sh --dry-run            # preflight, build, the configs; nothing run
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../scripts/lib.sh"
parse_common_flags "$@"
cd "$VIGIL_ROOT"

RATE_MAX="${RATE_MAX:-400000}"
SEARCH_STEPS="${SEARCH_STEPS:-8}"
SEARCH_SECONDS="${SEARCH_SECONDS:-2}"
LOSS_MAX="${LOSS_MAX:-0.001}"
KEYS="${KEYS:-10000}"
PORT="${PORT:-9520}"
METRICS_PORT="${METRICS_PORT:-9521}"
DATA_DIR="${DATA_DIR:-$VIGIL_ROOT/target/metrics-bench}"
SERVER_CORE=0
LOADGEN_CORE=1
OUT="${OUT:-$(mktemp -d /tmp/vigil-metrics-bench.XXXXXX)}"
mkdir -p "$OUT"
bench_stop_pids_on_exit
bench_storage_preflight "$DATA_DIR"

config() {  # $1 = name, $2 = "on" or "off"
    bench_uring_node_toml "$OUT/$1.toml" "$PORT" "$SERVER_CORE" "$DATA_DIR/$1"
    if [ "$2" = on ]; then
        printf '[metrics]\nlisten = ["127.0.0.1:%s"]\n' "$METRICS_PORT" >> "$OUT/$1.toml"
    fi
    target/release/vigil check --config "$OUT/$1.toml" > /dev/null || die "vigil check refused $OUT/$1.toml"
}
config off off
config on on
ok "configs: $OUT/{off,on}.toml"
if [ "$DRY_RUN" = 1 ]; then
    echo "== (dry run) would search PING and SET up to $RATE_MAX/s with metrics off, on and scraped; results under $OUT"
    exit 0
fi

search() {  # $1 = run name, then flags; writes $OUT/$1.json
    local name=$1
    shift
    taskset -c "$LOADGEN_CORE" target/release/vigil-loadgen --server "127.0.0.1:$PORT" --warmup 0.5 \
        --rate "$RATE_MAX" --search-p99-us 1000000 --search-loss-max "$LOSS_MAX" \
        --search-trial-s "$SEARCH_SECONDS" --search-steps "$SEARCH_STEPS" \
        "$@" --json "$OUT/$name.json" --quiet > "$OUT/$name.txt" 2>&1 || die "vigil-loadgen failed: $OUT/$name.txt"
    python3 -c "import json; print(int(json.load(open('$OUT/$name.json'))['search'].get('best_rate') or 0))"
}

declare -A PING SET
run_mode() {  # $1 = off|on|scraped, $2 = round: PING[$1-$2] and SET[$1-$2] get the maxima
    local mode=$1 round=$2 scraper="" conf=$1
    [ "$mode" = scraped ] && conf=on
    rm -rf "${DATA_DIR:?}/$conf"
    start_vigil "$OUT/$conf.toml" "$OUT/$mode-$round.log"
    PIDS=("$VIGIL_PID")
    if [ "$mode" = scraped ]; then
        ( while sleep 1; do curl -s -o "$OUT/scrape-$round.txt" "http://127.0.0.1:$METRICS_PORT/metrics" || true; done ) &
        scraper=$!
        PIDS+=("$scraper")
    fi
    PING[$mode-$round]=$(search "$mode-$round-ping" --op ping)
    SET[$mode-$round]=$(search "$mode-$round-set" --op set --keys "$KEYS" --value-bytes 16)
    if [ -n "$scraper" ]; then
        kill "$scraper" 2>/dev/null || true
        wait "$scraper" 2>/dev/null || true
    fi
    kill -INT "$VIGIL_PID"
    wait "$VIGIL_PID" || die "vigil exited badly (see $OUT/$mode-$round.log)"
    PIDS=()
}

for round in 1 2; do
    for mode in off on scraped; do
        echo "== round $round, metrics $mode"
        run_mode "$mode" "$round"
        info "max PING/s ${PING[$mode-$round]}, max durable SET/s ${SET[$mode-$round]}"
    done
done
[ -s "$OUT/scrape-1.txt" ] || die "no scrape of /metrics was saved while metrics were on"
promtool check metrics < "$OUT/scrape-1.txt" && ok "promtool check metrics: a scrape taken under load is clean"

echo
echo "== results (kernel UDP on loopback, shard on core $SERVER_CORE, load generator on core $LOADGEN_CORE)"
printf '  %-26s %12s %12s %14s %8s %8s\n' "" "metrics off" "on" "on, scraped 1s" "on/off" "scr/off"
for round in 1 2; do
    for what in PING SET; do
        declare -n t=$what
        off=${t[off-$round]}; on=${t[on-$round]}; scr=${t[scraped-$round]}
        printf '  %-26s %12s %12s %14s %8s %8s\n' "round $round: max $what/s" "$off" "$on" "$scr" \
            "$(python3 -c "print(f'{$on / max($off, 1):.3f}')")" "$(python3 -c "print(f'{$scr / max($off, 1):.3f}')")"
    done
done
info "everything under $OUT"
