//! The model's checks: which states a read may see, whether a write's answer is one a possible
//! state before it allows, and exactly-once (the same final answer every time).
//!
//! Invariant: every check is a function of the model and the answer; a violation panics with the
//! seed, the step and the time (`Sim::violation`).

use super::*;

impl Sim {
    // ----- the model's checks -----

    /// Registers: the states key `key` may be in for a read sent at `s` and answered at `r`
    /// (`except`: a write whose own effect is left out). Returns the candidates.
    pub(crate) fn candidates(&self, key: usize, s: u64, r: u64, except: Option<usize>) -> Vec<Cand> {
        let ws = &self.keys[key].writes;
        let cand_of = |w: usize| match self.writes[w].op.value() {
            Some(_) => Cand::Present { w, version: self.writes[w].version },
            None => Cand::Absent,
        };
        let base = ws.iter().rposition(|&w| {
            Some(w) != except && matches!(self.writes[w].state, WState::Acked { at, applied: true } if at < s)
        });
        let mut out = vec![base.map_or(Cand::Absent, |i| cand_of(ws[i]))];
        for &w in ws {
            if Some(w) == except || base.is_some_and(|i| ws[i] == w) || self.writes[w].first_sent >= r {
                continue;
            }
            let maybe = match self.writes[w].state {
                WState::Pending | WState::Unknown => true,
                WState::Acked { at, applied } => applied && at >= s,
            };
            if maybe {
                out.push(cand_of(w));
            }
        }
        out
    }

    /// The version of the last write acknowledged (applied) before `s`, if it has one.
    pub(crate) fn base_version(&self, key: usize, s: u64, except: Option<usize>) -> Option<(usize, u64)> {
        let ws = &self.keys[key].writes;
        let i = ws.iter().rposition(|&w| {
            Some(w) != except && matches!(self.writes[w].state, WState::Acked { at, applied: true } if at < s)
        })?;
        let w = ws[i];
        self.writes[w].version.map(|v| (w, v))
    }

    /// Counters: (sum of deltas acknowledged before `s`, sum of every delta that may have applied
    /// by `r`).
    pub(crate) fn counter_bounds(&self, key: usize, s: u64, r: u64, except: Option<usize>) -> (i64, i64) {
        let (mut lo, mut hi) = (0i64, 0i64);
        for &w in &self.keys[key].writes {
            let WOp::Incr(d) = self.writes[w].op else { continue };
            if Some(w) == except {
                continue;
            }
            match self.writes[w].state {
                WState::Acked { at, applied: true } => {
                    if at < s {
                        lo += d;
                    }
                    hi += d;
                }
                WState::Acked { applied: false, .. } => {}
                WState::Pending | WState::Unknown => {
                    if self.writes[w].first_sent < r {
                        hi += d;
                    }
                }
            }
        }
        (lo, hi)
    }

    /// Records that `key` has `version` holding `value` (checks it never named another value).
    pub(crate) fn learn_version(&mut self, key: usize, version: u64, value: &[u8], at: u64, what: &str) {
        if version == 0 {
            self.violation(format!("{what}: key {:?} has version 0", self.name(key)));
        }
        match self.versions.get(&(key, version)) {
            Some(v) if v.as_slice() != value => self.violation(format!(
                "{what}: key {:?} version {version} holds {:?}, but it held {:?} before",
                self.name(key),
                String::from_utf8_lossy(value),
                String::from_utf8_lossy(v)
            )),
            Some(_) => {}
            None => {
                self.versions.insert((key, version), value.to_vec());
            }
        }
        self.keys[key].saw(at, version);
        self.keys[key].hint = version;
    }

    pub(crate) fn name(&self, key: usize) -> String {
        String::from_utf8_lossy(&self.keys[key].name).into_owned()
    }

