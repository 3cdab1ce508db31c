//! Several generator threads, each with its own `PacketIo` (its own socket or DPDK queue pair),
//! its own accounting and a 1/N share of the schedule, started together and merged at the end.
//!
//! The threads live for the whole session ([`with_workers`]) and run one or more runs on command
//! ([`Workers::run`]): a search runs many trials over the same backend (EAL initialises once per
//! process, and a kernel socket cannot move between threads), so each thread builds its
//! `PacketIo` once, on itself, after pinning itself to its core.
//!
//! Invariants:
//! - every thread of a run uses the same start time, read once after all threads are ready (two
//!   barriers), so their schedules interleave exactly and their timelines line up for merging;
//! - if any thread cannot start a run (its transmit buffers are too small), no thread starts it,
//!   and the first error is returned: no barrier is ever left waiting;
//! - each run's request ids carry its trial number, so a late answer from an earlier run is
//!   `unexpected`, never a false match;
//! - the threads and their `PacketIo`s are dropped on their own threads (a DPDK lcore
//!   registration must be released where it was made).

use crate::progress::Progress;
use crate::run::{check_room, run_thread, LoadSpec, RunOutcome, ThreadCtx};
use anyhow::{anyhow, bail, Context, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Barrier};
use vigil_pmd::{Clock, Nanos, PacketIo, Peer};

/// Pins the calling thread to CPU `id`. Not checked against the calling thread's current
/// affinity: under DPDK the EAL has already pinned the process's main thread (and so every thread
/// it spawns) to the main lcore; the kernel refuses a CPU outside the process's cpuset.
pub fn pin(id: usize) -> Result<()> {
    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
        bail!("core {id}: could not pin the generator thread there (is it a CPU of this machine?)");
    }
    Ok(())
}

struct Cmd {
    spec: LoadSpec,
    trial: u64,
}

struct Shared {
    threads: u32,
    ready: Barrier,
    go: Barrier,
    failed: AtomicBool,
    start: AtomicU64,
}

/// The running generator threads of a session.
pub struct Workers<'a> {
    cmds: Vec<Sender<Cmd>>,
    results: Receiver<(u32, Result<RunOutcome>)>,
    shared: Arc<Shared>,
    progress: Option<&'a Progress>,
    trials: u64,
}

