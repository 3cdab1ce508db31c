//! A RESP connection: Redis commands in, through the engine's KV opcodes, Redis replies out, in
//! request order, with pipelining (docs/CLIENTS.md).
//!
//! Each command is parsed (`protocol::resp`) and run as one or more requests of the binary
//! protocol's opcodes (a SET is one SET request, a DEL of three keys three DEL requests) through
//! `Engine::handle_request` (SET with NX, XX, GET or an expiry, and GETSET, are one SETX; EXPIRE
//! and PEXPIRE one EXPIRE; TTL and PTTL one TTL read; DBSIZE and INFO's keyspace one KEYS_COUNT
//! per partition: `ttl`), with this connection's `Peer::connection` as their peer: a write goes
//! to its partition's log and is answered once durable (`Answer::Later`, then `answer`), as
//! Redis's `appendfsync always`; a key another shard owns is served through the inboxes like any
//! request.
//!
//! Ordering, which is what pipelining clients rely on: replies leave in request order. Writes are
//! dispatched as soon as they are parsed, while earlier ones still wait for their log entries (so
//! a pipeline of SETs is one batch in the log); every other command (reads, and commands answered
//! locally) waits until the writes before it are answered, so a GET after a SET on the same
//! connection sees it. The commands waiting for answers are `pending`, oldest first; each knows
//! the request ids it used, and the oldest is replied to as soon as its last answer is in.
//!
//! Back-pressure, never unbounded memory: at `pipeline_max` commands in flight, or with the output
//! over its limit, parsing stops until answers drain. A request refused `BUSY` before anything was
//! proposed (the shard's window of writes in flight is full) is retried at the next poll, from the
//! part of the command not yet dispatched (`resume`); a `BUSY` that comes back late from another
//! shard is an error reply (that write was not applied).
//!
//! Invariants: every command parsed is replied to exactly once, in order; nothing is allocated per
//! command (the argument table is the shard's; the request body scratch and the pipeline grow to
//! their bounds once, on a connection's first use, so an idle connection costs little);
//! a protocol error is replied and closes the connection, a command error is replied and the
//! connection goes on.

mod bodies;
mod candle;
mod mset;
mod ttl;

pub use bodies::status_text;
use bodies::{get_body, set_body, ttl_body, value_of};

use super::auth::{RespRights, Unnamed, User};
use super::resp_local::{self, Local};
use super::{Cx, Step};
use crate::dispatch::Answer;
use crate::inbox::Placement;
use crate::protocol::resp::options::{SetCondition, SetTtl};
use crate::protocol::resp::spec::{CommandId, CommandSpec};
use crate::protocol::resp::{
    parse_command_spec, parse_request, ArgList, ArgTable, Command, CommandError, Parsed, ReplyWriter,
    RespLimits, RespVersion,
};
use crate::shard::LateAnswer;
use crate::wire::{opcode, Status};
use std::collections::VecDeque;
use ttl::Style;

/// Settings of a node's RESP sessions.
#[derive(Clone, Debug)]
pub struct RespSettings {
    /// Bounds on one request.
    pub limits: RespLimits,
    /// Commands in flight per connection.
    pub pipeline_max: usize,
    /// `requirepass`: the password AUTH must give (empty: none).
    pub requirepass: Vec<u8>,
    /// Where keys live: MSET sends one request per partition; DBSIZE and INFO keyspace ask each
    /// partition for its key count.
    pub placement: Placement,
    /// Largest MSET request body (one log command: `storage.batch_bytes_max` less the batch's and
    /// the command's headers, and no more than a forwarded request holds); the pairs of one
    /// partition beyond it go in further MSET requests.
    pub mset_body_bytes_max: usize,
    /// Who may do what, on RESP and on every other stream protocol (`conn::auth`).
    pub auth: super::TcpAuth,
    /// `kv.key_bytes_max` and `kv.value_bytes_max`: an MSET with a pair over them is refused
    /// whole, before any part of it is written.
    pub key_bytes_max: usize,
    /// See `key_bytes_max`.
    pub value_bytes_max: usize,
}

impl RespSettings {
    /// Small settings for tests: a node of `shards` shards with one partition each.
    #[cfg(test)]
    pub(crate) fn for_tests(shards: usize) -> Self {
        RespSettings {
            limits: crate::protocol::resp::RespLimits {
                args_max: 64,
                arg_bytes_max: 4096,
                inline_bytes_max: 4096,
                request_bytes_max: 16 << 10,
            },
            pipeline_max: 64,
            requirepass: Vec::new(),
            auth: super::TcpAuth::open(),
            placement: Placement::new(shards as u32, shards).expect("valid"),
            mset_body_bytes_max: 1400,
            key_bytes_max: 64,
            value_bytes_max: 1024,
        }
    }

