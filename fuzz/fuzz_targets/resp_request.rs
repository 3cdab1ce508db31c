//! RESP requests (`protocol::resp`): the first byte picks a split point, the rest is a connection's
//! byte stream, framed with `parse_request`, parsed with `parse_command` and answered with the
//! reply writer in RESP2 and RESP3. Checks: nothing panics; every request consumes bytes within
//! the buffer; the requests and the final error are the same whether the stream arrives whole or
//! in two reads split at the chosen point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::protocol::resp::introspect::write_introspect;
use vigil::protocol::resp::{
    parse_command, parse_request, ArgTable, Command, Parsed, ReplyWriter, RespError, RespLimits, RespVersion,
};

const LIMITS: RespLimits =
    RespLimits { args_max: 32, arg_bytes_max: 512, inline_bytes_max: 256, request_bytes_max: 4096 };

/// Frames `stream` as a connection would, fed in two reads at `split`; returns each request's
/// arguments and the error that ended the stream, if any.
fn run(stream: &[u8], split: usize) -> (Vec<Vec<Vec<u8>>>, Option<RespError>) {
    let mut table = ArgTable::new(&LIMITS);
    let mut buf = stream[..split].to_vec();
    let mut fed_all = split == stream.len();
    let mut requests = Vec::new();
    let mut out = Vec::new();
    loop {
        match parse_request(&buf, &mut table, &LIMITS) {
            Err(err) => {
                ReplyWriter::new(&mut out, RespVersion::Resp2).protocol_error(&err);
                return (requests, Some(err));
            }
            Ok(Parsed::Incomplete) if fed_all => return (requests, None),
            Ok(Parsed::Incomplete) => {
                buf.extend_from_slice(&stream[split..]);
                fed_all = true;
            }
            Ok(Parsed::Empty { consumed }) => {
                assert!(consumed > 0 && consumed <= buf.len());
                buf.drain(..consumed);
            }
            Ok(Parsed::Request { consumed }) => {
                assert!(consumed > 0 && consumed <= buf.len());
                let args = table.view(&buf[..consumed]);
                assert!(!args.is_empty());
                requests.push((0..args.len()).map(|i| args.get(i).to_vec()).collect());
                for version in [RespVersion::Resp2, RespVersion::Resp3] {
                    out.clear();
                    let mut w = ReplyWriter::new(&mut out, version);
                    match parse_command(args) {
                        Ok(Command::Introspect(what)) => write_introspect(&mut w, what),
                        Ok(_) => w.ok(),
                        Err(err) => w.command_error(&err),
                    }
                    assert!(out.ends_with(b"\r\n"));
                }
                buf.drain(..consumed);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let split = usize::from(split).min(stream.len());
    assert_eq!(run(stream, stream.len()), run(stream, split), "the split changed the outcome");
});
