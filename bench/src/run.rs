//! The generator loop: one thread that sends on schedule and receives, over any [`PacketIo`].
//! Several of them run side by side in [`crate::multi`], each with its own `PacketIo`, accounting
//! and share of the schedule.
//!
//! Each iteration reads the clock once, builds every datagram whose intended send time has passed
//! (up to `burst` per iteration, so receiving is never starved), hands them to `tx_burst`, then
//! drains one `rx_burst` into [`Accounting`]. Intended send times come incrementally from
//! [`Arrivals`]; each request's id and intended time go into the outstanding ring together, so the
//! answer's latency is measured from the time it was *meant* to go out.
//!
//! Each datagram goes to the leader of its first request's key's partition, as far as
//! [`Leaders`] knows it (else the seed); answers `NOT_LEADER` are not counted but queue a resend of
//! the same frame (see [`crate::leaders`]), sent at the top of the next iteration.
//!
//! Each datagram carries the blocks its thread's [`Sealer`] writes: the target node's cookie, and
//! with credentials a fresh nonce and MAC (a resend is a new datagram: same frame, new nonce). An
//! `ADDRESS_UNPROVEN` answer's cookie is kept for later datagrams to that node; the request it
//! answered counts as an error.
//!
//! Request ids: `((thread + 1) << 48) | (trial << 40) | seq` (see [`request_id_base`]): unique
//! across threads and across search trials (a late answer from an earlier trial can never match a
//! later trial's request), never 0 (id 0 is a datagram-level error answer), never with
//! [`MALFORMED_ID_BIT`] (injected malformed traffic).
//!
//! Invariants:
//! - open loop: the schedule never waits for answers; a sender that falls behind sends the overdue
//!   datagrams as fast as it can, still stamped with their intended times, so its lateness is
//!   measured as latency (no coordinated omission); `send_lag_max_ns` reports how far behind it got;
//! - no allocation inside the loop: the transmit and receive batches, the echo body and the
//!   accounting structures are all allocated before the clock starts; datagrams are encoded in
//!   place into the backend's transmit buffers with [`DatagramWriter`]; progress is published
//!   through atomics (every 10 ms), never a lock;
//! - after the send phase the loop keeps receiving until every request is answered or `timeout`
//!   has passed since the last send, then counts the rest as timeouts; a stop request (Ctrl-C)
//!   ends the send phase early and shortens the measured window to match.

use crate::accounting::{Accounting, Intervals, MALFORMED_ID_BIT};
use crate::leaders::{node_byte, Leaders};
pub use crate::load::{
    request_id_base, thread_client_id, LoadSpec, Op, TrafficSpec, KV_KEY_BYTES, REQUEST_SEQ_BITS, THREADS_MAX,
};
use crate::outstanding::window_for;
use crate::progress::ProgressSlot;
use crate::rate::Arrivals;
use crate::seal::Sealer;
use crate::spec::ScheduleSpec;
use crate::traffic::{MalformedGen, TrafficGen, KEY_BYTES_MAX};
use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vigil::wire::{DatagramWriter, NoRoom, Status};
use vigil_pmd::{Batch, Clock, IoCounters, Nanos, PacketIo, Peer, RxDatagram, TxDatagram};

/// What a run produced (one thread's, or all threads' merged).
#[derive(Debug)]
pub struct RunOutcome {
    /// Counts and latencies.
    pub accounting: Accounting,
    /// The backend's counters at the end (summed over threads).
    pub io: IoCounters,
    /// Length of the measured window actually run (shorter than asked after a stop).
    pub measured_ns: u64,
    /// A stop request ended the send phase early.
    pub stopped_early: bool,
    /// Outstanding-ring size (per thread).
    pub window: u64,
    /// The ring was capped below `rate * timeout`: requests older than `window / rate` counted as
    /// timeouts.
    pub window_capped: bool,
    /// Worst lateness of a datagram's actual build time against its intended send time.
    pub send_lag_max_ns: u64,
    /// Datagrams built (valid traffic).
    pub datagrams: u64,
    /// Datagrams built but never taken by the backend (dropped at the end).
    pub datagrams_unsent: u64,
    /// Generator threads that ran.
    pub threads: u32,
}