    /// What a RESP session without a login may do: nothing while `tcp.requirepass` is set (as in
    /// Redis), else `auth.anonymous`'s ACL.
    pub fn anonymous_acl(&self) -> Option<crate::auth::Acl> {
        if self.requirepass.is_empty() {
            self.auth.anonymous
        } else {
            None
        }
    }

    /// What a RESP session without a principal gets: the anonymous ACL (as `anonymous_acl`) and
    /// the anonymous owner, also the requirepass user's (it is no principal).
    pub fn unnamed(&self) -> Unnamed {
        Unnamed { acl: self.anonymous_acl(), owner: self.auth.anonymous_owner }
    }

    /// Partitions of the node.
    pub fn partitions(&self) -> u16 {
        u16::try_from(self.placement.partitions()).unwrap_or(u16::MAX)
    }
}

/// What a command in flight replies once its answers are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `+OK` (SET, MSET) or the first error.
    Ok,
    /// The integer `count` (DEL, EXISTS, INCR, EXPIRE, PERSIST, DBSIZE) or the first error.
    Integer,
    /// Nothing more: the reply was written as answers came (GET, MGET, TTL, SET with NX/XX/GET:
    /// each at the head), in this style.
    Streamed(Style),
    /// CANDLE.LIGHT: the id (`count`), or the first error in the candle's words.
    CandleId,
    /// CANDLE.COUNTS STATE: the session's `states`, summed over the partitions.
    CandleStates,
    /// INFO: its sections (`resp_local::info_mask`), with the keyspace from the partitions' counts.
    Info {
        /// The sections asked for.
        sections: u8,
        /// Commands processed, at the request.
        commands: u64,
    },
}

/// A command whose answers are not all in.
#[derive(Debug)]
struct Pending {
    /// Its requests used ids `first_id..first_id + issued`.
    first_id: u64,
    issued: u64,
    /// Answers still to come.
    outstanding: u32,
    /// Every request it needs was dispatched.
    dispatched: bool,
    kind: Kind,
    count: i64,
    /// KEYS_COUNT's keys with an expiry (INFO).
    expires: i64,
    error: Option<Status>,
}

/// The connection's state besides the argument table (split so a parsed command, which borrows
/// the table, can run against it).
#[derive(Debug)]
struct State {
    version: RespVersion,
    /// Who the session runs as (`conn::auth`).
    user: User,
    name: Vec<u8>,
    id: u64,
    pending: VecDeque<Pending>,
    next_id: u64,
    /// The command at the front of the input was partly dispatched: its next part.
    resume: Option<usize>,
    /// A request body being built (SET's key and value).
    body: Vec<u8>,
    /// MSET's pairs as (partition, index), sorted: each partition's pairs in order
    /// (`mset`); grown to the largest MSET once.
    mset_order: Vec<(u16, u32)>,
    /// MSET's requests: where each ends in `mset_order`.
    mset_ends: Vec<u32>,
    /// CANDLE.LIGHT's error text (its candle borrows the request's arguments: `candle`).
    text: String,
    /// CANDLE.COUNTS STATE's sums (one such read in flight at a time: reads wait their turn).
    states: [u64; candle::STATE_ENTRIES],
}

/// One RESP connection. The argument table a parsed request lives in is the shard's, one for
/// all its connections (`run` takes it): a request runs before the next is parsed.
#[derive(Debug)]
pub struct RespSession {
    st: State,
}

/// How running one command went.
enum Ran {
    /// Replied or in flight: consume it.
    Done,
    /// Must wait for the commands before it (not consumed).
    Blocked,
    /// Refused for now (BUSY before anything was proposed): try again at the next poll.
    Busy,
    /// Replied; close the connection once the output is sent.
    Close,
}

impl RespSession {
    /// A session for connection number `id` (CLIENT ID), not logged in.
    pub fn new(id: u64) -> Self {
        Self {
            st: State {
                version: RespVersion::Resp2,
                user: User::Anonymous,
                name: Vec::new(),
                id,
                // Grown on use (to `pipeline_max` at most): an idle connection holds next to nothing.
                pending: VecDeque::new(),
                next_id: 1,
                resume: None,
                body: Vec::new(),
                mset_order: Vec::new(),
                mset_ends: Vec::new(),
                text: String::new(),
                states: [0; candle::STATE_ENTRIES],
            },
        }
    }

