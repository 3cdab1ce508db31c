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
    /// first `vigil serve` on an empty or absent directory does the same.
    Format {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Instead, adopt the store files an older Vigil left without a manifest: check that every
        /// partition file is there, sized and formatted as the config says, then write the manifest.
        #[arg(long)]
        adopt: bool,
    },
    /// Print the embedded default configuration (config/dev.toml).
    DefaultConfig,
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
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => print!("{DEV_TOML}"),
        Command::Check { config } => {
            let c = load(Some(&config))?;
            println!("{} is valid:\n{c:#?}", config.display());
            let mut findings = serve::check::memory(&c);
            findings.extend(serve::check::inspect(&c));
            for f in &findings {
                println!("{} {}", if f.ok { "ok:  " } else { "FAIL:" }, f.line);
            }
            let failed = findings.iter().filter(|f| !f.ok).count();
            if failed > 0 {
                anyhow::bail!("{failed} check(s) of the data directory failed: a start would be refused");
            }
        }
        Command::Format { config, adopt } => {
            let c = load(Some(&config))?;
            if c.storage.backend != vigil::config::StorageBackend::Uring {
                anyhow::bail!("storage.backend is \"memory\": there is nothing to format");
            }
            let m = serve::storage::format(&c, adopt)?;
            let dir = c.storage.dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default();
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
        Command::Serve { config } => {
            let c = load(config.as_ref())?;
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(signal, stop.clone()).context("installing signal handlers")?;
            }
            let mut on_ready = |line: &str| println!("vigil: ready: {line}");
            let report = serve::serve(&c, stop, &mut on_ready)?;
            print!("{report}");
        }
    }
    Ok(())
}
