//! `vigil serve` speaking RESP on its TCP port to the clients Redis users have: redis-cli (one-shot,
//! commands on stdin, `--pipe` mass insertion), redis-benchmark unmodified, redis-py; writes that
//! survive a restart; hostile input closed cleanly without disturbing other connections; many idle
//! connections beside an active one.
//!
//! Needs redis-tools (redis-cli, redis-benchmark) and the `redis` Python package (scripts/test
//! installs them into target/py); a missing one fails the test, it is never skipped.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn tool(name: &str) -> PathBuf {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().expect("sh");
    assert!(found.status.success(), "{name} is missing: install redis-tools (scripts/test does)");
    PathBuf::from(String::from_utf8(found.stdout).unwrap().trim())
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new(tool("redis-cli")).args(["-p", &port.to_string()]).args(args).output().unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn cli_stdin(port: u16, args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new(tool("redis-cli"))
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn resp_config(port: u16) -> String {
    let mut c = node_config(port, "vigil-data", 100_000, 2, None);
    c.push_str("[tcp]\nconnections_per_shard_max = 12000\n");
    c
}

#[test]
fn redis_clients_work_against_vigil_and_their_writes_survive_a_restart() {
    let dir = disk_temp_dir("serve-resp");
    let port = free_udp_port();
    let p = port.to_string();
    let server = Server::start(&dir, &resp_config(port));

    // redis-cli, one command per run.
    assert_eq!(cli(port, &["ping"]), "PONG\n");
    assert_eq!(cli(port, &["set", "greeting", "olá"]), "OK\n");
    assert_eq!(cli(port, &["get", "greeting"]), "olá\n");
    assert_eq!(cli(port, &["incrby", "counter", "41"]), "41\n");
    assert_eq!(cli(port, &["incr", "counter"]), "42\n");
    assert_eq!(cli(port, &["decr", "counter"]), "41\n");
    assert_eq!(cli(port, &["mset", "a", "1", "b", "2", "c", "3"]), "OK\n");
    assert_eq!(cli(port, &["mget", "a", "b", "nope", "c"]), "1\n2\n\n3\n");
    assert_eq!(cli(port, &["exists", "a", "b", "nope", "a"]), "3\n");
    assert_eq!(cli(port, &["del", "a", "nope"]), "1\n");
    // (redis-cli ends an error with an empty line, with redis-server too.)
    assert_eq!(cli(port, &["incr", "greeting"]), "ERR value is not an integer or out of range\n\n");
    assert!(cli(port, &["nosuchcommand", "x"]).starts_with("ERR unknown command 'nosuchcommand'"));

    // Interactive redis-cli on a terminal (`script` gives it a pty; TERM=dumb keeps its line editor
    // from asking the terminal for the cursor): prompts, typed replies, and `help` from COMMAND DOCS.
    let typed: String = ["set tty 1", "get tty", "incr tty", "help get", "quit"]
        .iter()
        .map(|l| format!("sleep 0.3; echo '{l}'; "))
        .collect();
    let shell = format!(
        "(sleep 0.5; {typed}) | TERM=dumb {} -qec '{} -p {port}' /dev/null",
        tool("script").display(),
        tool("redis-cli").display()
    );
    let out = Command::new("sh").args(["-c", &shell]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    for want in [
        format!("127.0.0.1:{port}> set tty 1\nOK"),
        format!("127.0.0.1:{port}> get tty\n\"1\""),
        "(integer) 2".to_string(),
        "Get the value of a key".to_string(),
    ] {
        assert!(text.contains(&want), "interactive redis-cli: no {want:?} in:\n{text}");
    }

    // Commands on stdin (redis-cli's script mode), answered in order.
    let out = cli_stdin(port, &[], b"SET s1 v1\nGET s1\nDEL s1\nGET s1\nPING\n");
    assert_eq!(out, "OK\nv1\n1\n\nPONG\n");

    // Mass insertion with --pipe: 10,000 SETs pipelined, every reply read.
    let mut proto = Vec::new();
    for i in 0..10_000 {
        let (k, v) = (format!("pipe:{i}"), format!("value-{i}"));
        proto.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n", k.len(), v.len()).as_bytes(),
        );
    }
    let out = cli_stdin(port, &["--pipe"], &proto);
    assert!(out.contains("errors: 0, replies: 10000"), "{out}");
    assert_eq!(cli(port, &["get", "pipe:9999"]), "value-9999\n");

    // redis-benchmark, unmodified: exits 0 and reports no errors, pipelined and not.
    for pipeline in ["1", "16"] {
        let out = Command::new(tool("redis-benchmark"))
            .args(["-p", &p, "-t", "ping,set,get,incr,mset", "-n", "5000", "-c", "20", "-P", pipeline, "-q"])
            .output()
            .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "redis-benchmark -P {pipeline}: {text}");
        assert!(!text.to_lowercase().contains("error"), "redis-benchmark -P {pipeline}: {text}");
        for t in ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET"] {
            assert!(text.contains(t), "no {t} result: {text}");
        }
    }

    // redis-py: a small workload with a pipeline and error handling.
    let script = r#"
