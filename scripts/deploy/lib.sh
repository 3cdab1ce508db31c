# shellcheck shell=bash source-path=SCRIPTDIR
# shellcheck disable=SC2034  # the CFG_* variables are set here for the scripts that source this file
# Shared helpers of the bare-metal deployment scripts (scripts/deploy/: preflight, hugepages, bind,
# unbind, tune, install). Sourced, not run; it sources scripts/lib.sh (ok/warn/fail/info/die, run,
# parse_common_flags and --dry-run) and adds what only deployment needs: the flags every deploy
# script takes, the Vigil config read with python3's tomllib, CPU lists, PCI devices in sysfs, the
# safety checks that keep `bind` off a device the machine itself depends on, and the state files
# under /var/lib/vigil/deploy/ that make every change reversible.
#
# Conventions: each check prints one [OK]/[WARN]/[FAIL] line named `check: detail` (further lines are
# indented info); FAIL means the config cannot run as written (or a change failed), WARN that it runs
# but not as a bare-metal node should; `deploy_finish` exits 1 when any check failed. Every change goes
# through `run` or `put` (printed, not done, under --dry-run) and is recorded in a state file first.

# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DEPLOY_SCRIPT=$(basename "$0")
CONFIG=/etc/vigil/vigil.toml          # --config
CONFIG_GIVEN=0                        # 1 when --config was passed (a missing file is then an error)
STATE_DIR=${VIGIL_DEPLOY_STATE_DIR:-/var/lib/vigil/deploy}  # --state-dir
NIC_FLAGS=()                          # --nic ADDR (repeatable)
NVME_FLAGS=()                         # --nvme ADDR (repeatable)
PCI_RE='^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$'

# ---------------------------------------------------------------------------------------------
# Flags

# Dies unless the flag $1 has a value $2.
need_value() {
    if [ $# -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
        die "$1 needs a value (see $DEPLOY_SCRIPT --help)"
    fi
}

# Parses the flags every deploy script takes (--help, --dry-run, --config, --state-dir, and --nic /
# --nvme where the script defines DEPLOY_TAKES_DEVICES=1); any other flag goes to the script's own
# `script_flag "$@"`, which sets DEPLOY_SHIFT to the words it took or returns 1 for an unknown flag.
# The script defines `usage` (its --help text).
deploy_parse_flags() {
    parse_common_flags "$@"
    while [ $# -gt 0 ]; do
        DEPLOY_SHIFT=1
        case "$1" in
            -h|--help) usage; exit 0 ;;
            --dry-run) DRY_RUN=1 ;;
            --config) need_value "$@"; CONFIG=$2; CONFIG_GIVEN=1; DEPLOY_SHIFT=2 ;;
            --config=*) CONFIG=${1#*=}; CONFIG_GIVEN=1 ;;
            --state-dir) need_value "$@"; STATE_DIR=$2; DEPLOY_SHIFT=2 ;;
            --state-dir=*) STATE_DIR=${1#*=} ;;
            --nic|--nvme)
                [ "${DEPLOY_TAKES_DEVICES:-0}" = 1 ] || die "unknown option: $1 (see $DEPLOY_SCRIPT --help)"
                need_value "$@"
                if [ "$1" = --nic ]; then NIC_FLAGS+=("$2"); else NVME_FLAGS+=("$2"); fi
                DEPLOY_SHIFT=2 ;;
            *)
                if ! declare -F script_flag >/dev/null || ! script_flag "$@"; then
                    die "unknown option: $1 (see $DEPLOY_SCRIPT --help)"
                fi ;;
        esac
        shift "$DEPLOY_SHIFT"
    done
    if [ "$DRY_RUN" = 1 ]; then
        info "dry run: nothing is changed; the commands a real run would use are printed"
    fi
}

# The --help lines every deploy script shares (printed inside each usage).
common_usage() {
    cat <<'EOF'
Common options:
  --config FILE     the Vigil config to read (default /etc/vigil/vigil.toml)
  --dry-run         print what would be done (the commands, the files), change nothing
  --state-dir DIR   where the saved state for undo lives (default /var/lib/vigil/deploy,
                    or $VIGIL_DEPLOY_STATE_DIR)
  -h, --help        this text
Output: one [OK], [WARN] or [FAIL] line per check; the exit status is 1 when any check failed.
EOF
}

# Prints the counts and exits: 1 when any check failed.
deploy_finish() {
    local what=${1:-$DEPLOY_SCRIPT}
    echo "== $what: $VIGIL_OKS ok, $VIGIL_WARNS warning(s), $VIGIL_FAILS failure(s)$([ "$DRY_RUN" = 1 ] && echo ' (dry run: nothing changed)')"
    [ "$VIGIL_FAILS" = 0 ] || exit 1
    exit 0
}