    /// Runs the commands at the front of `input`; returns what it consumed.
    pub fn run(
        &mut self,
        input: &[u8],
        args: &mut ArgTable,
        settings: &RespSettings,
        cx: &mut Cx<'_>,
    ) -> Step {
        let mut used = 0;
        loop {
            if self.st.pending.len() >= settings.pipeline_max {
                return Step::Wait { consumed: used, for_output: false };
            }
            if !cx.output_has_room(cx.datagram_bytes_max) {
                return Step::Wait { consumed: used, for_output: true };
            }
            let consumed = match parse_request(&input[used..], args, &settings.limits) {
                Ok(Parsed::Incomplete) => return Step::Consumed(used),
                Ok(Parsed::Empty { consumed }) => {
                    used += consumed;
                    continue;
                }
                Ok(Parsed::Request { consumed }) => consumed,
                Err(e) => {
                    ReplyWriter::new(cx.output, self.st.version).protocol_error(&e);
                    return Step::Close { consumed: used };
                }
            };
            let view = args.view(&input[used..]);
            let ran = match parse_command_spec(view) {
                Ok((spec, command)) => self.st.run(spec, command, settings, cx),
                Err(e) => self.st.refuse(&e, cx),
            };
            match ran {
                Ran::Done => used += consumed,
                Ran::Blocked => return Step::Wait { consumed: used, for_output: false },
                // Refused for now: when answers are owed, their arrival frees room (run again then);
                // else try again at the next poll.
                Ran::Busy if self.st.pending.iter().any(|p| p.outstanding > 0) => {
                    return Step::Wait { consumed: used, for_output: false }
                }
                Ran::Busy => return Step::Retry { consumed: used },
                Ran::Close => return Step::Close { consumed: used + consumed },
            }
        }
    }

    /// Takes a late answer for one of its requests (never runs a request: see `Connections`).
    pub fn answer(&mut self, a: &LateAnswer<'_>, output: &mut Vec<u8>) {
        self.st.answer(a, output);
    }
}

impl State {
    /// A command that did not parse: its error, in order.
    fn refuse(&mut self, e: &CommandError<'_>, cx: &mut Cx<'_>) -> Ran {
        if !self.pending.is_empty() {
            return Ran::Blocked;
        }
        ReplyWriter::new(cx.output, self.version).command_error(e);
        Ran::Done
    }

    /// Whether the session may run `spec` now: `Ok(admitted)` (`admitted`: it may run commands
    /// at all, logged in or anonymous; `cx.owner` is then who its requests are for), or the
    /// refusal, replied and counted (`Ran::Blocked` instead while earlier commands are in
    /// flight, so replies stay in order).
    fn admit(
        &mut self,
        spec: &'static CommandSpec,
        settings: &RespSettings,
        cx: &mut Cx<'_>,
    ) -> Result<bool, Ran> {
        let exempt = matches!(spec.id, CommandId::Auth | CommandId::Hello | CommandId::Quit);
        // Loaded only for a principal: anonymous and requirepass sessions need no table.
        let keys = matches!(self.user, User::Principal(_)).then(|| settings.auth.keys.load());
        let table = keys.as_ref().map(|k| &***k);
        let rights = RespRights::of(self.user, table, settings.unnamed(), cx.now.0 / 1_000_000_000);
        let error = match rights.acl {
            None if !exempt => CommandError::NoAuth,
            Some(acl) if !acl.allows(crate::protocol::resp::acl::needed(spec.id)) => {
                CommandError::NoPerm { user: rights.name, command: spec.name }
            }
            acl => {
                // From the same lookup as the ACL, at every command (a copy: nothing allocated).
                cx.owner = rights.owner;
                return Ok(acl.is_some());
            }
        };
        if !self.pending.is_empty() {
            return Err(Ran::Blocked);
        }
        ReplyWriter::new(cx.output, self.version).command_error(&error);
        match error {
            CommandError::NoAuth => cx.refusals.resp_noauth += 1,
            _ => cx.refusals.resp_noperm += 1,
        }
        if rights.lost {
            self.user = User::Anonymous;
        }
        Err(Ran::Done)
    }

