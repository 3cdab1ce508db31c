#!/usr/bin/env bash
# The candle store over memif on one shard (docs/BENCHMARKS.md, "Candles"), with its baselines
# measured in the same run.
#
# `vigil serve` runs one shard (core SERVER_CORE) on a config derived from config/dpdk-memif.toml
# as bench/durable-set.sh derives it: its own memif socket and EAL file prefix, no kernel fallback,
# `[storage] backend = "uring"` with `durable_mode = "dsync"` on DATA_DIR, and kernel TCP listeners
# on 127.0.0.1 for the candle page (`[tcp] web_listen`, port WEB_PORT). `vigil-loadgen` is the
# memif client (core LOADGEN_CORE), open loop, driven by bench/workloads/candles.toml with its mix
# rewritten per step (candle bodies from Vigil's seeded corpus; GETs of ids LIGHTs were answered
# with):
#
#  0. the page with no candle lit: GET /candles, time to first byte and bytes (the page's head,
#     form and counts: what every page costs);
#  1. maximum durable LIGHT rate: vigil-loadgen's search (bisection, trials of SEARCH_SECONDS, loss
#     <= LOSS_MAX, achieved >= 99% of offered) up to LIGHT_RATE_MAX, LIGHT only. A LIGHT is
#     answered once its candle is on the log (dsync): every answer is a durable write;
#  2. SECONDS_RUN of LIGHT at half that maximum: p50 / p99 / p99.9;
#  3. the page with the candles of steps 1-2 lit: time to first byte (curl's time_starttransfer),
#     bytes, candles shown (`<li class="candle"`), bytes per candle shown, and the bytes each
#     candle adds against step 0's page;
#  4. maximum GET rate: the same search up to GET_RATE_MAX on a mix of 99% GET / 1% LIGHT (GETs ask
#     for ids lit in the run, so a GET-only mix would only ever ask for id 0);
#  5. baselines: the same search with ECHO of 16 bytes (the request path with no store: GET / ECHO
#     is what the store costs a read), and fio's sequential O_DIRECT + O_DSYNC 4 KiB writes at
#     queue depth 1 on DATA_DIR (LIGHT/s per fio write/s: what group commit buys).
#
# Prints one table with the ratios; keeps every JSON, log and config under OUT.
#
#   sudo bench/candles.sh                  # defaults below, ~3 minutes
#   SECONDS_RUN=5 OUT=/tmp/candles sudo -E bench/candles.sh
#   bench/candles.sh --dry-run             # preflight, build, the derived config; nothing run
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../scripts/lib.sh"
parse_common_flags "$@"
cd "$VIGIL_ROOT"

LIGHT_RATE_MAX="${LIGHT_RATE_MAX:-160000}"  # top of step 1's range, LIGHT/s
GET_RATE_MAX="${GET_RATE_MAX:-1000000}"     # top of step 4's and 5's ranges, requests/s
SEARCH_STEPS="${SEARCH_STEPS:-7}"           # bisection steps after the first trial
SEARCH_SECONDS="${SEARCH_SECONDS:-2}"       # measured seconds per search trial (after 0.5 s warm-up)
LOSS_MAX="${LOSS_MAX:-0.001}"               # tolerated loss per trial (timeouts + errors, FULL included)
SECONDS_RUN="${SECONDS_RUN:-10}"            # measured seconds of the run at half the maximum
FIO_SECONDS="${FIO_SECONDS:-5}"
# The window of durable writes in flight, bytes of log (`storage.inflight_bytes_max`, at most half
# the ring: 32 MiB here). It must cover the LIGHT rate x the device's worst write latency x ~700 B
# of window a LIGHT (twice its log bytes: the padding bound): this VM's shared disk stalls a dsync
# write for 100 ms now and then, which at 70,000/s is ~5 MB; the config's 1 MiB (one segment)
# answered 0.6-1.7% BUSY at half the maximum rate (BENCHMARKS.md, runs 2-4).
INFLIGHT_BYTES_MAX="${INFLIGHT_BYTES_MAX:-16777216}"
CANDLES_PER_DAY_MAX="${CANDLES_PER_DAY_MAX:-8000000}"  # the bucket's room: every LIGHT of the run (1 GiB of slots at most)
WEB_PORT="${WEB_PORT:-9402}"                # the candle page, on 127.0.0.1 (kernel TCP)
TCP_PORT="${TCP_PORT:-9400}"
SERVER_CORE="${SERVER_CORE:-1}"
LOADGEN_CORE="${LOADGEN_CORE:-0}"
DATA_DIR="${DATA_DIR:-$VIGIL_ROOT/target/candles-bench}"
OUT="${OUT:-$(mktemp -d /tmp/vigil-candles.XXXXXX)}"

