//! A browser's connection on the web port (`tcp.web_listen`, 9002 in the dev config): the candle
//! page (`candle::page`), streamed, and its form.
//!
//! - `GET /candles` (and `?lit=<id>` after a candle was lit): 200, `Transfer-Encoding: chunked`.
//!   The head, the style and the form go out at once, before any candle is read; then each
//!   partition's newest candles (CANDLE_LIST, pages after a cursor) as their answers come, then the
//!   counts by state (CANDLE_COUNT_STATES of every partition) and the end of the page. At most
//!   `tcp.page_candles_max` candles, shared by the partitions.
//! - `POST /candles` (a form): read and checked (`candle::form`); a mistake answers 422 with the
//!   page, the values typed and each message by its field; a good candle is one CANDLE_LIGHT,
//!   answered once durable with `303 See Other` to `/candles?lit=<id>#c-<id>` (post/redirect/get,
//!   so a reload does not light it twice); refused, with a line in Portuguese: 507 when the day is
//!   full or the sender's quota (the page's visitors are anonymous: `auth.anonymous_*`) is used
//!   up, 503 with `Retry-After` otherwise.
//! - The operators' pages (`web_ops`): `GET /` (the dashboard), `/dashboard.js`, `/api/live`,
//!   the JSON API `/api/...` and the admin operations `/api/admin/...`.
//! - Anything else is 404.
//!
//! One request at a time (browsers do not pipeline): the next is parsed once the page is whole.
//! Requests run through the engine like every session's (`Cx::request`; a stream session's answer
//! scratch holds a page of long candles: `STREAM_ANSWER_BYTES_MAX`).
//!
//! Invariants: every request is answered exactly once; a page started is always finished (its
//! terminating chunk), whatever its reads answered (a refused read ends that part of the page);
//! nothing from a client reaches the page unescaped (`candle::page`).

use super::web_ops::{self, OpsWait, Tick};
use super::{Cx, Step};
use crate::candle::form::{Form, FormErrors};
use crate::candle::page::{self, CandleView, FormView};
use crate::candle::{tables, wire, Candle, Date};
use crate::dispatch::Answer;
use crate::metrics::api::OpsView;
use crate::protocol::http::response::Response;
use crate::protocol::http::{parse_request, target, Head, HttpLimits, Method, Parsed};
use crate::shard::LateAnswer;
use crate::wire::{opcode, Status};
use std::fmt::Write;

/// Candles asked for per LIST request.
const LIST_LIMIT: u16 = 64;
/// Counters in a COUNT_STATES answer.
const STATE_COUNTERS: usize = 32;

/// What the page is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Listing partition `partition` after `cursor`.
    List { partition: u16, cursor: u64, shown: usize },
    /// Counting partition `partition`'s candles by state.
    Count { partition: u16 },
    /// Everything read: the end goes out.
    End,
}

/// A page being streamed.
#[derive(Debug)]
struct PageRun {
    phase: Phase,
    partitions: u16,
    /// Candles per partition, at most.
    share: usize,
    shown: usize,
    by_state: [u64; STATE_COUNTERS],
    /// The request time, Unix seconds (how long ago each candle was lit).
    now: u32,
    /// The answer awaited (its request id).
    waiting: Option<u64>,
    close: bool,
}

/// One browser connection.
#[derive(Debug)]
pub struct WebSession {
    next_id: u64,
    page: Option<PageRun>,
    /// A LIGHT awaited: its request id and whether the connection closes after it.
    lighting: Option<(u64, bool)>,
    /// An HTML chunk being written.
    html: String,
    /// A request body being built.
    body: Vec<u8>,
    /// The form posted last, read into its strings again at each post (`Form::parse_into`), and
    /// the bytes of a value being decoded.
    form: Form,
    form_scratch: Vec<u8>,
    closing: bool,
    /// An operators' request being served over time (a live stream, a compaction).
    ops_wait: OpsWait,
}