# Dies unless root (and not under --dry-run, which only reads).
require_root_unless_dry_run() {
    if [ "$DRY_RUN" != 1 ] && ! is_root; then
        die "$DEPLOY_SCRIPT changes the system: run it as root (or with --dry-run to see what it would do)"
    fi
}

# ---------------------------------------------------------------------------------------------
# Changes: files, sysfs, state

# Writes $1 into the file $2 (sysfs, procfs), or prints it under --dry-run; returns the write's status.
put() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '       (dry run) echo %s > %s\n' "$1" "$2"
        return 0
    fi
    printf '%s\n' "$1" 2>/dev/null >"$2"
}

# Runs a command with its output kept back (shown when it fails), or prints it under --dry-run.
run_quiet() {
    local out rc=0
    if [ "$DRY_RUN" = 1 ]; then
        run "$@"
        return 0
    fi
    out=$("$@" 2>&1) || rc=$?
    if [ "$rc" != 0 ] && [ -n "$out" ]; then info "$*: $out"; fi
    return "$rc"
}

# Reads the first line of a file, or prints $2 (default empty) when it cannot be read.
read_first() {
    local line
    if [ -r "$1" ] && IFS= read -r line <"$1" 2>/dev/null; then
        printf '%s\n' "$line"
    else
        printf '%s\n' "${2-}"
    fi
}

# State files: one `key value...` record per line in $STATE_DIR/$1.state, written before the change
# they allow undoing, so an interrupted run can still be undone.
state_file() { printf '%s/%s.state\n' "$STATE_DIR" "$1"; }

# The records of state $1 whose first word is $2 (all when $2 is empty).
state_get() {
    local f
    f=$(state_file "$1")
    [ -f "$f" ] || return 0
    if [ -n "${2-}" ]; then
        awk -v k="$2" '$1 == k' "$f"
    else
        cat "$f"
    fi
}

# Appends the record "$2 $3..." to state $1 unless a record starting with the same first two words
# is there already (the first saved value, the original, wins: running twice keeps it).
state_add() {
    local name=$1 f
    shift
    f=$(state_file "$name")
    if [ -f "$f" ] && awk -v k="$1" -v v="${2-}" '$1 == k && $2 == v { found = 1 } END { exit !found }' "$f"; then
        return 0
    fi
    [ "$DRY_RUN" = 1 ] && return 0
    mkdir -p "$STATE_DIR"
    printf '%s\n' "$*" >>"$f"
}

# Removes the records of state $1 whose first two words are $2 $3; the file goes when empty.
state_del() {
    local f tmp
    f=$(state_file "$1")
    [ -f "$f" ] || return 0
    [ "$DRY_RUN" = 1 ] && return 0
    tmp="$f.tmp.$$"
    awk -v k="$2" -v v="${3-}" '!($1 == k && $2 == v)' "$f" >"$tmp"
    mv "$tmp" "$f"
    grep -q . "$f" || rm -f "$f"
}

# Removes state $1 entirely.
state_clear() {
    local f
    f=$(state_file "$1")
    [ -f "$f" ] || return 0
    run rm -f "$f"
}

# This boot's id: runtime state (IRQ affinity, hugepage counts, mounts) from another boot is void.
boot_id() { read_first /proc/sys/kernel/random/boot_id unknown; }

# Drops the records of state $1 made in another boot (all but those whose first word is in $2...),
# saying so: the reboot already undid them.
state_forget_other_boots() {
    local name=$1 f saved keep
    shift
    f=$(state_file "$name")
    [ -f "$f" ] || return 0
    saved=$(awk '$1 == "boot" { print $2 }' "$f" | tail -n 1)
    [ -n "$saved" ] && [ "$saved" != "$(boot_id)" ] || return 0
    keep=" $* "
    info "state $f is from an earlier boot: its runtime records are void (the reboot reset them)"
    [ "$DRY_RUN" = 1 ] && return 0
    awk -v keep="$keep" 'index(keep, " " $1 " ") > 0' "$f" >"$f.tmp.$$"
    mv "$f.tmp.$$" "$f"
    grep -q . "$f" || rm -f "$f"
}

# Marks state $1 as made in this boot.
state_mark_boot() {
    local f
    f=$(state_file "$1")
    if [ -f "$f" ] && awk -v b="$(boot_id)" '$1 == "boot" && $2 == b { found = 1 } END { exit !found }' "$f"; then
        return 0
    fi
    if [ "$DRY_RUN" = 1 ]; then return 0; fi
    mkdir -p "$STATE_DIR"
    if [ -f "$f" ]; then
        awk '$1 != "boot"' "$f" >"$f.tmp.$$"
        mv "$f.tmp.$$" "$f"
    fi
    printf 'boot %s\n' "$(boot_id)" >>"$f"
}

