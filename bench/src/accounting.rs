//! Per-request accounting: what was sent, what came back, how late, and what never came back.
//!
//! [`Accounting`] joins the [`Outstanding`] ring (which answers are still expected, and when each
//! was meant to be sent), the latency histograms and the per-second timeline. The generator loop
//! calls [`Accounting::issue`] for every request it stamps (with its intended send time) and
//! [`Accounting::on_datagram`] for every datagram it receives; [`Accounting::finish`] turns what is
//! left outstanding into timeouts. Each generator thread has its own; [`Accounting::merge`] sums
//! them for the report.
//!
//! Invariants:
//! - latency is `arrival - intended(k)`, never `arrival - actual send`, so a stalled sender or
//!   server shows up as latency (no coordinated omission); `intended(k)` is stored next to `k` in
//!   the ring, not recomputed;
//! - a request belongs to the warm-up or the measured phase by its intended time; for each phase,
//!   every issued request ends as exactly one of `received` (OK answer within the timeout, latency
//!   recorded if measured; a KV GET or CANDLE_GET answered `NOT_FOUND` counts here too, and also in `not_found`), `errors` (non-OK status) or `timeouts` (no answer within `timeout_ns` of
//!   its intended time): after `finish`, `sent == received + errors + timeouts` (tested);
//! - a `NOT_LEADER` answer that the caller resends ([`Accounting::on_datagram_routed`]) ends
//!   nothing: the request stays outstanding with its intended time, so the latency of its final
//!   answer includes the redirect; an `ADDRESS_UNPROVEN` answer goes to the caller too (it keeps
//!   the cookie) and is counted as the error it is;
//! - an `AUTH_FAILED` for a whole datagram (opcode 0, id 0) is counted in `refused_datagrams` when
//!   no malformed traffic is injected (its requests end as timeouts: the answer names none of
//!   them), else under `injected`;
//! - answers nobody is waiting for (duplicates, unknown ids, answers to requests already counted
//!   as timeouts) are `unexpected`; datagrams that do not decode, or requests that come back without
//!   the response flag outside reflector mode, are `malformed`; answers to *injected* malformed
//!   traffic (ids with [`MALFORMED_ID_BIT`], or id 0) are counted by status under `injected`; none
//!   of these touches the valid-traffic latency;
//! - nothing here allocates after [`Accounting::new`] (histogram buckets and timeline are
//!   preallocated) until `finish`.

use crate::leaders::LeaderCounts;
use crate::outstanding::Outstanding;
use crate::progress::ProgressSlot;
use hdrhistogram::Histogram;
use std::sync::Arc;
use vigil::wire::{self, Frames, Status};
use vigil_pmd::Nanos;

/// Request ids of injected malformed datagrams have this bit set (the same bit as
/// `traffic::MALFORMED_ID_BIT`); answers carrying it never touch the valid-traffic accounting.
pub const MALFORMED_ID_BIT: u64 = 1 << 63;

/// Highest latency the histograms track (60 s); larger values are clamped to it.
pub const LATENCY_MAX_NS: u64 = 60_000_000_000;
/// Histogram precision.
pub const SIGNIFICANT_FIGURES: u8 = 3;
/// Slots in `errors_by_status`: one per status byte 0..=25 (`QUOTA_EXCEEDED` is the highest) and
/// one for bytes no status has.
pub const STATUS_SLOTS: usize = 27;
/// Index in `errors_by_status` for a status byte that is not a known [`Status`].
pub const UNKNOWN_STATUS_SLOT: usize = STATUS_SLOTS - 1;

/// A latency histogram in nanoseconds, 3 significant figures, up to 60 s.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_NS, SIGNIFICANT_FIGURES).expect("valid histogram bounds")
}

/// The slot of a status byte in a by-status array.
#[inline]
pub fn status_slot(status: u8) -> usize {
    match Status::from_u8(status) {
        // A status added to the protocol after this table was sized counts as unknown, not as a panic.
        Some(s) if (s as usize) < UNKNOWN_STATUS_SLOT => s as usize,
        _ => UNKNOWN_STATUS_SLOT,
    }
}

