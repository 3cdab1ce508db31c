//! The crash test's RESP writer: one TCP connection pipelining `SET` commands (binary values) to
//! the node's RESP port, recording each write answered `+OK` (durable, as every RESP write is
//! answered only once on disk) and what was still unanswered at the kill. RESP writes are
//! anonymous (no client id, no resend): the model checks their values after each restart, not
//! versions.

use super::{Write, WRITE_WINDOW};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What the RESP writer saw.
#[derive(Default)]
pub struct RespReport {
    /// Answered `+OK`.
    pub acked: Vec<Write>,
    /// Unanswered at the kill.
    pub unknown: Vec<Write>,
    /// `-BUSY` answers (not applied; written again).
    pub busy: u64,
    /// Anything wrong.
    pub problems: Vec<String>,
}

fn command(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut c = format!("*3\r\n$3\r\nSET\r\n${}\r\n", key.len()).into_bytes();
    c.extend_from_slice(key);
    c.extend_from_slice(format!("\r\n${}\r\n", value.len()).as_bytes());
    c.extend_from_slice(value);
    c.extend_from_slice(b"\r\n");
    c
}

/// Writes new keys at about `rate` per second until `stop`, then reads answers for 300 ms.
pub fn resp_writer(
    port: u16,
    cycle: usize,
    rng: &mut super::XorShift,
    rate: u64,
    stop: &AtomicBool,
    gauge: &AtomicUsize,
) -> RespReport {
    let mut rep = RespReport::default();
    let mut s = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            rep.problems.push(format!("RESP writer: cannot connect: {e}"));
            return rep;
        }
    };
    s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
    let mut pending: VecDeque<Write> = VecDeque::new();
    let mut retry: Vec<Write> = Vec::new();
    let (mut n, mut sent, mut buf, mut read) = (0u64, 0u64, Vec::new(), [0u8; 4096]);
    let started = Instant::now();
    let mut drain_until: Option<Instant> = None;
    let mut closed = false;
    loop {
        let now = Instant::now();
        match drain_until {
            None if stop.load(Ordering::SeqCst) || now > started + Duration::from_secs(30) => {
                drain_until = Some(now + Duration::from_millis(300));
            }
            None => {
                let allowed = started.elapsed().as_micros() as u64 * rate / 1_000_000 + 1;
                while pending.len() < WRITE_WINDOW && sent < allowed && !closed {
                    sent += 1;
                    let w = retry.pop().unwrap_or_else(|| {
                        n += 1;
                        let mut value = format!("resp-{cycle}-{n}-").into_bytes();
                        let extra = (rng.next_u64() % 100) as usize;
                        value.extend(rng.bytes(extra));
                        Write {
                            key: format!("r-{cycle}-{n}").into_bytes(),
                            value,
                            client_id: 0,
                            request_id: n,
                        }
                    });
                    if s.write_all(&command(&w.key, &w.value)).is_err() {
                        closed = true;
                    }
                    pending.push_back(w);
                }
            }
            Some(until) if now > until || pending.is_empty() => break,
            Some(_) => {}
        }
        gauge.store(pending.len(), Ordering::SeqCst);
        if closed {
            if drain_until.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        match s.read(&mut read) {
            Ok(0) => closed = true,
            Ok(got) => buf.extend_from_slice(&read[..got]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => closed = true,
        }
        while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..end + 2).take(end).collect();
            let Some(w) = pending.pop_front() else {
                rep.problems.push(format!(
                    "RESP: an answer with nothing in flight: {:?}",
                    String::from_utf8_lossy(&line)
                ));
                continue;
            };
            match line.first() {
                Some(b'+') if line == b"+OK" => rep.acked.push(w),
                Some(b'-') if line.starts_with(b"-BUSY") => {
                    rep.busy += 1;
                    if drain_until.is_none() {
                        retry.push(w);
                    }
                }
                _ => rep.problems.push(format!(
                    "RESP SET {:?}: answered {:?}",
                    String::from_utf8_lossy(&w.key),
                    String::from_utf8_lossy(&line)
                )),
            }
        }
    }
    gauge.store(0, Ordering::SeqCst);
    rep.unknown = pending.into_iter().collect();
    rep
}
