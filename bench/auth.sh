#!/usr/bin/env bash
# What authenticated datagrams cost (docs/BENCHMARKS.md, "Authentication"): the maximum PING rate
# and the maximum durable SET rate of one node (one shard, kernel UDP on loopback, durable io_uring
# log), anonymous and then signed (vigil-loadgen --credentials: a 40-byte block and a keyed-BLAKE3
# MAC per datagram, checked by the node before any frame runs, with its replay window), against
# the same node config in the same invocation, in ROUNDS rounds so that drift of the VM shows. As
# in bench/metrics.sh, each (round, mode) starts the node afresh on an empty store, so every mode's
# SETs meet the same store (a long series of overload trials on one store was seen to leave fresh
# clients' writes answered STALE, which no mode should inherit).
# vigil-loadgen's search (bisection, trials of SEARCH_SECONDS, loss <= LOSS_MAX, achieved >= 99%
# of offered).
#
# The node lets anonymous requests read and write (loopback) and holds one principal, the load
# generator's key; every run takes client ids of its own (anonymous ones outside the key's range,
# signed ones in it), so no run's writes meet another's exactly-once state.
#
# Prints one table with the ratios; keeps every JSON, log and config under OUT (the key is in
# OUT/node.toml and OUT/loadgen.toml, mode 600).
#
#   sudo bench/auth.sh                 # ~4 minutes
#   bench/auth.sh --dry-run            # preflight, build, the config; nothing run
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../scripts/lib.sh"
parse_common_flags "$@"
cd "$VIGIL_ROOT"

RATE_MAX="${RATE_MAX:-400000}"
SEARCH_STEPS="${SEARCH_STEPS:-8}"
SEARCH_SECONDS="${SEARCH_SECONDS:-2}"
LOSS_MAX="${LOSS_MAX:-0.001}"
KEYS="${KEYS:-10000}"
ROUNDS="${ROUNDS:-2}"
PORT="${PORT:-9530}"
DATA_DIR="${DATA_DIR:-$VIGIL_ROOT/target/auth-bench}"
SERVER_CORE=0
LOADGEN_CORE=1
OUT="${OUT:-$(mktemp -d /tmp/vigil-auth-bench.XXXXXX)}"
# The principal: client ids 100000.. (each search takes SEARCH_STEPS + 1 of them).
KEY_ID=7
CLIENT_ID=100000
CLIENT_IDS=4096
mkdir -p "$OUT"
bench_stop_pids_on_exit
bench_storage_preflight "$DATA_DIR"

KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
ENTRY="[[auth.clients]]
name = \"loadgen\"
key_id = $KEY_ID
client_id = $CLIENT_ID
client_ids = $CLIENT_IDS
key = \"$KEY\"
acl = \"+@read +@write\""
bench_uring_node_toml "$OUT/node.toml" "$PORT" "$SERVER_CORE" "$DATA_DIR"
printf '%s\n' "$ENTRY" >> "$OUT/node.toml"
# The load generator's --credentials: the same entry, as copied from the node's config.
printf '%s\n' "$ENTRY" > "$OUT/loadgen.toml"
chmod 600 "$OUT/node.toml" "$OUT/loadgen.toml"
target/release/vigil check --config "$OUT/node.toml" > /dev/null || die "vigil check refused $OUT/node.toml"
ok "config: $OUT/node.toml (anonymous read-write, principal 'loadgen' key id $KEY_ID, client ids $CLIENT_ID..$((CLIENT_ID + CLIENT_IDS)))"
if [ "$DRY_RUN" = 1 ]; then
    echo "== (dry run) would search PING and SET up to $RATE_MAX/s anonymous and signed, $ROUNDS rounds; results under $OUT"
    exit 0
fi

RUN=0
search() {  # $1 = run name, $2 = anonymous|signed, then flags; writes $OUT/$1.json, prints the max rate
    local name=$1 mode=$2 ids
    shift 2
    RUN=$((RUN + 1))
    if [ "$mode" = signed ]; then
        ids=(--credentials "$OUT/loadgen.toml" --client-id $((CLIENT_ID + RUN * (SEARCH_STEPS + 1))))
    else
        ids=(--client-id $((1000000000 + RUN * 1024)))
    fi
    taskset -c "$LOADGEN_CORE" target/release/vigil-loadgen --server "127.0.0.1:$PORT" --warmup 0.5 \
        --rate "$RATE_MAX" --search-p99-us 1000000 --search-loss-max "$LOSS_MAX" \
        --search-trial-s "$SEARCH_SECONDS" --search-steps "$SEARCH_STEPS" "${ids[@]}" \
        "$@" --json "$OUT/$name.json" --quiet > "$OUT/$name.txt" 2>&1 || die "vigil-loadgen failed: $OUT/$name.txt"
    python3 - "$OUT/$name.json" "$mode" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
if s["signed"] != (sys.argv[2] == "signed"):
    sys.exit("the run's signed flag is not what was asked")
if s.get("refused_datagrams"):
    sys.exit("datagrams refused AUTH_FAILED: %s" % s["refused_datagrams"])
print(int(s["search"].get("best_rate") or 0))
PY
}

(( (ROUNDS * 4 + 1) * (SEARCH_STEPS + 1) <= CLIENT_IDS )) || die "too many runs for the key's client ids"
declare -A PING SET
for round in $(seq 1 "$ROUNDS"); do
    for mode in anonymous signed; do
        echo "== round $round, $mode"
        rm -rf "${DATA_DIR:?}"
        start_vigil "$OUT/node.toml" "$OUT/$mode-$round.log"
        PIDS=("$VIGIL_PID")
        PING[$mode-$round]=$(search "$mode-$round-ping" "$mode" --op ping)
        SET[$mode-$round]=$(search "$mode-$round-set" "$mode" --op set --keys "$KEYS" --value-bytes 16)
        kill -INT "$VIGIL_PID"
        wait "$VIGIL_PID" || die "vigil exited badly (see $OUT/$mode-$round.log)"
        # shellcheck disable=SC2034  # read by the EXIT trap of bench_stop_pids_on_exit
        PIDS=()
        info "max PING/s ${PING[$mode-$round]}, max durable SET/s ${SET[$mode-$round]}"
    done
done

echo
echo "== results (kernel UDP on loopback, shard on core $SERVER_CORE, load generator on core $LOADGEN_CORE)"
printf '  %-26s %12s %12s %14s\n' "" "anonymous" "signed" "signed/anon"
for round in $(seq 1 "$ROUNDS"); do
    for what in PING SET; do
        declare -n t=$what
        anon=${t[anonymous-$round]}; signed=${t[signed-$round]}
        printf '  %-26s %12s %12s %14s\n' "round $round: max $what/s" "$anon" "$signed" \
            "$(python3 -c "print(f'{$signed / max($anon, 1):.3f}')")"
    done
done
info "everything under $OUT"
