//! What each request carries, and the malformed datagrams injected beside the valid traffic.
//!
//! [`TrafficGen`] turns request number `k` into one request frame: the operation drawn from the
//! weighted mix, and for ECHO a key (uniform, zipfian or in order over the key space, written as ASCII
//! decimal) followed by a value whose size and bytes derive from `k`. KV SET and GET carry the same
//! kind of key (and, for SET, value), laid out by Vigil's own `vigil::kv::protocol` encoder, so the
//! generator never keeps a second copy of the KV wire layout. CANDLE_LIGHT sends a body drawn from
//! a [`CandlePool`] filled once in `new`; CANDLE_GET asks for an id a LIGHT of the same run was
//! answered with ([`TrafficGen::see_answer`] remembers them in a bounded [`SeenIds`]), so a GET's
//! body is the one draw that depends on the answers seen, not on `(seed, k)` alone. [`MalformedGen`] writes the
//! i-th malformed datagram of a [`MalformedSpec`], rotating through its kinds.
//!
//! Invariants:
//! - every draw for request `k` is a pure function of `(seed, k)`: a counter-based hash (the k-th
//!   output of a SplitMix64 stream), never a sequential RNG. Several generator threads can share a
//!   spec and each regenerate any request, and an answer is checked by regenerating what was sent
//!   ([`TrafficGen::echo_matches`]) instead of storing it;
//! - nothing allocates per request or per malformed datagram: the op table, the zipfian constants,
//!   the SET scratch buffer and the kind rotation are built in `new`; frames are written in place into the caller's buffer;
//! - valid requests use ids below [`MALFORMED_ID_BIT`]; every frame of a malformed datagram has that
//!   bit set, so answers to malformed traffic are never mistaken for answers to valid requests;
//! - every malformed datagram really is malformed: the server (docs/PROTOCOL.md, "Errors") drops it
//!   or answers at least one frame with an error status, never OK for all of them.

use crate::candles::{CandlePool, SeenIds, CANDLE_IDS_MAX, CANDLE_POOL_BODIES};
use crate::spec::{spec_error, KeyDistribution, KeySpec, MalformedKind, MalformedSpec, OpKind, OpWeight};
use crate::spec::{SizeRange, SpecError};
use std::sync::Arc;
use vigil::kv::protocol::{encode_write_body, request_body_len};
use vigil::wire::{self, opcode, DatagramWriter, NoRoom, FRAME_HEADER_LEN, HEADER_LEN};

/// Set in the request id of every frame of a malformed datagram, and never in a valid request's id
/// (valid ids are sequence numbers, far below 2^63), so answers to the two are told apart.
pub const MALFORMED_ID_BIT: u64 = 1 << 63;

/// True if `request_id` belongs to a malformed datagram (see [`MALFORMED_ID_BIT`]).
pub fn is_malformed_id(request_id: u64) -> bool {
    request_id & MALFORMED_ID_BIT != 0
}

/// Longest key, in bytes.
pub const KEY_BYTES_MAX: usize = 256;
/// Longest value, in bytes (a body must fit a 64 KiB UDP datagram with room to spare).
pub const VALUE_BYTES_MAX: usize = 65_000;
/// Largest zipfian exponent accepted: beyond it nearly every draw is the hottest key anyway, and
/// the sampler's powers start to underflow.
pub const ZIPF_EXPONENT_MAX: f64 = 20.0;

/// The SplitMix64 increment (2^64 / golden ratio).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective mix of all 64 bits.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The k-th output of the SplitMix64 stream whose state starts at `stream`: a counter-based hash,
/// so draw k needs no draw before it.
#[inline]
fn hash_at(stream: u64, k: u64) -> u64 {
    mix64(stream.wrapping_add(k.wrapping_add(1).wrapping_mul(GAMMA)))
}

/// A stream's starting state, from the seed and a per-purpose constant (streams are independent).
fn stream_key(seed: u64, purpose: u64) -> u64 {
    mix64(seed ^ mix64(purpose.wrapping_mul(GAMMA)))
}

/// A uniform f64 in [0, 1) from the top 53 bits.
#[inline]
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform integer in `0..n` (n >= 1), by multiply-high (Lemire): no division, bias < n / 2^64.
#[inline]
fn below(h: u64, n: u64) -> u64 {
    ((u128::from(h) * u128::from(n)) >> 64) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Zipfian ranks in `1..=n` with weight `1/r^s`, by rejection-inversion (Hörmann and Derflinger,
/// "Rejection-inversion to generate variates from monotone discrete distributions", 1996; as in
/// Apache Commons RNG's `RejectionInversionZipfSampler`). Exact for any `s > 0` (s = 1 and s > 1
/// included, unlike the Gray et al. approximation), O(1) per draw with no per-key table, so `n` can
/// be 10^9; a draw is accepted on the first try most of the time (rarely more than two).
#[derive(Clone, Debug)]
struct Zipf {
    n: u64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    squeeze: f64,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Self {
        let mut z = Zipf { n, s, h_integral_x1: 0.0, h_integral_n: 0.0, squeeze: 0.0 };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(n as f64 + 0.5);
        z.squeeze = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// The weight function x^-s.
    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    /// An antiderivative of `h`, written so it is continuous in `s` (s = 1 is log x).
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.s) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }

    /// A rank in `1..=n` from a stream of uniforms (`next(attempt)` in [0, 1)).
    fn sample(&self, mut next: impl FnMut(u64) -> f64) -> u64 {
        // The acceptance rate is high for every s; the cap only bounds the work for a pathological
        // stream (the last candidate is still a valid rank, just not exactly distributed).
        let mut k = 1;
        for attempt in 0..64 {
            let u = self.h_integral_n + next(attempt) * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            k = ((x + 0.5) as u64).clamp(1, self.n);
            let kf = k as f64;
            if kf - x <= self.squeeze || u >= self.h_integral(kf + 0.5) - self.h(kf) {
                return k;
            }
        }
        k
    }
}

/// log1p(x) / x, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// expm1(x) / x, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))
    }
}

