#!/usr/bin/env bash
# Durable SETs with the log in each place Vigil can keep it, on the same disk, in one run
# (docs/BENCHMARKS.md, "Where the log lives"): one file per partition (io_uring), a raw block device
# (io_uring on a loop device over a file, `storage.device`), and an NVMe namespace through SPDK's
# user-space driver (`storage.backend = "spdk"`, a Vigil built with `--features spdk`), the
# namespace exported over NVMe/TCP on loopback by SPDK's nvmf_tgt from an AIO bdev over a file.
# All three files sit in DATA_DIR, so the same filesystem and disk take every write.
#
# For each place and each rate in RATES: a fresh store (`vigil format` for the two devices), one
# shard pinned to SERVER_CORE on kernel sockets (loopback), `vigil-loadgen` on LOADGEN_CORE offering
# that rate open loop for SECONDS_RUN s, one SET per datagram (each answered once durable). Then a
# restart on the last run's log must find every key the node reported. Prints achieved rate and
# p50/p99 per place and rate, with ratios to the files run; keeps everything under OUT.
#
# What the SPDK figure is on this machine: a real NVMe controller, but over TCP to a target whose
# namespace is a file (each write: Vigil -> NVMe/TCP -> nvmf_tgt -> AIO O_DIRECT on the file);
# nvmf_tgt busy-polls LOADGEN_CORE. It shows the backend's path works under load and what it costs
# here, not what SPDK gives on a local PCIe drive (docs/DEPLOY.md, "SPDK").
#
#   sudo SPDK_RPC=/path/to/spdk/scripts/rpc.py bench/log-devices.sh     # ~2 minutes, SPDK built
#   PLACES="files device" sudo -E bench/log-devices.sh                  # without SPDK
#   bench/log-devices.sh --dry-run
set -euo pipefail
source "$(cd "$(dirname "$0")" && pwd)/../scripts/lib.sh"
parse_common_flags "$@"
cd "$VIGIL_ROOT"

PLACES="${PLACES:-files device spdk}"  # which log places to run
RATES="${RATES:-1000 10000}"          # offered SET/s, one run each
SECONDS_RUN="${SECONDS_RUN:-10}"
KEYS="${KEYS:-10000}"
VALUE_BYTES="${VALUE_BYTES:-16}"
PORT="${PORT:-9480}"
SERVER_CORE="${SERVER_CORE:-1}"
LOADGEN_CORE="${LOADGEN_CORE:-0}"
DATA_DIR="${DATA_DIR:-$VIGIL_ROOT/target/log-devices}"
OUT="${OUT:-$(mktemp -d /tmp/vigil-log-devices.XXXXXX)}"
SPDK_RPC="${SPDK_RPC:-}"                 # scripts/rpc.py of the SPDK tree nvmf_tgt came from
NVMF_TGT="${NVMF_TGT:-/usr/local/bin/nvmf_tgt}"
export PKG_CONFIG_PATH="/usr/local/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
BIN=target/spdk/release/vigil              # one binary for every place (built with SPDK when asked)
DEVICE_BYTES=$(( 512 << 20 ))
mkdir -p "$OUT"
VIGIL_PID="" LOADGEN_PID="" TGT_PID="" LOOP=""

cleanup() {
    stop_pid "$LOADGEN_PID"
    stop_pid "$VIGIL_PID"
    stop_pid "$TGT_PID"
    [ -z "$LOOP" ] || losetup -d "$LOOP" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

echo "== preflight"
check_root "loop devices, O_DIRECT and SPDK" || exit 1
check_bench_storage "$DATA_DIR"
features=()
if [[ " $PLACES " == *" spdk "* ]]; then
    [ -x "$NVMF_TGT" ] || die "nvmf_tgt not found at $NVMF_TGT (SPDK v24.01 built and installed: docs/DEPLOY.md, \"SPDK\")"
    [ -n "$SPDK_RPC" ] && [ -f "$SPDK_RPC" ] || die "SPDK_RPC must name scripts/rpc.py of the SPDK tree (PLACES=\"files device\" runs without SPDK)"
    pkg-config --exists spdk_nvme || die "SPDK's pkg-config files are not on PKG_CONFIG_PATH"
    features=(--features spdk)
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    run cargo build --release --locked -p vigil --bin vigil --target-dir target/spdk "${features[@]}"
    run cargo build --release --locked -p vigil-bench --bins
fi
if [ "$DRY_RUN" = 1 ]; then
    echo "== (dry run) would run $PLACES at ${RATES// /, } SET/s for $SECONDS_RUN s each; results under $OUT"
    exit 0
fi

# $1 = place: the node's config in $OUT/$1.toml.
write_config() {
    bench_uring_node_toml "$OUT/$1.toml" "$PORT" "$SERVER_CORE" "$DATA_DIR/$1"
    case $1 in
        device) sed -i "s|^dir = .*|&\ndevice = \"$LOOP\"|" "$OUT/$1.toml" ;;
        spdk)
            sed -i -e 's|^backend = "uring"|backend = "spdk"|' -e '/^durable_mode/d' "$OUT/$1.toml"
            printf '[storage.spdk]\ntransport_id = "%s"\nnamespace_id = 1\nno_huge = true\nmem_size_mb = 512\n' \
                "$TRID" >> "$OUT/$1.toml" ;;
    esac
}

