//! Config parsing and validation: the shipped files are valid, and each bad config names its key.

use super::*;

#[test]
fn shipped_configs_are_valid() {
    for (name, text) in [
        ("dev.toml", DEV_TOML),
        ("dpdk-memif.toml", include_str!("../../config/dpdk-memif.toml")),
        ("dpdk-tap.toml", include_str!("../../config/dpdk-tap.toml")),
        ("dpdk-pci.toml", include_str!("../../config/dpdk-pci.toml")),
    ] {
        if let Err(e) = Config::parse(text) {
            panic!("{name}: {e}");
        }
    }
    assert_eq!(Config::dev().net.backend, Backend::Kernel);
}

#[test]
fn inflight_bytes_max_defaults_to_4_mib_at_most_a_segment_and_is_bounded_by_half_the_ring() {
    let without = DEV_TOML.replacen("inflight_bytes_max = 1048576\n", "", 1);
    assert_ne!(without, DEV_TOML, "dev.toml documents storage.inflight_bytes_max");
    // dev.toml's 1 MiB segments: one segment.
    assert_eq!(Config::parse(&without).unwrap().storage.inflight_bytes_max(), 1 << 20);
    let big = without.replacen("segment_blocks = 256", "segment_blocks = 2048", 1);
    assert_eq!(Config::parse(&big).unwrap().storage.inflight_bytes_max(), 4 << 20);
    // Independent of the segment size: 3 segments, and half the 64-segment ring.
    for (bytes, ok) in [(3 << 20, true), (32 << 20, true), (32 << 20 | 1, false), (4095, false)] {
        let text =
            DEV_TOML.replacen("inflight_bytes_max = 1048576", &format!("inflight_bytes_max = {bytes}"), 1);
        match Config::parse(&text) {
            Ok(c) => assert!(ok && c.storage.inflight_bytes_max() == bytes, "{bytes}"),
            Err(e) => assert!(!ok && e.to_string().contains("storage.inflight_bytes_max"), "{bytes}: {e}"),
        }
    }
}

#[test]
fn atomic_write_bytes_defaults_to_4096_and_takes_512() {
    let without = DEV_TOML.replacen("atomic_write_bytes = 4096\n", "", 1);
    assert_ne!(without, DEV_TOML, "dev.toml documents storage.atomic_write_bytes");
    let parsed = Config::parse(&without).unwrap();
    assert_eq!(parsed.storage.ual().atomic_write_bytes, 4096);
    let sector = DEV_TOML.replacen("atomic_write_bytes = 4096", "atomic_write_bytes = 512", 1);
    assert_eq!(Config::parse(&sector).unwrap().storage.ual().atomic_write_bytes, 512);
}

