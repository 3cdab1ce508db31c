# shellcheck shell=bash
# Shared helpers for Vigil's scripts: preflight lines, package installation, --dry-run.
# Sourced, not run. Every check prints one [OK], [WARN] or [FAIL] line so a newcomer sees what is
# wrong; VIGIL_OKS, VIGIL_WARNS and VIGIL_FAILS count them (scripts/deploy/ exits non-zero on a FAIL).

VIGIL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN="${DRY_RUN:-0}"

# Packages the build and the tests need (Debian bookworm names); shellcheck, systemd (systemd-analyze),
# pciutils (lspci) and util-linux (lsblk, findmnt) for scripts/deploy/ and tests/deploy_scripts.rs.
VIGIL_PACKAGES=(dpdk dpdk-dev libdpdk-dev pkg-config clang libclang-dev iproute2 iputils-ping kmod procps python3 python3-venv chromium protobuf-compiler fio ethtool redis-tools curl prometheus shellcheck systemd pciutils util-linux)

VIGIL_OKS=0
VIGIL_WARNS=0
VIGIL_FAILS=0
ok()   { VIGIL_OKS=$((VIGIL_OKS + 1)); printf '[OK]   %s\n' "$*"; }
warn() { VIGIL_WARNS=$((VIGIL_WARNS + 1)); printf '[WARN] %s\n' "$*"; }
fail() { VIGIL_FAILS=$((VIGIL_FAILS + 1)); printf '[FAIL] %s\n' "$*"; }
info() { printf '       %s\n' "$*"; }
die()  { fail "$*"; exit 1; }

# Runs a command, or only prints it under --dry-run.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '       (dry run) %s\n' "$*"
    else
        "$@"
    fi
}

is_root() { [ "$(id -u)" = 0 ]; }

# Installs whichever of VIGIL_PACKAGES are missing (needs root and apt).
ensure_packages() {
    local missing=()
    for p in "${VIGIL_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        ok "packages present: ${VIGIL_PACKAGES[*]}"
        return 0
    fi
    if ! is_root; then
        fail "missing packages: ${missing[*]}"
        info "install them as root: apt-get install -y ${missing[*]}"
        return 1
    fi
    info "installing missing packages: ${missing[*]}"
    run env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
    ok "installed: ${missing[*]}"
}

# The Python packages from PyPI the tests use, in a virtual environment of their own (target/py):
# `redis` for the RESP tests' redis-py client (tests/serve_resp.rs) and `blake3` for the README's
# signed-datagram example (tests/readme_python.rs); nothing is installed into the system's Python.
VIGIL_PYTHON_PACKAGES=(redis blake3)
ensure_python_packages() {
    local py="$VIGIL_ROOT/target/py" modules
    modules=$(IFS=,; echo "${VIGIL_PYTHON_PACKAGES[*]}")
    if [ -x "$py/bin/python3" ] && "$py/bin/python3" -c "import $modules" 2>/dev/null; then
        ok "python packages in target/py: ${VIGIL_PYTHON_PACKAGES[*]}"
        return 0
    fi
    run python3 -m venv "$py" || die "python3 -m venv target/py failed"
    # `python3 -m pip`, not bin/pip: a copied venv's scripts still name the python of the old place.
    run "$py/bin/python3" -m pip install -q "${VIGIL_PYTHON_PACKAGES[@]}" \
        || die "pip install ${VIGIL_PYTHON_PACKAGES[*]} (into target/py) failed"
    ok "installed ${VIGIL_PYTHON_PACKAGES[*]} into target/py"
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if command -v cargo >/dev/null 2>&1; then
        ok "rust: $(cargo --version)"
    else
        die "cargo not found: install Rust (https://rustup.rs) and run again"
    fi
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null 2>&1; then
            run rustup component add rustfmt clippy >/dev/null 2>&1 || die "rustup component add rustfmt clippy failed"
        else
            die "cargo fmt / cargo clippy missing and no rustup to add them"
        fi
    fi
    ok "rustfmt and clippy present"
}

check_dpdk() {
    if pkg-config --exists libdpdk 2>/dev/null; then
        ok "DPDK $(pkg-config --modversion libdpdk) (pkg-config libdpdk)"
    else
        fail "DPDK not found by pkg-config (apt-get install libdpdk-dev)"
        return 1
    fi
}

check_root() {
    if is_root; then
        ok "running as root (DPDK vdevs, tap devices)"
    else
        fail "not root: DPDK needs root here; $1"
        return 1
    fi
}

