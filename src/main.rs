//! The `vigil` binary: command-line parsing, signal handling and the shutdown report. Everything
//! else lives in the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use vigil::config::{Config, DEV_TOML};
use vigil::serve;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("VIGIL_GIT_SHA"),
    ", DPDK ",
    env!("VIGIL_DPDK_VERSION"),
    ", SPDK ",
    env!("VIGIL_SPDK_VERSION"),
    ")"
);

/// Vigil: a kernel-bypass, log-structured data appliance.
#[derive(Debug, Parser)]
#[command(name = "vigil", version = LONG_VERSION, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the binary protocol on UDP until SIGINT or SIGTERM, then print the final counters.
    Serve {
        /// Configuration file (TOML); without it, the embedded config/dev.toml (kernel sockets on
        /// 127.0.0.1:9000).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and print it as understood, without starting anything; when
    /// `storage.dir` exists, also check the store in it against the config (manifest, partition
    /// files, limits the stored data already exceeds). Exits non-zero if anything fails.
    Check {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Create an empty store in `storage.dir` (refused if the directory holds any store file). A
    /// first `vigil serve` on an empty or absent directory does the same for a log in files; a log
    /// on a device (`storage.device`, or `storage.backend = "spdk"`) is created only by this
    /// command, which refuses a device that is not blank where the store goes.
    Format {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Instead, adopt the store files an older Vigil left without a manifest: check that every
        /// partition file is there, sized and formatted as the config says, then write the manifest.
        #[arg(long)]
        adopt: bool,
        /// For a log on a device: format it even though it holds data where the store goes (that
        /// data is lost).
        #[arg(long)]
        overwrite_device: bool,
    },
    /// Print the embedded default configuration (config/dev.toml).
    DefaultConfig,
    /// Examine a stopped node's partition log for damaged acknowledged records: print what is
    /// damaged and what a repair would lose (exit 1 if corrupt); with --accept-loss, cut the log
    /// there (like a torn tail) so the node can start again, and print what was cut.
    Repair {
        /// Configuration file (TOML) of the node (its storage.dir and log geometry).
        #[arg(long, short)]
        config: PathBuf,
        /// The partition to examine.
        #[arg(long)]
        partition: u16,
        /// Cut the log at the first damaged record, losing it and everything after it.
        #[arg(long)]
        accept_loss: bool,
    },
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).with_context(|| format!("invalid configuration {}", p.display())),
        None => Ok(Config::dev()),
    }
}

fn main() -> anyhow::Result<()> {
    // A panic in any thread (a shard's) ends the process, whatever the build's panic strategy: a
    // node with a dead shard must not linger half-alive, answering nothing for that shard's keys.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
    // Large tables and snapshot captures in their own mappings, given back when freed (see
    // `vigil_pmd::malloc`): before any thread starts.
    vigil_pmd::malloc::fix_mmap_threshold(vigil_pmd::malloc::MMAP_THRESHOLD_BYTES);
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => print!("{DEV_TOML}"),
        Command::Check { config } => {
            let c = load(Some(&config))?;
            println!("{} is valid:\n{c:#?}", config.display());
            let mut findings = serve::check::memory(&c);
            findings.push(serve::check::cluster(&c));
            findings.extend(serve::check::inspect(&c));
            for f in &findings {
                println!("{} {}", if f.ok { "ok:  " } else { "FAIL:" }, f.line);
            }
            let failed = findings.iter().filter(|f| !f.ok).count();
            if failed > 0 {
                anyhow::bail!("{failed} check(s) of the data directory failed: a start would be refused");
            }
        }
        Command::Format { config, adopt, overwrite_device } => {
            let c = load(Some(&config))?;
            if c.storage.backend == vigil::config::StorageBackend::Memory {
                anyhow::bail!("storage.backend is \"memory\": there is nothing to format");
            }
            let on_device = serve::storage::log_device_kind(&c).is_some();
            anyhow::ensure!(
                !(adopt && on_device),
                "--adopt is for log files in storage.dir, not a log on a device"
            );
            anyhow::ensure!(on_device || !overwrite_device, "--overwrite-device is for a log on a device");
            let m = if on_device {
                serve::log_source::format_device(&c, overwrite_device)?
            } else {
                serve::storage::format(&c, adopt)?
            };
            let mut dir = c.storage.dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default();
            if let Some(device) = &c.storage.device {
                dir = format!("{} (log on {})", dir, device.display());
            }
            if let Some(s) = &c.storage.spdk {
                dir = format!("{dir} (log on {} namespace {}, through SPDK)", s.transport_id, s.namespace_id);
            }
            let what = if adopt { "adopted" } else { "created" };
            println!(
                "vigil: {what} store {} in {dir}: {} partitions, segment_blocks {}, segment_count {} (manifest {})",
                m.store_id,
                m.partitions,
                m.segment_blocks,
                m.segment_count,
                serve::storage::MANIFEST
            );
        }
        Command::Repair { config, partition, accept_loss } => {
            let c = load(Some(&config))?;
            if !repair(&c, partition, accept_loss)? {
                std::process::exit(1);
            }
        }
        Command::Serve { config } => {
            let c = load(config.as_ref())?;
            let log = init_log(&c.log.level);
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
            }
            // The ready line is the node's status, like the stop report: on stdout whatever the
            // log level (scripts and tests wait for it).
            let mut on_ready = |line: &str| println!("vigil: ready: {line}");
            let report = serve::serve(&c, stop, &mut on_ready, Some(log))?;
            print!("{report}");
        }
    }
    Ok(())
}

