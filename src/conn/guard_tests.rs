//! `ReadGuard` on the connection path: answers made by a pass are sent when the clock read after
//! it is before the soonest lease end, and dropped, the connection closed and counted, when it is
//! not (the process stopped mid-iteration past the lease).

use crate::conn::http::tests::engine;
use crate::conn::resp::RespSettings;
use crate::conn::{protocol_tag, ConnLimits, Connections, ReadGuard};
use vigil_pmd::sim::SimStreams;
use vigil_pmd::Nanos;

const LIMITS: ConnLimits = ConnLimits {
    input_bytes_max: 64 << 10,
    output_bytes_max: 64 << 10,
    datagram_bytes_max: 1472,
    connections_max: 4,
    page_candles_max: 40,
};

/// One RESP GET through a fresh connection, the clock after answering at `after`, leases ending
/// at 100: what the client got, whether the server closed, the lapsed count.
fn get_with_clock_after(after: u64) -> (Vec<u8>, bool, u64) {
    let streams = SimStreams::new(1 << 10, 1 << 16);
    let mut conns = Connections::new(Box::new(streams.clone()), LIMITS, RespSettings::for_tests(1));
    let mut engine = engine();
    let c = streams.open(protocol_tag::RESP);
    streams.client_send(c, b"GET k\r\n");
    let clock = move || Nanos(after);
    let guard = ReadGuard { valid_until: Nanos(100), clock: Some(&clock) };
    for _ in 0..4 {
        conns.poll(&mut engine, Nanos(10), &guard);
    }
    (streams.client_take(c), streams.server_closed(c), conns.counters().0.closed_lease_lapsed)
}

#[test]
fn answers_made_before_the_lease_ends_go_out_and_after_it_close_the_connection() {
    let (got, closed, lapsed) = get_with_clock_after(99);
    assert_eq!(got, b"$-1\r\n");
    assert!(!closed);
    assert_eq!(lapsed, 0);
    let (got, closed, lapsed) = get_with_clock_after(100);
    assert!(got.is_empty(), "nothing answered after the lease may go out: {got:?}");
    assert!(closed, "the client learns to retry");
    assert_eq!(lapsed, 1);
}

#[test]
fn without_a_lease_to_keep_the_clock_is_not_read() {
    let streams = SimStreams::new(1 << 10, 1 << 16);
    let mut conns = Connections::new(Box::new(streams.clone()), LIMITS, RespSettings::for_tests(1));
    let mut engine = engine();
    let c = streams.open(protocol_tag::RESP);
    streams.client_send(c, b"GET k\r\n");
    let clock = || -> Nanos { panic!("read the clock with no lease to check") };
    let guard = ReadGuard { valid_until: Nanos(u64::MAX), clock: Some(&clock) };
    conns.poll(&mut engine, Nanos(10), &guard);
    conns.poll(&mut engine, Nanos(10), &ReadGuard::NONE);
    assert_eq!(streams.client_take(c), b"$-1\r\n");
}