    fn run(
        &mut self,
        spec: &'static CommandSpec,
        command: Command<'_>,
        settings: &RespSettings,
        cx: &mut Cx<'_>,
    ) -> Ran {
        // SET with NX, XX or GET replies from its answer's content, so it runs at the head like
        // a read; every other write is pipelined.
        let writes = matches!(
            command,
            Command::Set { condition: SetCondition::Always, get: false, .. }
                | Command::Del { .. }
                | Command::IncrBy { .. }
                | Command::MSet { .. }
                | Command::Expire { .. }
                | Command::Persist { .. }
                | Command::CandleLight { .. }
        );
        if !writes && !self.pending.is_empty() {
            return Ran::Blocked;
        }
        let admitted = match self.admit(spec, settings, cx) {
            Ok(admitted) => admitted,
            Err(ran) => return ran,
        };
        let now_ms = cx.now.0 / 1_000_000;
        match command {
            Command::Get { key } => self.single(Style::Get, |b| get_body(b, key), cx),
            Command::Set { key, value, condition: SetCondition::Always, get: false, ttl: SetTtl::Clear } => {
                self.parts(Kind::Ok, 1, cx, |body, _| set_body(body, key, value))
            }
            Command::Set { key, value, condition, get, ttl } => {
                if let SetTtl::Expire(e) = ttl {
                    if let Err(err) = ttl::check_expiry(e, now_ms, "set") {
                        return self.refuse(&err, cx);
                    }
                }
                let body = |b: &mut Vec<u8>| ttl::setx_body(b, key, value, condition, get, ttl);
                if condition == SetCondition::Always && !get {
                    self.parts(Kind::Ok, 1, cx, |b, _| body(b))
                } else {
                    self.single(Style::SetX { get }, body, cx)
                }
            }
            Command::GetSet { key, value } => self.single(
                Style::SetX { get: true },
                |b| ttl::setx_body(b, key, value, SetCondition::Always, true, SetTtl::Clear),
                cx,
            ),
            Command::MSet { pairs } => self.mset(pairs, settings, cx),
            Command::Del { keys } => self.parts(Kind::Integer, keys.len(), cx, |body, i| {
                body.extend_from_slice(keys.get(i));
                opcode::DEL
            }),
            Command::IncrBy { key, delta } => self.parts(Kind::Integer, 1, cx, |body, _| {
                body.extend_from_slice(&delta.to_le_bytes());
                body.extend_from_slice(key);
                opcode::INCR
            }),
            // EXISTS: how many of the keys exist (a key named twice counts twice, as in Redis).
            Command::Exists { keys } => {
                self.parts(Kind::Integer, keys.len(), cx, |body, i| get_body(body, keys.get(i)))
            }
            Command::MGet { keys } => self.mget(keys, cx),
            Command::Ttl { key, millis } => self.single(Style::Ttl { millis }, |b| ttl_body(b, key), cx),
            Command::Persist { key } => self.parts(Kind::Integer, 1, cx, |body, _| {
                body.extend_from_slice(key);
                opcode::PERSIST
            }),
            Command::Expire { key, expiry, condition, command } => {
                if let Err(err) = ttl::check_expiry(expiry, now_ms, command) {
                    if !self.pending.is_empty() {
                        return Ran::Blocked;
                    }
                    return self.refuse(&err, cx);
                }
                self.parts(Kind::Integer, 1, cx, |b, _| ttl::expire_body(b, key, expiry, condition))
            }
            Command::DbSize => {
                self.parts(Kind::Integer, usize::from(settings.partitions()), cx, ttl::count_body)
            }
            Command::Info { sections } => {
                let sections = resp_local::info_mask(sections);
                let commands = cx.engine.counters().requests;
                // The keyspace section sums every partition's count; the others need nothing.
                let asks = if sections & resp_local::INFO_KEYSPACE != 0 { settings.partitions() } else { 0 };
                self.parts(Kind::Info { sections, commands }, usize::from(asks), cx, ttl::count_body)
            }
            Command::CandleLight { fields } => candle::light(self, fields, cx),
            Command::CandleGet { id } => {
                self.single(Style::CandleGet { id }, |b| candle::get_body(b, id), cx)
            }
            Command::CandleList { partition, cursor, count } => {
                self.single(Style::CandleList, |b| candle::list_body(b, partition, cursor, count), cx)
            }
            Command::CandleCount => {
                self.parts(Kind::Integer, usize::from(settings.partitions()), cx, |b, i| {
                    candle::count_body(b, i, opcode::CANDLE_COUNT)
                })
            }
            Command::CandleCountsByState => {
                self.states = [0; candle::STATE_ENTRIES];
                self.parts(Kind::CandleStates, usize::from(settings.partitions()), cx, |b, i| {
                    candle::count_body(b, i, opcode::CANDLE_COUNT_STATES)
                })
            }
            other => {
                let local = Local {
                    version: &mut self.version,
                    user: &mut self.user,
                    admitted,
                    name: &mut self.name,
                    id: self.id,
                    requirepass: &settings.requirepass,
                };
                match resp_local::run(other, local, cx) {
                    resp_local::Outcome::Replied => Ran::Done,
                    resp_local::Outcome::Close => Ran::Close,
                }
            }
        }
    }

