//! Heap allocations of a candle LIGHT on a shard, counted by this test binary's global allocator
//! (`stats_alloc`, a counting wrapper of `System`): after start-up and one warm-up pass, lighting
//! generated candles (the corpus, the seed's long record and records whose every text field goes
//! to its overflow pool, and refused ones) through the code the shard runs (`CandleOps::
//! light_command`: the client body read in place, validated, encoded into its slot, written as
//! the LIGHT command; then the candle projection's `apply`, which parses it and stores the slot
//! in the ring) allocates nothing per request; nor does RESP's front end (`CANDLE.LIGHT` framed,
//! parsed, its fields set from the arguments, validated, its body written, as the RESP session
//! does), nor HTTP's (`POST /candles`: the JSON body read borrowed, validated, its body
//! written), nor the page's form (the session's form read from the urlencoded post, checked, its
//! body written). Reading them back (GET and LIST answered by the projection, decoded into client bodies
//! by `CandleOps::for_client`) allocates nothing either.
//!
//! The one thing that allocates is the ring's store growing: a 64 KiB block every 512 slots and a
//! 16 KiB block per 16 KiB of a day's overflow values, bounded by `[candle]`'s limits. That is
//! checked to be all there is: a LIGHT that allocates is one whose apply grew `Ring::memory`, and
//! with at most `ALLOCS_PER_BLOCK_MAX` allocations per block taken.
//!
//! Runs without the test harness (`harness = false` in Cargo.toml): the global allocator counts
//! every thread, and the harness's thread allocates at times while it waits for a test.

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::fmt::Write;
use vigil::candle::command::{self, CandleCommand};
use vigil::candle::corpus::{long_record, Corpus, SplitMix64, CORPUS_TODAY};
use vigil::candle::fields::{
    ADDRESS_BYTES_MAX, EMAIL_BYTES_MAX, NAME_BYTES_MAX, NEIGHBOURHOOD_BYTES_MAX, PRAYER_CHARS_MAX,
};
use vigil::candle::form::Form;
use vigil::candle::page::FIELDS;
use vigil::candle::{wire, Candle, CandleLimits, CandleProjection};
use vigil::conn::candle_fields::{self, pairs};
use vigil::conn::candle_json::{self, Borrowed};
use vigil::ops::candle::{CandleOps, RAW_ANSWER_BYTES};
use vigil::projection::{Applied, ApplyResult, Projection};
use vigil::protocol::resp::{parse_command, parse_request, ArgTable, Command, Parsed, RespLimits};
use vigil::wire::{opcode, Status};
use vigil_pmd::Nanos;

/// Counts every allocation of this test binary.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Generated candles lit in the measured pass.
const CANDLES: usize = 1_000;
/// Every this many, a record whose text fields overflow (or the seed's long record).
const OVERFLOW_EVERY: usize = 10;
/// Every this many, a body the shard refuses (bad state, unknown area code, born tomorrow, cut).
const REFUSED_EVERY: usize = 25;
/// What taking one block may allocate: the filled block frozen into an `Arc`, the list of frozen
/// blocks grown, the next block reserved. Measured: 2 or 3.
const ALLOCS_PER_BLOCK_MAX: u64 = 3;
/// The ring's smallest block (an overflow pool's): a growth of `Ring::memory` is at least this.
const BLOCK_BYTES_MIN: usize = 16 * 1024;

/// Allocations and reallocations so far, all threads.
fn allocs() -> u64 {
    let s = GLOBAL.stats();
    (s.allocations + s.reallocations) as u64
}

/// The request's time: noon of the corpus's today (every generated birth date is before it).
fn now_ms() -> u64 {
    CORPUS_TODAY.unix_days() as u64 * 86_400_000 + 43_200_000
}

/// Text of `bytes` bytes that compresses badly (so it goes to overflow): letters, accents, CJK.
fn noise(rng: &mut SplitMix64, bytes: usize) -> String {
    const ALPHABET: &[char] = &['a', 'q', 'z', 'x', 'ç', 'ã', 'é', 'K', 'W', '7', 'ñ', 'ß', 'ж', 'λ', '中'];
    let mut s = String::new();
    loop {
        let c = ALPHABET[rng.below(ALPHABET.len() as u64) as usize];
        if s.len() + c.len_utf8() > bytes {
            return s;
        }
        s.push(c);
    }
}

