# Peer: Vigil itself, `vigil serve` on config/dpdk-memif.toml (one shard on SERVER_CORE), answering
# real PING requests through its whole path (IPv4/UDP checks, protocol v1, dispatch, a new frame).
# Sourced by bench/peers/run; defines PEER_LABEL, peer_start, peer_stop, peer_loadgen_args.

PEER_LABEL="Vigil PING"

peer_start() {
    sed -e "s|socket=/tmp/vigil-memif.sock|socket=$SOCK|" -e "s|cores = \[1\]|cores = [$SERVER_CORE]|" \
        -e "s|main_lcore = 0|main_lcore = $LOADGEN_CORE|" -e "s|fallback = \"kernel\"|fallback = \"none\"|" \
        -e "s|file_prefix = \"vigil-memif\"|file_prefix = \"vigil-bench-$$\"|" config/dpdk-memif.toml > "$OUT/vigil.toml"
    target/release/vigil serve --config "$OUT/vigil.toml" > "$OUT/vigil.log" 2>&1 &
    PEER_PID=$!
    for _ in $(seq 1 200); do grep -q "vigil: ready:" "$OUT/vigil.log" && return 0; sleep 0.1; done
    cat "$OUT/vigil.log"; die "vigil did not start"
}

peer_stop() {
    kill -INT "$PEER_PID"; wait "$PEER_PID" || true; PEER_PID=""
    sed -n '/final counters/,$p' "$OUT/vigil.log" | sed 's/^/       /'
}

peer_loadgen_args() { echo ""; }
