//! `vigil serve` answering Redis's expiry commands on its RESP port: SET with EX, PX, EXAT, PXAT,
//! KEEPTTL, NX, XX and GET; GETSET; EXPIRE/PEXPIRE with NX/XX/GT/LT; TTL/PTTL; PERSIST; DBSIZE and
//! INFO keyspace summed over the partitions of two shards; expired keys reclaimed with no write
//! coming; expiry surviving a restart (TTLs are absolute times from the leader's wall clock).
//!
//! Waits are for deadlines to pass (a key set PX 300 is checked after 600 ms and more), never
//! timings asserted.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A RESP2 reply, as far as these tests need.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

use Reply::*;

fn bulk(s: &str) -> Reply {
    Bulk(Some(s.as_bytes().to_vec()))
}

const NIL: Reply = Bulk(None);

struct Client {
    out: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> Self {
        let out = TcpStream::connect(("127.0.0.1", port)).unwrap();
        out.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let r = BufReader::new(out.try_clone().unwrap());
        Self { out, r }
    }

    fn cmd(&mut self, args: &[&str]) -> Reply {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.out.write_all(&req).unwrap();
        self.read()
    }

    fn read(&mut self) -> Reply {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        let body = line.trim_end_matches("\r\n");
        let (kind, rest) = body.split_at(1);
        match kind {
            "+" => Simple(rest.to_string()),
            "-" => Error(rest.to_string()),
            ":" => Int(rest.parse().unwrap()),
            "$" if rest == "-1" => Bulk(None),
            "$" => {
                let mut buf = vec![0u8; rest.parse::<usize>().unwrap() + 2];
                self.r.read_exact(&mut buf).unwrap();
                buf.truncate(buf.len() - 2);
                Bulk(Some(buf))
            }
            "*" => Array((0..rest.parse::<usize>().unwrap()).map(|_| self.read()).collect()),
            _ => panic!("not a RESP2 reply: {line:?}"),
        }
    }

    fn int(&mut self, args: &[&str]) -> i64 {
        match self.cmd(args) {
            Int(n) => n,
            other => panic!("{args:?}: {other:?}"),
        }
    }
}

fn ok() -> Reply {
    Simple("OK".into())
}