/// A candle whose three text fields are at their limits and do not compress: each goes to its
/// overflow pool.
fn overflowing(rng: &mut SplitMix64) -> Candle {
    let mut c = long_record();
    c.name = noise(rng, NAME_BYTES_MAX);
    c.email = format!("{}@{}.com.br", noise(rng, 100), noise(rng, EMAIL_BYTES_MAX - 100 - 8));
    c.address = noise(rng, ADDRESS_BYTES_MAX);
    c.neighbourhood = noise(rng, NEIGHBOURHOOD_BYTES_MAX);
    c.prayer = noise(rng, 4 * PRAYER_CHARS_MAX).chars().take(PRAYER_CHARS_MAX).collect();
    c
}

/// A body the shard refuses, of kind `k`.
fn refused(c: &Candle, k: usize) -> Vec<u8> {
    let mut c = c.clone();
    match k % 4 {
        0 => c.state = Some("XX".into()),
        1 => c.phone = Some(10_987_654_321),
        2 => c.birth_date = vigil::candle::Date::from_unix_days(CORPUS_TODAY.unix_days() + 1),
        _ => {}
    }
    let mut body = Vec::new();
    wire::write(&c, &mut body);
    if k % 4 == 3 {
        body.truncate(body.len() / 2);
    }
    body
}

/// The client bodies of a pass: generated candles, overflow records, refusals.
fn bodies(seed: u64) -> Vec<(Vec<u8>, bool)> {
    let mut corpus = Corpus::new(seed);
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    for i in 0..CANDLES {
        let c = match i % OVERFLOW_EVERY {
            0 if i % (2 * OVERFLOW_EVERY) == 0 => long_record(),
            0 => overflowing(&mut rng),
            _ => corpus.candle(),
        };
        if i % REFUSED_EVERY == REFUSED_EVERY - 1 {
            out.push((refused(&c, i / REFUSED_EVERY), false));
        }
        let mut body = Vec::with_capacity(wire::WIRE_BYTES_MAX);
        wire::write(&c, &mut body);
        out.push((body, true));
    }
    out
}

/// A long streak of short candles, then long ones: zstd shrinks a context's workspace that stayed
/// oversized for 128 calls in a row, which a later long value would grow again.
fn streak(seed: u64) -> Vec<(Vec<u8>, bool)> {
    let mut rng = SplitMix64::new(seed);
    let short = Corpus::new(seed).filter(|c| c.prayer.len() < 40 && c.name.len() < 30).take(400);
    let long = (0..10).map(|i| if i % 2 == 0 { long_record() } else { overflowing(&mut rng) });
    let candles: Vec<Candle> = short.chain(long).collect();
    candles
        .iter()
        .map(|c| {
            let mut body = Vec::new();
            wire::write(c, &mut body);
            (body, true)
        })
        .collect()
}

/// What a pass counted.
#[derive(Debug, Default)]
struct Counted {
    lit: u64,
    refused: u64,
    overflow_values: [u64; 3],
    /// Allocations from the body to the command (all must be 0).
    request_allocs: u64,
    /// Allocations of apply on LIGHTs whose apply did not grow the ring (all must be 0).
    apply_allocs_not_growing: u64,
    /// Allocations of apply on LIGHTs that grew the ring, and the blocks they took (at least).
    apply_allocs_growing: u64,
    blocks_taken: u64,
    ids: Vec<u64>,
}

/// Lights every body through the shard's code, counting each step's allocations.
fn light_all(
    ops: &mut CandleOps,
    candles: &mut CandleProjection,
    bodies: &[(Vec<u8>, bool)],
    seq: &mut u64,
    counted: &mut Counted,
) {
    for (body, valid) in bodies {
        light_one(ops, candles, body, *valid, seq, counted);
    }
}