impl RunOutcome {
    /// Adds another thread's outcome of the same run.
    pub fn merge(&mut self, o: &RunOutcome) {
        self.accounting.merge(&o.accounting);
        let (a, b) = (&mut self.io, &o.io);
        a.rx_packets += b.rx_packets;
        a.rx_datagrams += b.rx_datagrams;
        a.tx_datagrams += b.tx_datagrams;
        a.tx_dropped += b.tx_dropped;
        a.arp_replies += b.arp_replies;
        a.icmp_echo_replies += b.icmp_echo_replies;
        a.rx_malformed += b.rx_malformed;
        a.rx_bad_checksum += b.rx_bad_checksum;
        a.rx_not_for_us += b.rx_not_for_us;
        a.tx_alloc_failed += b.tx_alloc_failed;
        self.measured_ns = self.measured_ns.max(o.measured_ns);
        self.stopped_early |= o.stopped_early;
        self.window_capped |= o.window_capped;
        self.send_lag_max_ns = self.send_lag_max_ns.max(o.send_lag_max_ns);
        self.datagrams += o.datagrams;
        self.datagrams_unsent += o.datagrams_unsent;
        self.threads += o.threads;
    }
}

/// Writes one request datagram with requests `first..first + n` into `buf`; returns its length.
#[inline]
pub fn encode_requests(
    buf: &mut [u8],
    client_id: u64,
    opcode: u8,
    body: &[u8],
    first: u64,
    n: u64,
) -> Result<usize, NoRoom> {
    let mut w = DatagramWriter::request(buf, client_id)?;
    for k in first..first + n {
        w.push(opcode, 0, k, body)?;
    }
    Ok(w.finish())
}

/// Writes one request datagram to node `node` with requests `first..first + n`, their content
/// from `traffic`, sealed by `sealer` at `now`.
#[inline]
pub fn encode_with(
    buf: &mut [u8],
    sealer: &mut Sealer,
    node: usize,
    traffic: &mut TrafficGen,
    first: u64,
    n: u64,
    now: Nanos,
) -> Result<usize, NoRoom> {
    let mut w = sealer.writer(buf, node)?;
    for k in first..first + n {
        traffic.push_request(k, &mut w)?;
    }
    let len = w.finish();
    sealer.seal(&mut buf[..len], node, now);
    Ok(len)
}

/// Where one thread stands in a (possibly multi-threaded) run.
#[derive(Clone, Debug)]
pub struct ThreadCtx {
    /// This thread's index.
    pub index: u32,
    /// Threads in the run.
    pub threads: u32,
    /// The run's common start (every thread's schedule is relative to it).
    pub start: Nanos,
    /// The search trial number (0 outside a search): part of every request id.
    pub trial: u64,
    /// Where to publish progress, if anywhere.
    pub progress: Option<Arc<ProgressSlot>>,
}

/// Checks, before the clock starts, that a full datagram fits a transmit buffer, so the loop can
/// treat an encoding failure as a bug.
pub fn check_room<P: PacketIo>(io: &mut P, peer: &Peer, spec: &LoadSpec) -> Result<()> {
    let Some(mut probe) = io.tx_alloc(peer) else {
        bail!("the backend has no transmit buffer to start with");
    };
    let room = probe.payload_mut().len();
    if spec.datagram_len() > room {
        bail!(
            "a datagram of {} requests of {} body bytes needs {} bytes; the backend's buffers hold {room}",
            spec.batch,
            spec.body_len(),
            spec.datagram_len()
        );
    }
    Ok(())
}

/// Runs the load described by `spec` against `peer` over `io` on the calling thread, as the only
/// generator thread, until done or `stop` is set.
pub fn run<P: PacketIo, C: Clock>(
    io: &mut P,
    clock: &C,
    peer: Peer,
    spec: &LoadSpec,
    stop: &AtomicBool,
) -> Result<RunOutcome> {
    spec.validate()?;
    check_room(io, &peer, spec)?;
    let ctx = ThreadCtx { index: 0, threads: 1, start: clock.now(), trial: 0, progress: None };
    run_thread(io, clock, peer, spec, &ctx, stop)
}

/// Requests/s one thread must be able to track in its ring: its share of the schedule's peak,
/// with headroom for a Poisson schedule's random clusters.
fn peak_per_thread(spec: &LoadSpec) -> u64 {
    let margin = if matches!(spec.schedule, ScheduleSpec::Poisson { .. }) { 1.5 } else { 1.0 };
    (spec.schedule.peak_rate() * margin / f64::from(spec.threads.max(1))).ceil().max(1.0) as u64
}