# ---------------------------------------------------------------------------------------------
# The Vigil config (read with python3's tomllib, never grepped)

CFG_ERROR=""        # why the config could not be read ("" when it was)
CFG_LOADED=0
CFG_BACKEND=""      # net.backend: kernel | dpdk
CFG_FALLBACK=""     # net.fallback
CFG_SHARDS=""       # node.shards
CFG_CORES=()        # node.cores
CFG_DPDK=0          # 1 when there is a [dpdk] table
CFG_DPDK_PORT=""    # dpdk.port
CFG_VDEVS=()        # dpdk.vdevs
CFG_NO_PCI=false    # dpdk.no_pci
CFG_NO_HUGE=false   # dpdk.no_huge
CFG_MEMORY_MB=512   # dpdk.memory_mb
CFG_MAIN_LCORE=0    # dpdk.main_lcore
CFG_NICS=()         # PCI addresses of the NICs the config names: "ADDR SOURCE-KEY"
CFG_STORAGE_BACKEND=""  # storage.backend
CFG_STORAGE_DIR=""      # storage.dir
CFG_STORAGE_DEVICE=""   # storage.device (backend "uring": the log on this raw block device)
CFG_SPDK_TRID=""        # storage.spdk.transport_id (read for backend "spdk" only)
CFG_SPDK_TRTYPE=""      # its trtype, lower case: pcie, tcp, rdma
CFG_SPDK_TRADDR=""      # its traddr, as written
CFG_SPDK_NSID=""        # storage.spdk.namespace_id
CFG_SPDK_NO_HUGE=false  # storage.spdk.no_huge
CFG_SPDK_MEM_MB=1024    # storage.spdk.mem_size_mb
CFG_NVMES=()            # PCI addresses of the NVMe controllers the config names: "ADDR SOURCE-KEY"

# The reader: prints key=value lines (lists as one line per item) or error=REASON.
read -r -d '' CONFIG_READER_PY <<'PY' || true
import re, sys
try:
    import tomllib
except ImportError:
    print("error=python3 %d.%d has no tomllib (3.11 or later is needed: Debian bookworm's python3)" % sys.version_info[:2])
    sys.exit(0)
path = sys.argv[1]
def out(key, value):
    print("%s=%s" % (key, str(value).replace("\n", " ")))
try:
    with open(path, "rb") as f:
        c = tomllib.load(f)
except OSError as e:
    out("error", "cannot read %s: %s" % (path, e.strerror))
    sys.exit(0)
except tomllib.TOMLDecodeError as e:
    out("error", "%s does not parse as TOML: %s" % (path, e))
    sys.exit(0)
PCI = re.compile(r"^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")
def pci(text):
    m = PCI.match(text.split(",")[0].strip())
    if not m:
        return None
    return ("%s:%s:%s.%s" % (m.group(1) or "0000", m.group(2), m.group(3), m.group(4))).lower()
def table(name):
    t = c.get(name, {})
    return t if isinstance(t, dict) else {}
node, net, dpdk, storage = table("node"), table("net"), table("dpdk"), table("storage")
out("backend", net.get("backend", ""))
out("fallback", net.get("fallback", "none"))
out("shards", node.get("shards", ""))
for core in node.get("cores", []) if isinstance(node.get("cores"), list) else []:
    if isinstance(core, int) and not isinstance(core, bool) and core >= 0:
        out("core", core)
    else:
        out("error", "node.cores holds %r, not a core number" % (core,))
out("dpdk", 1 if "dpdk" in c else 0)
if "dpdk" in c:
    port = str(dpdk.get("port", ""))
    out("dpdk_port", port)
    for vdev in dpdk.get("vdevs", []):
        out("vdev", vdev)
    out("no_pci", str(bool(dpdk.get("no_pci", False))).lower())
    out("no_huge", str(bool(dpdk.get("no_huge", False))).lower())
    out("memory_mb", int(dpdk.get("memory_mb", 512)))
    out("main_lcore", int(dpdk.get("main_lcore", 0)))
    seen = []
    def nic(addr, source):
        if addr and addr not in seen:
            seen.append(addr)
            out("nic", "%s %s" % (addr, source))
    nic(pci(port), "dpdk.port")
    args = [str(a) for a in dpdk.get("extra_eal_args", [])]
    for i, a in enumerate(args):
        for flag in ("-a", "--allow", "-w", "--pci-whitelist"):
            value = None
            if a == flag and i + 1 < len(args):
                value = args[i + 1]
            elif a.startswith(flag + "=") and flag.startswith("--"):
                value = a[len(flag) + 1:]
            elif a.startswith(flag) and not flag.startswith("--") and len(a) > len(flag):
                value = a[len(flag):]
            if value is not None and pci(value):
                nic(pci(value), "dpdk.extra_eal_args (%s)" % flag)
