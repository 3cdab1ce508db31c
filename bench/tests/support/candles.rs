//! A test-only candle handler: CANDLE_LIGHT and CANDLE_GET straight onto a real
//! `vigil::candle::CandleProjection` (no log, no Raft, one partition), the way `ops::candle` does
//! it on a shard: the body decoded and validated at the handler's date (`INVALID` when it fails),
//! encoded with the built-in text models into its slot and a LIGHT command, applied at once
//! (`FULL` when the day's bucket is), and a GET's raw answer turned back into the client body.

use std::cell::RefCell;
use std::rc::Rc;
use vigil::candle::command::{self, light_len, write_light};
use vigil::candle::Date;
use vigil::candle::{CandleLimits, CandleProjection, Registry, TextCodec};
use vigil::dispatch::{Answer, Handler, Request};
use vigil::ops::candle::{public_id, ring_id, CandleOps};
use vigil::projection::{Applied, ApplyResult, CommandHeader};
use vigil::wire::{opcode, Status};

/// 2026-11-30 00:00 UTC, in ns: the handler's clock (the corpus's birth dates are before it).
pub const NOW_NS: u64 = 1_796_000_000 * 1_000_000_000;

/// The store the handlers of one fake server share.
pub fn store(limits: CandleLimits) -> Rc<RefCell<CandleProjection>> {
    Rc::new(RefCell::new(CandleProjection::new(limits)))
}

/// LIGHT and GET on `store`; validation compares birth dates with `today`.
pub struct CandleHandler {
    store: Rc<RefCell<CandleProjection>>,
    today: Date,
    codec: TextCodec<'static>,
    ops: CandleOps,
    command: Vec<u8>,
    raw: Vec<u8>,
    lsn: u64,
}

impl CandleHandler {
    /// A handler on `store` whose date is `today`.
    pub fn new(store: &Rc<RefCell<CandleProjection>>, today: Date) -> Self {
        Self {
            store: Rc::clone(store),
            today,
            codec: TextCodec::new(Registry::builtin()),
            ops: CandleOps::new(),
            command: Vec::new(),
            raw: vec![0; 64 << 10],
            lsn: 0,
        }
    }

    fn light(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        let c = vigil::candle::wire::read(req.body).map_err(|_| Status::BadRequest)?;
        let encoded = vigil::candle::encode(&c, self.today, &mut self.codec).map_err(|_| Status::Invalid)?;
        let overflow: [Option<&[u8]>; 3] = [0, 1, 2].map(|i| encoded.overflow[i].as_deref());
        self.command.resize(light_len(&overflow), 0);
        let header =
            CommandHeader { kind: opcode::CANDLE_LIGHT, client_id: req.client_id, seq: req.request_id };
        write_light(header, &encoded.slot, overflow, &mut self.command);
        let cmd = command::parse(&self.command).map_err(|_| Status::Malformed)?;
        self.lsn += 1;
        let at = Applied { time_ns: NOW_NS, ..Applied::single(self.lsn) };
        match self.store.borrow_mut().apply_command(at, &cmd) {
            ApplyResult::Lit { id } => {
                out[..8].copy_from_slice(&public_id(0, id).to_le_bytes());
                Ok(Answer::Now(8))
            }
            ApplyResult::Full => Err(Status::Full),
            other => panic!("a LIGHT applied as {other:?}"),
        }
    }

    fn get(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        let id: [u8; 8] = req.body.try_into().map_err(|_| Status::BadLength)?;
        let ring = ring_id(u64::from_le_bytes(id)).to_le_bytes();
        let n =
            self.store.borrow().answer_read(opcode::CANDLE_GET, &ring, NOW_NS / 1_000_000, &mut self.raw)?;
        self.ops.for_client(opcode::CANDLE_GET, &self.raw[..n], out).map(Answer::Now)
    }
}

impl Handler for CandleHandler {
    fn handle(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<Answer, Status> {
        match req.opcode {
            opcode::CANDLE_LIGHT => self.light(req, out),
            opcode::CANDLE_GET => self.get(req, out),
            _ => Err(Status::UnknownOpcode),
        }
    }
}