/// How a key number is drawn.
#[derive(Clone, Debug)]
enum KeyDraw {
    Uniform,
    /// Zipfian rank, then scattered over the key space by `key = (rank * mul + add) mod count`,
    /// a bijection (mul is coprime to count) so hot keys are spread out, not just 0, 1, 2.
    Zipf {
        zipf: Zipf,
        mul: u64,
        add: u64,
    },
    /// The request's sequence number modulo the key count.
    Sequential,
}

/// What request k carries (all derived from `(seed, k)`).
#[derive(Clone, Copy, Debug)]
struct Draw {
    op: OpKind,
    /// Key number (ECHO, SET, GET).
    key: u64,
    /// Value length (ECHO, SET).
    value_len: usize,
    /// Seeds the value bytes (ECHO, SET); picks the id (CANDLE_GET).
    pattern: u64,
}

// Stream purposes: one independent hash stream per kind of draw.
const STREAM_OP: u64 = 1;
const STREAM_KEY: u64 = 2;
const STREAM_SIZE: u64 = 3;
const STREAM_PATTERN: u64 = 4;
const STREAM_SCATTER: u64 = 5;
const STREAM_MALFORMED: u64 = 6;

/// Generates the content of valid requests: op mix, keys, values. Cheap to clone (one per thread).
#[derive(Clone, Debug)]
pub struct TrafficGen {
    /// Each op with the upper bound of its share of the 64-bit hash space, in order; the last
    /// bound is u64::MAX so every hash picks an op.
    ops: Vec<(OpKind, u64)>,
    key_count: u64,
    key_bytes: usize,
    keys: KeyDraw,
    values: SizeRange,
    /// The largest body any op of the mix can have.
    body_max: usize,
    /// Where a SET's key and value are written before `encode_write_body` lays them out (sized
    /// once in `new`: key bytes plus the largest value).
    scratch: Vec<u8>,
    op_stream: u64,
    key_stream: u64,
    size_stream: u64,
    pattern_stream: u64,
    /// LIGHT bodies (present when the mix has CANDLE_LIGHT), shared by clones.
    candles: Option<Arc<CandlePool>>,
    /// Ids LIGHTs were answered with, shared by clones (empty unless the mix has CANDLE_GET).
    seen: Arc<SeenIds>,
}

impl TrafficGen {
    /// Validated: at least one op, every weight finite and > 0; `keys.count >= 1`; `keys.bytes` in
    /// `1..=256` (the key number in ASCII decimal, zero-padded, or keeping only its last digits if
    /// too long: keys then repeat, which is allowed); a zipfian exponent in (0, 20];
    /// `values.min <= values.max <= 65_000`. Errors name the field (`ops[1].weight`, `keys.count`).
    pub fn new(ops: &[OpWeight], keys: &KeySpec, values: SizeRange, seed: u64) -> Result<Self, SpecError> {
        if ops.is_empty() {
            return Err(spec_error("ops", "needs at least one operation"));
        }
        for (i, o) in ops.iter().enumerate() {
            if !o.weight.is_finite() || o.weight <= 0.0 {
                return Err(spec_error(
                    format!("ops[{i}].weight"),
                    format!("{} is not a weight > 0", o.weight),
                ));
            }
        }
        if keys.count == 0 {
            return Err(spec_error("keys.count", "needs at least one key"));
        }
        if keys.bytes == 0 || keys.bytes > KEY_BYTES_MAX {
            return Err(spec_error("keys.bytes", format!("{} is not in 1..={KEY_BYTES_MAX}", keys.bytes)));
        }
        if values.max > VALUE_BYTES_MAX {
            return Err(spec_error(
                "values.max",
                format!("{} is more than {VALUE_BYTES_MAX} bytes", values.max),
            ));
        }
        if values.min > values.max {
            return Err(spec_error(
                "values.min",
                format!("{} is more than values.max ({})", values.min, values.max),
            ));
        }

        let total: f64 = ops.iter().map(|o| o.weight).sum();
        if !total.is_finite() {
            return Err(spec_error("ops", "the weights' sum is not finite"));
        }
        let mut cumulative = 0.0;
        let mut table: Vec<(OpKind, u64)> = ops
            .iter()
            .map(|o| {
                cumulative += o.weight;
                // f64 -> u64 `as` saturates, so a share of 1.0 becomes u64::MAX.
                (o.op, (cumulative / total * 18_446_744_073_709_551_616.0) as u64)
            })
            .collect();
        if let Some(last) = table.last_mut() {
            last.1 = u64::MAX;
        }

        let key_draw = match keys.distribution {
            KeyDistribution::Uniform => KeyDraw::Uniform,
            KeyDistribution::Sequential => KeyDraw::Sequential,
            KeyDistribution::Zipfian { s } => {
                if !s.is_finite() || s <= 0.0 || s > ZIPF_EXPONENT_MAX {
                    return Err(spec_error(
                        "keys.distribution.s",
                        format!("{s} is not an exponent in (0, {ZIPF_EXPONENT_MAX}]"),
                    ));
                }
                let n = keys.count;
                let scatter = stream_key(seed, STREAM_SCATTER);
                let add = below(hash_at(scatter, 0), n);
                // The first multiplier at or after a hashed start that is coprime to n; 1 always is.
                let mut mul = below(hash_at(scatter, 1), n).max(1);
                while gcd(mul, n) != 1 {
                    mul = if mul + 1 >= n { 1 } else { mul + 1 };
                }
                KeyDraw::Zipf { zipf: Zipf::new(n, s), mul, add }
            }
        };

        let body_max = table
            .iter()
            .map(|(op, _)| match op {
                OpKind::Ping => 0,
                OpKind::Echo => keys.bytes + values.max,
                OpKind::Set => 2 + keys.bytes + values.max,
                OpKind::Get => keys.bytes,
                OpKind::CandleLight => 0,
                OpKind::CandleGet => 8,
            })
            .max()
            .unwrap_or(0);
        let has_set = table.iter().any(|(op, _)| *op == OpKind::Set);
        let candles = table
            .iter()
            .any(|(op, _)| *op == OpKind::CandleLight)
            .then(|| Arc::new(CandlePool::generate(seed, CANDLE_POOL_BODIES)));
        let body_max = body_max.max(candles.as_ref().map_or(0, |p| p.body_bytes_max()));
        let has_get = table.iter().any(|(op, _)| *op == OpKind::CandleGet);
        Ok(TrafficGen {
            candles,
            seen: Arc::new(SeenIds::new(if has_get { CANDLE_IDS_MAX } else { 0 })),
            body_max,
            scratch: if has_set { vec![0; keys.bytes + values.max] } else { Vec::new() },
            ops: table,
            key_count: keys.count,
            key_bytes: keys.bytes,
            keys: key_draw,
            values,
            op_stream: stream_key(seed, STREAM_OP),
            key_stream: stream_key(seed, STREAM_KEY),
            size_stream: stream_key(seed, STREAM_SIZE),
            pattern_stream: stream_key(seed, STREAM_PATTERN),
        })
    }

