//! `History`: the dashboard's last minute, one `Sample` per look at the board (every second):
//! each shard's rates over the interval and the node's durable-write latency quantiles over it.
//!
//! Rates and window quantiles come from two snapshots of the same shard: counters subtracted and
//! divided by the time between them (the shard's own clock), histograms subtracted
//! (`Latency::since`) and the shards' windows added before the quantiles are read. Nothing here
//! asks a shard anything: it reads what the shards published (`StatsBoard`), on the dashboard's
//! thread.
//!
//! Invariants: at most `keep` samples, oldest first; a shard that published nothing new since the
//! last look contributes no rate to the sample (its row says so) rather than a zero; counters that
//! went backwards (never, short of a bug) read as zero, not as a wrap.

use super::{Latency, ShardStats};
use std::collections::VecDeque;
use std::sync::Arc;

/// One shard's rates over an interval, per second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ShardRates {
    /// The shard.
    pub shard: usize,
    /// Requests executed, datagrams received and sent, error answers, drops.
    pub requests: f64,
    pub rx: f64,
    pub tx: f64,
    pub errors: f64,
    pub drops: f64,
    /// Durable writes answered.
    pub writes: f64,
}

/// The node over one interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// When the interval ended (the dashboard's clock, Unix ns).
    pub at_ns: u64,
    /// The shards that published since the last look, with their rates.
    pub shards: Vec<ShardRates>,
    /// Durable writes answered in the interval, all shards, and their latency quantiles, us
    /// (0 without writes).
    pub writes: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

impl Sample {
    /// The node's requests per second (every shard that reported).
    pub fn requests(&self) -> f64 {
        self.shards.iter().map(|s| s.requests).sum()
    }
}

/// The last `keep` samples (see the module header).
#[derive(Debug)]
pub struct History {
    keep: usize,
    /// Each shard's snapshot at the last look (by shard index).
    prev: Vec<Option<Arc<ShardStats>>>,
    samples: VecDeque<Sample>,
}

impl History {
    /// A history of the last `keep` samples.
    pub fn new(keep: usize) -> Self {
        Self { keep: keep.max(1), prev: Vec::new(), samples: VecDeque::with_capacity(keep.max(1)) }
    }

    /// Takes a look at the shards' `latest` snapshots at `now_ns`: a new sample from what each
    /// shard did since the last look (the first look only remembers them).
    pub fn push(&mut self, now_ns: u64, latest: &[Arc<ShardStats>]) {
        let first = self.prev.is_empty();
        let mut sample = Sample { at_ns: now_ns, ..Sample::default() };
        let mut window = Latency::new();
        for s in latest {
            if self.prev.len() <= s.shard {
                self.prev.resize(s.shard + 1, None);
            }
            if let Some(prev) = self.prev[s.shard].as_deref() {
                if s.at_ns <= prev.at_ns {
                    continue; // nothing new from this shard: no rate, and its older snapshot kept
                }
                let w = s.write_latency.since(&prev.write_latency);
                window.add(&w);
                sample.shards.push(rates(prev, s, w.count()));
            }
            self.prev[s.shard] = Some(s.clone());
        }
        if first {
            return;
        }
        sample.writes = window.count();
        let us = |q| window.quantile_ns(q) as f64 / 1e3;
        (sample.p50_us, sample.p99_us, sample.p999_us) = (us(0.5), us(0.99), us(0.999));
        if self.samples.len() == self.keep {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> &VecDeque<Sample> {
        &self.samples
    }

    /// The newest sample.
    pub fn last(&self) -> Option<&Sample> {
        self.samples.back()
    }
}

/// Shard `now.shard`'s rates between two of its snapshots (`writes` durable writes answered).
fn rates(prev: &ShardStats, now: &ShardStats, writes: u64) -> ShardRates {
    let secs = (now.at_ns - prev.at_ns) as f64 / 1e9;
    let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let (pc, nc) = (&prev.shard_counters, &now.shard_counters);
    ShardRates {
        shard: now.shard,
        requests: per_s(prev.engine.requests, now.engine.requests),
        rx: per_s(pc.rx_datagrams, nc.rx_datagrams),
        tx: per_s(pc.tx_datagrams, nc.tx_datagrams),
        errors: per_s(prev.engine.answers_error, now.engine.answers_error),
        drops: per_s(prev.drops_total(), now.drops_total()),
        writes: writes as f64 / secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(shard: usize, at_s: u64, requests: u64, write_us: &[u64]) -> Arc<ShardStats> {
        let mut s = ShardStats { shard, at_ns: at_s * 1_000_000_000, ..ShardStats::default() };
        s.engine.requests = requests;
        for us in write_us {
            s.write_latency.record(us * 1_000);
        }
        Arc::new(s)
    }

    #[test]
    fn rates_and_window_quantiles_come_from_two_snapshots_of_each_shard() {
        let mut h = History::new(2);
        h.push(1, &[snap(0, 1, 100, &[10; 50]), snap(1, 1, 0, &[])]);
        assert!(h.samples().is_empty(), "the first look only remembers");
        // Shard 0 did 300 requests in 2 s, its new writes took 1 ms; shard 1 100 in 1 s.
        let mut writes = vec![10; 50];
        writes.extend([1_000; 20]);
        h.push(2, &[snap(0, 3, 400, &writes), snap(1, 2, 100, &[2_000; 20])]);
        let s = h.last().unwrap();
        assert_eq!(s.shards.iter().map(|r| r.requests).collect::<Vec<_>>(), vec![150.0, 100.0]);
        assert_eq!(s.requests(), 250.0);
        assert_eq!(s.writes, 40, "only the writes of the window");
        assert!((990.0..=1_010.0).contains(&s.p50_us), "{}", s.p50_us);
        assert!((1_980.0..=2_020.0).contains(&s.p99_us), "{}", s.p99_us);
        // Shard 1 published nothing new: it has no rate in the next sample.
        h.push(3, &[snap(0, 4, 400, &writes), snap(1, 2, 100, &[2_000; 20])]);
        let s = h.last().unwrap();
        assert_eq!((s.shards.len(), s.requests(), s.writes, s.p99_us), (1, 0.0, 0, 0.0));
        h.push(4, &[snap(0, 5, 400, &writes)]);
        assert_eq!(h.samples().len(), 2, "kept to its bound");
        assert_eq!(h.samples()[0].at_ns, 3);
    }
}
