//! Per-request accounting: what was sent, what came back, how late, and what never came back.
//!
//! [`Accounting`] joins the [`Schedule`] (intended send times), the [`Outstanding`] ring (which
//! answers are still expected) and the latency histograms. The generator loop calls
//! [`Accounting::issue`] for every request it stamps and [`Accounting::on_datagram`] for every
//! datagram it receives; [`Accounting::finish`] turns what is left outstanding into timeouts.
//!
//! Invariants:
//! - latency is `arrival - intended(k)`, never `arrival - actual send`, so a stalled sender or
//!   server shows up as latency (no coordinated omission);
//! - for each phase (warm-up, measured), every issued request ends as exactly one of `received`
//!   (OK answer within the timeout, latency recorded if measured), `errors` (non-OK status) or
//!   `timeouts` (no answer within `timeout_ns` of its intended time): after `finish`,
//!   `sent == received + errors + timeouts` (tested);
//! - answers nobody is waiting for (duplicates, unknown ids, answers to requests already counted
//!   as timeouts) are `unexpected`; datagrams that do not decode, or requests that come back without
//!   the response flag outside reflector mode, are `malformed`; neither touches latency;
//! - nothing here allocates after [`Accounting::new`] (histogram buckets are preallocated).

use crate::outstanding::Outstanding;
use crate::rate::Schedule;
use hdrhistogram::Histogram;
use vigil::wire::{self, Frames, Status};
use vigil_pmd::Nanos;

/// Highest latency the histograms track (60 s); larger values are clamped to it.
pub const LATENCY_MAX_NS: u64 = 60_000_000_000;
/// Histogram precision.
pub const SIGNIFICANT_FIGURES: u8 = 3;
/// Slots in `errors_by_status`: one per status byte 0..=8 and one for bytes no status has.
pub const STATUS_SLOTS: usize = 10;
/// Index in `errors_by_status` for a status byte that is not a known [`Status`].
pub const UNKNOWN_STATUS_SLOT: usize = STATUS_SLOTS - 1;

/// A latency histogram in nanoseconds, 3 significant figures, up to 60 s.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_NS, SIGNIFICANT_FIGURES).expect("valid histogram bounds")
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

/// Most intervals kept: a long run gets wider intervals instead of more memory.
pub const INTERVALS_MAX: u64 = 600;

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
        let count = duration_ns.div_ceil(1_000_000_000).clamp(1, INTERVALS_MAX);
        let width_ns = duration_ns.div_ceil(count).max(1_000_000_000);
        let hists = (0..count)
            .map(|_| Histogram::new_with_bounds(1, LATENCY_MAX_NS, 2).expect("valid histogram bounds"))
            .collect();
        Self { width_ns, hists }
    }
}

/// The run's accounting.
#[derive(Debug)]
pub struct Accounting {
    schedule: Schedule,
    outstanding: Outstanding,
    timeout_ns: u64,
    reflector: bool,
    measure_end: u64,
    /// Latencies of the measured phase's OK answers (ns).
    pub latency: Histogram<u64>,
    /// Optional interval histograms (a copy of each measured latency, split by intended time).
    pub intervals: Option<Intervals>,
    /// Requests whose intended time falls in the warm-up.
    pub warmup: PhaseCounts,
    /// Requests of the measured phase.
    pub measured: PhaseCounts,
    /// Measured-phase errors by status byte (`UNKNOWN_STATUS_SLOT` for unknown bytes).
    pub errors_by_status: [u64; STATUS_SLOTS],
    /// Answer frames nobody was waiting for (duplicate, unknown or already timed-out ids).
    pub unexpected: u64,
    /// Datagrams (or trailing frames) that did not decode, or requests without the response flag.
    pub malformed: u64,
    /// OK answers (any phase) that arrived inside the measured window: the achieved rate's count.
    pub answered_in_window: u64,
}

impl Accounting {
    /// Accounting for `schedule`, tracking outstanding requests in a ring of `window` slots (a
    /// power of two). `reflector`: accept request datagrams coming back unchanged as answers.
    pub fn new(schedule: Schedule, window: u64, timeout_ns: u64, reflector: bool) -> Self {
        Self {
            schedule,
            outstanding: Outstanding::new(window),
            timeout_ns,
            reflector,
            measure_end: u64::MAX,
            latency: new_histogram(),
            intervals: None,
            warmup: PhaseCounts::default(),
            measured: PhaseCounts::default(),
            errors_by_status: [0; STATUS_SLOTS],
            unexpected: 0,
            malformed: 0,
            answered_in_window: 0,
        }
    }

    /// The schedule this accounting follows.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Sets the end of the measured window (the scheduled end, or the stop time on Ctrl-C).
    pub fn set_measure_end(&mut self, end: Nanos) {
        self.measure_end = end.0;
    }

    /// The end of the measured window.
    pub fn measure_end(&self) -> Nanos {
        Nanos(self.measure_end)
    }

    /// Requests still waiting for an answer.
    pub fn outstanding(&self) -> u64 {
        self.outstanding.outstanding()
    }

    #[inline]
    fn phase_mut(&mut self, k: u64) -> &mut PhaseCounts {
        if self.schedule.is_measured(k) {
            &mut self.measured
        } else {
            &mut self.warmup
        }
    }