    /// Request k's operation.
    #[inline]
    pub fn op(&self, k: u64) -> OpKind {
        let h = hash_at(self.op_stream, k);
        for &(op, bound) in &self.ops {
            if h < bound {
                return op;
            }
        }
        self.ops[self.ops.len() - 1].0
    }

    /// The key number request k carries if it is an ECHO, SET or GET (in `0..keys.count`).
    #[inline]
    pub fn key(&self, k: u64) -> u64 {
        let h = hash_at(self.key_stream, k);
        match &self.keys {
            KeyDraw::Uniform => below(h, self.key_count),
            KeyDraw::Sequential => (k & ((1 << crate::run::REQUEST_SEQ_BITS) - 1)) % self.key_count,
            KeyDraw::Zipf { zipf, mul, add } => {
                // The first uniform is the request's own hash; retries (rare) hash it further.
                let rank0 =
                    zipf.sample(|attempt| if attempt == 0 { unit(h) } else { unit(hash_at(h, attempt)) }) - 1;
                let n = u128::from(self.key_count);
                ((u128::from(rank0) * u128::from(*mul) + u128::from(*add)) % n) as u64
            }
        }
    }

    /// The key request k's KV frame (SET or GET) carries, written into `buf`; `None` for the
    /// operations without a key of a partition (PING, ECHO, the candle ops), which go to the seed
    /// node. The leader table routes by it ([`crate::leaders`]).
    #[inline]
    pub fn route_key<'b>(&self, k: u64, buf: &'b mut [u8; KEY_BYTES_MAX]) -> Option<&'b [u8]> {
        match self.op(k) {
            OpKind::Set | OpKind::Get => {
                let key = &mut buf[..self.key_bytes];
                write_key(key, self.key(k));
                Some(key)
            }
            OpKind::Ping | OpKind::Echo | OpKind::CandleLight | OpKind::CandleGet => None,
        }
    }

    #[inline]
    fn draw(&self, k: u64) -> Draw {
        let op = self.op(k);
        match op {
            OpKind::Ping => return Draw { op, key: 0, value_len: 0, pattern: 0 },
            OpKind::Get => return Draw { op, key: self.key(k), value_len: 0, pattern: 0 },
            OpKind::CandleLight => {
                let pool = self.candles.as_ref().map_or(1, |p| p.len()) as u64;
                return Draw { op, key: below(hash_at(self.key_stream, k), pool), value_len: 0, pattern: 0 };
            }
            OpKind::CandleGet => {
                return Draw { op, key: 0, value_len: 0, pattern: hash_at(self.pattern_stream, k) }
            }
            OpKind::Echo | OpKind::Set => {}
        }
        let span = (self.values.max - self.values.min) as u64 + 1;
        let value_len = self.values.min + below(hash_at(self.size_stream, k), span) as usize;
        Draw { op, key: self.key(k), value_len, pattern: hash_at(self.pattern_stream, k) }
    }

    /// Appends request k's frame (request id `k`) to the datagram: the op drawn from the weighted
    /// mix; PING has an empty body; ECHO's body is the key then the value (size drawn in `values`,
    /// bytes a pattern derived from k, so an answer can be checked with [`TrafficGen::echo_matches`]);
    /// SET's body is `encode_write_body(Set { key, value })` with the same kind of key and value;
    /// GET's body is the key (docs/PROTOCOL.md, "KV").
    /// Panics if `k` has [`MALFORMED_ID_BIT`] set (ids that high belong to malformed traffic).
    #[inline]
    pub fn push_request(&mut self, k: u64, w: &mut DatagramWriter<'_>) -> Result<(), NoRoom> {
        assert!(!is_malformed_id(k), "request id {k} collides with malformed traffic's ids");
        let d = self.draw(k);
        match d.op {
            OpKind::Ping => w.push(opcode::PING, 0, k, &[]),
            OpKind::Echo => {
                let len = self.key_bytes + d.value_len;
                let out = w.begin_frame(len)?;
                let (key, value) = out.split_at_mut(self.key_bytes);
                write_key(key, d.key);
                for (i, b) in value.iter_mut().enumerate() {
                    *b = value_byte(d.pattern, i);
                }
                w.commit_frame(opcode::ECHO, 0, k, len)
            }
            OpKind::Set => {
                let (key, rest) = self.scratch.split_at_mut(self.key_bytes);
                write_key(key, d.key);
                for (i, b) in rest[..d.value_len].iter_mut().enumerate() {
                    *b = value_byte(d.pattern, i);
                }
                let (key, rest) = self.scratch.split_at(self.key_bytes);
                let op = vigil::kv::Op::Set { key, value: &rest[..d.value_len] };
                let len = request_body_len(&op);
                let out = w.begin_frame(len)?;
                encode_write_body(&op, out).expect("the frame has room for the body and keys are short");
                w.commit_frame(opcode::SET, 0, k, len)
            }
            OpKind::Get => {
                let out = w.begin_frame(self.key_bytes)?;
                write_key(out, d.key);
                w.commit_frame(opcode::GET, 0, k, self.key_bytes)
            }
            OpKind::CandleLight => {
                let pool = self.candles.as_ref().expect("a mix with CANDLE_LIGHT has a pool");
                w.push(opcode::CANDLE_LIGHT, 0, k, pool.body(d.key as usize))
            }
            OpKind::CandleGet => w.push(opcode::CANDLE_GET, 0, k, &self.seen.pick(d.pattern).to_le_bytes()),
        }
    }

    /// The largest body any request can have (for sizing buffers and checking a batch fits a
    /// datagram): key plus the largest value for ECHO, 2 more for SET (the key length), the key for
    /// GET, 0 for a PING-only mix.
    pub fn body_bytes_max(&self) -> usize {
        self.body_max
    }

    /// True if `body` is what request k's answer must carry: ECHO, its own body byte for byte;
    /// PING, empty; CANDLE_LIGHT, an 8-byte id. Regenerates request k's content, so nothing is
    /// stored per request. SET, GET and CANDLE_GET answers depend on the server's state, not on k
    /// alone: always true.
    pub fn echo_matches(&self, k: u64, body: &[u8]) -> bool {
        let d = self.draw(k);
        match d.op {
            OpKind::Ping => body.is_empty(),
            OpKind::CandleLight => body.len() == 8,
            OpKind::Set | OpKind::Get | OpKind::CandleGet => true,
            OpKind::Echo => {
                if body.len() != self.key_bytes + d.value_len {
                    return false;
                }
                let (key, value) = body.split_at(self.key_bytes);
                key_matches(key, d.key)
                    && value.iter().enumerate().all(|(i, &b)| b == value_byte(d.pattern, i))
            }
        }
    }
}