mkdir -p "$OUT"
SOCK="$OUT/memif.sock"
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
check_root "the benchmark drives DPDK vdevs and O_DIRECT files" || exit 1
ensure_packages
check_dpdk || exit 1
check_bench_storage "$DATA_DIR"
command -v curl >/dev/null || die "curl missing (apt-get install curl)"

build_bench_bins

sed -e "s|socket=/tmp/vigil-memif.sock|socket=$SOCK|" -e "s|cores = \[1\]|cores = [$SERVER_CORE]|" \
    -e "s|main_lcore = 0|main_lcore = $LOADGEN_CORE|" -e "s|fallback = \"kernel\"|fallback = \"none\"|" \
    -e "s|file_prefix = \"vigil-memif\"|file_prefix = \"vigil-cd-$$\"|" \
    -e "s|^dir = .*|dir = \"$DATA_DIR/vigil\"|" \
    -e "s|^backend = \"uring\".*|backend = \"uring\"\ndurable_mode = \"dsync\"|" \
    -e "s|^inflight_bytes_max = .*|inflight_bytes_max = $INFLIGHT_BYTES_MAX|" \
    config/dpdk-memif.toml > "$OUT/vigil.toml"
grep -q '^\[tcp\]' "$OUT/vigil.toml" && die "config/dpdk-memif.toml has a [tcp] section now: derive it here"
printf '\n[tcp]\nlisten = ["127.0.0.1:%s"]\nweb_listen = ["127.0.0.1:%s"]\n' "$TCP_PORT" "$WEB_PORT" >> "$OUT/vigil.toml"
# Every trial of the searches lights candles into the same day's bucket: room for all of them
# (the default, 524,288 a partition and day, is filled by the first trial at 200,000/s, and every
# LIGHT after it is FULL). Slots are allocated as they fill, 128 B a candle.
grep -q '^\[candle\]' "$OUT/vigil.toml" && die "config/dpdk-memif.toml has a [candle] section now: derive it here"
printf '\n[candle]\ncandles_per_day_max = %s\noverflow_bytes_per_field_day_max = 16777216\n' "$CANDLES_PER_DAY_MAX" >> "$OUT/vigil.toml"
grep -q '^durable_mode = "dsync"' "$OUT/vigil.toml" || die "could not derive the config (no [storage] backend line?)"
grep -q "^inflight_bytes_max = $INFLIGHT_BYTES_MAX\$" "$OUT/vigil.toml" || die "could not derive the config (no inflight_bytes_max line?)"
# The workloads: bench/workloads/candles.toml with each step's mix.
mix() {  # $1 = name, $2 = LIGHT weight, $3 = GET weight (0: none)
    local ops="    { op = \"candle_light\", weight = $2 },"
    [ "$3" = 0 ] || ops="$ops\n    { op = \"candle_get\", weight = $3 },"
    awk -v ops="$ops" '/^ops = \[/ {print; print ops; skip = 1; next} skip && /^\]/ {skip = 0} !skip' \
        bench/workloads/candles.toml | sed "s/^name = .*/name = \"$1\"/" > "$OUT/$1.toml"
}
mix candles-light 1 0
mix candles-get 1 99
info "config: $OUT/vigil.toml; workloads: $OUT/candles-light.toml, $OUT/candles-get.toml"
if [ "$DRY_RUN" = 1 ]; then
    echo "== (dry run) would search the maximum durable LIGHT rate up to $LIGHT_RATE_MAX/s, run $SECONDS_RUN s at half,"
    echo "   fetch the page on 127.0.0.1:$WEB_PORT, search GET and ECHO up to $GET_RATE_MAX/s and run fio; results under $OUT"
    exit 0
fi
target/release/vigil check --config "$OUT/vigil.toml" > /dev/null || die "vigil check refused $OUT/vigil.toml"