out("storage_backend", storage.get("backend", ""))
out("storage_dir", storage.get("dir", ""))
out("storage_device", storage.get("device", ""))
spdk = storage.get("spdk", {})
if storage.get("backend") == "spdk" and isinstance(spdk, dict):
    # SPDK's transport ID: whitespace-separated key:value (or key=value) pairs, keys in any case.
    trid = str(spdk.get("transport_id", ""))
    fields = {}
    for word in trid.split():
        m = re.match(r"([^:=]+)[:=](.*)$", word)
        if m:
            fields.setdefault(m.group(1).lower(), m.group(2))
    out("spdk_trid", trid)
    out("spdk_trtype", fields.get("trtype", "").lower())
    out("spdk_traddr", fields.get("traddr", ""))
    out("spdk_nsid", spdk.get("namespace_id", ""))
    out("spdk_no_huge", "true" if spdk.get("no_huge", False) is True else "false")
    out("spdk_mem_mb", spdk.get("mem_size_mb", 1024))
    if fields.get("trtype", "").lower() == "pcie" and pci(fields.get("traddr", "")):
        out("nvme", "%s storage.spdk.transport_id" % pci(fields["traddr"]))
PY

# Reads $CONFIG into the CFG_* variables; returns 1 (with CFG_ERROR set) when it cannot.
load_config() {
    local line key value
    CFG_LOADED=0 CFG_ERROR=""
    CFG_CORES=() CFG_VDEVS=() CFG_NICS=() CFG_NVMES=()
    if ! command -v python3 >/dev/null 2>&1; then
        CFG_ERROR="python3 is missing (apt-get install python3): it reads the TOML config"
        return 1
    fi
    if [ ! -e "$CONFIG" ]; then
        CFG_ERROR="$CONFIG does not exist"
        return 1
    fi
    while IFS= read -r line; do
        key=${line%%=*}
        value=${line#*=}
        case "$key" in
            error) CFG_ERROR=${CFG_ERROR:+$CFG_ERROR; }$value ;;
            backend) CFG_BACKEND=$value ;;
            fallback) CFG_FALLBACK=$value ;;
            shards) CFG_SHARDS=$value ;;
            core) CFG_CORES+=("$value") ;;
            dpdk) CFG_DPDK=$value ;;
            dpdk_port) CFG_DPDK_PORT=$value ;;
            vdev) CFG_VDEVS+=("$value") ;;
            no_pci) CFG_NO_PCI=$value ;;
            no_huge) CFG_NO_HUGE=$value ;;
            memory_mb) CFG_MEMORY_MB=$value ;;
            main_lcore) CFG_MAIN_LCORE=$value ;;
            nic) CFG_NICS+=("$value") ;;
            storage_backend) CFG_STORAGE_BACKEND=$value ;;
            storage_dir) CFG_STORAGE_DIR=$value ;;
            storage_device) CFG_STORAGE_DEVICE=$value ;;
            spdk_trid) CFG_SPDK_TRID=$value ;;
            spdk_trtype) CFG_SPDK_TRTYPE=$value ;;
            spdk_traddr) CFG_SPDK_TRADDR=$value ;;
            spdk_nsid) CFG_SPDK_NSID=$value ;;
            spdk_no_huge) CFG_SPDK_NO_HUGE=$value ;;
            spdk_mem_mb) CFG_SPDK_MEM_MB=$value ;;
            nvme) CFG_NVMES+=("$value") ;;
        esac
    done < <(python3 -c "$CONFIG_READER_PY" "$CONFIG" 2>&1 || echo "error=python3 failed reading $CONFIG")
    [ -z "$CFG_ERROR" ] || return 1
    CFG_LOADED=1
}

