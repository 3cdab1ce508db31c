//! Differential property tests: the hand-written request parser against the `redis-protocol`
//! crate's RESP2 decoder (the oracle). On every valid multibulk request, and on pipelines of them,
//! both return the same arguments and consume the same bytes; on mutated and truncated inputs
//! neither panics, and wherever both accept, they agree.

use proptest::prelude::*;
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;

use super::*;

const LIMITS: RespLimits =
    RespLimits { args_max: 64, arg_bytes_max: 4096, inline_bytes_max: 1024, request_bytes_max: 1 << 20 };

fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A request's arguments and the bytes it took.
type Framed = (Vec<Vec<u8>>, usize);

/// Ours: the first request's arguments and length, `None` if incomplete, `Err` if refused.
fn ours(buf: &[u8]) -> Result<Option<Framed>, RespError> {
    let mut table = ArgTable::new(&LIMITS);
    Ok(match parse_request(buf, &mut table, &LIMITS)? {
        Parsed::Incomplete => None,
        Parsed::Empty { consumed } => Some((Vec::new(), consumed)),
        Parsed::Request { consumed } => {
            let args = table.view(buf);
            Some(((0..args.len()).map(|i| args.get(i).to_vec()).collect(), consumed))
        }
    })
}

/// The oracle's reading of the first frame, when it is an array of bulk strings.
fn oracle(buf: &[u8]) -> Option<Option<Framed>> {
    match decode(buf) {
        Ok(None) => Some(None),
        Ok(Some((OwnedFrame::Array(frames), consumed))) => {
            let mut args = Vec::new();
            for frame in frames {
                match frame {
                    OwnedFrame::BulkString(bytes) => args.push(bytes),
                    _ => return None,
                }
            }
            Some(Some((args, consumed)))
        }
        _ => None,
    }
}

fn request() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..10)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn valid_requests_agree_with_the_oracle(args in request(), next in request()) {
        let mut buf = encode(&args);
        let first_len = buf.len();
        buf.extend_from_slice(&encode(&next));
        let expected = Some((args.clone(), first_len));
        prop_assert_eq!(ours(&buf).unwrap(), expected.clone());
        prop_assert_eq!(oracle(&buf), Some(expected));
        // Every strict prefix is incomplete for both.
        for cut in 0..first_len {
            prop_assert_eq!(ours(&buf[..cut]).unwrap(), None, "cut at {}", cut);
            prop_assert_eq!(oracle(&buf[..cut]), Some(None), "cut at {}", cut);
        }
    }

    #[test]
    fn mutated_requests_never_panic_and_agree_where_both_accept(
        args in request(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut buf = encode(&args);
        for (at, byte, kind) in edits {
            let i = at.index(buf.len() + 1);
            match kind {
                0 if i < buf.len() => buf[i] = byte,
                1 => buf.insert(i, byte),
                _ if i < buf.len() => { buf.remove(i); }
                _ => {}
            }
        }
        let mine = ours(&buf);
        if let (Ok(Some((mine, used))), Some(Some((theirs, their_used)))) = (mine, oracle(&buf)) {
            if !mine.is_empty() {
                prop_assert_eq!((mine, used), (theirs, their_used));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = ours(&buf);
    }
}

/// Frames `stream` fed in two reads at `split`: each request's arguments, and the final error.
fn framed_in_two_reads(stream: &[u8], split: usize) -> (Vec<Vec<Vec<u8>>>, Option<RespError>) {
    let mut table = ArgTable::new(&LIMITS_SMALL);
    let mut buf = stream[..split].to_vec();
    let mut fed_all = split == stream.len();
    let mut requests = Vec::new();
    loop {
        match parse_request(&buf, &mut table, &LIMITS_SMALL) {
            Err(err) => return (requests, Some(err)),
            Ok(Parsed::Incomplete) if fed_all => return (requests, None),
            Ok(Parsed::Incomplete) => {
                buf.extend_from_slice(&stream[split..]);
                fed_all = true;
            }
            Ok(Parsed::Empty { consumed }) => drop(buf.drain(..consumed)),
            Ok(Parsed::Request { consumed }) => {
                let args = table.view(&buf);
                requests.push((0..args.len()).map(|i| args.get(i).to_vec()).collect());
                buf.drain(..consumed);
            }
        }
    }
}

/// Small limits, so that random streams reach them.
const LIMITS_SMALL: RespLimits =
    RespLimits { args_max: 4, arg_bytes_max: 8, inline_bytes_max: 12, request_bytes_max: 40 };

/// Bytes that make framing decisions, more often than uniform bytes would.
fn stream_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b"*$\r\n0123456789-\"' \\xa\0".to_vec()),
        1 => any::<u8>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// The outcome (requests, then the error if any) does not depend on how the bytes were read.
    #[test]
    fn framing_does_not_depend_on_read_boundaries(
        stream in prop::collection::vec(stream_byte(), 0..96),
        split in any::<prop::sample::Index>(),
    ) {
        let split = split.index(stream.len() + 1);
        prop_assert_eq!(framed_in_two_reads(&stream, stream.len()), framed_in_two_reads(&stream, split));
    }
}
