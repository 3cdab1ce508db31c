//! The candle store over RESP and HTTP through the shard loop, on a two-shard node whose
//! partitions run the candle projection: CANDLE.LIGHT / `POST /candles` answer ids once durable,
//! the candle reads back field for field (the other shard's through the inboxes), the counts sum
//! both partitions, and a candle that fails validation is refused by field with nothing sent.

use super::conns::node_serving;
use super::overload::Node;
use crate::conn::protocol_tag;
use vigil_pmd::sim::SimStreams;
use vigil_pmd::{ConnId, Nanos};

/// 2026-11-30, in ns: the request time (validation compares birth dates with its day).
const NOW_NS: u64 = 1_796_000_000 * 1_000_000_000;

/// A node and a clock that only moves forward.
struct Rig {
    n: Node,
    t: u64,
}

impl Rig {
    /// Sends `input` on `c` and polls until `complete` says the replies are whole.
    fn ask(
        &mut self,
        streams: &SimStreams,
        c: ConnId,
        input: &[u8],
        complete: impl Fn(&[u8]) -> bool,
    ) -> String {
        streams.client_send(c, input);
        let mut got = Vec::new();
        for _ in 0..200_000 {
            self.t += 1_000;
            for s in &mut self.n.shards {
                s.poll_once(Nanos(NOW_NS + self.t));
            }
            got.extend(streams.client_take(c));
            if complete(&got) {
                return String::from_utf8(got).expect("UTF-8 replies");
            }
        }
        panic!("incomplete: {:?}", String::from_utf8_lossy(&got));
    }
}

/// Length of the RESP2 reply at the start of `b`, if whole.
fn resp_len(b: &[u8]) -> Option<usize> {
    let end = b.windows(2).position(|w| w == b"\r\n")?;
    let n: i64 = std::str::from_utf8(&b[1..end]).ok()?.parse().unwrap_or(0);
    let mut at = end + 2;
    match b.first()? {
        b'$' if n >= 0 => (b.len() >= at + n as usize + 2).then_some(at + n as usize + 2),
        b'*' => {
            for _ in 0..n.max(0) {
                at += resp_len(&b[at..])?;
            }
            Some(at)
        }
        _ => Some(at),
    }
}

/// Whether `b` holds `n` whole RESP replies.
fn resp_replies(b: &[u8], n: usize) -> bool {
    let mut at = 0;
    (0..n).all(|_| resp_len(&b[at..]).map(|l| at += l).is_some())
}