    /// One request through the engine: `build` writes its body and returns its opcode; its id is
    /// the next one (kept for the retry when the answer is BUSY).
    fn dispatch(
        &mut self,
        build: impl FnOnce(&mut Vec<u8>) -> u8,
        cx: &mut Cx<'_>,
    ) -> (u8, Result<Answer, Status>) {
        self.body.clear();
        let op = build(&mut self.body);
        (op, cx.request(&mut self.next_id, op, &self.body))
    }

    /// Opens the pending entry of a command whose requests start now.
    fn open(&mut self, kind: Kind) {
        self.pending.push_back(Pending {
            first_id: self.next_id,
            issued: 0,
            outstanding: 0,
            dispatched: false,
            kind,
            count: 0,
            expires: 0,
            error: None,
        });
    }

    /// Dispatches parts `resume..count` of a command (`part(body, i)` builds part i and returns
    /// its opcode) into the pending entry at the back, opened when the command starts (not when it
    /// resumes: a command refused BUSY at its first part keeps its entry).
    fn parts(
        &mut self,
        kind: Kind,
        count: usize,
        cx: &mut Cx<'_>,
        mut part: impl FnMut(&mut Vec<u8>, usize) -> u8,
    ) -> Ran {
        // Resumed (after BUSY): its entry is at the back already, whatever part it stopped at.
        let start = match self.resume.take() {
            Some(i) => i,
            None => {
                self.open(kind);
                0
            }
        };
        for i in start..count {
            let (op, answer) = self.dispatch(|b| part(b, i), cx);
            let p = self.pending.back_mut().expect("opened above");
            match answer {
                Err(Status::Busy) => {
                    self.resume = Some(i);
                    return Ran::Busy;
                }
                Ok(Answer::Later) => p.outstanding += 1,
                Ok(Answer::Now(n)) => fold(p, &mut self.states, op, Status::Ok, &cx.scratch[..n]),
                Err(status) | Ok(Answer::Refused { status, .. }) => {
                    fold(p, &mut self.states, op, status, &[])
                }
            }
            p.issued += 1;
        }
        self.pending.back_mut().expect("opened above").dispatched = true;
        self.reply_ready(cx.output);
        Ran::Done
    }

    /// A command of one request replied to from its answer's content (GET, TTL, SET with NX, XX
    /// or GET): now, or (a key another shard owns, a write) when its answer comes; it runs with
    /// nothing before it, so it is at the head then.
    fn single(&mut self, style: Style, build: impl FnOnce(&mut Vec<u8>) -> u8, cx: &mut Cx<'_>) -> Ran {
        let first_id = self.next_id;
        match self.dispatch(build, cx).1 {
            Err(Status::Busy) => Ran::Busy,
            Ok(Answer::Later) => {
                self.pending.push_back(streamed(first_id, style));
                Ran::Done
            }
            Ok(Answer::Now(n)) => {
                ttl::write_streamed(
                    &mut ReplyWriter::new(cx.output, self.version),
                    style,
                    Status::Ok,
                    &cx.scratch[..n],
                );
                Ran::Done
            }
            Err(status) | Ok(Answer::Refused { status, .. }) => {
                ttl::write_streamed(&mut ReplyWriter::new(cx.output, self.version), style, status, &[]);
                Ran::Done
            }
        }
    }

    /// MGET: the array's values in order, each as it comes; a key answered later stops the
    /// command until its answer is in, and the rest follow (`resume`).
    fn mget(&mut self, keys: ArgList<'_>, cx: &mut Cx<'_>) -> Ran {
        let start = match self.resume.take() {
            Some(i) => i,
            None => {
                ReplyWriter::new(cx.output, self.version).array(keys.len());
                0
            }
        };
        for i in start..keys.len() {
            let first_id = self.next_id;
            match self.dispatch(|b| get_body(b, keys.get(i)), cx).1 {
                Err(Status::Busy) => {
                    self.resume = Some(i);
                    return Ran::Busy;
                }
                Ok(Answer::Later) => {
                    self.pending.push_back(streamed(first_id, Style::Get));
                    if i + 1 < keys.len() {
                        // The rest once this one is in: the command stays at the input's front.
                        self.resume = Some(i + 1);
                        return Ran::Blocked;
                    }
                }
                Ok(Answer::Now(n)) => {
                    ReplyWriter::new(cx.output, self.version).bulk(value_of(&cx.scratch[..n]))
                }
                Err(_) | Ok(Answer::Refused { .. }) => ReplyWriter::new(cx.output, self.version).null(),
            }
        }
        Ran::Done
    }