/// Outcomes of one phase's requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseCounts {
    /// Requests stamped and handed to the transmit path.
    pub sent: u64,
    /// OK answers within the timeout.
    pub received: u64,
    /// Answers with a non-OK status.
    pub errors: u64,
    /// Requests not answered within the timeout.
    pub timeouts: u64,
}

impl PhaseCounts {
    fn add(&mut self, o: &PhaseCounts) {
        self.sent += o.sent;
        self.received += o.received;
        self.errors += o.errors;
        self.timeouts += o.timeouts;
    }
}

/// Most intervals kept: a long run gets wider intervals instead of more memory.
pub const INTERVALS_MAX: u64 = 600;

/// The interval count and width for a measured phase of `duration_ns`: one per second, at most
/// [`INTERVALS_MAX`] (wider on long runs). The `.hlog` and the JSON timeline share it.
pub fn interval_grid(duration_ns: u64) -> (usize, u64) {
    let count = duration_ns.div_ceil(1_000_000_000).clamp(1, INTERVALS_MAX);
    let width_ns = duration_ns.div_ceil(count).max(1_000_000_000);
    (count as usize, width_ns)
}

/// Latency histograms of the measured phase split by intended send time (one per second, or per
/// `duration / INTERVALS_MAX` on long runs), for the interval log. All preallocated, at 2
/// significant figures (about 30 KiB each) since they are for plotting, not for the summary.
#[derive(Debug)]
pub struct Intervals {
    /// Width of each interval.
    pub width_ns: u64,
    /// One histogram per interval, from the end of the warm-up.
    pub hists: Vec<Histogram<u64>>,
}

impl Intervals {
    /// Intervals covering `duration_ns`: one per second, at most [`INTERVALS_MAX`].
    pub fn covering(duration_ns: u64) -> Self {
        let (count, width_ns) = interval_grid(duration_ns);
        let hists = (0..count)
            .map(|_| Histogram::new_with_bounds(1, LATENCY_MAX_NS, 2).expect("valid histogram bounds"))
            .collect();
        Self { width_ns, hists }
    }
}

/// One interval of the timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TimelineBin {
    /// Requests whose intended send time falls in the interval.
    pub offered: u64,
    /// Requests actually stamped and queued in it.
    pub sent: u64,
    /// OK answers received in it (within their timeout).
    pub answered: u64,
    /// Non-OK answers received in it.
    pub errors: u64,
    /// Requests, by intended send time, that were never answered within the timeout.
    pub timeouts: u64,
}

/// Valid-traffic counts per interval of the measured phase (same grid as [`Intervals`]). Events
/// outside the measured phase's intervals (warm-up, and answers arriving after its end) are not
/// in it.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Start of interval 0 (the end of the warm-up).
    pub origin: u64,
    /// Width of each interval.
    pub width_ns: u64,
    /// The intervals.
    pub bins: Vec<TimelineBin>,
}

impl Timeline {
    /// A timeline from `origin` covering `duration_ns`.
    pub fn covering(origin: Nanos, duration_ns: u64) -> Self {
        let (count, width_ns) = interval_grid(duration_ns);
        Self { origin: origin.0, width_ns, bins: vec![TimelineBin::default(); count] }
    }

    /// The interval holding time `t`, if the timeline covers it.
    #[inline]
    pub fn bin(&mut self, t: u64) -> Option<&mut TimelineBin> {
        let i = t.checked_sub(self.origin)? / self.width_ns;
        self.bins.get_mut(usize::try_from(i).ok()?)
    }

    fn add(&mut self, o: &Timeline) {
        for (a, b) in self.bins.iter_mut().zip(&o.bins) {
            a.offered += b.offered;
            a.sent += b.sent;
            a.answered += b.answered;
            a.errors += b.errors;
            a.timeouts += b.timeouts;
        }
    }
}