impl TrafficGen {
    /// Sees request k's OK answer `body`: if k was a CANDLE_LIGHT answered with an id, remembers
    /// the id for later CANDLE_GETs (of this generator and its clones). No allocation.
    #[inline]
    pub fn see_answer(&self, k: u64, body: &[u8]) {
        if let (OpKind::CandleLight, Ok(id)) = (self.op(k), <[u8; 8]>::try_from(body)) {
            self.seen.record(u64::from_le_bytes(id));
        }
    }

    /// The LIGHT bodies (None unless the mix has CANDLE_LIGHT).
    pub fn candle_pool(&self) -> Option<&CandlePool> {
        self.candles.as_deref()
    }

    /// Ids remembered for CANDLE_GETs so far.
    pub fn candle_ids_seen(&self) -> usize {
        self.seen.len()
    }
}

/// The key number in ASCII decimal, right-aligned: zero-padded, or its last `out.len()` digits.
#[inline]
fn write_key(out: &mut [u8], mut key: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (key % 10) as u8;
        key /= 10;
    }
}

#[inline]
fn key_matches(got: &[u8], mut key: u64) -> bool {
    got.iter().rev().all(|&b| {
        let want = b'0' + (key % 10) as u8;
        key /= 10;
        b == want
    })
}

/// Byte i of a value: the pattern word's bytes, changed every 8 bytes, so a value swapped with
/// another request's (or shifted) does not match.
#[inline]
fn value_byte(pattern: u64, i: usize) -> u8 {
    pattern.to_le_bytes()[i % 8] ^ (i / 8) as u8
}

/// Longest ECHO body in the valid datagram a malformed one starts from.
const MALFORMED_BODY_MAX: usize = 32;
/// Most frames in the valid datagram a malformed one starts from.
const MALFORMED_FRAMES_MAX: usize = 3;
/// The buffer [`MalformedGen::write`] needs; no malformed datagram is longer.
pub const MALFORMED_DATAGRAM_BYTES_MAX: usize =
    HEADER_LEN + MALFORMED_FRAMES_MAX * (FRAME_HEADER_LEN + MALFORMED_BODY_MAX);

/// The valid datagram a malformed one is made from: where its frames are.
struct Base {
    len: usize,
    count: u16,
    frame_at: [usize; MALFORMED_FRAMES_MAX],
}

/// Generates malformed datagrams, rotating through the kinds of a [`MalformedSpec`].
#[derive(Clone, Debug)]
pub struct MalformedGen {
    kinds: Vec<MalformedKind>,
    stream: u64,
    requests_per_datagram_max: u16,
    client_id: u64,
}

impl MalformedGen {
    /// A generator for `spec`; `requests_per_datagram_max` is the server's frame limit
    /// (`net.requests_per_datagram_max`), which oversized datagrams exceed.
    pub fn new(spec: &MalformedSpec, seed: u64, requests_per_datagram_max: u16) -> Self {
        assert!(requests_per_datagram_max > 0, "the server accepts at least one frame per datagram");
        MalformedGen {
            kinds: spec.kinds_or_all(),
            stream: stream_key(seed, STREAM_MALFORMED),
            requests_per_datagram_max,
            client_id: 0,
        }
    }

    /// Sets the client id the datagrams carry (0, anonymous, by default).
    pub fn with_client_id(mut self, client_id: u64) -> Self {
        self.client_id = client_id;
        self
    }

    /// The kinds it rotates through, in order.
    pub fn kinds(&self) -> &[MalformedKind] {
        &self.kinds
    }