# Loads the config for a script that can also work from flags alone: a missing default config is a
# [WARN] when devices were named with --nic/--nvme, else a [FAIL]; a config that does not parse is
# always a [FAIL]. Returns 1 when there is no config to use.
load_config_or_report() {
    if load_config; then
        ok "config: $CONFIG (net.backend = ${CFG_BACKEND:-?}, node.cores = [$(join_by , "${CFG_CORES[@]}")])"
        return 0
    fi
    if [ ! -e "$CONFIG" ] && [ "$CONFIG_GIVEN" = 0 ] && [ $((${#NIC_FLAGS[@]} + ${#NVME_FLAGS[@]})) -gt 0 ]; then
        warn "config: $CONFIG does not exist: only the devices named by --nic/--nvme are considered"
    else
        fail "config: $CFG_ERROR"
    fi
    return 1
}

# True when the config runs DPDK on hugepages.
# The hugepages the config's node maps, in MiB, and the key that says so: DPDK's EAL (which SPDK
# joins), else SPDK's own environment on a node with kernel sockets; 0 when neither uses them.
hugepages_need_mb() {
    if [ "$CFG_BACKEND" = dpdk ]; then
        if [ "$CFG_NO_HUGE" != true ]; then echo "$CFG_MEMORY_MB"; else echo 0; fi
    elif [ "$CFG_STORAGE_BACKEND" = spdk ] && [ "$CFG_SPDK_NO_HUGE" != true ]; then
        echo "$CFG_SPDK_MEM_MB"
    else
        echo 0
    fi
}
hugepages_need_key() { if [ "$CFG_BACKEND" = dpdk ]; then echo dpdk.memory_mb; else echo storage.spdk.mem_size_mb; fi; }
config_needs_hugepages() { [ "$(hugepages_need_mb)" -gt 0 ]; }

join_by() { local IFS=$1; shift; printf '%s' "$*"; }

# The arguments joined with "; " (items that hold "; " themselves stay whole).
join_items() {
    local out="" item
    for item in "$@"; do out+=${out:+; }$item; done
    printf '%s' "$out"
}

# ---------------------------------------------------------------------------------------------
# CPU lists ("0-3,8")

# One CPU number per line from a CPU list ("all": the online CPUs); flag words (isolcpus'
# "managed_irq,domain") are skipped.
cpulist_expand() {
    local part
    local IFS=,
    for part in $1; do
        if [ "$part" = all ]; then
            cpulist_expand "$(read_first /sys/devices/system/cpu/online 0)"
        elif [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
            seq "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
        elif [[ $part =~ ^[0-9]+$ ]]; then
            echo "$part"
        fi
    done
}

# A CPU list from CPU numbers (arguments, any order): "1 2 3 5" -> "1-3,5".
cpulist_compress() {
    [ $# -gt 0 ] || return 0
    printf '%s\n' "$@" | sort -n -u | awk '
        NR == 1 { start = $1; prev = $1; next }
        $1 == prev + 1 { prev = $1; next }
        { out = out sep (start == prev ? start : start "-" prev); sep = ","; start = $1; prev = $1 }
        END { if (NR) print out sep (start == prev ? start : start "-" prev) }'
}

# The CPUs of list $2 (numbers, space separated) missing from CPU list $1, space separated.
cpus_missing_from() {
    local have c out=()
    have=" $(cpulist_expand "$1" | tr '\n' ' ') "
    for c in $2; do
        case "$have" in *" $c "*) ;; *) out+=("$c") ;; esac
    done
    printf '%s' "${out[*]}"
}

# The online CPUs, one per line.
cpus_online() { cpulist_expand "$(read_first /sys/devices/system/cpu/online 0)"; }

# The value of kernel parameter $1 on the command line ("" when absent; the last one wins).
cmdline_param() {
    local word value=""
    for word in $(read_first /proc/cmdline); do
        case "$word" in "$1="*) value=${word#*=} ;; esac
    done
    printf '%s' "$value"
}

# The shard cores as a CPU list, and the housekeeping CPUs (online, not a shard core) as one.
shard_cpulist() { cpulist_compress "${CFG_CORES[@]}"; }
housekeeping_cpulist() {
    local c hk=() shards=" ${CFG_CORES[*]} "
    for c in $(cpus_online); do
        case "$shards" in *" $c "*) ;; *) hk+=("$c") ;; esac
    done
    cpulist_compress "${hk[@]}"
}

# The kernel command line that isolates the shard cores (for the operator to apply).
isolation_cmdline() {
    local shards hk
    shards=$(shard_cpulist)
    hk=$(housekeeping_cpulist)
    printf 'isolcpus=managed_irq,domain,%s nohz_full=%s rcu_nocbs=%s irqaffinity=%s' "$shards" "$shards" "$shards" "$hk"
}

# ---------------------------------------------------------------------------------------------
# PCI devices

# The sysfs the device checks read and bind writes: /sys, or $VIGIL_DEPLOY_SYSFS, a tree of the same
# shape (bus/pci, class/block, block, class/net, kernel/iommu_groups) that the tests build to stand
# for devices this machine lacks. CPUs, NUMA nodes and hugepages are always read from /sys.
SYS=${VIGIL_DEPLOY_SYSFS:-/sys}
PCI_SYS=$SYS/bus/pci/devices

# Normalises a PCI address (03:00.0 -> 0000:03:00.0); prints nothing for something else.
pci_normalize() {
    local a=$1
    [[ $a =~ $PCI_RE ]] || return 0
    [[ $a =~ ^[0-9a-fA-F]{4}: ]] || a="0000:$a"
    printf '%s' "${a,,}"
}

pci_exists() { [ -e "$PCI_SYS/$1" ]; }
pci_class() { read_first "$PCI_SYS/$1/class" "?"; }
pci_driver() {
    if [ -L "$PCI_SYS/$1/driver" ]; then basename "$(readlink "$PCI_SYS/$1/driver")"; else echo none; fi
}
pci_numa() { read_first "$PCI_SYS/$1/numa_node" -1; }
pci_numa_label() { local n; n=$(pci_numa "$1"); if [ "$n" = -1 ]; then echo "none reported"; else echo "$n"; fi; }
pci_iommu_group() {
    if [ -L "$PCI_SYS/$1/iommu_group" ]; then basename "$(readlink "$PCI_SYS/$1/iommu_group")"; fi
}
pci_is_nic() { case "$(pci_class "$1")" in 0x02*) return 0 ;; esac; return 1; }
pci_is_nvme() { [ "$(pci_class "$1")" = 0x010802 ]; }
pci_is_bridge() { case "$(pci_class "$1")" in 0x0604*|0x0600*) return 0 ;; esac; return 1; }