import redis, sys
r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
assert r.ping()
assert r.set("py:k", b"\x00\xffbinary") is True
assert r.get("py:k") == b"\x00\xffbinary"
assert r.incr("py:n", 5) == 5
p = r.pipeline(transaction=False)
for i in range(100):
    p.set(f"py:{i}", i)
p.get("py:42")
res = p.execute()
assert res[:100] == [True] * 100 and res[100] == b"42", res
assert r.mget(["py:1", "py:missing", "py:2"]) == [b"1", None, b"2"]
assert r.delete("py:1", "py:missing") == 1
assert r.exists("py:2", "py:1") == 1
try:
    r.incr("py:k")
    raise SystemExit("INCR of a non-integer did not fail")
except redis.ResponseError as e:
    assert "not an integer" in str(e)
r3 = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), protocol=3) if redis.__version__ >= "5" else r
assert r3.get("py:k") == b"\x00\xffbinary"
print("python ok")
"#;
    let out = Command::new(common::python_with("redis")).args(["-c", script, &p]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("python ok"), "redis-py: {text}");

    // Every acknowledged RESP write is there after a restart.
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    let server = Server::start(&dir, &resp_config(port));
    assert_eq!(cli(port, &["get", "greeting"]), "olá\n");
    assert_eq!(cli(port, &["get", "counter"]), "41\n");
    assert_eq!(cli(port, &["get", "pipe:0"]), "value-0\n");
    assert_eq!(cli(port, &["get", "py:99"]), "99\n");
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}

/// The candle store through redis-cli: CANDLE.LIGHT (Portuguese field names), CANDLE.GET of the
/// id it gave, the counts summed over both shards' partitions, a page of CANDLE.LIST, and a
/// candle refused by field with nothing stored.
#[test]
fn redis_cli_lights_reads_counts_and_lists_candles() {
    let dir = disk_temp_dir("serve-resp-candles");
    let port = free_udp_port();
    let server = Server::start(&dir, &resp_config(port));
    let light = |extra: &[&str]| {
        let mut args = vec!["candle.light", "nome", "Maria Eduarda Gonçalves", "nascimento", "1980-05-17"];
        args.extend_from_slice(&[
            "telefone",
            "11987654321",
            "whatsapp",
            "1",
            "cidade",
            "3550308",
            "uf",
            "SP",
        ]);
        args.extend_from_slice(extra);
        cli(port, &args)
    };
    let id: u64 = light(&["pedido", "Pela saúde da minha mãe"]).trim().parse().expect("an id");
    let got = cli(port, &["candle.get", &id.to_string()]);
    let lines: Vec<&str> = got.lines().collect();
    let field = |name: &str| lines.iter().position(|l| *l == name).map(|i| lines[i + 1]);
    assert_eq!(field("id"), Some(id.to_string().as_str()), "{got}");
    assert_eq!(field("name"), Some("Maria Eduarda Gonçalves"), "{got}");
    assert_eq!(field("birth_date"), Some("1980-05-17"), "{got}");
    assert_eq!(field("prayer"), Some("Pela saúde da minha mãe"), "{got}");
    assert_eq!(field("state"), Some("SP"), "{got}");
    let lit_at: u64 = field("lit_at").and_then(|t| t.parse().ok()).expect("lit_at");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(lit_at <= now && now - lit_at < 300, "lit_at {lit_at}, now {now}");

    // A second candle on another connection (perhaps the other shard); the counts see both.
    light(&[]).trim().parse::<u64>().expect("a second id");
    assert_eq!(cli(port, &["candle.count"]), "2\n");
    assert_eq!(cli(port, &["candle.counts", "state"]), "SP\n2\n");
    let partition = (id >> 48).to_string();
    let page = cli(port, &["candle.list", &partition, "0", "10"]);
    assert!(page.starts_with("0\n"), "one page holds the partition: {page}");
    assert!(page.contains(&id.to_string()), "{page}");

    // Refused by field, nothing stored; an id never issued is nil; a wrong arity is Redis's error.
    let refused = light(&["telefone", "123"]);
    assert!(refused.starts_with("ERR phone: phone 123 does not have 11 digits"), "{refused}");
    assert!(cli(
        port,
        &["candle.light", "nome", "Ana", "nascimento", "2999-01-01", "cidade", "3550308", "uf", "SP"]
    )
    .starts_with("ERR birth_date: "));
    assert_eq!(cli(port, &["candle.get", &((id >> 48 << 48) | 0xFFFF_FFF0).to_string()]), "\n");
    assert!(
        cli(port, &["candle.light", "nome"]).starts_with("ERR wrong number of arguments for 'candle.light'")
    );
    assert_eq!(cli(port, &["candle.count"]), "2\n");
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}

