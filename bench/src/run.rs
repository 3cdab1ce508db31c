//! The generator loop: one thread that sends on schedule and receives, over any [`PacketIo`].
//!
//! Each iteration reads the clock once, builds every datagram whose intended send time has passed
//! (up to `burst` per iteration, so receiving is never starved), hands them to `tx_burst`, then
//! drains one `rx_burst` into [`Accounting`]. Requests are stamped with their id `k`, from which
//! the intended send time is recomputed on the way back, so nothing is stored per request beyond
//! the outstanding ring.
//!
//! Invariants:
//! - open loop: the schedule never waits for answers; a sender that falls behind sends the overdue
//!   datagrams as fast as it can, still stamped with their intended times, so its lateness is
//!   measured as latency (no coordinated omission); `send_lag_max_ns` reports how far behind it got;
//! - no allocation inside the loop: the transmit and receive batches, the echo body and the
//!   accounting structures are all allocated before the clock starts; datagrams are encoded in
//!   place into the backend's transmit buffers with [`DatagramWriter`];
//! - after the send phase the loop keeps receiving until every request is answered or `timeout`
//!   has passed since the last send, then counts the rest as timeouts; a stop request (Ctrl-C)
//!   ends the send phase early and shortens the measured window to match.

use crate::accounting::{Accounting, Intervals};
use crate::outstanding::window_for;
use crate::rate::Schedule;
use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use vigil::wire::{opcode, DatagramWriter, NoRoom, FRAME_HEADER_LEN, HEADER_LEN};
use vigil_pmd::{Batch, Clock, IoCounters, Nanos, PacketIo, Peer, RxDatagram, TxDatagram};

/// The operation every request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// PING: empty body, empty answer.
    Ping,
    /// ECHO: a body of `--payload-bytes`, answered with the same bytes.
    Echo,
}

impl Op {
    /// The wire opcode.
    pub fn opcode(self) -> u8 {
        match self {
            Op::Ping => opcode::PING,
            Op::Echo => opcode::ECHO,
        }
    }

    /// Its name as the CLI and the report spell it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Echo => "echo",
        }
    }
}

/// What load to offer.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Offered requests per second.
    pub rate: u64,
    /// Measured phase length.
    pub duration: Duration,
    /// Warm-up before it (sent, not latency-recorded).
    pub warmup: Duration,
    /// Operation.
    pub op: Op,
    /// Echo body size (ignored for ping).
    pub payload_bytes: usize,
    /// Requests per datagram.
    pub batch: u32,
    /// A request not answered within this (of its intended send time) is a timeout.
    pub timeout: Duration,
    /// Most datagrams built per loop iteration (and the transmit batch's capacity).
    pub burst: usize,
    /// Most datagrams taken per `rx_burst`.
    pub rx_burst: usize,
    /// Accept request frames coming back unchanged as answers (testpmd 5tswap baseline).
    pub reflector: bool,
    /// The client id every request datagram carries.
    pub client_id: u64,
    /// Keep interval histograms of the measured phase for the interval log.
    pub interval_log: bool,
}

impl LoadSpec {
    /// The body each request carries.
    pub fn body_len(&self) -> usize {
        match self.op {
            Op::Ping => 0,
            Op::Echo => self.payload_bytes,
        }
    }

    /// Bytes of UDP payload one full datagram needs.
    pub fn datagram_len(&self) -> usize {
        HEADER_LEN + self.batch as usize * (FRAME_HEADER_LEN + self.body_len())
    }