    /// Request `k` was stamped and queued for sending.
    #[inline]
    pub fn issue(&mut self, k: u64) {
        self.phase_mut(k).sent += 1;
        if let Some(evicted) = self.outstanding.issue(k) {
            self.phase_mut(evicted).timeouts += 1;
        }
    }

    /// One received datagram's payload, arrived at `now`.
    pub fn on_datagram(&mut self, payload: &[u8], now: Nanos) {
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
                Ok(f) => self.on_answer(f.request_id, f.status, now),
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
        if k >= self.schedule.total_requests() || !self.outstanding.complete(k) {
            self.unexpected += 1;
            return;
        }
        let intended = self.schedule.intended(k);
        let latency = now.saturating_since(intended);
        let measured = self.schedule.is_measured(k);
        let timeout_ns = self.timeout_ns;
        let phase = self.phase_mut(k);
        if latency > timeout_ns {
            // Answered, but after the timeout: "not answered within it" is a timeout.
            phase.timeouts += 1;
            return;
        }
        if status != Status::Ok as u8 {
            phase.errors += 1;
            if measured {
                let slot = match Status::from_u8(status) {
                    Some(s) => s as usize,
                    None => UNKNOWN_STATUS_SLOT,
                };
                self.errors_by_status[slot] += 1;
            }
            return;
        }
        phase.received += 1;
        if now.0 >= self.schedule.warmup_end().0 && now.0 < self.measure_end {
            self.answered_in_window += 1;
        }
        if measured {
            let v = latency.max(1);
            self.latency.saturating_record(v);
            if let Some(iv) = &mut self.intervals {
                let i = (intended.0 - self.schedule.warmup_end().0) / iv.width_ns;
                let last = iv.hists.len() - 1;
                iv.hists[usize::try_from(i).unwrap_or(last).min(last)].saturating_record(v);
            }
        }
    }

    /// Counts every request still outstanding as a timeout; call once the last answer is in or the
    /// timeout has passed.
    pub fn finish(&mut self) {
        let schedule = self.schedule;
        let (mut warm, mut meas) = (0, 0);
        self.outstanding.drain(|k| if schedule.is_measured(k) { meas += 1 } else { warm += 1 });
        self.warmup.timeouts += warm;
        self.measured.timeouts += meas;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil::wire::{opcode, DatagramWriter};

    const MS: u64 = 1_000_000;

    fn acct(reflector: bool) -> Accounting {
        // 1000 rps, 10 ms warm-up, 100 ms measured: requests 0..10 warm, 10..110 measured.
        let s = Schedule::new(Nanos(0), 1000, 1, 10 * MS, 100 * MS);
        Accounting::new(s, 256, 50 * MS, reflector)
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
        for k in 0..20 {
            a.issue(k);
        }
        a.on_datagram(&response(&[(3, Status::Ok)]), Nanos(3 * MS + 500));
        a.on_datagram(&response(&[(15, Status::Ok)]), Nanos(15 * MS + 7_000));
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
        for k in 0..110 {
            a.issue(k);
        }
        let t = Nanos(50 * MS);
        a.on_datagram(&response(&[(40, Status::Ok), (41, Status::Busy), (42, Status::Ok)]), t);
        a.on_datagram(&response(&[(40, Status::Ok)]), t); // duplicate
        a.on_datagram(&response(&[(5000, Status::Ok)]), t); // never issued
        a.on_answer(43, 200, t); // unknown status byte
        a.on_answer(44, Status::Ok as u8, Nanos(44 * MS + 51 * MS)); // past the 50 ms timeout
        a.on_datagram(b"garbage", t);
        a.finish();
        assert_eq!(a.unexpected, 2);
        assert_eq!(a.malformed, 1);
        assert_eq!(a.measured.errors, 2);
        assert_eq!(a.errors_by_status[Status::Busy as usize], 1);
        assert_eq!(a.errors_by_status[UNKNOWN_STATUS_SLOT], 1);
        assert_eq!(a.measured.received, 2);
        assert_eq!(a.measured.sent, 100);
        assert_eq!(a.warmup.sent, 10);
        assert_eq!(a.warmup.timeouts, 10);
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
        a.issue(12);
        a.on_datagram(&buf[..n], Nanos(13 * MS));
        assert_eq!((a.malformed, a.measured.received), (1, 0));
        let mut a = acct(true);
        a.issue(12);
        a.on_datagram(&buf[..n], Nanos(13 * MS));
        assert_eq!((a.malformed, a.measured.received), (0, 1));
    }

    #[test]
    fn eviction_counts_a_timeout_in_the_evicted_requests_phase() {
        let s = Schedule::new(Nanos(0), 1000, 1, 2 * MS, 100 * MS);
        let mut a = Accounting::new(s, 4, 1_000 * MS, false);
        for k in 0..6 {
            a.issue(k);
        }
        // 0 and 1 (warm-up) were evicted by 4 and 5.
        assert_eq!(a.warmup.timeouts, 2);
        assert_eq!(a.measured.timeouts, 0);
        assert_eq!(a.outstanding(), 4);
    }

    #[test]
    fn intervals_are_per_second_and_capped() {
        let iv = Intervals::covering(2_500_000_000);
        assert_eq!((iv.hists.len(), iv.width_ns), (3, 1_000_000_000));
        let iv = Intervals::covering(3_600_000_000_000);
        assert_eq!((iv.hists.len() as u64, iv.width_ns), (INTERVALS_MAX, 6_000_000_000));
    }
}