impl Default for WebSession {
    fn default() -> Self {
        Self::new()
    }
}

impl WebSession {
    /// A new connection's session.
    pub fn new() -> Self {
        Self {
            next_id: 1,
            page: None,
            lighting: None,
            html: String::new(),
            body: Vec::with_capacity(wire::WIRE_BYTES_MAX),
            form: Form::with_capacity(),
            form_scratch: Vec::with_capacity(crate::candle::fields::PRAYER_BYTES_MAX),
            closing: false,
            ops_wait: OpsWait::Free,
        }
    }

    /// Whether the session must be run again on a timer (`web_ops::TICK_NS`): it serves a live
    /// stream or waits for a compaction.
    pub fn ticks(&self) -> bool {
        self.ops_wait.ticks()
    }

    /// Runs the request at the front of `input` (one at a time); returns what it consumed.
    pub fn run(
        &mut self,
        input: &[u8],
        limits: &HttpLimits,
        page_max: usize,
        partitions: u16,
        ops: Option<&OpsView>,
        cx: &mut Cx<'_>,
    ) -> Step {
        let mut used = 0;
        loop {
            match web_ops::tick(&mut self.ops_wait, ops, cx) {
                Tick::Free => {}
                // A live stream takes no requests: what a client sends on it is dropped.
                Tick::Live => return Step::Consumed(input.len()),
                Tick::Waiting => return Step::Wait { consumed: used, for_output: false },
            }
            if self.lighting.is_some() {
                return Step::Wait { consumed: used, for_output: false };
            }
            if self.page.is_some() {
                self.advance(cx);
                if self.page.is_some() {
                    return Step::Wait { consumed: used, for_output: false };
                }
                continue;
            }
            if self.closing {
                return Step::Close { consumed: used };
            }
            let (head, body, consumed) = match parse_request(&input[used..], limits) {
                Ok(Parsed::Request { head, body, consumed }) => (head, body, consumed),
                Ok(Parsed::Incomplete { .. }) => return Step::Consumed(used),
                Err(e) => {
                    let mut r = Response::start(cx.output, e.status());
                    r.header("Connection", "close");
                    r.finish(Some("text/plain; charset=utf-8"), format!("{e}\n").as_bytes(), false);
                    return Step::Close { consumed: used };
                }
            };
            used += consumed;
            self.closing = !head.keep_alive;
            if web_ops::route(&head, body, ops, self.closing, &mut self.ops_wait, cx) {
                continue;
            }
            if let Some(step) = self.request(&head, body, page_max, partitions, cx) {
                return match step {
                    Step::Retry { .. } => Step::Retry { consumed: used - consumed },
                    other => other,
                };
            }
        }
    }

    /// Runs one request; `Some(Retry)` when it must be tried again (BUSY).
    fn request(
        &mut self,
        head: &Head<'_>,
        body: &[u8],
        page_max: usize,
        partitions: u16,
        cx: &mut Cx<'_>,
    ) -> Option<Step> {
        let (path, query) = target::split(head.target);
        match (path, head.method) {
            (b"/candles", Method::Get | Method::Head) => {
                let lit = target::query_param(query, b"lit")
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
                self.start_page(200, lit, None, head, page_max, partitions, cx);
            }
            (b"/candles", Method::Post) => return self.post(head, body, page_max, partitions, cx),
            (b"/candles", _) => {
                let mut r = Response::start(cx.output, 405);
                r.header("Allow", "GET, HEAD, POST");
                r.connection(self.closing, head.minor_version == 0);
                r.finish(Some("text/plain; charset=utf-8"), b"method not allowed\n", false);
            }
            _ => {
                let mut r = Response::start(cx.output, 404);
                r.connection(self.closing, head.minor_version == 0);
                r.finish(
                    Some("text/plain; charset=utf-8"),
                    "não encontrado: as páginas são /candles e / (o painel)\n".as_bytes(),
                    false,
                );
            }
        }
        None
    }