/// Each case: a change to the dev or memif config, and the key its error must name.
#[test]
fn bad_configs_fail_naming_the_key() {
    let memif = include_str!("../../config/dpdk-memif.toml");
    let cases: &[(&str, &str, &str, &str)] = &[
        (DEV_TOML, "shards = 1", "shards = 0", "node.shards"),
        (DEV_TOML, "cores = []", "cores = [1, 2]", "node.cores"),
        (DEV_TOML, "datagram_bytes_max = 1472", "datagram_bytes_max = 10", "net.datagram_bytes_max"),
        (DEV_TOML, "datagram_bytes_max = 1472", "datagram_bytes_max = 70000", "net.datagram_bytes_max"),
        (DEV_TOML, "burst_size_max = 32", "burst_size_max = 0", "net.burst_size_max"),
        (
            DEV_TOML,
            "requests_per_datagram_max = 64",
            "requests_per_datagram_max = 0",
            "net.requests_per_datagram_max",
        ),
        (DEV_TOML, "port = 9000", "port = 0", "net.port"),
        (DEV_TOML, "pool_buffers = 5120", "pool_buffers = 8", "kernel.pool_buffers"),
        (DEV_TOML, "pool_buffers = 5120", "pool_buffers = 4159", "kernel.pool_buffers"),
        (DEV_TOML, "answers_reserved_max = 4096", "answers_reserved_max = 0", "net.answers_reserved_max"),
        // Room for the rings, two bursts and the cache (2368), not for the reserve (4096) too.
        (memif, "mbufs_per_shard = 8191", "mbufs_per_shard = 6000", "dpdk.mbufs_per_shard"),
        (DEV_TOML, "backend = \"kernel\"", "backend = \"dpdk\"", "node.cores"),
        (memif, "cores = [1]", "cores = []", "node.cores"),
        (memif, "rx_ring_size = 1024", "rx_ring_size = 1000", "dpdk.rx_ring_size"),
        (memif, "mbufs_per_shard = 8191", "mbufs_per_shard = 100", "dpdk.mbufs_per_shard"),
        (memif, "memory_mb = 512", "memory_mb = 8", "dpdk.memory_mb"),
        (memif, "file_prefix = \"vigil-memif\"", "file_prefix = \"a/b\"", "dpdk.file_prefix"),
        (memif, "port = \"net_memif0\"", "port = \"\"", "dpdk.port"),
        (memif, "datagram_bytes_max = 1472", "datagram_bytes_max = 4000", "net.datagram_bytes_max"),
        (memif, "mbuf_cache = 256", "mbuf_cache = 600", "dpdk.mbuf_cache"),
        (DEV_TOML, "dir = \"vigil-data\"", "dir = \"\"", "storage.dir"),
        (DEV_TOML, "segment_count = 64", "segment_count = 3", "storage.segment_count"),
        (DEV_TOML, "[storage]", "[storage]\ndevice = \"nvme0n1\"", "storage.device"),
        (
            DEV_TOML,
            "backend = \"uring\"",
            "backend = \"memory\"\ndevice = \"/dev/nvme0n1\"",
            "storage.device",
        ),
        (DEV_TOML, "backend = \"uring\"", "backend = \"spdk\"", "storage.spdk"),
        (
            DEV_TOML,
            "[storage]",
            "[storage.spdk]\ntransport_id = \"trtype:PCIe traddr:0000:04:00.0\"\nnamespace_id = 1\n[storage]",
            "storage.spdk",
        ),
        (
            DEV_TOML,
            "segment_blocks = 256",
            "segment_blocks = 16\nwrite_blocks_max = 16",
            "storage.segment_blocks",
        ),
        (DEV_TOML, "segment_blocks = 256", "segment_blocks = 300", "storage"),
        (DEV_TOML, "[storage]", "[storage]\npartitions = 0", "storage.partitions"),
        (DEV_TOML, "[storage]", "[storage]\nwrite_blocks_max = 1", "storage"),
        (DEV_TOML, "[storage]", "[storage]\nwrites_waiting_max = 0", "storage.writes_waiting_max"),
        (DEV_TOML, "atomic_write_bytes = 4096", "atomic_write_bytes = 1024", "storage.atomic_write_bytes"),
        (DEV_TOML, "[storage]", "[storage]\nsnapshot_every_entries = 0", "storage.snapshot_every_entries"),
        (DEV_TOML, "[storage]", "[kv]\nvalue_bytes_max = 5000\n[storage]", "kv.value_bytes_max"),
        (DEV_TOML, "[storage]", "[kv]\ndedup_clients_max = 0\n[storage]", "kv"),
        // Upper bounds: sizes that would abort the server on allocation are refused by name.
        (DEV_TOML, "[storage]", "[kv]\ndedup_clients_max = 4000000000\n[storage]", "kv.dedup_clients_max"),
        (DEV_TOML, "pool_buffers = 5120", "pool_buffers = 100000000000", "kernel.pool_buffers"),
        (DEV_TOML, "[storage]", "[kv]\nkeys_max = 100000000000\n[storage]", "kv.keys_max"),
        (DEV_TOML, "[storage]", "[kv]\ndata_bytes_max = 10000000000000\n[storage]", "kv.data_bytes_max"),
        (
            DEV_TOML,
            "recv_buffer_bytes = 4194304",
            "recv_buffer_bytes = 4000000000",
            "kernel.recv_buffer_bytes",
        ),
        (DEV_TOML, "[kernel]", "[kernel]\nsend_buffer_bytes = 4000000000", "kernel.send_buffer_bytes"),
        (DEV_TOML, "segment_blocks = 256", "segment_blocks = 1048576", "storage.segment_blocks"),
        (DEV_TOML, "segment_count = 64", "segment_count = 1000000", "storage.segment_count"),
        (DEV_TOML, "[storage]", "[storage]\nwrites_in_flight_max = 100000", "storage.writes_in_flight_max"),
        (
            DEV_TOML,
            "[storage]",
            "[storage]\nsnapshot_every_entries = 10000000000000",
            "storage.snapshot_every_entries",
        ),
        (memif, "mbufs_per_shard = 8191", "mbufs_per_shard = 100000000", "dpdk.mbufs_per_shard"),
        (memif, "memory_mb = 512", "memory_mb = 4000000000", "dpdk.memory_mb"),
    ];
    for (base, from, to, key) in cases {
        assert!(base.contains(from), "case {from} -> {to}: base config lacks `{from}`");
        let text = base.replacen(from, to, 1);
        match Config::parse(&text) {
            Err(ConfigError::Invalid { key: got, reason }) => {
                assert_eq!(got, *key, "{from} -> {to}: wrong key ({reason})");
                assert!(!reason.is_empty());
            }
            other => panic!("{from} -> {to}: expected an error naming {key}, got {other:?}"),
        }
    }
}

