# Peer: dpdk-testpmd in 5tswap forwarding mode, the link's limit. It swaps the MAC, IP and UDP
# addresses of each frame and sends it straight back: the least any server on this link can do.
# The load generator takes the returned requests as answers (--reflector), addressed to the MAC
# below (testpmd does not answer ARP).
# Sourced by bench/peers/run; defines PEER_LABEL, peer_start, peer_stop, peer_loadgen_args.

PEER_LABEL="dpdk-testpmd 5tswap (link limit)"
TESTPMD_MAC="02:56:47:00:00:09"

peer_start() {
    rm -f "$OUT/tp.in"; mkfifo "$OUT/tp.in"
    dpdk-testpmd -l "$LOADGEN_CORE,$SERVER_CORE" --no-huge -m 512 --no-pci --no-telemetry \
        --file-prefix "vigil-bench-tpmd-$$" \
        --vdev "net_memif0,role=server,socket=$SOCK,id=0,mac=$TESTPMD_MAC" \
        -- -i --total-num-mbufs=16384 < "$OUT/tp.in" > "$OUT/testpmd.log" 2>&1 &
    PEER_PID=$!
    exec 7>"$OUT/tp.in"
    echo "set fwd 5tswap" >&7; echo "start" >&7
    sleep 1
}

peer_stop() {
    echo "stop" >&7; sleep 0.5; echo "quit" >&7; exec 7>&-
    for _ in $(seq 1 50); do kill -0 "$PEER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PEER_PID" 2>/dev/null || true
    PEER_PID=""
}

peer_loadgen_args() { echo "--reflector --server-mac $TESTPMD_MAC"; }