    fn answer(&mut self, a: &LateAnswer<'_>, output: &mut Vec<u8>) {
        let at = self.pending.partition_point(|p| p.first_id + p.issued <= a.request_id);
        let Some(p) = self.pending.get_mut(at).filter(|p| p.first_id <= a.request_id) else { return };
        p.outstanding = p.outstanding.saturating_sub(1);
        match p.kind {
            Kind::Streamed(style) => {
                // The head (these commands run only with nothing before them).
                ttl::write_streamed(&mut ReplyWriter::new(output, self.version), style, a.status, a.body);
            }
            _ => fold(p, &mut self.states, a.opcode, a.status, a.body),
        }
        self.reply_ready(output);
    }

    /// Replies to the commands at the front whose answers are all in.
    fn reply_ready(&mut self, output: &mut Vec<u8>) {
        while let Some(p) = self.pending.front() {
            if p.outstanding > 0 || !p.dispatched {
                return;
            }
            let p = self.pending.pop_front().expect("front exists");
            let mut w = ReplyWriter::new(output, self.version);
            match (p.kind, p.error) {
                (Kind::Streamed(_), _) => {}
                // INFO answers whatever the counts gave (a partition not serving yet counts 0).
                (Kind::Info { sections, commands }, _) => {
                    let text = resp_local::info_text(sections, commands, (p.count, p.expires));
                    w.verbatim(b"txt", text.as_bytes());
                }
                (Kind::CandleId | Kind::CandleStates, Some(status)) => w.error(candle::status_text(status)),
                (_, Some(status)) => w.error(status_text(status)),
                (Kind::CandleId, None) => w.integer(p.count),
                (Kind::CandleStates, None) => candle::write_states(&mut w, &self.states),
                (Kind::Ok, None) => w.ok(),
                (Kind::Integer, None) => w.integer(p.count),
            }
        }
    }
}

/// A command whose answer comes later, replied to as it comes (it is at the head: see the header).
fn streamed(first_id: u64, style: Style) -> Pending {
    Pending {
        first_id,
        issued: 1,
        outstanding: 1,
        dispatched: true,
        kind: Kind::Streamed(style),
        count: 0,
        expires: 0,
        error: None,
    }
}

/// Folds one answer into its pending command (a state count into `states`).
fn fold(p: &mut Pending, states: &mut [u64; candle::STATE_ENTRIES], op: u8, status: Status, body: &[u8]) {
    let first_u64 = || body.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    match (op, status) {
        (opcode::CANDLE_LIGHT, Status::Ok) => p.count = first_u64() as i64,
        (opcode::CANDLE_COUNT, Status::Ok) => p.count += first_u64() as i64,
        (opcode::CANDLE_COUNT_STATES, Status::Ok) => candle::add_states(states, body),
        _ => absorb(p, op, status, body),
    }
}

/// Folds one answer into a pending write: INCR's value, DEL's count, the first error.
fn absorb(p: &mut Pending, op: u8, status: Status, body: &[u8]) {
    match (op, status) {
        (opcode::INCR, Status::Ok) if body.len() >= 8 => {
            p.count = i64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
        }
        (opcode::DEL, Status::Ok) => p.count += i64::from(body.first().copied().unwrap_or(0)),
        (opcode::DEL, Status::NotFound) => {}
        (opcode::GET, Status::Ok) => p.count += 1,
        (opcode::GET, Status::NotFound) => {}
        // EXPIRE, PERSIST: 1 if the expiry changed.
        (opcode::EXPIRE | opcode::PERSIST, Status::Ok) => {
            p.count += i64::from(body.first().copied().unwrap_or(0))
        }
        (opcode::KEYS_COUNT, Status::Ok) => {
            let (keys, expires) = ttl::count_of(body);
            p.count += keys;
            p.expires += expires;
        }
        (_, Status::Ok) => {}
        (_, status) => {
            p.error.get_or_insert(status);
        }
    }
}