# A short description ("Ethernet controller: Intel ... 82599") from lspci, or the class code.
pci_describe() {
    local d=""
    if command -v lspci >/dev/null 2>&1; then
        d=$(lspci -s "$1" 2>/dev/null | sed 's/^[^ ]* //' | head -n 1)
    fi
    printf '%s' "${d:-class $(pci_class "$1")}"
}

# The PCI address a sysfs device path sits under (the deepest PCI component), or nothing.
sysfs_pci_of() {
    local path part addr=""
    path=$(readlink -f "$1" 2>/dev/null) || return 0
    local IFS=/
    for part in $path; do
        [[ $part =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] && addr=$part
    done
    printf '%s' "$addr"
}

# The network interfaces of PCI device $1 (also through virtio-N), space separated.
pci_net_ifaces() {
    local n out=()
    for n in "$SYS"/class/net/*; do
        [ -e "$n/device" ] || continue
        [ "$(sysfs_pci_of "$n/device")" = "$1" ] && out+=("$(basename "$n")")
    done
    printf '%s' "${out[*]}"
}

# The block devices (disks) of PCI device $1, as /dev paths, space separated.
pci_block_devs() {
    local b out=()
    for b in "$SYS"/block/*; do
        [ -e "$b/device" ] || continue
        blockdev_pcis "$(readlink -f "$b")" | grep -xF "$1" >/dev/null && out+=("/dev/$(basename "$b")")
    done
    printf '%s' "${out[*]}"
}

# The sysfs directory of block device $1 (a /dev path, or a link to one such as /dev/disk/by-id/...),
# disk or partition; nothing when $1 is not a block device this sysfs knows.
blockdev_sysfs() {
    local real
    real=$(readlink -f "$1" 2>/dev/null) || return 0
    [ -b "$real" ] && [ -e "$SYS/class/block/$(basename "$real")" ] || return 0
    readlink -f "$SYS/class/block/$(basename "$real")"
}

# The PCI addresses of the controllers beneath the block device whose sysfs directory is $1, one per
# line: the PCI device in its path; for an NVMe namespace under native multipath
# (.../nvme-subsystem/nvme-subsysN/nvmeXnY) the controllers its subsystem links to; for a stacked
# device (LVM, RAID, dm-crypt) those of the devices beneath it (slaves). Nothing for a loop device.
blockdev_pcis() {
    local d=$1 addr c
    [ -e "$d/partition" ] && d=$(dirname "$d")
    addr=$(sysfs_pci_of "$d")
    if [ -n "$addr" ]; then
        echo "$addr"
        return 0
    fi
    case "$d" in
        */nvme-subsystem/*)
            for c in "$(dirname "$d")"/nvme[0-9]*; do
                [ -L "$c" ] || continue
                addr=$(sysfs_pci_of "$c")
                [ -n "$addr" ] && echo "$addr"
            done ;;
    esac
    for c in "$d"/slaves/*; do
        [ -e "$c" ] && blockdev_pcis "$(readlink -f "$c")"
    done
    return 0
}

# The PCI controllers holding storage.device, one per line (nothing without one, or when it is not a
# block device here).
storage_device_pcis() {
    local d
    [ -n "$CFG_STORAGE_DEVICE" ] || return 0
    d=$(blockdev_sysfs "$CFG_STORAGE_DEVICE")
    [ -n "$d" ] || return 0
    blockdev_pcis "$d" | sort -u
}

# What of block device $1 (and its partitions, LVM, RAID above it) is mounted or swap: "DEV on
# TARGET" items separated by "; ", nothing when none.
blockdev_mounts() {
    local name target out=()
    while IFS= read -r name; do
        [ -n "$name" ] || continue
        while IFS= read -r target; do
            [ -n "$target" ] && out+=("$name on $target")
        done < <(findmnt -rn -o TARGET -S "$name" 2>/dev/null || true)
        if awk -v d="$name" 'NR > 1 && $1 == d { found = 1 } END { exit !found }' /proc/swaps 2>/dev/null; then
            out+=("$name as swap")
        fi
    done < <(lsblk -nrpo NAME "$1" 2>/dev/null || echo "$1")
    join_items "${out[@]}"
}

# The devices stacked on block device $1 or its partitions (LVM, RAID, dm-crypt), space separated.
blockdev_holders() {
    local b=$SYS/block/${1#/dev/} h out=()
    for h in "$b"/holders/* "$b"/*/holders/*; do
        [ -e "$h" ] && out+=("$(basename "$h")")
    done
    printf '%s' "${out[*]}"
}

# Interfaces that carry a default route (IPv4 or IPv6), one per line.
default_route_ifaces() {
    { ip -o route show default 2>/dev/null; ip -o -6 route show default 2>/dev/null; } |
        awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }' | sort -u
}

# The PCI devices beneath interface $1 (itself, or the ports of a bridge, bond, VLAN), one per line.
iface_pci_devices() {
    local n=$SYS/class/net/$1 lower addr
    [ -e "$n" ] || return 0
    if [ -e "$n/device" ]; then
        addr=$(sysfs_pci_of "$n/device")
        [ -n "$addr" ] && echo "$addr"
    fi
    for lower in "$n"/lower_* "$n"/brif/*; do
        [ -e "$lower" ] || continue
        lower=$(basename "$lower")
        iface_pci_devices "${lower#lower_}"
    done
}

# Why PCI device $1 must not be taken from the kernel ("" when nothing forbids it): it carries the
# default route, one of its block devices is mounted (or swap) or holds LVM, RAID or dm-crypt, or it
# holds storage.device (the log, which io_uring reaches through the kernel's driver).
pci_refusal() {
    local a=$1 iface dev mounts holders reasons=()
    while IFS= read -r iface; do
        [ -n "$iface" ] || continue
        if iface_pci_devices "$iface" | grep -qxF "$a"; then
            reasons+=("it carries the default route (dev $iface): binding it would cut this machine off the network")
        fi
    done < <(default_route_ifaces)
    for dev in $(pci_block_devs "$a"); do
        mounts=$(blockdev_mounts "$dev")
        [ -n "$mounts" ] && reasons+=("it holds a mounted file system ($mounts): unmount it first")
        holders=$(blockdev_holders "$dev")
        [ -n "$holders" ] && reasons+=("$dev is part of $holders (LVM, RAID, dm-crypt): take it out first")
    done
    if [ -n "$CFG_STORAGE_DEVICE" ] && storage_device_pcis | grep -xF "$a" >/dev/null; then
        reasons+=("it holds storage.device = $CFG_STORAGE_DEVICE (the log, written through io_uring and the kernel's driver): binding it would take the log from the node (storage.backend = \"spdk\" is the way to drive it from user space)")
    fi
    join_items "${reasons[@]}"
}

# The devices to act on: the config's NICs and NVMe controller (storage.spdk.transport_id with
# trtype PCIe), then --nic and --nvme; fills DEV_ADDRS, DEV_ROLES (nic|nvme) and DEV_SOURCES. A
# malformed address is a [FAIL].
DEV_ADDRS=() DEV_ROLES=() DEV_SOURCES=()
collect_devices() {
    local entry addr a
    DEV_ADDRS=() DEV_ROLES=() DEV_SOURCES=()
    for entry in "${CFG_NICS[@]}"; do device_add "${entry%% *}" nic "${entry#* }"; done
    for entry in "${CFG_NVMES[@]}"; do device_add "${entry%% *}" nvme "${entry#* }"; done
    for a in "${NIC_FLAGS[@]}"; do
        addr=$(pci_normalize "$a")
        if [ -z "$addr" ]; then fail "device $a: not a PCI address (DDDD:BB:DD.F, e.g. 0000:03:00.0)"; continue; fi
        device_add "$addr" nic "--nic"
    done
    for a in "${NVME_FLAGS[@]}"; do
        addr=$(pci_normalize "$a")
        if [ -z "$addr" ]; then fail "device $a: not a PCI address (DDDD:BB:DD.F, e.g. 0000:04:00.0)"; continue; fi
        device_add "$addr" nvme "--nvme"
    done
}

# Adds device $1 (role $2, named by $3) to DEV_* unless it is there already.
device_add() {
    local known
    for known in "${DEV_ADDRS[@]}"; do [ "$known" = "$1" ] && return 0; done
    DEV_ADDRS+=("$1") DEV_ROLES+=("$2") DEV_SOURCES+=("$3")
}

# Why the config names no PCI NIC (for the operator), when CFG_NICS is empty.
config_nic_note() {
    if [ "$CFG_LOADED" != 1 ]; then
        echo "no config read"
    elif [ "$CFG_BACKEND" != dpdk ]; then
        echo "net.backend = ${CFG_BACKEND:-?}: the data plane is on kernel sockets"
    elif [[ $CFG_DPDK_PORT =~ ^[0-9]+$ ]]; then
        echo "dpdk.port = $CFG_DPDK_PORT is a port index: name the PCI address in dpdk.port or in dpdk.extra_eal_args (-a ADDR), or pass --nic"
    else
        echo "dpdk.port = $CFG_DPDK_PORT is a virtual device (dpdk.vdevs)"
    fi
}

# Why the config names no NVMe controller (for the operator), when CFG_NVMES is empty.
config_nvme_note() {
    if [ "$CFG_LOADED" != 1 ]; then
        echo "no config read"
    elif [ "$CFG_STORAGE_BACKEND" = spdk ] && [ "$CFG_SPDK_TRTYPE" = pcie ]; then
        echo "storage.spdk.transport_id = \"$CFG_SPDK_TRID\": its traddr (${CFG_SPDK_TRADDR:-none}) is not a PCI address (DDDD:BB:DD.F)"
    elif [ "$CFG_STORAGE_BACKEND" = spdk ]; then
        echo "storage.spdk.transport_id = \"$CFG_SPDK_TRID\" is a remote target (trtype ${CFG_SPDK_TRTYPE:-none}): no controller of this machine to bind"
    elif [ -n "$CFG_STORAGE_DEVICE" ]; then
        echo "storage.backend = ${CFG_STORAGE_BACKEND:-?}: the log is on storage.device = $CFG_STORAGE_DEVICE through the kernel's driver, which keeps its controller"
    else
        echo "storage.backend = ${CFG_STORAGE_BACKEND:-?}: the log is not on an SPDK controller"
    fi
}

# IOMMU groups present?
iommu_on() { [ -n "$(ls -A "$SYS"/kernel/iommu_groups 2>/dev/null)" ]; }

# Is PCI driver $1 usable: loaded (or built in), or loadable with modprobe? Prints how.
pci_driver_available() {
    if [ -d "$SYS/bus/pci/drivers/$1" ]; then echo loaded; return 0; fi
    if command -v modprobe >/dev/null 2>&1 && modprobe -n -q "$1" 2>/dev/null; then echo loadable; return 0; fi
    if [ "$(read_first /proc/sys/kernel/modules_disabled 0)" = 1 ] || grep -qw nomodule /proc/cmdline 2>/dev/null; then
        echo "not built in, and this kernel loads no modules (nomodule / modules_disabled)"
    elif ! command -v modprobe >/dev/null 2>&1; then
        echo "not loaded, and modprobe is missing (apt-get install kmod)"
    else
        echo "not loaded, and modprobe finds no module $1 (CONFIG_${1^^} not set?)"
    fi
    return 1
}

# ---------------------------------------------------------------------------------------------
# The vigil binary

# The vigil binary to use: $VIGIL_BIN, else target/release/vigil then target/debug/vigil under the
# repository, else `vigil` on PATH; prints nothing when there is none.
vigil_bin() {
    local b
    if [ -n "${VIGIL_BIN:-}" ]; then printf '%s' "$VIGIL_BIN"; return 0; fi
    for b in "$VIGIL_ROOT/target/release/vigil" "$VIGIL_ROOT/target/debug/vigil"; do
        [ -x "$b" ] && { printf '%s' "$b"; return 0; }
    done
    command -v vigil 2>/dev/null || true
}