/// Injected malformed traffic: what went out and what the server said to it, kept apart from the
/// valid traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MalformedCounts {
    /// Malformed datagrams sent.
    pub sent: u64,
    /// Answers attributed to malformed datagrams, by status slot: frames whose request id has
    /// [`MALFORMED_ID_BIT`], and datagram-level error answers (request id 0, which no valid
    /// request uses).
    pub answered_by_status: [u64; STATUS_SLOTS],
}

/// The run's accounting (one per generator thread; merged at the end).
#[derive(Debug)]
pub struct Accounting {
    outstanding: Outstanding,
    start: u64,
    warmup_end: u64,
    timeout_ns: u64,
    reflector: bool,
    measure_end: u64,
    progress: Option<Arc<ProgressSlot>>,
    /// Latencies of the measured phase's OK answers (ns), valid traffic only.
    pub latency: Histogram<u64>,
    /// Optional interval histograms (a copy of each measured latency, split by intended time).
    pub intervals: Option<Intervals>,
    /// Per-interval counts of the measured phase.
    pub timeline: Timeline,
    /// Requests whose intended time falls in the warm-up.
    pub warmup: PhaseCounts,
    /// Requests of the measured phase.
    pub measured: PhaseCounts,
    /// Measured-phase errors by status byte (`UNKNOWN_STATUS_SLOT` for unknown bytes).
    pub errors_by_status: [u64; STATUS_SLOTS],
    /// Answer frames nobody was waiting for (duplicate, unknown or already timed-out ids).
    pub unexpected: u64,
    /// Received datagrams (or trailing frames) that did not decode, or requests without the
    /// response flag.
    pub malformed: u64,
    /// OK answers (any phase) that arrived inside the measured window: the achieved rate's count.
    pub answered_in_window: u64,
    /// Injected malformed datagrams and their answers.
    pub injected: MalformedCounts,
    /// OK ECHO answers whose body was not the one sent (checked only when asked).
    pub bad_echo: u64,
    /// Measured-phase KV GETs answered `NOT_FOUND` (the key was never set, or was deleted): a normal
    /// outcome, counted in `received` (with its latency), never in `errors`.
    pub not_found: u64,
    /// Leader following: `NOT_LEADER` redirects and retries, nodes given up ([`crate::leaders`]).
    pub leaders: LeaderCounts,
    /// Whole datagrams refused `AUTH_FAILED` (any phase), by refusal byte (index = byte; 0 for a
    /// body without one).
    pub refused_datagrams: [u64; REFUSAL_SLOTS],
}

/// Slots in `refused_datagrams`: refusal bytes 0..=15.
pub const REFUSAL_SLOTS: usize = 16;

impl Accounting {
    /// Accounting for a run starting at `start` whose warm-up ends at `warmup_end` and whose
    /// measured phase lasts `duration_ns`, tracking outstanding requests in a ring of `window`
    /// slots (a power of two). `reflector`: accept request datagrams coming back unchanged as
    /// answers.
    pub fn new(
        start: Nanos,
        warmup_end: Nanos,
        duration_ns: u64,
        window: u64,
        timeout_ns: u64,
        reflector: bool,
    ) -> Self {
        Self {
            outstanding: Outstanding::new(window),
            start: start.0,
            warmup_end: warmup_end.0,
            timeout_ns,
            reflector,
            measure_end: warmup_end.0.saturating_add(duration_ns),
            progress: None,
            latency: new_histogram(),
            intervals: None,
            timeline: Timeline::covering(warmup_end, duration_ns),
            warmup: PhaseCounts::default(),
            measured: PhaseCounts::default(),
            errors_by_status: [0; STATUS_SLOTS],
            unexpected: 0,
            malformed: 0,
            answered_in_window: 0,
            injected: MalformedCounts::default(),
            bad_echo: 0,
            not_found: 0,
            leaders: LeaderCounts::default(),
            refused_datagrams: [0; REFUSAL_SLOTS],
        }
    }