impl Workers<'_> {
    /// Generator threads.
    pub fn threads(&self) -> u32 {
        self.shared.threads
    }

    /// Runs `spec` on every thread (each its share) and returns the merged outcome.
    pub fn run(&mut self, spec: &LoadSpec) -> Result<RunOutcome> {
        spec.validate()?;
        if spec.threads != self.shared.threads {
            bail!("the spec asks for {} threads, the session has {}", spec.threads, self.shared.threads);
        }
        if let Some(p) = self.progress {
            p.reset();
        }
        let trial = self.trials;
        self.trials = (self.trials + 1) % 256;
        self.shared.failed.store(false, Ordering::SeqCst);
        for tx in &self.cmds {
            tx.send(Cmd { spec: spec.clone(), trial })
                .map_err(|_| anyhow!("a generator thread has exited"))?;
        }
        let mut outs: Vec<Option<RunOutcome>> = (0..self.shared.threads).map(|_| None).collect();
        let mut first_err = None;
        for _ in 0..self.shared.threads {
            let (i, r) = self.results.recv().map_err(|_| anyhow!("a generator thread has exited"))?;
            match r {
                Ok(o) => outs[i as usize] = Some(o),
                Err(e) => {
                    first_err.get_or_insert(e.context(format!("generator thread {i}")));
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let mut it = outs.into_iter().map(|o| o.expect("every thread answered"));
        let mut merged = it.next().expect("at least one thread");
        for o in it {
            merged.merge(&o);
        }
        Ok(merged)
    }
}

/// Starts `threads` generator threads (thread `i` pinned to `cores[i]` when given), each building
/// its `PacketIo` with `make_io(i)` on itself (the second value is kept alive beside it, e.g. a
/// DPDK lcore registration, and dropped after it); runs `body` with them; stops them.
#[allow(clippy::too_many_arguments)]
pub fn with_workers<P, G, C, F, R>(
    threads: u32,
    cores: &[usize],
    make_io: F,
    clock: &C,
    peer: Peer,
    stop: &AtomicBool,
    progress: Option<&Progress>,
    body: impl FnOnce(&mut Workers<'_>) -> Result<R>,
) -> Result<R>
where
    P: PacketIo,
    F: Fn(u32) -> Result<(P, G)> + Sync,
    C: Clock + Sync,
{
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    if !cores.is_empty() && cores.len() != threads as usize {
        bail!("{} cores given for {threads} threads: give one core per thread", cores.len());
    }
    let shared = Arc::new(Shared {
        threads,
        ready: Barrier::new(threads as usize),
        go: Barrier::new(threads as usize),
        failed: AtomicBool::new(false),
        start: AtomicU64::new(0),
    });
    std::thread::scope(|scope| {
        let (res_tx, res_rx) = channel();
        let (up_tx, up_rx) = channel::<(u32, Result<()>)>();
        let mut cmds = Vec::new();
        for i in 0..threads {
            let (cmd_tx, cmd_rx) = channel::<Cmd>();
            cmds.push(cmd_tx);
            let (res_tx, up_tx, shared, make_io) =
                (res_tx.clone(), up_tx.clone(), Arc::clone(&shared), &make_io);
            let core = cores.get(i as usize).copied();
            let slot = progress.map(|p| p.slot(i as usize));
            std::thread::Builder::new()
                .name(format!("loadgen-{i}"))
                .spawn_scoped(scope, move || {
                    let made = core.map_or(Ok(()), pin).and_then(|()| make_io(i));
                    let (mut io, guard) = match made {
                        Ok(x) => {
                            let _ = up_tx.send((i, Ok(())));
                            x
                        }
                        Err(e) => {
                            let _ = up_tx.send((i, Err(e)));
                            return;
                        }
                    };
                    drop(up_tx);
                    while let Ok(cmd) = cmd_rx.recv() {
                        if check_room(&mut io, &peer, &cmd.spec).is_err() {
                            shared.failed.store(true, Ordering::SeqCst);
                        }
                        if shared.ready.wait().is_leader() {
                            shared.start.store(clock.now().0, Ordering::SeqCst);
                        }
                        shared.go.wait();
                        let r = if shared.failed.load(Ordering::SeqCst) {
                            check_room(&mut io, &peer, &cmd.spec)
                                .and_then(|()| Err(anyhow!("another generator thread could not start")))
                        } else {
                            let ctx = ThreadCtx {
                                index: i,
                                threads: shared.threads,
                                start: Nanos(shared.start.load(Ordering::SeqCst)),
                                trial: cmd.trial,
                                progress: slot.clone(),
                            };
                            run_thread(&mut io, clock, peer, &cmd.spec, &ctx, stop)
                        };
                        if res_tx.send((i, r)).is_err() {
                            break;
                        }
                    }
                    drop(io);
                    drop(guard);
                })
                .context("spawning a generator thread")?;
        }
        drop(up_tx);
        let mut first_err = None;
        for _ in 0..threads {
            match up_rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((i, Err(e))) => {
                    first_err.get_or_insert(e.context(format!("starting generator thread {i}")));
                }
                Err(_) => {
                    first_err.get_or_insert(anyhow!("a generator thread died while starting"));
                }
            }
        }
        let mut workers = Workers { cmds, results: res_rx, shared: Arc::clone(&shared), progress, trials: 0 };
        let out = match first_err {
            Some(e) => Err(e),
            None => body(&mut workers),
        };
        // Closing the command channels ends every thread; the scope joins them.
        drop(workers);
        out
    })
}