    /// Writes the i-th malformed datagram into `buf` (kinds rotate through the spec's); returns its
    /// length and kind. All its frames' request ids have [`MALFORMED_ID_BIT`] set.
    /// - Truncated: a valid 1-3 frame datagram cut inside the header (dropped) or a frame
    ///   (`MALFORMED` or `BAD_LENGTH` after the whole frames' answers).
    /// - Corrupted: a valid datagram with a header or frame field changed: magic (dropped), the
    ///   response flag (dropped), count (`MALFORMED`), a body_len past the end (`BAD_LENGTH`), or an
    ///   opcode to 0, which is never registered (`UNKNOWN_OPCODE`).
    /// - WrongVersion: version byte other than 1 (`VERSION_MISMATCH`).
    /// - Oversized: count above `requests_per_datagram_max` (`TOO_MANY_REQUESTS`), or a body_len
    ///   far past the end (`BAD_LENGTH`).
    ///
    /// Panics if `buf` is shorter than [`MALFORMED_DATAGRAM_BYTES_MAX`].
    pub fn write(&mut self, i: u64, buf: &mut [u8]) -> (usize, MalformedKind) {
        assert!(buf.len() >= MALFORMED_DATAGRAM_BYTES_MAX, "malformed datagram buffer too small");
        let kind = self.kinds[(i % self.kinds.len() as u64) as usize];
        let h = hash_at(self.stream, i);
        // A second, independent hash for the choices made after the base datagram.
        let g = hash_at(h, 0);
        let base = self.base(i, h, buf);
        let last = usize::from(base.count) - 1;
        let len = match kind {
            MalformedKind::Truncated => 1 + below(g, base.len as u64 - 1) as usize,
            MalformedKind::Corrupted => {
                match g % 5 {
                    0 => buf[(g >> 8) as usize % 2] ^= 1 + (g >> 16) as u8 % 255,
                    1 => buf[3] |= wire::FLAG_RESPONSE,
                    2 => {
                        let count = if base.count < self.requests_per_datagram_max {
                            base.count + 1
                        } else {
                            base.count - 1
                        };
                        buf[4..6].copy_from_slice(&count.to_le_bytes());
                    }
                    3 => {
                        let f = base.frame_at[below(g >> 8, u64::from(base.count)) as usize];
                        set_body_len_past_end(buf, f, base.len, (g >> 40) % 64);
                    }
                    _ => {
                        let f = base.frame_at[below(g >> 8, u64::from(base.count)) as usize];
                        buf[f] = wire::OPCODE_NONE;
                    }
                }
                base.len
            }
            MalformedKind::WrongVersion => {
                // Any byte but VERSION: draw from the 255 others.
                let v = (g % 255) as u8;
                buf[2] = if v >= wire::VERSION { v + 1 } else { v };
                base.len
            }
            MalformedKind::Oversized => {
                let room = u16::MAX - self.requests_per_datagram_max;
                if room > 0 && g & 1 == 0 {
                    let extra = 1 + below(g >> 8, u64::from(room.min(64))) as u16;
                    buf[4..6].copy_from_slice(&(self.requests_per_datagram_max + extra).to_le_bytes());
                } else {
                    set_body_len_past_end(buf, base.frame_at[last], base.len, 65_536 + (g >> 8) % 1_000_000);
                }
                base.len
            }
        };
        (len, kind)
    }

    /// Writes the valid 1-3 frame datagram (PINGs and short ECHOs) that request i's malformed
    /// datagram starts from.
    fn base(&self, i: u64, h: u64, buf: &mut [u8]) -> Base {
        let count = 1 + (h % MALFORMED_FRAMES_MAX as u64) as usize;
        let mut frame_at = [0; MALFORMED_FRAMES_MAX];
        let mut w = DatagramWriter::request(buf, self.client_id).expect("buffer size checked");
        let mut at = HEADER_LEN;
        for (j, slot) in frame_at.iter_mut().enumerate().take(count) {
            *slot = at;
            let id = MALFORMED_ID_BIT | (i.wrapping_mul(MALFORMED_FRAMES_MAX as u64) + j as u64);
            let bits = h >> (8 + 8 * j);
            let body_len = if bits & 1 == 0 { 0 } else { 1 + (bits >> 1) as usize % MALFORMED_BODY_MAX };
            let op = if body_len == 0 { opcode::PING } else { opcode::ECHO };
            let out = w.begin_frame(body_len).expect("buffer size checked");
            for (n, b) in out.iter_mut().enumerate() {
                *b = value_byte(h, n);
            }
            w.commit_frame(op, 0, id, body_len).expect("buffer size checked");
            at += FRAME_HEADER_LEN + body_len;
        }
        let len = w.finish();
        debug_assert_eq!(len, at);
        Base { len, count: count as u16, frame_at }
    }
}