fn config(port: u16) -> String {
    // Two shards, four partitions: keys on both shards; snapshots often, so the restart loads
    // expiries from a snapshot as well as from the log.
    let mut c = node_config(port, "vigil-data", 40, 2, Some(4));
    c.push_str("[tcp]\nconnections_per_shard_max = 64\n");
    c
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Polls DBSIZE until it is `want` (expired keys reclaimed with no write coming); panics after 20 s.
fn wait_dbsize(c: &mut Client, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = c.int(&["dbsize"]);
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "DBSIZE stays {n}, expected {want}");
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn redis_expiry_commands_work_across_shards_and_a_restart() {
    let dir = disk_temp_dir("serve-resp-ttl");
    let port = free_udp_port();
    let server = Server::start(&dir, &config(port));
    let mut c = Client::connect(port);

    // DBSIZE and INFO keyspace sum every partition of both shards.
    assert_eq!(c.int(&["dbsize"]), 0);
    for i in 0..20 {
        assert_eq!(c.cmd(&["set", &format!("plain:{i}"), "v"]), ok());
    }
    for i in 0..5 {
        assert_eq!(c.cmd(&["set", &format!("long:{i}"), "v", "ex", "1000"]), ok());
    }
    assert_eq!(c.int(&["dbsize"]), 25);
    let Bulk(Some(info)) = c.cmd(&["info", "keyspace"]) else { panic!("INFO is a bulk") };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("# Keyspace\r\ndb0:keys=25,expires=5,avg_ttl=0\r\n"), "{info}");

    // EX: there within its second, gone after it; PX likewise.
    assert_eq!(c.cmd(&["set", "ex1", "v", "ex", "1"]), ok());
    assert_eq!(c.cmd(&["get", "ex1"]), bulk("v"));
    assert_eq!(c.cmd(&["set", "px", "v", "px", "300"]), ok());
    let pttl = c.int(&["pttl", "px"]);
    assert!((0..=300).contains(&pttl), "PTTL {pttl}");
    sleep(Duration::from_millis(1500));
    assert_eq!(c.cmd(&["get", "ex1"]), NIL);
    assert_eq!(c.cmd(&["get", "px"]), NIL);
    assert_eq!(c.int(&["ttl", "ex1"]), -2);
    assert_eq!(c.int(&["exists", "ex1", "px"]), 0);
    assert_eq!(c.cmd(&["mget", "ex1", "plain:0"]), Array(vec![NIL, bulk("v")]));
    // Reclaimed with no write coming: DBSIZE goes back to the 25.
    wait_dbsize(&mut c, 25);

    // EXAT in the past: OK, and the key is gone; PXAT ahead: the TTL it gives.
    assert_eq!(c.cmd(&["set", "past", "v"]), ok());
    assert_eq!(c.cmd(&["set", "past", "v", "exat", "1000"]), ok());
    assert_eq!(c.cmd(&["get", "past"]), NIL);
    let at = (unix_ms() + 100_000).to_string();
    assert_eq!(c.cmd(&["set", "pxat", "v", "pxat", &at]), ok());
    let ttl = c.int(&["ttl", "pxat"]);
    assert!((90..=100).contains(&ttl), "TTL {ttl}");
    assert_eq!(
        c.cmd(&["set", "bad", "v", "ex", "0"]),
        Error("ERR invalid expire time in 'set' command".into())
    );
    assert_eq!(c.cmd(&["set", "bad", "v", "ex", "1", "px", "1"]), Error("ERR syntax error".into()));

    // NX, XX, GET.
    assert_eq!(c.cmd(&["set", "n", "1", "nx"]), ok());
    assert_eq!(c.cmd(&["set", "n", "2", "nx"]), NIL);
    assert_eq!(c.cmd(&["get", "n"]), bulk("1"));
    assert_eq!(c.cmd(&["set", "x", "1", "xx"]), NIL);
    assert_eq!(c.cmd(&["get", "x"]), NIL);
    assert_eq!(c.cmd(&["set", "n", "3", "xx", "get"]), bulk("1"));
    assert_eq!(c.cmd(&["get", "n"]), bulk("3"));
    assert_eq!(c.cmd(&["set", "fresh", "1", "get"]), NIL);
    assert_eq!(c.cmd(&["set", "n", "4", "nx", "get"]), bulk("3"));
    assert_eq!(c.cmd(&["get", "n"]), bulk("3"));
    // KEEPTTL keeps it, a plain SET drops it, INCR keeps it.
    assert_eq!(c.cmd(&["set", "k", "1", "ex", "100"]), ok());
    assert_eq!(c.cmd(&["set", "k", "2", "keepttl"]), ok());
    assert!((90..=100).contains(&c.int(&["ttl", "k"])));
    assert_eq!(c.int(&["incr", "k"]), 3);
    assert!((90..=100).contains(&c.int(&["ttl", "k"])));
    assert_eq!(c.cmd(&["set", "k", "2"]), ok());
    assert_eq!(c.int(&["ttl", "k"]), -1);

    // GETSET.
    assert_eq!(c.cmd(&["getset", "g", "a"]), NIL);
    assert_eq!(c.cmd(&["getset", "g", "b"]), bulk("a"));
    assert_eq!(c.cmd(&["get", "g"]), bulk("b"));

    // EXPIRE / PEXPIRE with their conditions, TTL, PTTL, PERSIST.
    assert_eq!(c.cmd(&["set", "t", "v"]), ok());
    assert_eq!(c.int(&["ttl", "t"]), -1);
    assert_eq!(c.int(&["ttl", "missing"]), -2);
    assert_eq!(c.int(&["pttl", "missing"]), -2);
    assert_eq!(c.int(&["expire", "missing", "10"]), 0);
    assert_eq!(c.int(&["expire", "t", "100", "xx"]), 0);
    assert_eq!(c.int(&["expire", "t", "100"]), 1);
    assert!((90..=100).contains(&c.int(&["ttl", "t"])));
    assert_eq!(c.int(&["expire", "t", "50", "nx"]), 0);
    assert_eq!(c.int(&["expire", "t", "50", "gt"]), 0);
    assert_eq!(c.int(&["expire", "t", "200", "gt"]), 1);
    assert!((190..=200).contains(&c.int(&["ttl", "t"])));
    assert_eq!(c.int(&["pexpire", "t", "50000", "lt"]), 1);
    let pttl = c.int(&["pttl", "t"]);
    assert!((40_000..=50_000).contains(&pttl), "PTTL {pttl}");
    assert_eq!(c.int(&["persist", "t"]), 1);
    assert_eq!(c.int(&["persist", "t"]), 0);
    assert_eq!(c.int(&["persist", "missing"]), 0);
    assert_eq!(c.int(&["ttl", "t"]), -1);
    assert_eq!(c.cmd(&["expire", "t", "abc"]), Error("ERR value is not an integer or out of range".into()));
    assert_eq!(
        c.cmd(&["expire", "t", "10", "nx", "xx"]),
        Error("ERR NX and XX, GT or LT options at the same time are not compatible".into())
    );
    assert_eq!(c.int(&["expire", "t", "0"]), 1, "a time not ahead deletes the key");
    assert_eq!(c.int(&["exists", "t"]), 0);

    // Pipelined: replies in order, expiring writes among plain ones.
    let mut pipe = Vec::new();
    for (i, cmd) in ["set p1 a ex 100", "expire p1 200", "ttl p1", "set p1 b nx", "get p1", "pttl nope"]
        .iter()
        .enumerate()
    {
        let args: Vec<&str> = cmd.split(' ').collect();
        pipe.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in &args {
            pipe.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        let _ = i;
    }
    c.out.write_all(&pipe).unwrap();
    assert_eq!(c.read(), ok());
    assert_eq!(c.read(), Int(1));
    let Int(ttl) = c.read() else { panic!("TTL is an integer") };
    assert!((190..=200).contains(&ttl), "TTL {ttl}");
    assert_eq!(c.read(), NIL);
    assert_eq!(c.read(), bulk("a"));
    assert_eq!(c.read(), Int(-2));

    // Across a restart: a key set EX 100 still has about 100 s; one that expired while the node
    // was down is gone.
    assert_eq!(c.cmd(&["set", "r:long", "v", "ex", "100"]), ok());
    assert_eq!(c.cmd(&["set", "r:short", "v", "px", "1500"]), ok());
    drop(c);
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    sleep(Duration::from_millis(2000));
    let server = Server::start(&dir, &config(port));
    let mut c = Client::connect(port);
    let ttl = c.int(&["ttl", "r:long"]);
    assert!((80..=100).contains(&ttl), "TTL after the restart: {ttl}");
    assert_eq!(c.cmd(&["get", "r:long"]), bulk("v"));
    assert_eq!(c.cmd(&["get", "r:short"]), NIL);
    assert_eq!(c.int(&["ttl", "r:short"]), -2);
    assert_eq!(c.cmd(&["get", "n"]), bulk("3"));
    assert!((90..=100).contains(&c.int(&["ttl", "pxat"])) || c.int(&["ttl", "pxat"]) > 80);
    drop(c);
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}

/// The same operations over UDP, protocol v1: SETX, TTL, EXPIRE, PERSIST and KEYS_COUNT.
#[test]
fn udp_clients_get_the_expiry_opcodes() {
    use std::net::UdpSocket;
    use vigil::kv::protocol::{encode_write_body, parse_answer, request_body_len, Answer};
    use vigil::kv::{set_flags, Op, Ttl};
    use vigil::wire::{opcode, Status};

    let dir = disk_temp_dir("serve-udp-ttl");
    let port = free_udp_port();
    let server = Server::start(&dir, &config(port));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{port}");
    let mut id = 0u64;
    let mut call = |op: u8, body: &[u8]| -> (u8, Vec<u8>) {
        id += 1;
        let resp =
            exchange(&sock, &to, &request(&[(op, id, body)]), Duration::from_secs(10)).expect("an answer");
        let a = answers(&resp);
        assert_eq!((a.len(), a[0].0, a[0].2), (1, op, id));
        (a[0].1, a[0].3.clone())
    };
    let body = |op: Op<'_>| {
        let mut out = vec![0u8; request_body_len(&op)];
        encode_write_body(&op, &mut out).unwrap();
        out
    };
    let setx = Op::SetX { key: b"udp", value: b"1", flags: set_flags::GET, ttl: Ttl::RelativeMs(100_000) };
    let (status, b) = call(opcode::SETX, &body(setx));
    assert_eq!(status, Status::Ok as u8);
    assert!(matches!(parse_answer(opcode::SETX, &b), Ok(Answer::SetX { stored: true, existed: false, .. })));
    let setx = Op::SetX { key: b"udp", value: b"2", flags: set_flags::GET | set_flags::XX, ttl: Ttl::Keep };
    let (_, b) = call(opcode::SETX, &body(setx));
    assert!(matches!(
        parse_answer(opcode::SETX, &b),
        Ok(Answer::SetX { stored: true, existed: true, old: b"1", .. })
    ));
    let (_, b) = call(opcode::TTL, b"udp");
    let Ok(Answer::Ttl(ms)) = parse_answer(opcode::TTL, &b) else { panic!("{b:?}") };
    assert!((80_000..=100_000).contains(&ms), "TTL {ms}");
    let (_, b) = call(opcode::PERSIST, &body(Op::Persist { key: b"udp" }));
    assert_eq!(parse_answer(opcode::PERSIST, &b), Ok(Answer::Changed(true)));
    let (_, b) = call(opcode::TTL, b"udp");
    assert_eq!(parse_answer(opcode::TTL, &b), Ok(Answer::Ttl(-1)));
    let (_, b) =
        call(opcode::EXPIRE, &body(Op::Expire { key: b"udp", flags: 0, ttl: Ttl::AbsoluteMs(1000) }));
    assert_eq!(parse_answer(opcode::EXPIRE, &b), Ok(Answer::Changed(true)));
    let (status, _) = call(opcode::TTL, b"udp");
    assert_eq!(status, Status::NotFound as u8);
    let mut keys = 0;
    for p in 0u16..4 {
        let (status, b) = call(opcode::KEYS_COUNT, &p.to_le_bytes());
        assert_eq!(status, Status::Ok as u8);
        let Ok(Answer::Count { keys: k, .. }) = parse_answer(opcode::KEYS_COUNT, &b) else { panic!("{b:?}") };
        keys += k;
    }
    assert_eq!(keys, 0, "the key was deleted by its past expiry");
    let (status, _) = call(opcode::KEYS_COUNT, &9u16.to_le_bytes());
    assert_eq!(status, Status::BadRequest as u8, "no such partition");
    let (status, _) = call(opcode::EXPIRE_DUE, b"");
    assert_eq!(status, Status::UnknownOpcode as u8, "a log command, not a request");
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}