/// The node's log: one line per event on stderr (the stop report goes to stdout), at
/// `log.level`, or as `RUST_LOG` filters when it is set (docs/OPERATIONS.md, "Logs"). The filter
/// can change while the node runs (the admin API's `log-level`): the returned control reloads it.
fn init_log(level: &str) -> Arc<dyn vigil::metrics::admin::LogControl> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(level),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_filter_reloading();
    let handle = builder.reload_handle();
    builder.init();
    let reader = handle.clone();
    Arc::new(ReloadableLog {
        set: Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())),
        current: Box::new(move || reader.with_current(|f| f.to_string()).unwrap_or_default()),
    })
}

/// The subscriber's filter behind its reload handle (`LogControl` for the admin API).
struct ReloadableLog {
    /// Puts a new filter in place.
    set: Box<dyn Fn(tracing_subscriber::EnvFilter) -> Result<(), String> + Send + Sync>,
    /// The filter in force, as text.
    current: Box<dyn Fn() -> String + Send + Sync>,
}

impl std::fmt::Debug for ReloadableLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReloadableLog({})", (self.current)())
    }
}

impl vigil::metrics::admin::LogControl for ReloadableLog {
    fn set(&self, spec: &str) -> Result<(), String> {
        let filter = tracing_subscriber::EnvFilter::try_new(spec).map_err(|e| e.to_string())?;
        (self.set)(filter)
    }

    fn current(&self) -> String {
        (self.current)()
    }
}

/// `vigil repair`: returns whether the partition may start (healthy, or cut).
fn repair(c: &Config, partition: u16, accept_loss: bool) -> anyhow::Result<bool> {
    use vigil::config::{DurableMode, StorageBackend};
    use vigil::partition::repair::{repair, RepairOutcome};
    use vigil::partition::PartitionError;
    use vigil::serve::snapfile::SnapshotFile;
    use vigil_pmd::block::uring::{self, UringBlockIo, UringConfig};

    let st = &c.storage;
    anyhow::ensure!(st.backend == StorageBackend::Uring, "repair needs storage.backend = \"uring\"");
    anyhow::ensure!(
        st.device.is_none(),
        "repair works on log files in storage.dir; it does not yet read a log on a device (storage.device)"
    );
    let dir = st.dir.clone().context("repair needs storage.dir")?;
    // A repair beside a running node would cut a log under it: take the directory's lock first.
    let _lock = vigil::serve::storage::lock(&dir)?;
    let path = dir.join(format!("partition-{partition}.ual"));
    anyhow::ensure!(path.exists(), "{} does not exist", path.display());
    let open = || {
        UringBlockIo::open(&UringConfig {
            path: path.clone(),
            create_blocks: None,
            queue_depth: st.queue_depth,
            durable_mode: match st.durable_mode {
                DurableMode::Dsync => uring::DurableMode::Dsync,
                DurableMode::Flush => uring::DurableMode::Flush,
            },
        })
        .map_err(|e| PartitionError::Snapshot {
            partition,
            path: path.display().to_string(),
            reason: format!("cannot open the log: {e}"),
        })
    };
    let mut snap = SnapshotFile::new(&dir, partition);
    let outcome =
        repair(partition, open, st.ual(), &vigil::serve::partition_config(c), Some(&mut snap), accept_loss)?;
    match outcome {
        RepairOutcome::Healthy(r) => {
            println!(
                "vigil: partition {partition}: no corruption; the log holds {}..={} ({:?})",
                r.first_lsn, r.last_lsn, r.stop
            );
            Ok(true)
        }
        RepairOutcome::Corrupt(r) => {
            println!("vigil: partition {partition}: the log is corrupt: {r}");
            println!("vigil: nothing was changed; run again with --accept-loss to cut the log there");
            Ok(false)
        }
        RepairOutcome::Cut(r, log) => {
            println!("vigil: partition {partition}: cut the log at lsn {} (it was: {r})", r.first_bad_lsn);
            println!("vigil: partition {partition}: the log now holds {}..={}", log.first_lsn, log.last_lsn);
            Ok(true)
        }
    }
}