    /// A read of `key` sent at `s` and answered at `r` returned `result`.
    pub(crate) fn check_read(
        &mut self,
        key: usize,
        s: u64,
        r: u64,
        result: &ReadResult,
        what: &str,
        exact: bool,
    ) {
        let name = self.name(key);
        if self.keys[key].counter {
            self.check_counter_read(key, s, r, result, what, exact);
            return;
        }
        let cands = self.candidates(key, s, r, None);
        match result {
            ReadResult::Absent => {
                if !cands.contains(&Cand::Absent) {
                    self.violation(format!(
                        "{what}: GET {name:?} is NOT_FOUND, but it must hold one of {}",
                        self.describe(&cands)
                    ));
                }
                self.keys[key].hint = 0;
            }
            ReadResult::Found { version, value } => {
                let floor = self.keys[key].floor(s);
                if *version < floor {
                    self.violation(format!(
                        "{what}: GET {name:?} returned version {version}, but version {floor} was seen before \
                         the read was sent (a durable state went back)"
                    ));
                }
                let Some(&w) = self.value_owner.get(value) else {
                    self.violation(format!(
                        "{what}: GET {name:?} returned {:?}, a value no write produced",
                        String::from_utf8_lossy(value)
                    ))
                };
                if self.writes[w].key != key {
                    self.violation(format!("{what}: GET {name:?} returned the value of another key's write"));
                }
                let ok = cands.iter().any(|c| matches!(c, Cand::Present { w: cw, version: v } if *cw == w && v.is_none_or(|v| v == *version)));
                if !ok {
                    self.violation(format!(
                        "{what}: GET {name:?} returned version {version} value {:?} (write {w}: {:?}), \
                         but it must hold one of {}",
                        String::from_utf8_lossy(value),
                        self.writes[w],
                        self.describe(&cands)
                    ));
                }
                if let Some((bw, bv)) = self.base_version(key, s, None) {
                    if bw != w && *version <= bv {
                        self.violation(format!(
                            "{what}: GET {name:?} returned write {w} at version {version}, not newer than the \
                             acknowledged write {bw} at version {bv}"
                        ));
                    }
                }
                self.set_write_version(w, *version, what);
                self.learn_version(key, *version, value, r, what);
            }
        }
        if self.p.clean && exact {
            let expected = self.exact.get(&key).cloned();
            let got = match result {
                ReadResult::Absent => None,
                ReadResult::Found { version, value } => Some((value.clone(), *version)),
            };
            if got != expected {
                self.violation(format!(
                    "{what}: clean model: GET {name:?} returned {got:?}, the model has {expected:?}"
                ));
            }
        }
    }

    pub(crate) fn check_counter_read(
        &mut self,
        key: usize,
        s: u64,
        r: u64,
        result: &ReadResult,
        what: &str,
        exact: bool,
    ) {
        let name = self.name(key);
        let (lo, hi) = self.counter_bounds(key, s, r, None);
        match result {
            ReadResult::Absent => {
                if lo > 0 {
                    self.violation(format!(
                        "{what}: GET {name:?} is NOT_FOUND after increments of {lo} were acknowledged"
                    ));
                }
                if self.p.clean && exact && self.exact.contains_key(&key) {
                    self.violation(format!("{what}: clean model: GET {name:?} NOT_FOUND, model has it"));
                }
            }
            ReadResult::Found { version, value } => {
                let Some(x) = std::str::from_utf8(value).ok().and_then(|t| t.parse::<i64>().ok()) else {
                    self.violation(format!("{what}: counter {name:?} holds {value:?}, not an integer"))
                };
                if x < lo || x > hi {
                    self.violation(format!(
                        "{what}: counter {name:?} reads {x} at version {version}; acknowledged increments sum \
                         to {lo} and all possible ones to {hi}"
                    ));
                }
                let floor = self.keys[key].floor(s);
                if *version < floor {
                    self.violation(format!(
                        "{what}: counter {name:?} version {version} is below version {floor} seen before"
                    ));
                }
                self.learn_version(key, *version, value, r, what);
                if self.p.clean && exact {
                    let expected = self.exact.get(&key).cloned();
                    if expected != Some((value.clone(), *version)) {
                        self.violation(format!(
                            "{what}: clean model: counter {name:?} reads {x} v{version}, model has {expected:?}"
                        ));
                    }
                }
            }
        }
    }

    pub(crate) fn set_write_version(&mut self, w: usize, version: u64, what: &str) {
        match self.writes[w].version {
            Some(v) if v != version => self.violation(format!(
                "{what}: write {w} ({:?}) is seen at version {version}, but it got version {v}",
                self.writes[w]
            )),
            _ => self.writes[w].version = Some(version),
        }
    }

    pub(crate) fn describe(&self, cands: &[Cand]) -> String {
        let parts: Vec<String> = cands
            .iter()
            .map(|c| match c {
                Cand::Absent => "absent".to_string(),
                Cand::Present { w, version } => format!(
                    "write {w} {:?} v{}",
                    String::from_utf8_lossy(self.writes[*w].op.value().unwrap_or_default()),
                    version.map_or("?".into(), |v| v.to_string())
                ),
            })
            .collect();
        format!("[{}]", parts.join(", "))
    }