    /// Rejects specs the loop cannot run.
    pub fn validate(&self) -> Result<()> {
        if self.rate == 0 {
            bail!("--rate must be at least 1 request/s");
        }
        if self.batch == 0 || self.batch > u32::from(u16::MAX) {
            bail!("--batch must be between 1 and {}", u16::MAX);
        }
        if self.burst == 0 || self.rx_burst == 0 {
            bail!("--burst must be at least 1");
        }
        if self.duration.is_zero() {
            bail!("--duration must be positive");
        }
        if self.timeout.is_zero() {
            bail!("--timeout-ms must be positive");
        }
        Ok(())
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Counts and latencies.
    pub accounting: Accounting,
    /// The backend's counters at the end.
    pub io: IoCounters,
    /// Length of the measured window actually run (shorter than asked after a stop).
    pub measured_ns: u64,
    /// A stop request ended the send phase early.
    pub stopped_early: bool,
    /// Outstanding-ring size.
    pub window: u64,
    /// The ring was capped below `rate * timeout`: requests older than `window / rate` counted as
    /// timeouts.
    pub window_capped: bool,
    /// Worst lateness of a datagram's actual build time against its intended send time.
    pub send_lag_max_ns: u64,
    /// Datagrams built.
    pub datagrams: u64,
    /// Datagrams built but never taken by the backend (dropped at the end).
    pub datagrams_unsent: u64,
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

/// Runs the load described by `spec` against `peer` over `io`, until done or `stop` is set.
pub fn run<P: PacketIo, C: Clock>(
    io: &mut P,
    clock: &C,
    peer: Peer,
    spec: &LoadSpec,
    stop: &AtomicBool,
) -> Result<RunOutcome> {
    spec.validate()?;
    let opcode = spec.op.opcode();
    // A recognisable pattern, so a corrupted echo is visible in a capture.
    let body: Vec<u8> = (0..spec.body_len()).map(|i| (i % 251) as u8).collect();

    // Check once, before the clock starts, that a full datagram fits a transmit buffer, so the loop
    // can treat an encoding failure as a bug.
    {
        let Some(mut probe) = io.tx_alloc(&peer) else {
            bail!("the backend has no transmit buffer to start with");
        };
        let room = probe.payload_mut().len();
        if spec.datagram_len() > room {
            bail!(
                "a datagram of {} requests of {} body bytes needs {} bytes; \
                 the backend's buffers hold {room}",
                spec.batch,
                spec.body_len(),
                spec.datagram_len()
            );
        }
    }

    let timeout_ns = u64::try_from(spec.timeout.as_nanos()).unwrap_or(u64::MAX);
    let warmup_ns = u64::try_from(spec.warmup.as_nanos()).unwrap_or(u64::MAX);
    let duration_ns = u64::try_from(spec.duration.as_nanos()).unwrap_or(u64::MAX);
    let (window, window_capped) = window_for(spec.rate, timeout_ns, spec.batch);
    let mut tx_batch: Batch<P::Tx> = Batch::with_capacity(spec.burst);
    let mut rx_batch: Batch<P::Rx> = Batch::with_capacity(spec.rx_burst);

    let start = clock.now();
    let schedule = Schedule::new(start, spec.rate, spec.batch, warmup_ns, duration_ns);
    let mut acct = Accounting::new(schedule, window, timeout_ns, spec.reflector);
    if spec.interval_log {
        acct.intervals = Some(Intervals::covering(duration_ns));
    }
    let scheduled_end = Nanos(schedule.warmup_end().0.saturating_add(duration_ns));
    acct.set_measure_end(scheduled_end);
    let total_d = schedule.total_datagrams();

    let mut next_d = 0u64;
    let mut stopped_early = false;
    let mut send_lag_max_ns = 0u64;
    loop {
        let now = clock.now();
        if stop.load(Ordering::Relaxed) {
            stopped_early = true;
            if now < scheduled_end {
                acct.set_measure_end(now);
            }
            break;
        }
        let due = schedule.datagrams_due(now);
        if next_d < due {
            send_lag_max_ns = send_lag_max_ns.max(now.saturating_since(schedule.datagram_time(next_d)));
        }
        while next_d < due && tx_batch.room() > 0 {
            let Some(mut tx) = io.tx_alloc(&peer) else {
                // Pool empty (counted by the backend): retry next iteration, still late-stamped.
                break;
            };
            let (first, n) = schedule.datagram_requests(next_d);
            let len = encode_requests(tx.payload_mut(), spec.client_id, opcode, &body, first, n)
                .expect("datagram size was checked against the buffer before the run");
            tx.set_len(len);
            for k in first..first + n {
                acct.issue(k);
            }
            if tx_batch.push(tx).is_err() {
                unreachable!("room was checked");
            }
            next_d += 1;
        }
        if !tx_batch.is_empty() {
            // What the queue refuses stays in the batch and is retried next iteration.
            io.tx_burst(&mut tx_batch);
        }
        receive(io, clock, &mut rx_batch, &mut acct);
        if next_d == total_d && tx_batch.is_empty() {
            break;
        }
    }

    // Drain: wait for the answers still out, up to the timeout after the last send.
    let send_end = clock.now();
    let deadline = Nanos(send_end.0.saturating_add(timeout_ns));
    let stop_at_send_end = stopped_early;
    loop {
        if !tx_batch.is_empty() {
            io.tx_burst(&mut tx_batch);
        }
        receive(io, clock, &mut rx_batch, &mut acct);
        if acct.outstanding() == 0 && tx_batch.is_empty() {
            break;
        }
        if clock.now() >= deadline || (!stop_at_send_end && stop.load(Ordering::Relaxed)) {
            break;
        }
    }
    let datagrams_unsent = tx_batch.len() as u64;
    tx_batch.clear();
    acct.finish();

    let measured_ns = acct.measure_end().saturating_since(schedule.warmup_end());
    Ok(RunOutcome {
        io: io.counters(),
        measured_ns,
        stopped_early,
        window,
        window_capped,
        send_lag_max_ns,
        datagrams: next_d,
        datagrams_unsent,
        accounting: acct,
    })
}

/// One `rx_burst`, every datagram accounted at the same arrival time (read after the burst).
#[inline]
fn receive<P: PacketIo, C: Clock>(io: &mut P, clock: &C, rx_batch: &mut Batch<P::Rx>, acct: &mut Accounting) {
    if io.rx_burst(rx_batch) == 0 {
        return;
    }
    let now = clock.now();
    for rx in rx_batch.drain() {
        acct.on_datagram(rx.payload(), now);
    }
}