# A fresh device behind $1's place: a blank loop device, or a new nvmf_tgt over a blank file.
fresh_device() {
    case $1 in
        device)
            [ -z "$LOOP" ] || losetup -d "$LOOP"
            rm -f "$DATA_DIR/device.img"; truncate -s "$DEVICE_BYTES" "$DATA_DIR/device.img"
            LOOP=$(losetup --find --show --direct-io=on "$DATA_DIR/device.img") ;;
        spdk)
            stop_pid "$TGT_PID"
            rm -f "$DATA_DIR/spdk.img" "$OUT/tgt.sock"; truncate -s "$DEVICE_BYTES" "$DATA_DIR/spdk.img"
            LD_LIBRARY_PATH=/usr/local/lib "$NVMF_TGT" --no-huge -s 1024 -m "$(printf '0x%x' $((1 << LOADGEN_CORE)))" \
                -u -r "$OUT/tgt.sock" --disable-cpumask-locks > "$OUT/nvmf_tgt.log" 2>&1 &
            TGT_PID=$!
            for _ in $(seq 1 300); do [ -S "$OUT/tgt.sock" ] && break; sleep 0.1; done
            local nqn=nqn.2016-06.io.spdk:vigil-bench tport=$((PORT + 1))
            rpc() { PYTHONPATH="$(dirname "$SPDK_RPC")/../python" python3 "$SPDK_RPC" -s "$OUT/tgt.sock" "$@" > /dev/null; }
            rpc nvmf_create_transport -t TCP
            rpc bdev_aio_create "$DATA_DIR/spdk.img" aio0 4096
            rpc nvmf_create_subsystem "$nqn" -a
            rpc nvmf_subsystem_add_ns "$nqn" aio0
            rpc nvmf_subsystem_add_listener "$nqn" -t tcp -a 127.0.0.1 -s "$tport"
            TRID="trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$tport subnqn:$nqn" ;;
    esac
}

run_place() {  # $1 = place
    local place=$1 rate
    for rate in $RATES; do
        echo "== $place at $rate SET/s"
        rm -rf "${DATA_DIR:?}/$place"
        fresh_device "$place"
        write_config "$place"
        if [ "$place" != files ]; then
            "$BIN" format --config "$OUT/$place.toml" > "$OUT/$place-$rate-format.log" 2>&1 \
                || { cat "$OUT/$place-$rate-format.log"; die "vigil format failed"; }
        fi
        start_vigil "$OUT/$place.toml" "$OUT/$place-$rate.log" "$BIN"
        taskset -c "$LOADGEN_CORE" target/release/vigil-loadgen --backend kernel --server "127.0.0.1:$PORT" \
            --op set --keys "$KEYS" --value-bytes "$VALUE_BYTES" --rate "$rate" --duration "$SECONDS_RUN" \
            --warmup 1 --json "$OUT/$place-$rate.json" --quiet > "$OUT/$place-$rate.txt" 2>&1 &
        LOADGEN_PID=$!
        local rc=0
        wait "$LOADGEN_PID" || rc=$?
        LOADGEN_PID=""
        [ "$rc" = 0 ] && [ -s "$OUT/$place-$rate.json" ] || die "vigil-loadgen failed (status $rc): $OUT/$place-$rate.txt"
        stop_pid "$VIGIL_PID"
        wait "$VIGIL_PID" 2>/dev/null || true
        VIGIL_PID=""
    done
    # The last run's store again: every key the node reported at its stop must be recovered.
    start_vigil "$OUT/$place.toml" "$OUT/$place-restart.log" "$BIN"
    stop_pid "$VIGIL_PID"
    wait "$VIGIL_PID" 2>/dev/null || true
    VIGIL_PID=""
    python3 - "$OUT/$place-$rate.log" "$OUT/$place-restart.log" "$place" <<'PY'
import re, sys
before, after, place = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3]
keys = int(re.search(r"partition 0: keys (\d+)", before).group(1))
got = int(re.search(r"replayed \d+ entries to index \d+ .*?, (\d+) keys", after).group(1))
print(f"[{'OK' if got == keys else 'FAIL'}]   {place}: restart recovered {got} keys; the node reported {keys} at its stop")
raise SystemExit(0 if got == keys else 1)
PY
}

for place in $PLACES; do run_place "$place"; done

echo
echo "== results (one shard on core $SERVER_CORE, kernel sockets on loopback, $VALUE_BYTES-byte values; in $OUT)"
python3 - "$OUT" "$PLACES" $RATES <<'PY'
import json, sys
out, places, rates = sys.argv[1], sys.argv[2].split(), [int(r) for r in sys.argv[3:]]
names = {"files": "io_uring, one file per partition", "device": "io_uring, raw block device (loop)",
         "spdk": "SPDK NVMe driver (NVMe/TCP to nvmf_tgt, AIO bdev)"}
print("| log | offered | achieved | p50 | p99 | p50 / files | p99 / files | lost |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
res = {p: {r: json.load(open(f"{out}/{p}-{r}.json")) for r in rates} for p in places}
for r in rates:
    base = res.get("files", {}).get(r)
    for p in places:
        d = res[p][r]; l = d["latency_ns"]
        rel = (f"{l['p50'] / base['latency_ns']['p50']:.2f} | {l['p99'] / base['latency_ns']['p99']:.2f}"
               if base else "- | -")
        print(f"| {names[p]} | {r:,}/s | {d['achieved_rps']:,.0f}/s | {l['p50']/1e3:,.0f} us | {l['p99']/1e3:,.0f} us "
              f"| {rel} | {d['timeouts'] + d['errors']} of {d['sent']:,} |")
PY