/// Lights one client body through the shard's code (`CandleOps::light_command`, then the
/// projection's `apply`), counting each step's allocations.
fn light_one(
    ops: &mut CandleOps,
    candles: &mut CandleProjection,
    body: &[u8],
    valid: bool,
    seq: &mut u64,
    counted: &mut Counted,
) {
    let at = Applied { time_ns: now_ms() * 1_000_000, ..Applied::single(1) };
    *seq += 1;
    let a0 = allocs();
    let command = ops.light_command(body, 7, *seq, now_ms());
    let a1 = allocs();
    counted.request_allocs += a1 - a0;
    let command = match (command, valid) {
        (Ok(command), true) => command,
        (Err(Status::Invalid | Status::BadRequest), false) => {
            counted.refused += 1;
            return;
        }
        (other, _) => panic!("body {seq}: {:?}, valid {valid}", other.map(<[u8]>::len)),
    };
    let memory = candles.ring().memory();
    let a2 = allocs();
    let result = candles.apply(at, command);
    let a3 = allocs();
    let grown = candles.ring().memory() - memory;
    if grown == 0 {
        counted.apply_allocs_not_growing += a3 - a2;
    } else {
        counted.apply_allocs_growing += a3 - a2;
        counted.blocks_taken += (grown / BLOCK_BYTES_MIN) as u64;
    }
    let ApplyResult::Lit { id } = result else { panic!("body {seq}: {result:?}") };
    counted.lit += 1;
    let Ok(CandleCommand::Light(light)) = command::parse(command) else { panic!("a LIGHT") };
    for (n, v) in counted.overflow_values.iter_mut().zip(light.overflow) {
        *n += u64::from(v.is_some());
    }
    counted.ids.push(id);
}

