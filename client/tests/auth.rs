//! The client's signed datagrams against a real `vigil serve` with principals (`[auth]`, anonymous
//! access off): a signed SET and GET work; the wrong key is refused `AUTH_FAILED` `bad_mac`; a
//! read-only key reads but is `FORBIDDEN` to write; an unsigned request is refused
//! `credentials_required`, and a client id the key does not speak for `client_id_not_bound`.
//!
//! Address cookies: a node on this machine's non-loopback address (anonymous access on, protected
//! mode off, as on a private lab link) sees this client's datagrams come from that address, which
//! has proven nothing: its first GET is answered `ADDRESS_UNPROVEN` with a cookie, the client
//! resends it with the cookie and sends the cookie on from then on. A machine without a
//! non-loopback address fails that test, loudly.

use std::net::SocketAddr;
use std::time::Duration;
use vigil_client::{Client, ClientConfig, ClientError, Credentials, Refusal};

mod node;
use node::Node;

const WRITER_KEY: &str = "1f2e3d4c5b6a79880f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778";
const READER_KEY: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
const OTHER_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000001";

/// The dev config with anonymous access off and two principals.
fn with_principals(dev: String) -> String {
    let anonymous = "anonymous = \"read-write\"";
    assert!(dev.contains(anonymous), "the dev config's [auth] table lets anonymous requests in so");
    format!(
        r#"{}
[[auth.clients]]
name = "loadgen"
key_id = 7
client_id = 100000
client_ids = 4096
key = "{WRITER_KEY}"
acl = "+@read +@write"

[[auth.clients]]
name = "reader"
key_id = 8
client_id = 200000
key = "{READER_KEY}"
acl = "+@read"
"#,
        dev.replace(anonymous, "anonymous = \"none\"")
    )
}

fn signed(key_id: u32, key: &str, client_id: u64) -> ClientConfig {
    ClientConfig {
        client_id: Some(client_id),
        credentials: Some(Credentials::from_hex(key_id, key).unwrap()),
        timeout: Duration::from_millis(500),
        ..ClientConfig::default()
    }
}

#[test]
fn signed_requests_work_and_wrong_keys_roles_and_ids_are_refused() {
    let node = Node::start_with("auth", with_principals);
    let mut writer = Client::with_config(node.addr, signed(7, WRITER_KEY, 100_000)).unwrap();
    writer.ping().unwrap();
    let version = writer.set(b"greeting", b"hello").unwrap();
    let got = writer.get(b"greeting").unwrap().expect("just written");
    assert_eq!((got.value.as_slice(), got.version), (&b"hello"[..], version));
    // Another thread's id in the key's range: its own exactly-once client.
    let mut second = Client::with_config(node.addr, signed(7, WRITER_KEY, 104_095)).unwrap();
    assert_eq!(second.incr(b"n", 2).unwrap().0, 2);

    let mut forger = Client::with_config(node.addr, signed(7, OTHER_KEY, 100_001)).unwrap();
    match forger.set(b"greeting", b"forged") {
        Err(e @ ClientError::AuthFailed(Some(Refusal::BadMac))) => {
            assert!(e.to_string().contains("bad_mac"), "{e}")
        }
        other => panic!("a wrong key: {other:?}"),
    }

    let mut reader = Client::with_config(node.addr, signed(8, READER_KEY, 200_000)).unwrap();
    assert_eq!(reader.get(b"greeting").unwrap().map(|v| v.value), Some(b"hello".to_vec()));
    assert!(matches!(reader.set(b"greeting", b"nope"), Err(ClientError::Forbidden)), "read-only key");

    let mut outside = Client::with_config(node.addr, signed(7, WRITER_KEY, 104_096)).unwrap();
    assert!(matches!(outside.ping(), Err(ClientError::AuthFailed(Some(Refusal::ClientIdNotBound)))));

    let anonymous = ClientConfig { timeout: Duration::from_millis(500), ..ClientConfig::default() };
    let mut anonymous = Client::with_config(node.addr, anonymous).unwrap();
    assert!(matches!(
        anonymous.get(b"greeting"),
        Err(ClientError::AuthFailed(Some(Refusal::CredentialsRequired)))
    ));

    assert_eq!(writer.get(b"greeting").unwrap().unwrap().value, b"hello", "nothing refused was written");
}

#[test]
fn an_unproven_source_fetches_its_cookie_once_and_sends_it_on() {
    let ip = node::common::non_loopback_address();
    let mut node = Node::start_with("cookie", |dev| {
        let (bind, protected) = ("bind_ip = \"127.0.0.1\"", "anonymous = \"read-write\"");
        assert!(dev.contains(bind) && dev.contains(protected), "the dev config binds loopback, anonymous on");
        dev.replace(bind, &format!("bind_ip = \"{ip}\""))
            .replace(protected, "anonymous = \"read-write\"\nprotected_mode = false")
    });
    node.addr = SocketAddr::from((ip, node.addr.port()));
    let config = ClientConfig { timeout: Duration::from_millis(500), ..ClientConfig::default() };
    let mut c = Client::with_config(node.addr, config).unwrap();
    let version = c.set(b"k", b"v").unwrap();
    assert_eq!(c.stats().cookies_learnt, 0, "a SET's answer is small: no proof needed");
    let got = c.get(b"k").unwrap().expect("just written");
    assert_eq!((got.value.as_slice(), got.version), (&b"v"[..], version));
    assert_eq!(c.stats().cookies_learnt, 1, "the GET was answered ADDRESS_UNPROVEN first");
    assert!(c.cookie(node.addr).is_some());
    let sent = c.stats().sent;
    assert_eq!(c.get(b"k").unwrap().map(|v| v.value), Some(b"v".to_vec()));
    assert_eq!(
        (c.stats().sent, c.stats().cookies_learnt),
        (sent + 1, 1),
        "the cookie goes along: one datagram"
    );
}