/// One generator thread's part of a run: `ctx.index`'s share of `spec`'s schedule from
/// `ctx.start`. Call [`check_room`] first.
pub fn run_thread<P: PacketIo, C: Clock>(
    io: &mut P,
    clock: &C,
    peer: Peer,
    spec: &LoadSpec,
    ctx: &ThreadCtx,
    stop: &AtomicBool,
) -> Result<RunOutcome> {
    spec.validate()?;
    let mut traffic = spec.traffic.generator()?;
    // A copy for checking answers: it regenerates request k's body from k alone.
    let checker = traffic.clone();
    let mut echo_ok = |k: u64, body: &[u8]| {
        // A LIGHT's id is remembered for the GETs that follow (the checker shares them).
        checker.see_answer(k, body);
        !spec.check_echo || checker.echo_matches(k, body)
    };
    let timeout_ns = u64::try_from(spec.timeout.as_nanos()).unwrap_or(u64::MAX);
    let warmup_ns = u64::try_from(spec.warmup.as_nanos()).unwrap_or(u64::MAX);
    let duration_ns = u64::try_from(spec.duration.as_nanos()).unwrap_or(u64::MAX);
    let (window, window_capped) = window_for(peak_per_thread(spec), timeout_ns, spec.batch);
    let mut tx_batch: Batch<P::Tx> = Batch::with_capacity(spec.burst);
    let mut rx_batch: Batch<P::Rx> = Batch::with_capacity(spec.rx_burst);
    let mut arrivals =
        Arrivals::new(&spec.schedule, ctx.index, ctx.threads, spec.batch, warmup_ns, duration_ns);
    let id_base = request_id_base(ctx.index, ctx.trial);
    let mut sealer = Sealer::new(spec.client_id_of(ctx.index, ctx.trial), spec.credentials, clock.now());
    // Malformed datagrams: their own fixed schedule (this thread's share), their own generator.
    let mut bad = spec.malformed.as_ref().map(|m| {
        let sched = ScheduleSpec::Fixed { rate: m.rate };
        let arrivals = Arrivals::new(&sched, ctx.index, ctx.threads, 1, warmup_ns, duration_ns);
        let gen =
            MalformedGen::new(m, spec.traffic.seed, spec.server_requests_max).with_client_id(spec.client_id);
        (arrivals, gen, u64::from(ctx.index))
    });

    let start = ctx.start;
    let warmup_end = Nanos(start.0.saturating_add(warmup_ns));
    let mut acct = Accounting::new(start, warmup_end, duration_ns, window, timeout_ns, spec.reflector);
    if spec.interval_log {
        acct.intervals = Some(Intervals::covering(duration_ns));
    }
    if let Some(p) = &ctx.progress {
        acct.set_progress(Arc::clone(p));
    }
    let scheduled_end = Nanos(warmup_end.0.saturating_add(duration_ns));
    acct.set_measure_end(scheduled_end);

    // The seed first, then the other nodes: each request goes to its key's leader once a
    // NOT_LEADER hint named it.
    let mut targets = vec![peer];
    targets.extend(spec.cluster.iter().filter(|n| (n.ip, n.port) != (peer.ip, peer.port)));
    // A node silent for a quarter of the timeout while requests wait on it is given up, and
    // those requests resent, well before they would time out.
    let mut leaders = Leaders::new(&targets, timeout_ns / 4);
    for (node, cookie) in &spec.cookies {
        if let Some(i) = leaders.index_of(node) {
            sealer.set_cookie(i, *cookie);
        }
    }
    let mut key_buf = [0u8; KEY_BYTES_MAX];

    let mut seq = 0u64;
    let mut datagrams = 0u64;
    let mut stopped_early = false;
    let mut send_lag_max_ns = 0u64;
    let mut next_publish = start.0;
    loop {
        let now = clock.now();
        if stop.load(Ordering::Relaxed) {
            stopped_early = true;
            if now < scheduled_end {
                acct.set_measure_end(now);
            }
            break;
        }
        if let Some(t) = arrivals.peek() {
            let intended = start.0.saturating_add(t);
            if intended <= now.0 {
                send_lag_max_ns = send_lag_max_ns.max(now.0 - intended);
            }
        }
        leaders.resend_due(io, &mut tx_batch, &mut acct, &mut traffic, &mut sealer, now);
        while tx_batch.room() > 0 {
            let Some(t) = arrivals.peek() else { break };
            let intended = Nanos(start.0.saturating_add(t));
            if intended > now {
                break;
            }
            let first = id_base + seq;
            // A datagram of several requests goes where its first request's key leads.
            let node = leaders.route(traffic.route_key(first, &mut key_buf), now.0);
            let Some(mut tx) = io.tx_alloc(&leaders.node(node)) else {
                // Pool empty (counted by the backend): retry next iteration, still late-stamped.
                break;
            };
            leaders.sent(node, now.0);
            let (_, n) = arrivals.next_datagram().expect("peeked");
            let len = encode_with(tx.payload_mut(), &mut sealer, node, &mut traffic, first, n, now)
                .expect("datagram size was checked against the buffer before the run");
            tx.set_len(len);
            for k in first..first + n {
                acct.issue(k, intended, now);
                acct.sent_to(k, node_byte(node));
            }
            seq += n;
            datagrams += 1;
            if tx_batch.push(tx).is_err() {
                unreachable!("room was checked");
            }
        }
        if let Some(dead) = leaders.take_given_up() {
            // What still waits on a node given up goes to the next one (next iteration).
            acct.each_sent_to(node_byte(dead), |k| leaders.resend_stranded(k, now.0));
        }
        if let Some((arr, gen, j)) = &mut bad {
            while tx_batch.room() > 0 && arr.peek().is_some_and(|t| start.0.saturating_add(t) <= now.0) {
                let Some(mut tx) = io.tx_alloc(&peer) else { break };
                arr.next_datagram();
                let (len, _) = gen.write(*j, tx.payload_mut());
                tx.set_len(len);
                // Global index across threads, so every thread rotates through other datagrams.
                *j += u64::from(ctx.threads);
                acct.issue_malformed();
                if tx_batch.push(tx).is_err() {
                    unreachable!("room was checked");
                }
            }
        }
        if !tx_batch.is_empty() {
            // What the queue refuses stays in the batch and is retried next iteration.
            io.tx_burst(&mut tx_batch);
        }
        receive(io, clock, &mut rx_batch, &mut acct, &mut echo_ok, &mut leaders, &mut sealer);
        if now.0 >= next_publish {
            publish(&acct, ctx, now >= warmup_end);
            next_publish = now.0 + 10_000_000;
        }
        let bad_done = bad.as_ref().is_none_or(|b| b.0.peek().is_none());
        if arrivals.peek().is_none() && bad_done && tx_batch.is_empty() {
            break;
        }
    }

    // Drain: wait for the answers still out, up to the timeout after the last send.
    let send_end = clock.now();
    let deadline = Nanos(send_end.0.saturating_add(timeout_ns));
    let stop_at_send_end = stopped_early;
    loop {
        leaders.resend_due(io, &mut tx_batch, &mut acct, &mut traffic, &mut sealer, clock.now());
        if !tx_batch.is_empty() {
            io.tx_burst(&mut tx_batch);
        }
        receive(io, clock, &mut rx_batch, &mut acct, &mut echo_ok, &mut leaders, &mut sealer);
        let now = clock.now();
        if now.0 >= next_publish {
            publish(&acct, ctx, true);
            next_publish = now.0 + 10_000_000;
        }
        if acct.outstanding() == 0 && tx_batch.is_empty() {
            break;
        }
        if now >= deadline || (!stop_at_send_end && stop.load(Ordering::Relaxed)) {
            break;
        }
    }
    let datagrams_unsent = tx_batch.len() as u64;
    tx_batch.clear();
    acct.leaders = leaders.counts;
    acct.finish();

    let measured_ns = acct.measure_end().saturating_since(warmup_end);
    Ok(RunOutcome {
        io: io.counters(),
        measured_ns,
        stopped_early,
        window,
        window_capped,
        send_lag_max_ns,
        datagrams,
        datagrams_unsent,
        accounting: acct,
        threads: 1,
    })
}