/// Whether `b` holds `n` whole HTTP responses (each with a Content-Length).
fn http_responses(b: &[u8], n: usize) -> bool {
    let mut at = 0;
    for _ in 0..n {
        let rest = &b[at..];
        let Some(head_end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
        let head = String::from_utf8_lossy(&rest[..head_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap_or(0));
        if rest.len() < head_end + 4 + len {
            return false;
        }
        at += head_end + 4 + len;
    }
    true
}

fn resp(words: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    out
}

const MARIA: &[&str] = &[
    "CANDLE.LIGHT",
    "nome",
    "Maria Eduarda Gonçalves",
    "email",
    "maria@example.com.br",
    "nascimento",
    "1980-05-17",
    "telefone",
    "11987654321",
    "whatsapp",
    "1",
    "endereco",
    "Rua Desembargador Antônio Carlos, 12",
    "bairro",
    "Pinheiros",
    "cidade",
    "3550308",
    "uf",
    "SP",
    "pedido",
    "Pela saúde da minha mãe",
];

#[test]
fn candles_over_resp_are_lit_read_counted_listed_and_refused_by_field() {
    // Shard 0's connections deliver a byte per read and take 7 bytes per send: every split point.
    let (s0, s1) = (SimStreams::new(1, 7), SimStreams::new(1 << 16, 1 << 16));
    let mut rig = Rig { n: node_serving(&[&s0, &s1]), t: 0 };
    let (c0, c1) = (s0.open(protocol_tag::RESP), s1.open(protocol_tag::RESP));

    // Lit through shard 1 (its partition), then one from Rio through shard 0.
    let lit = rig.ask(&s1, c1, &resp(MARIA), |b| resp_replies(b, 1));
    let id: u64 = lit.strip_prefix(':').and_then(|s| s.trim().parse().ok()).expect(&lit);
    assert_eq!(id >> 48, 1, "lit on the receiving shard's partition");
    let rio = ["CANDLE.LIGHT", "name", "João", "birth", "1975-01-02", "city", "3304557", "state", "RJ"];
    let lit0 = rig.ask(&s0, c0, &resp(&rio), |b| resp_replies(b, 1));
    assert!(lit0.starts_with(':'), "{lit0}");

    // GET through shard 0 (shard 1 answers raw; decoded here): every field, with id and lit_at.
    let got = rig.ask(&s0, c0, &resp(&["CANDLE.GET", &id.to_string()]), |b| resp_replies(b, 1));
    let want_pairs = [
        ("id", id.to_string()),
        ("lit_at", (NOW_NS / 1_000_000_000).to_string()),
        ("name", "Maria Eduarda Gonçalves".into()),
        ("birth_date", "1980-05-17".into()),
        ("phone", "11987654321".into()),
        ("has_whatsapp", "1".into()),
        ("city", "3550308".into()),
        ("state", "SP".into()),
        ("prayer", "Pela saúde da minha mãe".into()),
    ];
    assert!(got.starts_with("*26\r\n"), "{got}");
    for (k, v) in want_pairs {
        let pair = format!("${}\r\n{k}\r\n${}\r\n{v}\r\n", k.len(), v.len());
        assert!(got.contains(&pair), "{k} = {v} in {got}");
    }

    // Counts over both partitions, by state; a page of partition 1; an id never issued.
    let pipeline = [
        resp(&["CANDLE.COUNT"]),
        resp(&["candle.counts", "state"]),
        resp(&["CANDLE.LIST", "1"]),
        resp(&["CANDLE.GET", &((1u64 << 48) | 999).to_string()]),
    ]
    .concat();
    let out = rig.ask(&s0, c0, &pipeline, |b| resp_replies(b, 4));
    assert!(
        out.starts_with(":2\r\n*4\r\n$2\r\nRJ\r\n:1\r\n$2\r\nSP\r\n:1\r\n*2\r\n:0\r\n*1\r\n*26\r\n"),
        "{out}"
    );
    assert!(out.ends_with("$-1\r\n"), "{out}");

    // Refused here, by field, in order, with nothing sent: the count is still 2.
    let mut bad_phone = MARIA.to_vec();
    bad_phone[8] = "123";
    let mut future = MARIA.to_vec();
    future[6] = "2027-01-01";
    let refused = [
        resp(&bad_phone),
        resp(&future),
        resp(&["CANDLE.LIGHT", "cor", "azul"]),
        resp(&["CANDLE.LIGHT", "nome"]),
        resp(&["CANDLE.COUNTS", "city"]),
        resp(&["CANDLE.COUNT"]),
    ]
    .concat();
    let out = rig.ask(&s0, c0, &refused, |b| resp_replies(b, 6));
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert!(lines[0].starts_with("-ERR phone: phone 123 does not have 11 digits"), "{out}");
    assert!(lines[1].starts_with("-ERR birth_date: birth date"), "{out}");
    assert_eq!(lines[2], "-ERR unknown candle field 'cor'");
    assert_eq!(lines[3], "-ERR wrong number of arguments for 'candle.light' command");
    assert_eq!(lines[4], "-ERR syntax error");
    assert_eq!(lines[5], ":2");
}

fn post(json: &str) -> String {
    format!("POST /candles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}", json.len())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

#[test]
fn candles_over_http_are_created_read_counted_and_refused_with_422() {
    // Shard 0's connections deliver a byte per read and take 7 bytes per send: every split point.
    let (s0, s1) = (SimStreams::new(1, 7), SimStreams::new(1 << 16, 1 << 16));
    let mut rig = Rig { n: node_serving(&[&s0, &s1]), t: 0 };
    let (c0, c1) = (s0.open(protocol_tag::HTTP), s1.open(protocol_tag::HTTP));
    let prayer = "ç".repeat(800);
    let body = serde_json::json!({
        "name": "Maria Eduarda Gonçalves de Albuquerque Cavalcanti", "birth_date": "1980-05-17",
        "phone": 11987654321u64, "has_whatsapp": true, "city": 3550308, "state": "SP", "prayer": prayer,
    });
    let out = rig.ask(&s1, c1, post(&body.to_string()).as_bytes(), |b| http_responses(b, 1));
    assert!(out.starts_with("HTTP/1.1 201 Created\r\n"), "{out}");
    let id: u64 =
        out.split("{\"id\":").nth(1).and_then(|s| s.trim_end_matches('}').parse().ok()).expect(&out);
    assert!(out.contains(&format!("Location: /candles/{id}\r\n")), "{out}");

    // Read through shard 0 (the long prayer is over a datagram), counted, then a 404.
    let reads = [
        get(&format!("/candles/{id}")),
        get("/candles/count"),
        get("/candles/7"),
        get(&format!("/candles?partition={}&count=10", id >> 48)),
    ]
    .concat();
    let out = rig.ask(&s0, c0, reads.as_bytes(), |b| http_responses(b, 4));
    let json_of = |i: usize| -> serde_json::Value {
        let part = out.split("HTTP/1.1 ").nth(i + 1).expect("response");
        serde_json::from_str(part.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap_or_default()
    };
    let candle = json_of(0);
    assert_eq!(candle["id"], id, "{out}");
    assert_eq!(candle["name"], body["name"]);
    assert_eq!(candle["prayer"], body["prayer"]);
    assert_eq!(candle["state"], "SP");
    assert_eq!(candle["lit_at"], NOW_NS / 1_000_000_000);
    assert_eq!(json_of(1), serde_json::json!({"live": 1, "by_state": {"SP": 1}}));
    assert!(out.split("HTTP/1.1 ").nth(3).unwrap().starts_with("404"), "{out}");
    let page = json_of(3);
    assert_eq!(page["next"], 0, "one page: {page}");
    assert_eq!(page["candles"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["candles"][0], candle, "the listed candle is the one read");

    // Refusals: a bad phone (422 naming it), an unknown field, bad JSON, a wrong method.
    let bad = [
        post(r#"{"name":"Ana","birth_date":"1990-01-01","phone":123,"city":3550308,"state":"SP"}"#),
        post(r#"{"name":"Ana","birth_date":"1990-01-01","colour":"blue"}"#),
        post(r#"{"name":"Ana","birth_date":"1990-13-01","city":3550308,"state":"SP"}"#),
        post("{not json"),
        get("/candles"),
        "PUT /candles HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_string(),
        get("/candles/count"),
    ]
    .concat();
    let out = rig.ask(&s0, c0, bad.as_bytes(), |b| http_responses(b, 7));
    let codes: Vec<&str> = out.split("HTTP/1.1 ").skip(1).map(|r| &r[..3]).collect();
    assert_eq!(codes, ["422", "422", "422", "400", "400", "405", "200"], "{out}");
    assert!(
        out.contains(
            r#"{"error":"phone 123 does not have 11 digits (area code + 9 digits)","field":"phone"}"#
        ),
        "{out}"
    );
    assert!(out.contains(r#""field":"colour""#) && out.contains(r#""field":"birth_date""#), "{out}");
    assert!(out.ends_with(r#"{"live":1,"by_state":{"SP":1}}"#), "nothing more was stored: {out}");
}
