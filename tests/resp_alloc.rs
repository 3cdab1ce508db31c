//! Heap allocations of the RESP codec's hot path, counted by this test binary's global allocator:
//! after the argument table and the output buffer exist, framing, command parsing and reply
//! encoding of pipelined requests (multibulk and inline, quoted inline arguments, errors, COMMAND
//! DOCS) allocate nothing per request.
//!
//! Runs without the test harness (`harness = false` in Cargo.toml): the global allocator counts
//! every thread, and the harness's thread allocates at times while it waits for a test.

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use vigil::protocol::resp::introspect::write_introspect;
use vigil::protocol::resp::{
    parse_command, parse_request, ArgTable, Command, Parsed, ReplyWriter, RespLimits, RespVersion,
};

/// Counts every allocation of this test binary.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const LIMITS: RespLimits = RespLimits {
    args_max: 64,
    arg_bytes_max: 1 << 16,
    inline_bytes_max: 1 << 16,
    request_bytes_max: 1 << 20,
};

const PIPELINE: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n\
*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n\
PING\r\n\
set k \"a \\x41 b\" ex 10 nx get\r\n\
*4\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n\
nosuch a b\r\n\
expire k 5 nx xx\r\n\
incrby k 7\r\n\
command docs get set\r\n\
hello 3 setname app\r\n";

/// Parses and answers every request of the pipeline; returns how many there were.
fn serve(table: &mut ArgTable, out: &mut Vec<u8>, version: RespVersion) -> usize {
    let mut pos = 0;
    let mut served = 0;
    loop {
        match parse_request(&PIPELINE[pos..], table, &LIMITS).expect("the pipeline frames") {
            Parsed::Incomplete => return served,
            Parsed::Empty { consumed } => pos += consumed,
            Parsed::Request { consumed } => {
                let mut w = ReplyWriter::new(out, version);
                match parse_command(table.view(&PIPELINE[pos..])) {
                    Ok(Command::Introspect(what)) => write_introspect(&mut w, what),
                    Ok(Command::Get { key }) => w.bulk(key),
                    Ok(Command::MGet { keys }) => {
                        w.array(keys.len());
                        keys.iter().for_each(|k| w.bulk_or_null(Some(k)));
                    }
                    Ok(Command::IncrBy { delta, .. }) => w.integer(delta),
                    Ok(_) => w.ok(),
                    Err(err) => w.command_error(&err),
                }
                pos += consumed;
                served += 1;
            }
        }
    }
}

fn main() {
    the_codec_allocates_nothing_per_request();
    println!("test the_codec_allocates_nothing_per_request ... ok");
}

fn the_codec_allocates_nothing_per_request() {
    let mut table = ArgTable::new(&LIMITS);
    let mut out = Vec::with_capacity(1 << 16);
    let served = serve(&mut table, &mut out, RespVersion::Resp3);
    assert_eq!(served, 10);
    let reply_len = out.len();

    let region = Region::new(GLOBAL);
    for round in 0..1000 {
        out.clear();
        let version = if round % 2 == 0 { RespVersion::Resp2 } else { RespVersion::Resp3 };
        assert_eq!(serve(&mut table, &mut out, version), served);
    }
    let change = region.change();
    println!("10,000 requests: {} allocations, {} reallocations", change.allocations, change.reallocations);
    assert_eq!(change.allocations, 0);
    assert_eq!(change.reallocations, 0);
    assert!(reply_len > 0);
}