/// Makes the frame at `frame` claim a body running `beyond + 1` bytes past the datagram's end.
fn set_body_len_past_end(buf: &mut [u8], frame: usize, datagram_len: usize, beyond: u64) {
    let body_start = frame + FRAME_HEADER_LEN;
    let body_len = (datagram_len - body_start) as u64 + 1 + beyond;
    let body_len = u32::try_from(body_len).unwrap_or(u32::MAX);
    buf[frame + 4..frame + 8].copy_from_slice(&body_len.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::MalformedSpec;
    use vigil::dispatch::Dispatcher;
    use vigil::engine::{Engine, EngineLimits, Outcome};
    use vigil::wire::Status;
    use vigil_pmd::Nanos;

    fn keys(count: u64, distribution: KeyDistribution) -> KeySpec {
        KeySpec { count, bytes: 12, distribution }
    }

    fn echo_only() -> Vec<OpWeight> {
        vec![OpWeight { op: OpKind::Echo, weight: 1.0 }]
    }

    fn gen(ops: &[OpWeight], keys: &KeySpec, seed: u64) -> TrafficGen {
        TrafficGen::new(ops, keys, SizeRange { min: 4, max: 40 }, seed).unwrap()
    }

    /// Request k's datagram (one frame) as bytes.
    fn frame_bytes(g: &mut TrafficGen, k: u64) -> Vec<u8> {
        let mut buf = vec![0u8; 1472];
        let mut w = DatagramWriter::request(&mut buf, 9).unwrap();
        g.push_request(k, &mut w).unwrap();
        let n = w.finish();
        buf.truncate(n);
        buf
    }

    #[test]
    fn bad_traffic_specs_name_their_field() {
        let ks = keys(10, KeyDistribution::Uniform);
        let v = SizeRange { min: 1, max: 2 };
        let bad_weight =
            [OpWeight { op: OpKind::Ping, weight: 1.0 }, OpWeight { op: OpKind::Echo, weight: 0.0 }];
        let cases: Vec<(Result<TrafficGen, SpecError>, &str)> = vec![
            (TrafficGen::new(&[], &ks, v, 1), "ops"),
            (TrafficGen::new(&bad_weight, &ks, v, 1), "ops[1].weight"),
            (
                TrafficGen::new(&[OpWeight { op: OpKind::Echo, weight: f64::INFINITY }], &ks, v, 1),
                "ops[0].weight",
            ),
            (TrafficGen::new(&echo_only(), &keys(0, KeyDistribution::Uniform), v, 1), "keys.count"),
            (TrafficGen::new(&echo_only(), &KeySpec { bytes: 0, ..ks.clone() }, v, 1), "keys.bytes"),
            (TrafficGen::new(&echo_only(), &KeySpec { bytes: 257, ..ks.clone() }, v, 1), "keys.bytes"),
            (
                TrafficGen::new(&echo_only(), &keys(10, KeyDistribution::Zipfian { s: 0.0 }), v, 1),
                "keys.distribution.s",
            ),
            (TrafficGen::new(&echo_only(), &ks, SizeRange { min: 3, max: 2 }, 1), "values.min"),
            (TrafficGen::new(&echo_only(), &ks, SizeRange { min: 0, max: 65_001 }, 1), "values.max"),
        ];
        for (result, field) in cases {
            assert_eq!(result.unwrap_err().field, field);
        }
    }

    #[test]
    fn uniform_keys_cover_the_space_evenly() {
        let g = gen(&echo_only(), &keys(100, KeyDistribution::Uniform), 3);
        let n = 100_000u64;
        let mut counts = [0u64; 100];
        for k in 0..n {
            counts[g.key(k) as usize] += 1;
        }
        // Chi-square with 99 degrees of freedom: mean 99, sd 14; 200 is > 7 sd out.
        let expected = n as f64 / 100.0;
        let chi2: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        assert!(chi2 < 200.0, "chi2 {chi2}");
    }

    fn zipf_top_share(n: u64, s: f64, draws: u64) -> (f64, f64) {
        let g = gen(&echo_only(), &keys(n, KeyDistribution::Zipfian { s }), 5);
        let mut counts = vec![0u64; n as usize];
        for k in 0..draws {
            counts[g.key(k) as usize] += 1;
        }
        let top = *counts.iter().max().unwrap() as f64 / draws as f64;
        let harmonic: f64 = (1..=n).map(|r| (r as f64).powf(-s)).sum();
        (top, 1.0 / harmonic)
    }

    #[test]
    fn zipfian_top_key_share_is_near_theory() {
        for s in [0.5, 0.99, 1.0, 1.5] {
            let (top, theory) = zipf_top_share(1000, s, 200_000);
            assert!((top / theory - 1.0).abs() < 0.2, "s={s}: top share {top}, theory {theory}");
        }
    }

    #[test]
    fn zipfian_hot_keys_are_scattered_and_big_spaces_work() {
        let g = gen(&echo_only(), &keys(1_000_000_000, KeyDistribution::Zipfian { s: 0.99 }), 7);
        let mut seen = std::collections::HashMap::new();
        for k in 0..50_000 {
            let key = g.key(k);
            assert!(key < 1_000_000_000);
            *seen.entry(key).or_insert(0u32) += 1;
        }
        let one = gen(&echo_only(), &keys(1, KeyDistribution::Zipfian { s: 0.99 }), 7);
        assert!((0..100).all(|k| one.key(k) == 0));
        let (&hottest, _) = seen.iter().max_by_key(|(_, &c)| c).unwrap();
        assert!(hottest > 1000, "the hottest key {hottest} should not be one of the first ranks");
        // Theory for the top key over 10^9 keys at s = 0.99 is about 4.5%.
        let share = seen[&hottest] as f64 / 50_000.0;
        assert!((0.03..0.06).contains(&share), "share {share}");
    }

    #[test]
    fn sequential_keys_write_every_key_once_per_round_in_any_thread_and_trial() {
        let n = 1000u64;
        let g = gen(&echo_only(), &keys(n, KeyDistribution::Sequential), 3);
        for (thread, trial) in [(0, 0), (3, 7)] {
            let base = crate::run::request_id_base(thread, trial);
            let mut counts = vec![0u32; n as usize];
            for seq in 0..n {
                assert_eq!(g.key(base + seq), seq, "thread {thread} trial {trial}");
                counts[g.key(base + seq) as usize] += 1;
            }
            assert!(counts.iter().all(|&c| c == 1));
            // The next round starts over at key 0.
            assert_eq!(g.key(base + n), 0);
            assert_eq!(g.key(base + 2 * n + 5), 5);
        }
    }

    #[test]
    fn op_mix_follows_the_weights() {
        let ops = [
            OpWeight { op: OpKind::Echo, weight: 7.0 },
            OpWeight { op: OpKind::Ping, weight: 2.0 },
            OpWeight { op: OpKind::Echo, weight: 1.0 },
        ];
        let g = gen(&ops, &keys(10, KeyDistribution::Uniform), 11);
        let n = 100_000;
        let echo = (0..n).filter(|&k| g.op(k) == OpKind::Echo).count() as f64 / n as f64;
        assert!((echo - 0.8).abs() < 0.01, "echo share {echo}");
    }

    #[test]
    fn same_seed_and_k_give_the_same_frame() {
        let ops = [OpWeight { op: OpKind::Echo, weight: 3.0 }, OpWeight { op: OpKind::Ping, weight: 1.0 }];
        let ks = keys(1000, KeyDistribution::Zipfian { s: 0.99 });
        let mut a = gen(&ops, &ks, 42);
        let mut b = gen(&ops, &ks, 42);
        let mut other = gen(&ops, &ks, 43);
        let mut differs = 0;
        // Out of order on purpose: no draw depends on the ones before it.
        for k in (0..200).rev() {
            assert_eq!(frame_bytes(&mut a, k), frame_bytes(&mut b, k));
            if frame_bytes(&mut a, k) != frame_bytes(&mut other, k) {
                differs += 1;
            }
        }
        assert!(differs > 100, "another seed should give other traffic ({differs} differ)");
    }

    #[test]
    fn frames_decode_and_echo_matches_own_content_only() {
        let ops = [OpWeight { op: OpKind::Echo, weight: 1.0 }, OpWeight { op: OpKind::Ping, weight: 1.0 }];
        let mut g = gen(&ops, &keys(1000, KeyDistribution::Zipfian { s: 0.99 }), 1);
        let (mut pings, mut echoes) = (0, 0);
        for k in 0..500 {
            let dgram = frame_bytes(&mut g, k);
            let h = wire::decode_header(&dgram).unwrap();
            assert_eq!(h.count, 1);
            let f = wire::Frames::new(&dgram, 1).next().unwrap().unwrap();
            assert_eq!(f.request_id, k);
            assert!(f.body.len() <= g.body_bytes_max());
            assert!(g.echo_matches(k, f.body));
            if f.opcode == opcode::PING {
                pings += 1;
                assert!(f.body.is_empty());
                assert!(!g.echo_matches(k, b"x"));
                continue;
            }
            echoes += 1;
            assert_eq!(f.opcode, opcode::ECHO);
            let key = &f.body[..12];
            assert!(key.iter().all(u8::is_ascii_digit));
            assert_eq!(std::str::from_utf8(key).unwrap().parse::<u64>().unwrap(), g.key(k));
            assert!((12 + 4..=12 + 40).contains(&f.body.len()));
            for at in [0, 11, 12, f.body.len() - 1] {
                let mut altered = f.body.to_vec();
                altered[at] ^= 0x20;
                assert!(!g.echo_matches(k, &altered), "byte {at} altered");
            }
            assert!(!g.echo_matches(k, &f.body[..f.body.len() - 1]));
            assert!(!g.echo_matches(k + 1, f.body) || g.op(k + 1) == OpKind::Ping && f.body.is_empty());
        }
        assert!(pings > 100 && echoes > 100);
    }

    #[test]
    fn keys_are_zero_padded_or_keep_their_last_digits() {
        let mut out = [0u8; 6];
        write_key(&mut out, 42);
        assert_eq!(&out, b"000042");
        let mut short = [0u8; 3];
        write_key(&mut short, 123_456);
        assert_eq!(&short, b"456");
        assert!(key_matches(b"456", 123_456));
        assert!(!key_matches(b"457", 123_456));
    }

    #[test]
    fn body_bytes_max_is_zero_without_echo() {
        let ping = [OpWeight { op: OpKind::Ping, weight: 1.0 }];
        let ks = keys(10, KeyDistribution::Uniform);
        assert_eq!(gen(&ping, &ks, 1).body_bytes_max(), 0);
        assert_eq!(gen(&echo_only(), &ks, 1).body_bytes_max(), 12 + 40);
    }

    #[test]
    fn kv_requests_round_trip_through_vigils_own_parsers() {
        use vigil::kv::protocol::{parse_get, parse_write};
        use vigil::kv::{Command, Op};
        let ops = [OpWeight { op: OpKind::Get, weight: 9.0 }, OpWeight { op: OpKind::Set, weight: 1.0 }];
        let ks = keys(1000, KeyDistribution::Zipfian { s: 0.99 });
        let mut g = gen(&ops, &ks, 5);
        assert_eq!(g.body_bytes_max(), 2 + 12 + 40);
        let get_only = [OpWeight { op: OpKind::Get, weight: 1.0 }];
        assert_eq!(gen(&get_only, &ks, 5).body_bytes_max(), 12);
        let (mut sets, mut gets) = (0, 0);
        for k in 1..2000u64 {
            let d = frame_bytes(&mut g, k);
            let h = wire::decode_header(&d).unwrap();
            let f = wire::Frames::new(&d, h.count).next().unwrap().unwrap();
            assert_eq!(f.request_id, k);
            let mut key = [0u8; 12];
            write_key(&mut key, g.key(k));
            match g.op(k) {
                OpKind::Get => {
                    gets += 1;
                    assert_eq!(f.opcode, opcode::GET);
                    assert_eq!(parse_get(f.body), key);
                }
                OpKind::Set => {
                    sets += 1;
                    assert_eq!(f.opcode, opcode::SET);
                    let cmd = parse_write(f.opcode, 42, f.request_id, f.body).unwrap();
                    let Command { client_id: 42, seq, op: Op::Set { key: got, value } } = cmd else {
                        panic!("{cmd:?}")
                    };
                    assert_eq!((seq, got), (k, &key[..]));
                    assert!((4..=40).contains(&value.len()), "{}", value.len());
                    // The value is a pure function of (seed, k): the same k gives the same bytes.
                    assert_eq!(frame_bytes(&mut g.clone(), k), d);
                }
                other => panic!("{other:?} is not in the mix"),
            }
        }
        assert!(gets > 1600 && sets > 100, "{gets} GETs, {sets} SETs");
    }

    #[test]
    #[should_panic(expected = "collides")]
    fn valid_ids_never_carry_the_malformed_bit() {
        let mut g = gen(&echo_only(), &keys(10, KeyDistribution::Uniform), 1);
        frame_bytes(&mut g, MALFORMED_ID_BIT | 5);
    }

    const LIMIT: u16 = 64;

    fn engine() -> Engine {
        let mut d = Dispatcher::new();
        vigil::ops::register_all(&mut d).unwrap();
        Engine::new(d, EngineLimits { requests_per_datagram_max: LIMIT })
    }

    /// The server's answer to `dgram`: None if dropped, else each frame's (status, request id).
    fn serve(e: &mut Engine, dgram: &[u8]) -> Option<Vec<(Status, u64)>> {
        let mut resp = vec![0u8; 1472];
        match e.handle_datagram(
            dgram,
            &mut resp,
            vigil_pmd::Peer::from_ip_port(std::net::Ipv4Addr::LOCALHOST, 1),
            Nanos(1),
        ) {
            Outcome::Drop | Outcome::Later => None,
            Outcome::Reply(n) => {
                let resp = &resp[..n];
                let h = wire::decode_header(resp).unwrap();
                Some(
                    wire::Frames::new(resp, h.count)
                        .map(|f| f.unwrap())
                        .map(|f| (Status::from_u8(f.status).unwrap(), f.request_id))
                        .collect(),
                )
            }
        }
    }

    #[test]
    fn every_malformed_kind_gets_its_documented_outcome() {
        use MalformedKind::*;
        let spec = MalformedSpec { rate: 10.0, kinds: vec![] };
        let mut g = MalformedGen::new(&spec, 99, LIMIT);
        assert_eq!(g.kinds(), &[Truncated, Corrupted, WrongVersion, Oversized]);
        let mut e = engine();
        let mut buf = [0u8; MALFORMED_DATAGRAM_BYTES_MAX];
        let mut outcomes = std::collections::HashSet::new();
        for i in 0..4000 {
            let (len, kind) = g.write(i, &mut buf);
            assert_eq!(kind, g.kinds()[i as usize % 4]);
            let answer = serve(&mut e, &buf[..len]);
            let Some(frames) = answer else {
                assert!(matches!(kind, Truncated | Corrupted), "{kind:?} #{i} dropped");
                outcomes.insert((kind, None));
                continue;
            };
            assert!(frames.iter().any(|(s, _)| *s != Status::Ok), "{kind:?} #{i} all OK: {frames:?}");
            for (status, id) in &frames {
                // Datagram-level errors carry id 0; every other answer is to a malformed frame.
                assert!(*id == 0 || is_malformed_id(*id), "{kind:?} #{i}: id {id:#x}");
                if *status != Status::Ok {
                    outcomes.insert((kind, Some(*status)));
                }
            }
            let errors: Vec<Status> = frames.iter().map(|f| f.0).filter(|s| *s != Status::Ok).collect();
            match kind {
                WrongVersion => assert_eq!(frames, vec![(Status::VersionMismatch, 0)]),
                Oversized => assert!(
                    frames == vec![(Status::TooManyRequests, 0)] || errors == vec![Status::BadLength],
                    "{frames:?}"
                ),
                Truncated => {
                    assert_eq!(errors.len(), 1, "{frames:?}");
                    assert!(matches!(frames.last().unwrap().0, Status::Malformed | Status::BadLength));
                }
                Corrupted => assert!(
                    matches!(errors[..], [Status::Malformed | Status::BadLength | Status::UnknownOpcode]),
                    "{frames:?}"
                ),
            }
        }
        // Every variant shows up.
        for want in [
            (Truncated, None),
            (Truncated, Some(Status::Malformed)),
            (Truncated, Some(Status::BadLength)),
            (Corrupted, None),
            (Corrupted, Some(Status::Malformed)),
            (Corrupted, Some(Status::BadLength)),
            (Corrupted, Some(Status::UnknownOpcode)),
            (WrongVersion, Some(Status::VersionMismatch)),
            (Oversized, Some(Status::TooManyRequests)),
            (Oversized, Some(Status::BadLength)),
        ] {
            assert!(outcomes.contains(&want), "never saw {want:?}");
        }
        let c = e.counters();
        assert!(c.dropped_short > 0 && c.dropped_bad_magic > 0 && c.dropped_response > 0);
    }

    #[test]
    fn malformed_rotates_through_the_chosen_kinds_and_is_deterministic() {
        let spec =
            MalformedSpec { rate: 1.0, kinds: vec![MalformedKind::Oversized, MalformedKind::WrongVersion] };
        let mut a = MalformedGen::new(&spec, 1, LIMIT);
        let mut b = MalformedGen::new(&spec, 1, LIMIT);
        let (mut x, mut y) = ([0u8; 256], [0u8; 256]);
        for i in 0..50 {
            let (n, kind) = a.write(i, &mut x);
            assert_eq!(b.write(i, &mut y), (n, kind));
            assert_eq!(x[..n], y[..n]);
            let want = if i % 2 == 0 { MalformedKind::Oversized } else { MalformedKind::WrongVersion };
            assert_eq!(kind, want);
        }
    }

    #[test]
    fn oversized_at_the_largest_limit_uses_a_body_past_the_end() {
        let spec = MalformedSpec { rate: 1.0, kinds: vec![MalformedKind::Oversized] };
        let mut g = MalformedGen::new(&spec, 3, u16::MAX);
        let mut buf = [0u8; MALFORMED_DATAGRAM_BYTES_MAX];
        for i in 0..100 {
            let (n, _) = g.write(i, &mut buf);
            let h = wire::decode_header(&buf[..n]).unwrap();
            let last = wire::Frames::new(&buf[..n], h.count).last().unwrap();
            assert!(matches!(last, Err(wire::FrameError::BodyPastEnd { .. })));
        }
    }
}