    /// A final answer to write `w` arrived (for its current attempt or a late one).
    pub(crate) fn on_write_answer(&mut self, w: usize, status: Status, body: &[u8], current: bool) {
        let now = self.now();
        if status == Status::Stale {
            if current {
                self.violation(format!(
                    "write {w} ({:?}) answered STALE while it is the client's latest",
                    self.writes[w]
                ));
            }
            self.count("late answers STALE", 1);
            return;
        }
        // Exactly-once: the same answer every time.
        let answer = (status as u8, body.to_vec());
        if let Some(prev) = &self.writes[w].answer {
            if *prev != answer {
                self.violation(format!(
                    "exactly-once: write {w} (client {} request {}: {:?}) answered {:?} {:?}, but earlier {:?} {:?}",
                    self.writes[w].client,
                    self.writes[w].req,
                    self.writes[w],
                    status,
                    body,
                    Status::from_u8(prev.0),
                    prev.1
                ));
            }
            self.count("repeated final answers (identical)", 1);
            return;
        }
        self.writes[w].answer = Some(answer);
        let key = self.writes[w].key;
        let (s, r) = (self.writes[w].first_sent, now);
        let name = self.name(key);
        let floor = self.keys[key].floor(s);
        let op = self.writes[w].op.clone();
        let applied = match (&op, status) {
            (WOp::Set(value), Status::Ok) | (WOp::Cas(_, value), Status::Ok) => {
                let Ok(b) = <[u8; 8]>::try_from(body) else {
                    self.violation(format!("SET/CAS answer body {body:?}"))
                };
                let version = u64::from_le_bytes(b);
                if version <= floor {
                    self.violation(format!(
                        "write {w} to {name:?} got version {version}, not above version {floor} seen before it was sent"
                    ));
                }
                if let WOp::Cas(expected, _) = op {
                    let cands = self.candidates(key, s, r, Some(w));
                    let ok = cands.iter().any(|c| match c {
                        Cand::Absent => expected == 0,
                        Cand::Present { version: v, .. } => expected != 0 && v.is_none_or(|v| v == expected),
                    });
                    if !ok {
                        self.violation(format!(
                            "CAS {w} on {name:?} expecting {expected} succeeded, but the key was one of {}",
                            self.describe(&cands)
                        ));
                    }
                }
                self.set_write_version(w, version, "write answer");
                let value = value.clone();
                self.learn_version(key, version, &value, now, "write answer");
                if self.p.clean {
                    self.exact.insert(key, (value, version));
                }
                true
            }
            (WOp::Cas(expected, _), Status::CasMismatch) => {
                let expected = *expected;
                let cands = self.candidates(key, s, r, Some(w));
                let ok = cands.iter().any(|c| match c {
                    Cand::Absent => expected != 0,
                    Cand::Present { version: v, .. } => expected == 0 || v.is_none_or(|v| v != expected),
                });
                if !ok {
                    self.violation(format!(
                        "CAS {w} on {name:?} expecting {expected} answered CAS_MISMATCH, but the key was one of {}",
                        self.describe(&cands)
                    ));
                }
                self.count("CAS mismatches", 1);
                false
            }
            (WOp::Del, Status::Ok) => {
                let existed = match body {
                    [0] => false,
                    [1] => true,
                    _ => self.violation(format!("DEL answer body {body:?}")),
                };
                let cands = self.candidates(key, s, r, Some(w));
                let ok = cands.iter().any(|c| matches!(c, Cand::Present { .. }) == existed);
                if !ok {
                    self.violation(format!(
                        "DEL {w} on {name:?} answered existed={existed}, but the key was one of {}",
                        self.describe(&cands)
                    ));
                }
                self.keys[key].hint = 0;
                if self.p.clean {
                    self.exact.remove(&key);
                }
                true
            }
            (WOp::Incr(delta), Status::Ok) => {
                let delta = *delta;
                if body.len() != 16 {
                    self.violation(format!("INCR answer body {body:?}"));
                }
                let x = i64::from_le_bytes(body[..8].try_into().expect("8"));
                let version = u64::from_le_bytes(body[8..].try_into().expect("8"));
                let (lo, _) = self.counter_bounds(key, s, r, Some(w));
                let (_, hi) = self.counter_bounds(key, s, r, None);
                if x < lo + delta || x > hi {
                    self.violation(format!(
                        "INCR {w} of {name:?} by {delta} answered {x}; acknowledged before it: {lo}, all possible: {hi}"
                    ));
                }
                if version <= floor {
                    self.violation(format!(
                        "INCR {w} of {name:?} got version {version} <= {floor} seen before"
                    ));
                }
                self.set_write_version(w, version, "INCR answer");
                let text = x.to_string().into_bytes();
                self.learn_version(key, version, &text, now, "INCR answer");
                if self.p.clean {
                    self.exact.insert(key, (text, version));
                }
                true
            }
            (op, status) => self.violation(format!("write {w} {op:?} on {name:?} answered {status:?}")),
        };
        match self.writes[w].state {
            WState::Pending => {}
            WState::Unknown => self.count("given-up writes answered late", 1),
            WState::Acked { .. } => unreachable!("answer recorded once"),
        }
        // A write answered after the client gave up stays a possibility (its answer may have raced
        // later writes of the key); one answered while current is settled.
        if current {
            self.writes[w].state = WState::Acked { at: now, applied };
        }
    }
}