    /// POST /candles: the form checked, then lit (303 once durable) or shown again with its
    /// messages (422).
    fn post(
        &mut self,
        head: &Head<'_>,
        body: &[u8],
        page_max: usize,
        partitions: u16,
        cx: &mut Cx<'_>,
    ) -> Option<Step> {
        // The session's form, taken out while the page may borrow it (given back below).
        let mut form = std::mem::take(&mut self.form);
        form.parse_into(body, &mut self.form_scratch);
        let step = self.post_form(&form, head, page_max, partitions, cx);
        self.form = form;
        step
    }

    /// POST /candles of a form read (see `post`).
    fn post_form(
        &mut self,
        form: &Form,
        head: &Head<'_>,
        page_max: usize,
        partitions: u16,
        cx: &mut Cx<'_>,
    ) -> Option<Step> {
        let now_ms = cx.now.0 / 1_000_000;
        let today = Date::from_unix_days((now_ms / 86_400_000) as i64);
        let candle = match form.candle_ref(today) {
            Ok(c) => c,
            Err(errors) => {
                self.start_page(422, None, Some((form, &errors, None)), head, page_max, partitions, cx);
                return None;
            }
        };
        self.body.clear();
        wire::write_ref(&candle, &mut self.body);
        let id = self.next_id;
        let answer = cx.request(&mut self.next_id, opcode::CANDLE_LIGHT, &self.body);
        match answer {
            Err(Status::Busy) => {
                // Nothing was proposed: the same request runs again at the next poll.
                self.closing = false;
                return Some(Step::Retry { consumed: 0 });
            }
            Ok(Answer::Later) => self.lighting = Some((id, self.closing)),
            Ok(Answer::Now(n)) => redirect_lit(cx.output, &cx.scratch[..n], self.closing),
            Err(status) | Ok(Answer::Refused { status, .. }) => {
                let general = refusal_text(status);
                self.start_page(
                    422,
                    None,
                    Some((form, &FormErrors::default(), Some(general))),
                    head,
                    page_max,
                    partitions,
                    cx,
                );
            }
        }
        None
    }