#[inline]
fn publish(acct: &Accounting, ctx: &ThreadCtx, measuring: bool) {
    if let Some(p) = &ctx.progress {
        acct.publish_progress();
        p.measuring.store(measuring, Ordering::Relaxed);
    }
}

/// One `rx_burst`, every datagram accounted at the same arrival time (read after the burst); a
/// `NOT_LEADER` answer to an outstanding request queues its resend instead ([`Leaders`]); an
/// `ADDRESS_UNPROVEN` answer's cookie is kept for its node.
#[inline]
fn receive<P: PacketIo, C: Clock>(
    io: &mut P,
    clock: &C,
    rx_batch: &mut Batch<P::Rx>,
    acct: &mut Accounting,
    echo_ok: &mut impl FnMut(u64, &[u8]) -> bool,
    leaders: &mut Leaders,
    sealer: &mut Sealer,
) {
    if io.rx_burst(rx_batch) == 0 {
        return;
    }
    let now = clock.now();
    for rx in rx_batch.drain() {
        let from = rx.peer();
        leaders.heard(&from);
        acct.on_datagram_routed(rx.payload(), now, echo_ok, &mut |status, k, intended, body| {
            if status == Status::NotLeader {
                return leaders.not_leader(k, intended, body, &from, now.0);
            }
            if let Some(node) = leaders.index_of(&from) {
                sealer.learn_cookie(node, body);
            }
            false
        });
    }
}

// Ids of valid requests never collide with injected malformed ones.
const _: () = assert!(request_id_base(THREADS_MAX - 1, 255) & MALFORMED_ID_BIT == 0);
const _: () = assert!(MALFORMED_ID_BIT == crate::traffic::MALFORMED_ID_BIT);