vigil_start() {  # $1 = name; a fresh log
    rm -rf "$DATA_DIR/vigil"
    rm -f "$SOCK"
    start_vigil "$OUT/vigil.toml" "$OUT/vigil-$1.log"
}

vigil_stop() {
    kill -INT "$VIGIL_PID"
    local rc=0
    wait "$VIGIL_PID" || rc=$?
    VIGIL_PID=""
    [ "$rc" = 0 ] || die "vigil exited with status $rc (see $OUT/vigil-*.log)"
}

loadgen() {  # $1 = run name, then vigil-loadgen's traffic and rate flags; writes $OUT/$1.json
    local name=$1
    shift
    target/release/vigil-loadgen --backend dpdk --vdev "net_memif0,role=client,socket=$SOCK,id=0" \
        --file-prefix "vigil-cd-lg-$$-$name" --server 10.77.0.1:9000 --local-ip 10.77.0.2 \
        --core "$LOADGEN_CORE" --warmup 0.5 "$@" --json "$OUT/$name.json" --quiet > "$OUT/$name.txt" 2>&1 &
    LOADGEN_PID=$!
    local rc=0
    wait "$LOADGEN_PID" || rc=$?
    LOADGEN_PID=""
    grep -v '^EAL:\|^TELEMETRY\|memif_connect' "$OUT/$name.txt" | sed 's/^/       /' | tail -12
    [ "$rc" = 0 ] && [ -s "$OUT/$name.json" ] || die "vigil-loadgen failed (status $rc): $OUT/$name.txt"
}

search() {  # $1 = run name, $2 = top of the range, then the traffic flags
    local name=$1 top=$2
    shift 2
    loadgen "$name" "$@" --rate "$top" --search-p99-us 1000000 --search-loss-max "$LOSS_MAX" \
        --search-trial-s "$SEARCH_SECONDS" --search-steps "$SEARCH_STEPS"
}

best() {  # $1 = run name: the search's best rate (0 if none passed)
    python3 -c "import json; print(int(json.load(open('$OUT/$1.json'))['search'].get('best_rate') or 0))"
}

page() {  # $1 = name: GET /candles, its TTFB, total time and bytes, into $OUT/page-$1.{html,txt}
    curl -s -o "$OUT/page-$1.html" -w '%{time_starttransfer} %{time_total} %{size_download} %{http_code}\n' \
        "http://127.0.0.1:$WEB_PORT/candles" > "$OUT/page-$1.txt"
    read -r ttfb total bytes code < "$OUT/page-$1.txt"
    [ "$code" = 200 ] || die "GET /candles answered $code (see $OUT/page-$1.html)"
    local shown
    shown=$( { grep -o '<li class="candle"' "$OUT/page-$1.html" || true; } | wc -l)
    echo "$ttfb $total $bytes $shown" > "$OUT/page-$1.txt"
    info "page ($1): first byte after $(python3 -c "print(f'{$ttfb * 1e3:.2f}')") ms, $bytes bytes, $shown candles shown"
}

echo "== 0. the page with no candle lit"
vigil_start candles
page empty

echo "== 1. maximum durable LIGHT rate, searched up to $LIGHT_RATE_MAX/s (loss <= $LOSS_MAX, trials of $SEARCH_SECONDS s)"
search light-search "$LIGHT_RATE_MAX" --workload "$OUT/candles-light.toml"
MAX=$(best light-search)
[ "$MAX" -gt 0 ] || die "no trial passed (see $OUT/light-search.txt)"
ok "maximum: $MAX LIGHT/s"

HALF=$(( MAX / 2 ))
echo "== 2. $SECONDS_RUN s of LIGHT at half the maximum, $HALF/s"
loadgen light-half --workload "$OUT/candles-light.toml" --rate "$HALF" --duration "$SECONDS_RUN"

echo "== 3. the page with the candles lit"
for i in 1 2 3; do page "lit-$i"; done

echo "== 4. maximum GET rate (99% GET of ids lit in the run, 1% LIGHT), searched up to $GET_RATE_MAX/s"
search get-search "$GET_RATE_MAX" --workload "$OUT/candles-get.toml"
GET_MAX=$(best get-search)
ok "maximum: $GET_MAX requests/s"