    /// Also counts each measured latency into `slot` (the live progress line).
    pub fn set_progress(&mut self, slot: Arc<ProgressSlot>) {
        self.progress = Some(slot);
    }

    /// Publishes the running totals to the progress slot, if any.
    pub fn publish_progress(&self) {
        if let Some(p) = &self.progress {
            let (w, m) = (&self.warmup, &self.measured);
            p.publish(w.sent + m.sent, w.received + m.received, w.errors + m.errors, w.timeouts + m.timeouts);
        }
    }

    /// When the run started.
    pub fn start(&self) -> Nanos {
        Nanos(self.start)
    }

    /// When the warm-up ends and measurement begins.
    pub fn warmup_end(&self) -> Nanos {
        Nanos(self.warmup_end)
    }

    /// Sets the end of the measured window (the scheduled end, or the stop time on Ctrl-C).
    pub fn set_measure_end(&mut self, end: Nanos) {
        self.measure_end = end.0;
    }

    /// The end of the measured window.
    pub fn measure_end(&self) -> Nanos {
        Nanos(self.measure_end)
    }

    /// Whether request `k` still waits for its answer (a resend of one no longer waiting would
    /// only produce an `unexpected` answer).
    pub fn is_outstanding(&self, k: u64) -> bool {
        self.outstanding.is_outstanding(k)
    }

    /// Records that request `k` went to node `node` (its first send or a resend).
    #[inline]
    pub fn sent_to(&mut self, k: u64, node: u8) {
        self.outstanding.sent_to(k, node);
    }

    /// Calls `f(k)` for every request still waiting whose last send went to `node`, until `f`
    /// returns `false`.
    pub fn each_sent_to(&self, node: u8, f: impl FnMut(u64) -> bool) {
        self.outstanding.each_sent_to(node, f);
    }