/// `CANDLE.LIGHT field value ...` as a RESP multibulk, the candle's fields as RESP clients give
/// them (text: `candle_fields::pairs`).
fn resp_request(c: &Candle) -> Vec<u8> {
    let mut text = String::new();
    let args: Vec<(&str, String)> = pairs(0, 0, &c.view(), &mut text)
        .into_iter()
        .skip(2)
        .map(|(name, v)| (name, v.text().to_owned()))
        .collect();
    let mut out = format!("*{}\r\n$12\r\nCANDLE.LIGHT\r\n", 1 + 2 * args.len()).into_bytes();
    for (name, value) in &args {
        for arg in [name.as_bytes(), value.as_bytes()] {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// RESP's front end: the session's argument table and refusal text, made once.
struct RespFront {
    table: ArgTable,
    why: String,
}

const RESP_LIMITS: RespLimits = RespLimits {
    args_max: 64,
    arg_bytes_max: 1 << 16,
    inline_bytes_max: 1 << 16,
    request_bytes_max: 1 << 20,
};

impl RespFront {
    fn new() -> Self {
        Self { table: ArgTable::new(&RESP_LIMITS), why: String::with_capacity(256) }
    }

    /// What the RESP session does with a CANDLE.LIGHT (`conn::resp::candle::light`): frame and
    /// parse it, set the candle from its pairs, validate it at the request's date and write its
    /// body; `false` if refused before it is sent.
    fn body_of(&mut self, request: &[u8], body: &mut Vec<u8>) -> bool {
        let Ok(Parsed::Request { consumed }) = parse_request(request, &mut self.table, &RESP_LIMITS) else {
            panic!("a whole request")
        };
        assert_eq!(consumed, request.len());
        let Ok(Command::CandleLight { fields }) = parse_command(self.table.view(request)) else {
            panic!("CANDLE.LIGHT")
        };
        self.why.clear();
        let pairs_of = (0..fields.len() / 2).map(|i| (fields.get(2 * i), fields.get(2 * i + 1)));
        let candle = candle_fields::from_pairs(pairs_of, &mut self.why).expect("fields that parse");
        if let Err(e) = candle.validate(candle_fields::today(Nanos(now_ms() * 1_000_000))) {
            let _ = write!(self.why, "ERR {}: {e}", e.field_name());
            return false;
        }
        body.clear();
        wire::write_ref(&candle, body);
        true
    }
}

/// What the HTTP session does with a `POST /candles` (`conn::http_candles`): read the JSON body
/// borrowed, validate it at the request's date and write its client body; `false` if refused.
fn http_body_of(json: &[u8], body: &mut Vec<u8>) -> bool {
    let Borrowed::Candle(candle) = candle_json::read(json) else { panic!("a usual body") };
    if candle.validate(candle_fields::today(Nanos(now_ms() * 1_000_000))).is_err() {
        return false;
    }
    body.clear();
    wire::write_ref(&candle, body);
    true
}

/// The page's form (`conn::web`'s `POST /candles`): the session's form read from the urlencoded
/// body, checked at the request's date and its client body written; `false` if refused.
struct WebFront {
    form: Form,
    scratch: Vec<u8>,
}

impl WebFront {
    fn body_of(&mut self, post: &[u8], body: &mut Vec<u8>) -> bool {
        self.form.parse_into(post, &mut self.scratch);
        let Ok(candle) = self.form.candle_ref(CORPUS_TODAY) else { return false };
        body.clear();
        wire::write_ref(&candle, body);
        true
    }
}

/// The form a browser posts for a candle (urlencoded, the page's field names).
fn web_request(c: &Candle) -> Vec<u8> {
    let d = c.birth_date;
    let birth = format!("{:04}-{:02}-{:02}", d.year, d.month, d.day);
    let phone = c.phone.map(|p| p.to_string()).unwrap_or_default();
    let city = c.city.map(|p| p.to_string()).unwrap_or_default();
    let country = c.country.to_string();
    let values = [
        &c.name[..],
        &c.email,
        &birth,
        &phone,
        &c.address,
        &c.neighbourhood,
        &city,
        c.state.as_deref().unwrap_or(""),
        &country,
        &c.prayer,
    ];
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (field, value) in FIELDS.iter().zip(values) {
        form.append_pair(field.0, value);
    }
    if c.has_whatsapp {
        form.append_pair("whatsapp", "1");
    }
    form.finish().into_bytes()
}

/// Lights each request through a protocol's front end (`front`: the request to its client body,
/// or `false` if refused before it is sent) and the shard; returns the front end's allocations
/// for the requests it sent and for those it refused.
fn light_front(
    front: &mut dyn FnMut(&[u8], &mut Vec<u8>) -> bool,
    ops: &mut CandleOps,
    candles: &mut CandleProjection,
    requests: &[(Vec<u8>, bool)],
    seq: &mut u64,
    counted: &mut Counted,
) -> (u64, u64) {
    let mut body = Vec::with_capacity(wire::WIRE_BYTES_MAX);
    let (mut sent_allocs, mut refused_allocs) = (0, 0);
    for (request, valid) in requests {
        let a0 = allocs();
        let sent = front(request, &mut body);
        let n = allocs() - a0;
        assert_eq!(sent, *valid, "{}", String::from_utf8_lossy(request));
        if !sent {
            refused_allocs += n;
            counted.refused += 1;
            continue;
        }
        sent_allocs += n;
        light_one(ops, candles, &body, true, seq, counted);
    }
    (sent_allocs, refused_allocs)
}

/// A `POST /candles` JSON body of the candle's fields, as an HTTP client writes it.
fn http_request(c: &Candle) -> Vec<u8> {
    let mut text = String::new();
    let mut obj = serde_json::Map::new();
    for (name, value) in pairs(0, 0, &c.view(), &mut text).into_iter().skip(2) {
        obj.insert(name.to_owned(), value.json(name));
    }
    serde_json::to_vec(&obj).expect("JSON")
}

/// The requests of a RESP or HTTP pass (`request` writes one): the candles of a pass whose
/// refusals are semantic (the front end refuses them before sending; a cut body has no such form).
fn front_requests(seed: u64, request: fn(&Candle) -> Vec<u8>) -> Vec<(Vec<u8>, bool)> {
    let mut corpus = Corpus::new(seed);
    let mut rng = SplitMix64::new(seed);
    (0..CANDLES)
        .map(|i| {
            let mut c = match i % OVERFLOW_EVERY {
                0 => overflowing(&mut rng),
                _ => corpus.candle(),
            };
            let valid = i % REFUSED_EVERY != 0;
            if !valid {
                c.state = Some("XX".into());
            }
            (request(&c), valid)
        })
        .collect()
}

fn limits() -> CandleLimits {
    CandleLimits {
        candles_per_day_max: 1 << 20,
        overflow_bytes_per_field_day_max: 16 << 20,
        list_page_max: 64,
    }
}

fn main() {
    let (ops, candles, ids) = a_light_allocates_nothing_from_its_body_to_its_applied_slot();
    println!("test a_light_allocates_nothing_from_its_body_to_its_applied_slot ... ok");
    gets_and_lists_are_decoded_for_the_client_without_allocating(ops, &candles, &ids);
    println!("test gets_and_lists_are_decoded_for_the_client_without_allocating ... ok");
    a_resp_candle_light_allocates_nothing_from_its_request_to_its_applied_slot();
    println!("test a_resp_candle_light_allocates_nothing_from_its_request_to_its_applied_slot ... ok");
    an_http_post_candles_allocates_nothing_from_its_request_to_its_applied_slot();
    println!("test an_http_post_candles_allocates_nothing_from_its_request_to_its_applied_slot ... ok");
    a_posted_form_allocates_nothing_from_its_request_to_its_applied_slot();
    println!("test a_posted_form_allocates_nothing_from_its_request_to_its_applied_slot ... ok");
}

fn a_resp_candle_light_allocates_nothing_from_its_request_to_its_applied_slot() {
    let mut resp = RespFront::new();
    let mut front = |request: &[u8], body: &mut Vec<u8>| resp.body_of(request, body);
    front_pass("RESP CANDLE.LIGHT", &mut front, resp_request, 0);
}

fn an_http_post_candles_allocates_nothing_from_its_request_to_its_applied_slot() {
    front_pass("HTTP POST /candles", &mut http_body_of, http_request, 0);
}

fn a_posted_form_allocates_nothing_from_its_request_to_its_applied_slot() {
    let scratch = Vec::with_capacity(vigil::candle::fields::PRAYER_BYTES_MAX);
    let mut web = WebFront { form: Form::with_capacity(), scratch };
    let mut front = |post: &[u8], body: &mut Vec<u8>| web.body_of(post, body);
    // A refused form allocates what the page shows: its errors and a message for each field.
    front_pass("the page's form", &mut front, web_request, 2);
}

/// A warm-up pass and a measured pass of requests through a protocol's front end and the shard;
/// a refusal may allocate `per_refusal_max` (its messages), a request sent nothing.
fn front_pass(
    what: &str,
    front: &mut dyn FnMut(&[u8], &mut Vec<u8>) -> bool,
    request: fn(&Candle) -> Vec<u8>,
    per_refusal_max: u64,
) {
    let mut ops = CandleOps::new();
    let mut candles = CandleProjection::new(limits());
    let mut seq = 0;
    let warm_up = front_requests(4, request);
    light_front(front, &mut ops, &mut candles, &warm_up, &mut seq, &mut Counted::default());
    let mut c = Counted::default();
    let measured = front_requests(5, request);
    let (front_allocs, refused_allocs) =
        light_front(front, &mut ops, &mut candles, &measured, &mut seq, &mut c);
    println!(
        "{what}: {} lit and {} refused; {front_allocs} allocations in the front end ({refused_allocs} \
         for the refusals), {} from \
         body to command, {} in apply without growth ({} with the ring taking {} blocks)",
        c.lit,
        c.refused,
        c.request_allocs,
        c.apply_allocs_not_growing,
        c.apply_allocs_growing,
        c.blocks_taken
    );
    assert_eq!(c.lit + c.refused, CANDLES as u64);
    assert!(c.overflow_values.iter().all(|&n| n >= (CANDLES / OVERFLOW_EVERY / 2) as u64), "{c:?}");
    assert_eq!(front_allocs, 0, "the front end allocates ({what})");
    assert!(
        refused_allocs <= per_refusal_max * c.refused,
        "{refused_allocs} allocations for {} refusals",
        c.refused
    );
    assert_eq!(c.request_allocs, 0, "a LIGHT allocates between its body and its command");
    assert_eq!(c.apply_allocs_not_growing, 0, "apply allocates without the ring growing");
    assert!(c.apply_allocs_growing <= ALLOCS_PER_BLOCK_MAX * c.blocks_taken);
}

fn a_light_allocates_nothing_from_its_body_to_its_applied_slot() -> (CandleOps, CandleProjection, Vec<u64>) {
    let mut ops = CandleOps::new();
    let mut candles = CandleProjection::new(limits());
    let mut seq = 0;
    // Warm-up: every context and buffer at its working size, the day's bucket made.
    light_all(&mut ops, &mut candles, &bodies(1), &mut seq, &mut Counted::default());

    let measured = bodies(2);
    let mut c = Counted::default();
    light_all(&mut ops, &mut candles, &measured, &mut seq, &mut c);
    let ids = std::mem::take(&mut c.ids);
    light_all(&mut ops, &mut candles, &streak(3), &mut seq, &mut c);
    println!(
        "{} LIGHTs lit and {} refused: {} allocations from body to command, {} in apply without \
         growth; the ring took {} blocks (16 KiB units) with {} allocations; overflow values by \
         field {:?}",
        c.lit,
        c.refused,
        c.request_allocs,
        c.apply_allocs_not_growing,
        c.blocks_taken,
        c.apply_allocs_growing,
        c.overflow_values
    );
    assert_eq!(c.lit, CANDLES as u64 + 410);
    assert_eq!(c.refused, (CANDLES / REFUSED_EVERY) as u64);
    assert!(c.overflow_values.iter().all(|&n| n >= (CANDLES / OVERFLOW_EVERY / 2) as u64), "{c:?}");
    assert_eq!(c.request_allocs, 0, "a LIGHT allocates between its body and its command");
    assert_eq!(c.apply_allocs_not_growing, 0, "apply allocates without the ring growing");
    assert!(
        c.apply_allocs_growing <= ALLOCS_PER_BLOCK_MAX * c.blocks_taken,
        "{} allocations for {} blocks taken",
        c.apply_allocs_growing,
        c.blocks_taken
    );
    assert!(c.blocks_taken * 20 <= c.lit, "the ring grows per block, not per candle: {c:?}");
    (ops, candles, ids)
}

fn gets_and_lists_are_decoded_for_the_client_without_allocating(
    mut ops: CandleOps,
    candles: &CandleProjection,
    ids: &[u64],
) {
    let mut raw = vec![0u8; RAW_ANSWER_BYTES];
    let mut out = vec![0u8; RAW_ANSWER_BYTES];
    let expected: Vec<Candle> = bodies(2)
        .into_iter()
        .filter(|(_, valid)| *valid)
        .map(|(b, _)| wire::read(&b).expect("a generated body"))
        .collect();
    let mut get = |ops: &mut CandleOps, id: u64, out: &mut [u8]| {
        let n =
            candles.answer_read(opcode::CANDLE_GET, &id.to_le_bytes(), now_ms(), &mut raw).expect("found");
        ops.for_client(opcode::CANDLE_GET, &raw[..n], out).expect("decodes")
    };
    for &id in ids {
        get(&mut ops, id, &mut out);
    }
    let a0 = allocs();
    for &id in ids {
        get(&mut ops, id, &mut out);
    }
    let gets = allocs() - a0;
    for (i, &id) in ids.iter().enumerate().step_by(37) {
        let n = get(&mut ops, id, &mut out);
        assert_eq!(wire::read(&out[4..n]).expect("a client body"), expected[i], "GET {id}");
    }

    let mut list_body = [0u8; 10];
    let mut pages = 0;
    let mut listed = 0;
    let a0 = allocs();
    let mut cursor = u64::MAX;
    loop {
        list_body[..8].copy_from_slice(&cursor.to_le_bytes());
        list_body[8..].copy_from_slice(&64u16.to_le_bytes());
        let n = candles.answer_read(opcode::CANDLE_LIST, &list_body, now_ms(), &mut raw).expect("a page");
        ops.for_client(opcode::CANDLE_LIST, &raw[..n], &mut out).expect("decodes");
        let given = u16::from_le_bytes([out[0], out[1]]);
        pages += 1;
        listed += u64::from(given);
        if out[2] == 0 || given == 0 {
            break;
        }
        // The last id given: walk the page (id, lit_at, body length, body).
        let mut at = 3;
        for _ in 0..given {
            cursor = u64::from_le_bytes(out[at..at + 8].try_into().expect("8 bytes"));
            at += 14 + usize::from(u16::from_le_bytes([out[at + 12], out[at + 13]]));
        }
    }
    let lists = allocs() - a0;
    println!(
        "{} GETs: {gets} allocations; {listed} candles in {pages} LIST pages: {lists} allocations",
        ids.len()
    );
    assert_eq!(listed as usize, candles.ring().len(), "the pages walk every candle");
    assert_eq!(gets, 0, "decoding a GET for the client allocates");
    assert_eq!(lists, 0, "decoding a LIST page for the client allocates");
}