parse_common_flags() {
    for arg in "$@"; do
        case "$arg" in
            --dry-run) DRY_RUN=1 ;;
        esac
    done
}

# Ends a process this script started ($1 = its pid; empty or gone: nothing): SIGINT, up to 10 s,
# then SIGKILL.
stop_pid() {
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

# The benchmarks' storage preflight: fio present, two cores, and $1 (created) on a real filesystem
# (O_DIRECT and durability).
check_bench_storage() {
    local dir=$1 fs
    command -v fio >/dev/null || die "fio missing (apt-get install fio)"
    ok "fio: $(fio --version)"
    [ "$(nproc)" -ge 2 ] || die "needs 2 cores (one server core, one load-generator core)"
    ok "$(nproc) cores: vigil's shard on core $SERVER_CORE, load generator on core $LOADGEN_CORE"
    mkdir -p "$dir"
    fs=$(stat -f -c %T "$dir")
    case "$fs" in
        tmpfs|ramfs) die "DATA_DIR $dir is on $fs: O_DIRECT and durability need a real filesystem" ;;
        *) ok "DATA_DIR $dir on $fs ($(df -P "$dir" | awk 'NR==2 {print $1}'))" ;;
    esac
}

# Writes $1, a benchmark's config derived from config/dev.toml: port $2, the shard on core $3, the
# store in $4, and the [storage] line $5 (e.g. `durable_mode = "dsync"`) after its backend line;
# dies if the template no longer has the lines it edits.
derive_dev_config() {
    local out=$1 port=$2 core=$3 dir=$4 extra=$5
    sed -e "s|^port = 9000|port = $port|" -e "s|^cores = \[\]|cores = [$core]|" \
        -e "s|^web_listen = .*|web_listen = []|" \
        -e "s|^dir = .*|dir = \"$dir\"|" \
        -e "s|^backend = \"uring\".*|backend = \"uring\"\n$extra|" \
        config/dev.toml > "$out"
    grep -qxF "$extra" "$out" || die "could not derive $out from config/dev.toml (no [storage] backend line?)"
    grep -q "^port = $port" "$out" || die "could not derive $out from config/dev.toml (no net.port line?)"
}

# Builds vigil and the load generator (release), unless SKIP_BUILD=1.
build_bench_bins() {
    echo "== build (release)"
    if [ "${SKIP_BUILD:-0}" = 1 ]; then
        info "SKIP_BUILD=1: using target/release/vigil and target/release/vigil-loadgen as they are"
    else
        run cargo build --release --locked -p vigil -p vigil-bench --bins
    fi
}

# Starts `target/release/vigil serve --config $1` (or the binary $3) in the background, its output
# to $2, and waits until it says it is ready; sets VIGIL_PID (dies, showing the log, if it exits or
# never gets ready).
start_vigil() {
    local config=$1 log=$2 bin=${3:-target/release/vigil}
    : > "$log"  # exists before the first grep below (the child creates it only when it runs)
    "$bin" serve --config "$config" > "$log" 2>&1 &
    VIGIL_PID=$!
    for _ in $(seq 1 600); do
        grep -q "vigil: ready:" "$log" && return 0
        kill -0 "$VIGIL_PID" 2>/dev/null || { cat "$log"; die "vigil exited while starting"; }
        sleep 0.1
    done
    cat "$log"
    die "vigil did not start"
}

# The processes a benchmark started (PIDS), stopped by PID however it exits.
bench_stop_pids_on_exit() {
    PIDS=()
    trap 'for pid in "${PIDS[@]}"; do stop_pid "$pid"; done' EXIT INT TERM
}

# A durable-storage benchmark's preflight: root, packages, $1 on a real filesystem, the release
# binaries.
bench_storage_preflight() {
    echo "== preflight"
    check_root "O_DIRECT files and the storage check" || exit 1
    ensure_packages
    check_bench_storage "$1"
    build_bench_bins
}

# Writes $1: a one-shard node on kernel UDP 127.0.0.1:$2 (shard on cores $3, "" for unpinned),
# no TCP, a durable io_uring log (dsync) in $4: the benchmarks' node, to which they append sections.
bench_uring_node_toml() {
    cat > "$1" <<CONF
[node]
shards = 1
cores = [$3]
[net]
backend = "kernel"
port = $2
[kernel]
bind_ip = "127.0.0.1"
[tcp]
enabled = false
[auth]
anonymous = "read-write"
[storage]
backend = "uring"
durable_mode = "dsync"
dir = "$4"
segment_blocks = 256
segment_count = 64
CONF
}

