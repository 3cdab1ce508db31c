//! The dashboard's thread: once every `RENDER_EVERY_MS` it reads the shards' latest snapshots
//! from the board, adds a second to the `History`, reads the process's memory, renders the
//! dashboard (`metrics::dashboard`) and stores it where the web sessions copy it from. It runs
//! whenever the web port is on, off every shard's path: the shards only ever publish.
//!
//! Invariants: it never blocks a shard (it only loads from the board and stores one pointer); it
//! stops within `STOP_POLL` of the stop flag.

use super::metrics_http::process_stats;
use super::wall_clock::unix_ns;
use super::ServeError;
use crate::config::Config;
use crate::metrics::api::OpsView;
use crate::metrics::dashboard::{render, DiskUse, NodeView, HISTORY_SECONDS, RENDER_EVERY_MS};
use crate::metrics::history::History;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How often the thread looks at the stop flag between renderings.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Starts the thread rendering `view`'s dashboard for the node `config` describes.
pub(super) fn start(
    config: &Config,
    view: Arc<OpsView>,
    stop: Arc<AtomicBool>,
    started: SystemTime,
) -> Result<JoinHandle<()>, ServeError> {
    let config_toml = toml::to_string_pretty(&config.redacted())
        .unwrap_or_else(|e| format!("# the config cannot be shown as TOML: {e}"));
    let shards_total = config.node.shards;
    let dir = match config.storage.backend {
        crate::config::StorageBackend::Uring | crate::config::StorageBackend::Spdk => {
            config.storage.dir.clone()
        }
        crate::config::StorageBackend::Memory => None,
    };
    std::thread::Builder::new()
        .name("vigil-dashboard".into())
        .spawn(move || run(&view, &config_toml, shards_total, dir.as_deref(), &stop, started))
        .map_err(|e| ServeError::Metrics(format!("cannot spawn the dashboard thread: {e}")))
}

fn run(
    view: &OpsView,
    config_toml: &str,
    shards_total: usize,
    dir: Option<&Path>,
    stop: &AtomicBool,
    started: SystemTime,
) {
    let mut history = History::new(HISTORY_SECONDS);
    let every = Duration::from_millis(RENDER_EVERY_MS);
    let mut next = Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(STOP_POLL.min(next - Instant::now()));
            continue;
        }
        next = (next + every).max(Instant::now());
        let now_ns = unix_ns(SystemTime::now());
        let latest = view.board.latest();
        history.push(now_ns, &latest);
        seq += 1;
        let node = NodeView {
            node_id: view.node_id,
            started_ns: view.started_ns,
            now_ns,
            shards_total,
            latest: &latest,
            history: &history,
            process: process_stats(started, 0),
            config_toml,
            admin_on: !view.admin_token.is_empty(),
            disk: dir.and_then(disk_use),
        };
        view.dashboard.store(render(&node, seq));
    }
}

/// What `dir`'s files take on disk (their allocated blocks) and its file system's free space;
/// `None` when either cannot be read.
fn disk_use(dir: &Path) -> Option<DiskUse> {
    use std::os::unix::fs::MetadataExt;
    let mut files_bytes = 0u64;
    for entry in std::fs::read_dir(dir).ok()? {
        let meta = entry.ok()?.metadata().ok()?;
        if meta.is_file() {
            files_bytes += meta.blocks() * 512;
        }
    }
    let fs = rustix::fs::statvfs(dir).ok()?;
    Some(DiskUse {
        files_bytes,
        fs_free_bytes: fs.f_bavail * fs.f_frsize,
        fs_size_bytes: fs.f_blocks * fs.f_frsize,
    })
}