    /// Writes the page's head and start at once and sets the reads going.
    #[allow(clippy::too_many_arguments)]
    fn start_page(
        &mut self,
        status: u16,
        lit: Option<u64>,
        form: Option<(&Form, &FormErrors, Option<&str>)>,
        head: &Head<'_>,
        page_max: usize,
        partitions: u16,
        cx: &mut Cx<'_>,
    ) {
        let mut r = Response::start(cx.output, status);
        r.header("Content-Type", "text/html; charset=utf-8");
        r.header("Cache-Control", "no-store");
        r.header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        );
        r.connection(self.closing, head.minor_version == 0);
        if head.method == Method::Head {
            r.header("Content-Length", 0);
            cx.output.extend_from_slice(b"\r\n");
            return;
        }
        r.header("Transfer-Encoding", "chunked");
        cx.output.extend_from_slice(b"\r\n");
        self.html.clear();
        let view = form_view(form);
        page::write_start(&mut self.html, lit, &view);
        chunk(cx.output, &self.html);
        let partitions = partitions.max(1);
        self.page = Some(PageRun {
            phase: Phase::List { partition: 0, cursor: u64::MAX, shown: 0 },
            partitions,
            share: page_max.div_ceil(usize::from(partitions)),
            shown: 0,
            by_state: [0; STATE_COUNTERS],
            now: (cx.now.0 / 1_000_000_000) as u32,
            waiting: None,
            close: self.closing,
        });
    }

    /// Issues the page's reads, taking the answers that come at once, until one must wait or the
    /// page is whole.
    fn advance(&mut self, cx: &mut Cx<'_>) {
        loop {
            let Some(run) = self.page.as_mut() else { return };
            if run.waiting.is_some() {
                return;
            }
            if run.phase == Phase::End {
                self.html.clear();
                let live = run.by_state.iter().sum();
                let states = &tables::tables().states;
                let counts: Vec<(&str, u64)> =
                    states.iter().enumerate().map(|(i, s)| (s.uf, run.by_state[i])).collect();
                page::write_end(&mut self.html, run.shown, live, &counts);
                chunk(cx.output, &self.html);
                cx.output.extend_from_slice(b"0\r\n\r\n");
                self.closing = run.close;
                self.page = None;
                return;
            }
            let (op, body) = read_of(run.phase);
            let id = self.next_id;
            match cx.request(&mut self.next_id, op, &body.0[..body.1]) {
                Err(Status::Busy) => return, // reads are never BUSY today; try again next run
                Ok(Answer::Later) => {
                    run.waiting = Some(id);
                    return;
                }
                Ok(Answer::Now(n)) => self.take(Status::Ok, &cx.scratch[..n], cx.output),
                Err(status) | Ok(Answer::Refused { status, .. }) => self.take(status, &[], cx.output),
            }
        }
    }

    /// Takes a late answer for one of its requests (never runs a request: see `Connections`).
    pub fn answer(&mut self, a: &LateAnswer<'_>, output: &mut Vec<u8>) {
        if let Some((id, close)) = self.lighting {
            if id == a.request_id {
                self.lighting = None;
                match a.status {
                    Status::Ok => redirect_lit(output, a.body, close),
                    status => {
                        // A full day or a quota used up is not cured by a retry (507, as HTTP's);
                        // anything else may be.
                        let lasting = matches!(status, Status::Full | Status::QuotaExceeded);
                        let mut r = Response::start(output, if lasting { 507 } else { 503 });
                        if !lasting {
                            r.header("Retry-After", 1);
                        }
                        r.connection(close, false);
                        r.finish(Some("text/plain; charset=utf-8"), refusal_text(status).as_bytes(), false);
                    }
                }
            }
            return;
        }
        if self.page.as_ref().and_then(|p| p.waiting) == Some(a.request_id) {
            if let Some(p) = self.page.as_mut() {
                p.waiting = None;
            }
            self.take(a.status, a.body, output);
        }
    }

    /// Folds a read's answer into the page: candles written, counts added, the next phase.
    fn take(&mut self, status: Status, body: &[u8], output: &mut Vec<u8>) {
        let Some(run) = self.page.as_mut() else { return };
        run.phase = match (run.phase, status) {
            (Phase::List { partition, shown, .. }, Status::Ok) => {
                self.html.clear();
                let (given, more, last) = write_candles(&mut self.html, body, run.now);
                chunk(output, &self.html);
                run.shown += given;
                let shown = shown + given;
                if more && given > 0 && shown < run.share {
                    Phase::List { partition, cursor: last, shown }
                } else {
                    next_partition(partition, run.partitions)
                }
            }
            (Phase::List { partition, .. }, _) => next_partition(partition, run.partitions),
            (Phase::Count { partition }, status) => {
                if status == Status::Ok {
                    for (i, c) in body.chunks_exact(8).take(STATE_COUNTERS).enumerate() {
                        run.by_state[i] += u64::from_le_bytes(c.try_into().expect("8 bytes"));
                    }
                }
                if partition + 1 < run.partitions {
                    Phase::Count { partition: partition + 1 }
                } else {
                    Phase::End
                }
            }
            (Phase::End, _) => Phase::End,
        };
    }
}

/// After partition `partition`'s list: the next one's, or the counts.
fn next_partition(partition: u16, partitions: u16) -> Phase {
    if partition + 1 < partitions {
        Phase::List { partition: partition + 1, cursor: u64::MAX, shown: 0 }
    } else {
        Phase::Count { partition: 0 }
    }
}