#[test]
fn dpdk_backend_without_its_table_is_refused() {
    let text =
        DEV_TOML.replace("backend = \"kernel\"", "backend = \"dpdk\"").replace("cores = []", "cores = [1]");
    match Config::parse(&text) {
        Err(ConfigError::Invalid { key: "dpdk", .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_keys_and_bad_types_are_parse_errors_that_name_them() {
    let e = Config::parse(&format!("{DEV_TOML}\n[metrics]\nport = 1\n")).unwrap_err();
    assert!(e.to_string().contains("metrics"), "{e}");
    let e = Config::parse(&DEV_TOML.replace("port = 9000", "prot = 9000")).unwrap_err();
    assert!(e.to_string().contains("prot"), "{e}");
    let e = Config::parse(&DEV_TOML.replace("shards = 1", "shards = \"one\"")).unwrap_err();
    assert!(e.to_string().contains("shards"), "{e}");
    let e = Config::parse(&DEV_TOML.replace("backend = \"kernel\"", "backend = \"xdp\"")).unwrap_err();
    assert!(e.to_string().contains("xdp"), "{e}");
}

#[test]
fn missing_file_names_the_path() {
    let e = Config::load(Path::new("/nonexistent/vigil.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/vigil.toml"), "{e}");
}

/// Sizes each below its maximum but together above the machine's memory are refused, naming the
/// largest part's key and the numbers; the same config fits a machine with enough memory.
#[test]
fn start_up_allocations_are_checked_against_the_machine_memory() {
    let text = DEV_TOML
        .replace("shards = 1", "shards = 8")
        .replace("datagram_bytes_max = 1472", "datagram_bytes_max = 65000")
        .replace("pool_buffers = 5120", "pool_buffers = 65536");
    let config: Config = toml::from_str(&text).unwrap();
    let estimate = config.memory_estimate();
    let total = estimate.at_start_total();
    assert!(total > 8 * 65536 * 65000, "{estimate:?}");
    match config.validate_sizes(Some(16 << 30)) {
        Err(ConfigError::Invalid { key: "kernel.pool_buffers", reason }) => {
            assert!(
                reason.contains(&total.to_string()) && reason.contains(&(16u64 << 30).to_string()),
                "{reason}"
            );
            assert!(reason.contains("kv.dedup_clients_max"), "lists every part: {reason}");
        }
        other => panic!("{other:?}"),
    }
    config.validate_sizes(Some(total)).expect("fits a machine of exactly that size");
    config.validate_sizes(None).expect("no machine check where /proc/meminfo cannot be read");
}

#[test]
fn the_shipped_configs_fit_a_small_machine() {
    for text in [DEV_TOML, include_str!("../../config/dpdk-memif.toml")] {
        let config = Config::parse(text).unwrap();
        let total = config.memory_estimate().at_start_total();
        assert!(total < 1 << 30, "{total} bytes at start-up");
        config.validate_sizes(Some(2 << 30)).unwrap();
    }
}

#[test]
fn metrics_and_dashboard_off_loopback_need_a_read_token_unless_protected_mode_is_off() {
    let outside = |text: &str| {
        text.replace("listen = [\"127.0.0.1:9001\"]", "listen = [\"0.0.0.0:9001\"]")
            .replace("web_listen = [\"127.0.0.1:9002\"]", "web_listen = [\"10.1.2.3:9002\"]")
    };
    let exposed = outside(DEV_TOML);
    match Config::parse(&exposed) {
        Err(ConfigError::Invalid { key, reason }) => {
            assert_eq!(key, "metrics.listen");
            assert!(reason.contains("admin.read_token"), "{reason}");
        }
        other => panic!("expected metrics.listen refused, got {other:?}"),
    }
    let web_only = DEV_TOML.replace("web_listen = [\"127.0.0.1:9002\"]", "web_listen = [\"10.1.2.3:9002\"]");
    assert!(matches!(Config::parse(&web_only), Err(ConfigError::Invalid { key: "tcp.web_listen", .. })));
    let with_token = format!("{exposed}\n[admin]\nread_token = \"read-token-0123456789\"\n");
    let c = Config::parse(&with_token).expect("a read token makes it acceptable");
    let redacted = c.redacted();
    assert_eq!(redacted.admin.read_token, "(set)");
    assert!(exposed.contains("[auth]\n"));
    let lab = exposed.replacen("[auth]\n", "[auth]\nprotected_mode = false\n", 1);
    Config::parse(&lab).expect("protected mode off: the operator says the link is private");
    let short = format!("{DEV_TOML}\n[admin]\nread_token = \"short\"\n");
    assert!(matches!(Config::parse(&short), Err(ConfigError::Invalid { key: "admin.read_token", .. })));
    let spaced = format!("{DEV_TOML}\n[admin]\nread_token = \"has a space in it 0123\"\n");
    assert!(matches!(Config::parse(&spaced), Err(ConfigError::Invalid { key: "admin.read_token", .. })));
}

/// `keys_max`/`bytes_max` per principal and `anonymous_keys_max`/`anonymous_bytes_max` in
/// `[auth]` parse into quotas (unset: none, one unset figure: unlimited); 0 is refused by name.
#[test]
fn quotas_parse_per_principal_and_for_anonymous_requests_and_zero_is_refused() {
    use crate::projection::Quota;
    let with = |auth: &str, client: &str| {
        assert!(DEV_TOML.contains("[auth]\n"));
        format!(
            "{}\n[[auth.clients]]\nname = \"app\"\nkey_id = 1\nclient_id = 100\n\
             password = \"app-password-0123456789\"\nacl = \"+@all\"\n{client}",
            DEV_TOML.replacen("[auth]\n", &format!("[auth]\n{auth}\n"), 1)
        )
    };
    let c = Config::parse(&with("anonymous_keys_max = 10", "keys_max = 2\nbytes_max = 4096")).unwrap();
    assert_eq!(c.auth.clients[0].quota(), Some(Quota { keys_max: 2, bytes_max: 4096 }));
    assert_eq!(c.auth.anonymous_quota(), Some(Quota { keys_max: 10, bytes_max: u64::MAX }));
    assert_eq!(c.redacted().auth.clients[0].keys_max, Some(2), "shown by /api/config");
    let c = Config::parse(&with("anonymous_bytes_max = 1000", "bytes_max = 64")).unwrap();
    assert_eq!(c.auth.clients[0].quota(), Some(Quota { keys_max: u64::MAX, bytes_max: 64 }));
    assert_eq!(c.auth.anonymous_quota(), Some(Quota { keys_max: u64::MAX, bytes_max: 1000 }));
    let c = Config::parse(&with("", "")).unwrap();
    assert_eq!((c.auth.clients[0].quota(), c.auth.anonymous_quota()), (None, None));

    let refused = [
        (with("", "keys_max = 0"), "auth.clients", "keys_max"),
        (with("", "bytes_max = 0"), "auth.clients", "bytes_max"),
        (with("anonymous_keys_max = 0", ""), "auth.anonymous_keys_max/anonymous_bytes_max", "keys_max"),
        (with("anonymous_bytes_max = 0", ""), "auth.anonymous_keys_max/anonymous_bytes_max", "bytes_max"),
    ];
    for (text, want_key, figure) in refused {
        match Config::parse(&text) {
            Err(ConfigError::Invalid { key, reason }) => {
                assert_eq!(key, want_key, "{reason}");
                assert!(reason.contains(figure) && reason.contains("at least 1"), "{reason}");
            }
            other => panic!("{want_key} {figure} = 0: expected it refused, got {other:?}"),
        }
    }
    let e = Config::parse(&with("", "keys_max = -1")).unwrap_err();
    assert!(e.to_string().contains("keys_max"), "{e}");
}

/// The dev config with the log through SPDK, `[storage.spdk]` holding `spdk` (its keys).
fn with_spdk(spdk: &str) -> String {
    let backend = DEV_TOML.replacen("backend = \"uring\"", "backend = \"spdk\"", 1);
    backend.replacen("[storage]", &format!("[storage.spdk]\n{spdk}\n[storage]"), 1)
}

#[test]
fn a_log_on_a_device_or_through_spdk_parses_and_bad_spdk_settings_are_named() {
    let device =
        Config::parse(&DEV_TOML.replace("[storage]", "[storage]\ndevice = \"/dev/nvme0n1\"")).unwrap();
    assert_eq!(device.storage.device.as_deref(), Some(std::path::Path::new("/dev/nvme0n1")));
    let trid = "transport_id = \"trtype:PCIe traddr:0000:04:00.0\"";
    let spdk = Config::parse(&with_spdk(&format!("{trid}\nnamespace_id = 1"))).unwrap();
    assert_eq!(spdk.storage.backend, StorageBackend::Spdk);
    let s = spdk.storage.spdk.unwrap();
    assert_eq!((s.namespace_id, s.no_huge, s.mem_size_mb), (1, false, 1024));
    for (keys, named) in [
        (format!("{trid}\nnamespace_id = 0"), "storage.spdk.namespace_id"),
        ("transport_id = \" \"\nnamespace_id = 1".to_string(), "storage.spdk.transport_id"),
        // One partition x 32 x 256 blocks of bounce buffers: 32 MiB, more than 3/4 of 40.
        (format!("{trid}\nnamespace_id = 1\nmem_size_mb = 40"), "storage.spdk.mem_size_mb"),
    ] {
        let e = Config::parse(&with_spdk(&keys)).unwrap_err().to_string();
        assert!(e.contains(named), "{keys}: {e}");
    }
    let e = Config::parse(&with_spdk(&format!("{trid}\nnamespace_id = 1\ndevice = \"/dev/x\""))).unwrap_err();
    assert!(e.to_string().contains("unknown field `device`"), "an unknown key in [storage.spdk]: {e}");
}