    /// Requests still waiting for an answer.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.outstanding()
    }

    /// The outstanding ring's size.
    pub fn window(&self) -> u64 {
        self.outstanding.window()
    }

    #[inline]
    fn is_measured(&self, intended: u64) -> bool {
        intended >= self.warmup_end
    }

    #[inline]
    fn phase_mut(&mut self, intended: u64) -> &mut PhaseCounts {
        if self.is_measured(intended) {
            &mut self.measured
        } else {
            &mut self.warmup
        }
    }

    #[inline]
    fn timeout(&mut self, intended: u64) {
        self.phase_mut(intended).timeouts += 1;
        if let Some(b) = self.timeline.bin(intended) {
            b.timeouts += 1;
        }
    }

    /// Request `k`, meant to be sent at `intended`, was stamped and queued at `now`.
    #[inline]
    pub fn issue(&mut self, k: u64, intended: Nanos, now: Nanos) {
        self.phase_mut(intended.0).sent += 1;
        if let Some(b) = self.timeline.bin(intended.0) {
            b.offered += 1;
        }
        if let Some(b) = self.timeline.bin(now.0) {
            b.sent += 1;
        }
        if let Some((_, evicted)) = self.outstanding.issue(k, intended.0) {
            self.timeout(evicted);
        }
    }

    /// One injected malformed datagram was queued.
    #[inline]
    pub fn issue_malformed(&mut self) {
        self.injected.sent += 1;
    }

    /// One received datagram's payload, arrived at `now`. `echo_ok(k, body)` checks an OK ECHO
    /// or CANDLE_LIGHT answer's body (and sees the candle ids LIGHTs were answered with) (return `true` to accept; pass `|_, _| true` to skip the check).
    pub fn on_datagram(&mut self, payload: &[u8], now: Nanos, echo_ok: &mut impl FnMut(u64, &[u8]) -> bool) {
        self.on_datagram_routed(payload, now, echo_ok, &mut |_, _, _, _| false);
    }

    /// [`Accounting::on_datagram`], and every `NOT_LEADER` or `ADDRESS_UNPROVEN` answer to a
    /// request still outstanding goes to `routed(status, k, intended, body)` first: `true` means the
    /// request is being resent (it stays outstanding, with its intended send time, so its latency
    /// will include the resend); `false` counts the answer as the error it is.
    pub fn on_datagram_routed(
        &mut self,
        payload: &[u8],
        now: Nanos,
        echo_ok: &mut impl FnMut(u64, &[u8]) -> bool,
        routed: &mut impl FnMut(Status, u64, u64, &[u8]) -> bool,
    ) {
        let header = match wire::decode_header(payload) {
            Ok(h) => h,
            Err(_) => {
                self.malformed += 1;
                return;
            }
        };
        if !header.is_response() && !self.reflector {
            // A request came back where answers were expected: a misrouted or looped datagram.
            self.malformed += 1;
            return;
        }
        for frame in Frames::new(payload, header.count) {
            match frame {
                Ok(f) => {
                    let k = f.request_id;
                    let to_caller = match Status::from_u8(f.status) {
                        Some(s @ (Status::NotLeader | Status::AddressUnproven)) => Some(s),
                        _ => None,
                    };
                    if let Some(status) = to_caller.filter(|_| k & MALFORMED_ID_BIT == 0) {
                        if let Some(intended) = self.outstanding.intended(k) {
                            if routed(status, k, intended, f.body) {
                                continue;
                            }
                        }
                    }
                    if k == 0 && f.status == Status::AuthFailed as u8 && self.injected.sent == 0 {
                        let slot = f.body.first().map_or(0, |b| usize::from(*b).min(REFUSAL_SLOTS - 1));
                        self.refused_datagrams[slot] += 1;
                        continue;
                    }
                    if f.status == Status::Ok as u8
                        && matches!(f.opcode, wire::opcode::ECHO | wire::opcode::CANDLE_LIGHT)
                        && k & MALFORMED_ID_BIT == 0
                        && !self.reflector
                        && !echo_ok(k, f.body)
                    {
                        self.bad_echo += 1;
                    }
                    if matches!(f.opcode, wire::opcode::GET | wire::opcode::CANDLE_GET)
                        && f.status == Status::NotFound as u8
                    {
                        self.answer(k, Status::Ok as u8, true, now);
                    } else {
                        self.answer(k, f.status, false, now);
                    }
                }
                Err(_) => {
                    self.malformed += 1;
                    break;
                }
            }
        }
    }

    /// One answer frame for request `k` with status byte `status`, arrived at `now`.
    #[inline]
    pub fn on_answer(&mut self, k: u64, status: u8, now: Nanos) {
        self.answer(k, status, false, now);
    }

    /// One answer frame; `not_found`: a GET's `NOT_FOUND`, passed as OK and also counted apart.
    #[inline]
    fn answer(&mut self, k: u64, status: u8, not_found: bool, now: Nanos) {
        if k & MALFORMED_ID_BIT != 0 || k == 0 {
            // An answer to injected malformed traffic (or a datagram-level error, id 0): counted
            // apart, never in the valid-traffic latency.
            self.injected.answered_by_status[status_slot(status)] += 1;
            return;
        }
        let Some(intended) = self.outstanding.complete(k) else {
            self.unexpected += 1;
            return;
        };
        let latency = now.0.saturating_sub(intended);
        let measured = self.is_measured(intended);
        if latency > self.timeout_ns {
            // Answered, but after the timeout: "not answered within it" is a timeout.
            self.timeout(intended);
            return;
        }
        if status != Status::Ok as u8 {
            self.phase_mut(intended).errors += 1;
            if measured {
                self.errors_by_status[status_slot(status)] += 1;
            }
            if let Some(b) = self.timeline.bin(now.0) {
                b.errors += 1;
            }
            return;
        }
        self.phase_mut(intended).received += 1;
        if now.0 >= self.warmup_end && now.0 < self.measure_end {
            self.answered_in_window += 1;
        }
        if let Some(b) = self.timeline.bin(now.0) {
            b.answered += 1;
        }
        if measured {
            if not_found {
                self.not_found += 1;
            }
            let v = latency.max(1);
            self.latency.saturating_record(v);
            if let Some(p) = &self.progress {
                p.record_latency(v);
            }
            if let Some(iv) = &mut self.intervals {
                let i = (intended - self.warmup_end) / iv.width_ns;
                let last = iv.hists.len() - 1;
                iv.hists[usize::try_from(i).unwrap_or(last).min(last)].saturating_record(v);
            }
        }
    }

    /// Counts every request still outstanding as a timeout; call once the last answer is in or the
    /// timeout has passed.
    pub fn finish(&mut self) {
        let mut left = std::mem::replace(&mut self.outstanding, Outstanding::new(1));
        left.drain(|_, intended| self.timeout(intended));
        self.outstanding = left;
        self.publish_progress();
    }

    /// Adds `o`'s counts, histograms and timeline to these (the threads of one run; `o` must have
    /// the same start, warm-up end and interval grid). The outstanding rings are not merged: call
    /// after [`Accounting::finish`] on both.
    pub fn merge(&mut self, o: &Accounting) {
        self.latency.add(&o.latency).expect("same histogram bounds");
        if let (Some(a), Some(b)) = (&mut self.intervals, &o.intervals) {
            for (x, y) in a.hists.iter_mut().zip(&b.hists) {
                x.add(y).expect("same histogram bounds");
            }
        }
        self.timeline.add(&o.timeline);
        self.warmup.add(&o.warmup);
        self.measured.add(&o.measured);
        for (a, b) in self.errors_by_status.iter_mut().zip(o.errors_by_status) {
            *a += b;
        }
        self.unexpected += o.unexpected;
        self.malformed += o.malformed;
        self.answered_in_window += o.answered_in_window;
        self.injected.sent += o.injected.sent;
        for (a, b) in self.injected.answered_by_status.iter_mut().zip(o.injected.answered_by_status) {
            *a += b;
        }
        self.bad_echo += o.bad_echo;
        self.not_found += o.not_found;
        self.leaders.add(&o.leaders);
        for (a, b) in self.refused_datagrams.iter_mut().zip(o.refused_datagrams) {
            *a += b;
        }
        // The window of a stopped thread may end earlier; the run's is the latest.
        self.measure_end = self.measure_end.max(o.measure_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil::wire::{opcode, DatagramWriter};

    const MS: u64 = 1_000_000;

    /// Request `k` (k >= 1) is meant for `k` ms; the warm-up ends at 10 ms, the measured phase
    /// lasts 100 ms.
    fn acct(reflector: bool) -> Accounting {
        Accounting::new(Nanos(0), Nanos(10 * MS), 100 * MS, 256, 50 * MS, reflector)
    }

    fn issue(a: &mut Accounting, ks: std::ops::Range<u64>) {
        for k in ks {
            a.issue(k, Nanos(k * MS), Nanos(k * MS));
        }
    }

    fn on(a: &mut Accounting, payload: &[u8], now: Nanos) {
        a.on_datagram(payload, now, &mut |_, _| true);
    }

    fn response(ids: &[(u64, Status)]) -> Vec<u8> {
        let mut buf = vec![0u8; 1500];
        let mut w = DatagramWriter::response(&mut buf, 7).unwrap();
        for &(k, st) in ids {
            w.push(opcode::PING, st as u8, k, &[]).unwrap();
        }
        let n = w.finish();
        buf.truncate(n);
        buf
    }

    #[test]
    fn latency_is_from_intended_time_and_warmup_is_not_recorded() {
        let mut a = acct(false);
        a.set_measure_end(Nanos(110 * MS));
        issue(&mut a, 1..20);
        on(&mut a, &response(&[(3, Status::Ok)]), Nanos(3 * MS + 500));
        on(&mut a, &response(&[(15, Status::Ok)]), Nanos(15 * MS + 7_000));
        assert_eq!(a.warmup.received, 1);
        assert_eq!(a.measured.received, 1);
        assert_eq!(a.latency.len(), 1);
        let max = a.latency.max();
        assert!(a.latency.equivalent(max, 7_000), "{max}");
        assert_eq!(a.answered_in_window, 1, "the warm-up answer arrived before the window");
    }

    #[test]
    fn duplicates_unknown_errors_and_timeouts_are_told_apart() {
        let mut a = acct(false);
        issue(&mut a, 1..110);
        let t = Nanos(50 * MS);
        on(&mut a, &response(&[(40, Status::Ok), (41, Status::Busy), (42, Status::Ok)]), t);
        on(&mut a, &response(&[(40, Status::Ok)]), t); // duplicate
        on(&mut a, &response(&[(5000, Status::Ok)]), t); // never issued
        a.on_answer(43, 200, t); // unknown status byte
        a.on_answer(44, Status::Ok as u8, Nanos(44 * MS + 51 * MS)); // past the 50 ms timeout
        on(&mut a, b"garbage", t);
        // Answers to injected malformed traffic are counted apart.
        on(&mut a, &response(&[(MALFORMED_ID_BIT | 3, Status::Malformed), (0, Status::TooManyRequests)]), t);
        a.finish();
        assert_eq!(a.unexpected, 2);
        assert_eq!(a.malformed, 1);
        assert_eq!(a.measured.errors, 2);
        assert_eq!(a.errors_by_status[Status::Busy as usize], 1);
        assert_eq!(a.errors_by_status[UNKNOWN_STATUS_SLOT], 1);
        assert_eq!(a.measured.received, 2);
        assert_eq!(a.measured.sent, 100);
        assert_eq!(a.warmup.sent, 9);
        assert_eq!(a.warmup.timeouts, 9);
        assert_eq!(a.injected.answered_by_status[Status::Malformed as usize], 1);
        assert_eq!(a.injected.answered_by_status[Status::TooManyRequests as usize], 1);
        assert_eq!(a.latency.len(), 2);
        // The timeline: interval 0 holds all 100 measured requests; 2 OK and 2 errors arrived at
        // 50 ms; the timeouts are by intended time.
        let b = a.timeline.bins[0];
        assert_eq!((b.offered, b.sent, b.answered, b.errors, b.timeouts), (100, 100, 2, 2, 96));
        let m = a.measured;
        assert_eq!(m.sent, m.received + m.errors + m.timeouts);
        assert_eq!(a.outstanding(), 0);
    }

    #[test]
    fn requests_only_count_as_answers_in_reflector_mode() {
        let mut buf = vec![0u8; 1500];
        let mut w = DatagramWriter::request(&mut buf, 7).unwrap();
        w.push(opcode::PING, 0, 12, &[]).unwrap();
        let n = w.finish();
        let mut a = acct(false);
        issue(&mut a, 12..13);
        on(&mut a, &buf[..n], Nanos(13 * MS));
        assert_eq!((a.malformed, a.measured.received), (1, 0));
        let mut a = acct(true);
        issue(&mut a, 12..13);
        on(&mut a, &buf[..n], Nanos(13 * MS));
        assert_eq!((a.malformed, a.measured.received), (0, 1));
    }

    #[test]
    fn eviction_counts_a_timeout_in_the_evicted_requests_phase() {
        let mut a = Accounting::new(Nanos(0), Nanos(3 * MS), 100 * MS, 4, 1_000 * MS, false);
        issue(&mut a, 1..7);
        // 1 and 2 (warm-up) were evicted by 5 and 6.
        assert_eq!(a.warmup.timeouts, 2);
        assert_eq!(a.measured.timeouts, 0);
        assert_eq!(a.outstanding(), 4);
    }

    #[test]
    fn echo_bodies_are_checked_when_asked_and_threads_merge() {
        let mut a = acct(false);
        issue(&mut a, 20..22);
        let mut buf = vec![0u8; 1500];
        let mut w = DatagramWriter::response(&mut buf, 7).unwrap();
        w.push(opcode::ECHO, 0, 20, b"good").unwrap();
        w.push(opcode::ECHO, 0, 21, b"bad!").unwrap();
        let n = w.finish();
        a.on_datagram(&buf[..n], Nanos(22 * MS), &mut |_, body| body == b"good");
        assert_eq!((a.bad_echo, a.measured.received), (1, 2));
        let mut b = acct(false);
        issue(&mut b, 30..31);
        b.on_answer(30, 0, Nanos(31 * MS));
        a.finish();
        b.finish();
        a.merge(&b);
        assert_eq!((a.measured.sent, a.measured.received, a.latency.len()), (3, 3, 3));
        assert_eq!(a.timeline.bins[0].answered, 3);
    }

    #[test]
    fn address_unproven_goes_to_the_caller_and_a_refused_datagram_is_counted_by_reason() {
        let mut a = acct(false);
        issue(&mut a, 20..23);
        let mut buf = vec![0u8; 1500];
        let mut w = DatagramWriter::response(&mut buf, 7).unwrap();
        w.push(opcode::GET, Status::AddressUnproven as u8, 20, &[5; 16]).unwrap();
        w.push(opcode::SET, Status::Forbidden as u8, 21, &[]).unwrap();
        let n = w.finish();
        let mut seen = Vec::new();
        a.on_datagram_routed(&buf[..n], Nanos(22 * MS), &mut |_, _| true, &mut |s, k, _, body| {
            seen.push((s, k, body.to_vec()));
            false
        });
        assert_eq!(seen, vec![(Status::AddressUnproven, 20, vec![5; 16])]);
        let mut w = DatagramWriter::response(&mut buf, 7).unwrap();
        w.push(wire::OPCODE_NONE, Status::AuthFailed as u8, 0, &[3]).unwrap();
        let n = w.finish();
        on(&mut a, &buf[..n], Nanos(22 * MS));
        a.finish();
        assert_eq!(a.errors_by_status[Status::AddressUnproven as usize], 1);
        assert_eq!(a.errors_by_status[Status::Forbidden as usize], 1);
        assert_eq!(a.refused_datagrams[3], 1, "bad_mac");
        assert_eq!((a.measured.errors, a.measured.timeouts), (2, 1), "the refused one timed out");
        assert_eq!(a.injected.answered_by_status.iter().sum::<u64>(), 0);
    }

    #[test]
    fn get_not_found_is_an_answer_not_an_error() {
        let mut a = acct(false);
        issue(&mut a, 20..24);
        let mut buf = vec![0u8; 1500];
        let mut w = DatagramWriter::response(&mut buf, 7).unwrap();
        w.push(opcode::GET, Status::NotFound as u8, 20, &[]).unwrap();
        w.push(opcode::GET, Status::Ok as u8, 21, &[1, 0, 0, 0, 0, 0, 0, 0, b'v']).unwrap();
        w.push(opcode::SET, Status::Ok as u8, 22, &[2, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        // NOT_FOUND for anything but a GET is still an error.
        w.push(opcode::SET, Status::NotFound as u8, 23, &[]).unwrap();
        let n = w.finish();
        on(&mut a, &buf[..n], Nanos(24 * MS));
        a.finish();
        assert_eq!((a.measured.received, a.measured.errors, a.not_found), (3, 1, 1));
        assert_eq!(a.errors_by_status[Status::NotFound as usize], 1);
        assert_eq!(a.latency.len(), 3);
        let mut b = acct(false);
        b.merge(&a);
        assert_eq!(b.not_found, 1);
    }

    #[test]
    fn intervals_are_per_second_and_capped() {
        let iv = Intervals::covering(2_500_000_000);
        assert_eq!((iv.hists.len(), iv.width_ns), (3, 1_000_000_000));
        let iv = Intervals::covering(3_600_000_000_000);
        assert_eq!((iv.hists.len() as u64, iv.width_ns), (INTERVALS_MAX, 6_000_000_000));
    }
}