/// Reads until the peer closes (or 10 s); returns what came.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn bad_resp_input_gets_redis_errors_and_a_close_and_other_connections_go_on() {
    let dir = disk_temp_dir("serve-resp-bad");
    let port = free_udp_port();
    let mut c = resp_config(port);
    c.push_str("input_bytes_max = 65536\n");
    let server = Server::start(&dir, &c);
    let mut good = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = BufReader::new(good.try_clone().unwrap());
    let mut line = String::new();
    good.write_all(b"*3\r\n$3\r\nSET\r\n$4\r\ngood\r\n$1\r\n1\r\n").unwrap();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "+OK\r\n");

    let cases: [(&[u8], &str); 4] = [
        (b"*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"),
        (b"*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
        (b"SET \"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"),
    ];
    for (input, want) in cases {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(input).unwrap();
        assert_eq!(String::from_utf8_lossy(&read_to_close(&mut s)), want, "for {input:?}");
    }
    // A bulk longer than the connection may buffer: an error, then closed; nothing written.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$200000\r\n").unwrap();
    let _ = s.write_all(&vec![b'x'; 100_000]);
    let got = String::from_utf8_lossy(&read_to_close(&mut s)).to_string();
    assert!(got.starts_with("-ERR"), "{got}");
    // Truncated: half a request then a hang-up changes nothing.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$5\r\nva").unwrap();
    drop(s);

    // The first connection still works, and nothing of the bad ones was written.
    for (cmd, want) in [
        (&b"*2\r\n$3\r\nGET\r\n$4\r\ngood\r\n"[..], "$1\r\n"),
        (b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", "$-1\r\n"),
        (b"*2\r\n$3\r\nGET\r\n$4\r\nhalf\r\n", "$-1\r\n"),
    ] {
        good.write_all(cmd).unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, want);
        if want == "$1\r\n" {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
    }
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
}

#[test]
fn ten_thousand_idle_connections_stay_open_while_an_active_one_is_served() {
    let dir = disk_temp_dir("serve-resp-idle");
    let port = free_udp_port();
    let server = Server::start(&dir, &resp_config(port));
    let mut idle = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        // Each says PING once (so it is handed to a shard), then stays idle.
        s.write_all(b"PING\r\n").unwrap();
        idle.push(s);
    }
    for s in &mut idle {
        let mut pong = [0u8; 7];
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"+PONG\r\n");
    }
    // The active connection: 2,000 pipelined round trips answered in order.
    let mut active = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = BufReader::new(active.try_clone().unwrap());
    for i in 0..2_000 {
        active
            .write_all(
                format!("*3\r\n$3\r\nSET\r\n$6\r\nactive\r\n${}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
            )
            .unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "+OK\r\n");
    }
    // Every idle connection is still open and answers.
    for s in idle.iter_mut().step_by(97) {
        s.write_all(b"PING\r\n").unwrap();
        let mut pong = [0u8; 7];
        s.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"+PONG\r\n");
    }
    drop(idle);
    let (status, out) = server.stop();
    assert!(status.success(), "{out}");
    assert!(out.contains("refused-full 0"), "{out}");
}