/// The request of a phase: its opcode and body.
fn read_of(phase: Phase) -> (u8, ([u8; 12], usize)) {
    let mut b = [0u8; 12];
    match phase {
        Phase::List { partition, cursor, .. } => {
            b[..2].copy_from_slice(&partition.to_le_bytes());
            b[2..10].copy_from_slice(&cursor.to_le_bytes());
            b[10..12].copy_from_slice(&LIST_LIMIT.to_le_bytes());
            (opcode::CANDLE_LIST, (b, 12))
        }
        Phase::Count { partition } => {
            b[..2].copy_from_slice(&partition.to_le_bytes());
            (opcode::CANDLE_COUNT_STATES, (b, 2))
        }
        Phase::End => (opcode::PING, (b, 0)),
    }
}

/// Writes the candles of a LIST answer; returns how many, whether more remain, and the last id.
fn write_candles(html: &mut String, body: &[u8], now: u32) -> (usize, bool, u64) {
    let (Some(n), Some(&more)) = (body.get(..2), body.get(2)) else { return (0, false, 0) };
    let n = u16::from_le_bytes([n[0], n[1]]);
    let (mut at, mut given, mut last) = (3usize, 0usize, 0u64);
    for _ in 0..n {
        let Some(head) = body.get(at..at + 14) else { break };
        let id = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let lit_at = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        let len = usize::from(u16::from_le_bytes([head[12], head[13]]));
        let Some(Ok(c)) = body.get(at + 14..at + 14 + len).map(wire::read) else { break };
        at += 14 + len;
        write_candle(html, id, lit_at, &c, now);
        given += 1;
        last = id;
    }
    (given, more != 0, last)
}

/// One candle on the wall: the first name, where, the prayer.
fn write_candle(html: &mut String, id: u64, lit_at: u32, c: &Candle, now: u32) {
    let first_name = c.name.split_whitespace().next().unwrap_or("");
    let t = tables::tables();
    let mut place = String::new();
    match (c.city.and_then(|code| t.city_index(code)).and_then(|i| t.city(i)), c.state.as_deref()) {
        (Some(city), Some(uf)) => {
            let _ = write!(place, "{}/{uf}", city.name);
        }
        _ => {
            let country = t.country_index(c.country).and_then(|i| t.country(i));
            place.push_str(country.map_or("", |k| k.name));
        }
    }
    let view = CandleView { id, lit_at, first_name, place: &place, prayer: &c.prayer };
    page::write_candle(html, &view, now);
}

/// The form as the page shows it.
fn form_view<'a>(form: Option<(&'a Form, &'a FormErrors, Option<&'a str>)>) -> FormView<'a> {
    let mut view = FormView::default();
    if let Some((f, errors, general)) = form {
        for i in 0..view.values.len() {
            view.values[i] = &f.values[i];
            view.errors[i] = errors.0[i].as_deref();
        }
        view.whatsapp = f.whatsapp;
        view.general = general;
    }
    view
}

/// `303 See Other` to the candle just lit (its id in `answer`).
fn redirect_lit(out: &mut Vec<u8>, answer: &[u8], close: bool) {
    let id = answer.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let mut r = Response::start(out, 303);
    r.header("Location", format_args!("/candles?lit={id}#c-{id}"));
    r.connection(close, false);
    r.finish(None, b"", false);
}

/// What the page says when the store refused a candle.
fn refusal_text(status: Status) -> &'static str {
    match status {
        Status::Full => "Não há mais lugar para velas hoje. Tente amanhã.",
        Status::QuotaExceeded => "A cota de espaço deste acesso acabou: nada foi gravado.",
        Status::Invalid => "Confira os campos do formulário.",
        _ => "Não foi possível acender a vela agora. Tente de novo em instantes.",
    }
}

/// One chunk of a chunked body (nothing for empty text: an empty chunk ends the body).
fn chunk(out: &mut Vec<u8>, text: &str) {
    if text.is_empty() {
        return;
    }
    let _ = std::io::Write::write_fmt(out, format_args!("{:x}\r\n", text.len()));
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}
