//! Running seeds: which seeds (`VIGIL_SIM_SEED`, `VIGIL_SIM_SEEDS`), on how many threads
//! (`VIGIL_SIM_THREADS`, default the machine's parallelism: seeds are independent), a wall-clock
//! watchdog per thread, and what they did (stats summed, failures listed).
//!
//! Invariant: a seed's run depends on its number alone, never on the thread or the order it runs
//! in; the reported failure is the failing seed earliest in the list, whatever thread found it.

use super::*;
use std::sync::atomic::AtomicBool;

/// The first `n` seeds of the fixed default sequence.
pub(crate) fn default_seeds(n: u64) -> Vec<u64> {
    let mut g = SplitMix64::new(0x5EED_5AAD);
    (0..n).map(|_| g.next_u64() >> 16).collect()
}

/// `VIGIL_SIM_SEED`, or `VIGIL_SIM_SEEDS` (default `DEFAULT_SEEDS`) of the default sequence.
pub(crate) fn seeds() -> Vec<u64> {
    match std::env::var("VIGIL_SIM_SEED") {
        Ok(s) => vec![s.trim().parse().expect("VIGIL_SIM_SEED is a u64")],
        Err(_) => default_seeds(
            std::env::var("VIGIL_SIM_SEEDS").map_or(DEFAULT_SEEDS, |s| s.trim().parse().expect("a count")),
        ),
    }
}

/// `VIGIL_SIM_KEEP_GOING=1`: run every seed, list the failing ones at the end (the test still
/// fails if any did), rather than stop at the first.
pub(crate) fn keep_going() -> bool {
    std::env::var("VIGIL_SIM_KEEP_GOING").is_ok_and(|v| v.trim() == "1")
}

/// Threads to run seeds on.
fn threads(seeds: usize) -> usize {
    let n = std::env::var("VIGIL_SIM_THREADS").map_or_else(
        |_| std::thread::available_parallelism().map_or(1, |n| n.get()),
        |s| s.trim().parse().expect("VIGIL_SIM_THREADS is a count"),
    );
    n.clamp(1, seeds.max(1))
}

/// The seed each thread runs, and since when.
type Running = Arc<Mutex<Vec<Option<(u64, Instant)>>>>;

/// A wall-clock watchdog (it never touches the simulation): a seed running longer than
/// `VIGIL_SIM_SEED_TIMEOUT_S` (default 120 s; seeds take milliseconds) is a hang inside the code
/// under test, which no in-thread check can catch: name the seed and abort.
fn watchdog(threads: usize) -> Running {
    let limit = std::env::var("VIGIL_SIM_SEED_TIMEOUT_S").map_or(120, |s| s.trim().parse().expect("seconds"));
    let current: Running = Arc::new(Mutex::new(vec![None; threads]));
    let watched = Arc::clone(&current);
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(250));
        if Arc::strong_count(&watched) == 1 {
            return;
        }
        let running = watched.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (seed, since) in running.into_iter().flatten() {
            if since.elapsed() > Duration::from_secs(limit) {
                hang(seed, limit);
            }
        }
    });
    current
}

fn hang(seed: u64, limit: u64) -> ! {
    // Straight to stderr: the test harness's capture would die with the process.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** sim_shards: seed {seed} HANGS (over {limit} s of wall time)\n*** rerun: \
         VIGIL_SIM_SEED={seed} cargo test --test sim_shards sim_shards -- --nocapture\n"
    );
    // No destructor runs at an abort: remove this process's snapshot directories.
    let prefix = format!("vigil-sim-shards-{}-", std::process::id());
    for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    std::process::abort();
}

pub(crate) fn run_seed(seed: u64, trace: bool) -> Sim {
    let mut sim = Sim::new(seed, trace);
    sim.run();
    sim
}

/// A panic's message.
fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// What a list of seeds did.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Every seed's stats, summed (the seeds that passed).
    pub(crate) totals: BTreeMap<&'static str, u64>,
    /// (position in the list, seed, whether it had media faults, the panic's text).
    pub(crate) failed: Vec<(usize, u64, bool, String)>,
    /// Without `keep_going`: the earliest failure's panic, to resume.
    pub(crate) panic: Option<(usize, Box<dyn std::any::Any + Send>)>,
}

/// Runs `seeds` on worker threads named `sim_shards-N`.
pub(crate) fn run_all(seeds: &[u64], trace: bool) -> Outcome {
    let threads = threads(seeds.len());
    let watch = watchdog(threads);
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let outcome = Mutex::new(Outcome::default());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (watch, next, stop, outcome) = (&watch, &next, &stop, &outcome);
            std::thread::Builder::new()
                .name(format!("sim_shards-{t}"))
                .spawn_scoped(s, move || worker(t, seeds, trace, watch, next, stop, outcome))
                .expect("spawn a seed thread");
        }
    });
    outcome.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn worker(
    t: usize,
    seeds: &[u64],
    trace: bool,
    watch: &Running,
    next: &AtomicU64,
    stop: &AtomicBool,
    outcome: &Mutex<Outcome>,
) {
    let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
        let Some(&seed) = seeds.get(i) else { break };
        watch.lock().unwrap_or_else(|e| e.into_inner())[t] = Some((seed, Instant::now()));
        match catch_unwind(AssertUnwindSafe(|| run_seed(seed, trace))) {
            Ok(sim) => {
                for (k, v) in &sim.stats {
                    *totals.entry(k).or_default() += v;
                }
            }
            Err(e) => {
                let media = Params::draw(&mut SplitMix64::new(seed)).media.any();
                let text = panic_text(&*e);
                let mut o = outcome.lock().unwrap_or_else(|e| e.into_inner());
                o.failed.push((i, seed, media, text));
                if !keep_going() {
                    stop.store(true, Ordering::Relaxed);
                    if o.panic.as_ref().is_none_or(|(j, _)| i < *j) {
                        o.panic = Some((i, e));
                    }
                }
            }
        }
        watch.lock().unwrap_or_else(|e| e.into_inner())[t] = None;
    }
    let mut o = outcome.lock().unwrap_or_else(|e| e.into_inner());
    for (k, v) in totals {
        *o.totals.entry(k).or_default() += v;
    }
}
