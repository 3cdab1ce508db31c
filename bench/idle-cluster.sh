#!/usr/bin/env bash
# What idle replicated partitions cost real processes (docs/REPLICATION.md, "Idle groups:
# quiescing"): three `vigil serve` nodes on loopback (kernel UDP, one shard each, memory logs),
# PARTITIONS partitions each a Raft group of the three, left idle for SECONDS after their leaders
# are elected; the CPU time the three processes take over that time (utime + stime from
# /proc/PID/stat) and the peer datagrams they send, with `cluster.quiesce_idle` on against off,
# in the same run.
#
#   bench/idle-cluster.sh                      # PARTITIONS=64 SECONDS=10
#   PARTITIONS=128 SECONDS=20 bench/idle-cluster.sh
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../scripts/lib.sh"
parse_common_flags "$@"
cd "$VIGIL_ROOT"

PARTITIONS="${PARTITIONS:-64}"
SECONDS_IDLE="${SECONDS:-10}"
BASE_PORT="${BASE_PORT:-9540}"
BIN="${BIN:-target/release/vigil}"
OUT="${OUT:-$(mktemp -d /tmp/vigil-idle-cluster.XXXXXX)}"
mkdir -p "$OUT"
bench_stop_pids_on_exit
[ "${SKIP_BUILD:-0}" = 1 ] || run cargo build --release --locked -p vigil --bins

config() {  # $1 = node id, $2 = quiesce (true/false)
    cat > "$OUT/node$1-$2.toml" <<CONF
[node]
shards = 1
cores = []
[net]
backend = "kernel"
port = $((BASE_PORT + $1))
[kernel]
bind_ip = "127.0.0.1"
[tcp]
enabled = false
[auth]
anonymous = "read-write"
[storage]
backend = "memory"
segment_blocks = 64
segment_count = 4
partitions = $PARTITIONS
[cluster]
node_id = $1
quiesce_idle = $2
nodes = [
  { id = 1, address = "127.0.0.1:$((BASE_PORT + 1))" },
  { id = 2, address = "127.0.0.1:$((BASE_PORT + 2))" },
  { id = 3, address = "127.0.0.1:$((BASE_PORT + 3))" },
]
CONF
}

cpu_ticks() {  # $1 = pid: utime + stime, clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}

run_mode() {  # $1 = true|false; prints "cpu_seconds datagrams"
    local q=$1 n before=0 after=0
    PIDS=()
    for n in 1 2 3; do
        config "$n" "$q"
        start_vigil "$OUT/node$n-$q.toml" "$OUT/node$n-$q.log" "$BIN"
        PIDS+=("$VIGIL_PID")
    done
    sleep 3   # elections, then 100 ms of idleness before groups quiesce
    for pid in "${PIDS[@]}"; do before=$((before + $(cpu_ticks "$pid"))); done
    sleep "$SECONDS_IDLE"
    for pid in "${PIDS[@]}"; do after=$((after + $(cpu_ticks "$pid"))); done
    for pid in "${PIDS[@]}"; do kill -INT "$pid"; wait "$pid" || true; done
    PIDS=()
    local dg
    dg=$(cat "$OUT"/node*-"$q".log | grep -o "peer: out messages [0-9]* datagrams [0-9]*" | awk '{s += $6} END {print s + 0}')
    echo "$(python3 -c "print(($after - $before) / $(getconf CLK_TCK))") $dg"
}

echo "== $PARTITIONS partitions on three nodes, idle for $SECONDS_IDLE s"
read -r cpu_on dg_on < <(run_mode true)
read -r cpu_off dg_off < <(run_mode false)
echo
printf '  %-34s %14s %14s %8s\n' "" "quiesce off" "quiesce on" "ratio"
printf '  %-34s %14s %14s %8s\n' "CPU s of 3 nodes over ${SECONDS_IDLE} s idle" "$cpu_off" "$cpu_on" \
    "$(python3 -c "print(f'{$cpu_on / max($cpu_off, 1e-9):.3f}')")"
printf '  %-34s %14s %14s %8s\n' "peer datagrams sent (whole run)" "$dg_off" "$dg_on" \
    "$(python3 -c "print(f'{$dg_on / max($dg_off, 1):.3f}')")"
info "everything under $OUT"