echo "== 5a. baseline: maximum ECHO rate (16 bytes), the same vigil and search"
search echo-search "$GET_RATE_MAX" --op echo --payload-bytes 16
ECHO_MAX=$(best echo-search)
ok "maximum: $ECHO_MAX ECHO/s"
vigil_stop

echo "== 5b. baseline: fio, sequential O_DIRECT + O_DSYNC 4 KiB writes, queue depth 1, on $DATA_DIR, $FIO_SECONDS s"
rm -f "$DATA_DIR/fio.dat"
fio --name=seq-dsync-qd1 --filename="$DATA_DIR/fio.dat" --size=64m --rw=write --bs=4k --direct=1 --sync=dsync \
    --ioengine=io_uring --iodepth=1 --time_based --runtime="$FIO_SECONDS" --output-format=json \
    --output="$OUT/fio.json" &
FIO_PID=$!
wait "$FIO_PID"
FIO_PID=""
rm -f "$DATA_DIR/fio.dat"

echo
echo "== results (one shard, one load-generator core, memif --no-huge, durable dsync log; in $OUT)"
python3 - "$OUT" "$MAX" "$HALF" "$GET_MAX" "$ECHO_MAX" <<'PY'
import json, sys
out, mx, half, get_max, echo_max = sys.argv[1], *map(int, sys.argv[2:])
lat = json.load(open(f"{out}/light-half.json"))
get = json.load(open(f"{out}/get-search.json"))
fio = json.load(open(f"{out}/fio.json"))["jobs"][0]["write"]
l = lat["latency_ns"]
def page(name):
    ttfb, total, size, shown = open(f"{out}/page-{name}.txt").read().split()
    return float(ttfb), float(total), int(size), int(shown)
empty = page("empty")
lit = sorted((page(f"lit-{i}") for i in (1, 2, 3)), key=lambda p: p[0])[1]  # the median TTFB
print("| | value |")
print("|---|---:|")
print(f"| maximum durable LIGHT rate (loss <= 0.1%) | **{mx:,} LIGHT/s** |")
print(f"| LIGHT latency at {half:,}/s: p50 / p99 / p99.9 / max | {l['p50']/1e3:,.0f} / {l['p99']/1e3:,.0f} / {l['p999']/1e3:,.0f} / {l['max']/1e3:,.0f} us ({lat['errors']:,} refused, e.g. BUSY, and {lat['timeouts']:,} unanswered of {lat['sent']:,}) |")
print(f"| fio qd 1, 4 KiB O_DIRECT+O_DSYNC sequential writes | {fio['iops']:,.0f} writes/s, mean {fio['clat_ns']['mean']/1e3:,.0f} us |")
print(f"| **durable LIGHT/s / fio writes/s** | **{mx / max(fio['iops'], 1):.1f}** |")
print(f"| maximum GET rate (99% GET / 1% LIGHT) | **{get_max:,} requests/s** (GETs not found in the best trial: {get.get('not_found', 0):,}) |")
print(f"| maximum ECHO rate (16 B), same vigil | {echo_max:,} requests/s |")
print(f"| **GET / ECHO** | **{get_max / max(echo_max, 1):.2f}** |")
print(f"| page, no candle lit: time to first byte, bytes | {empty[0]*1e3:.2f} ms, {empty[2]:,} B |")
print(f"| page, {lit[3]} candles shown: time to first byte / whole page, bytes | {lit[0]*1e3:.2f} ms / {lit[1]*1e3:.2f} ms, {lit[2]:,} B |")
per = lit[2] / max(lit[3], 1)
added = (lit[2] - empty[2]) / max(lit[3], 1)
print(f"| **bytes per candle shown** (page / candles; each candle's own, over the empty page) | **{per:,.0f} B** ({added:,.0f} B) |")
json.dump({"light_max_rps": mx, "light_half_rps": half, "latency_ns_at_half": l, "get_max_rps": get_max,
           "echo_max_rps": echo_max, "fio_qd1_iops": fio["iops"],
           "page_empty": {"ttfb_s": empty[0], "bytes": empty[2]},
           "page_lit": {"ttfb_s": lit[0], "total_s": lit[1], "bytes": lit[2], "candles": lit[3]}},
          open(f"{out}/results.json", "w"), indent=2)
PY
