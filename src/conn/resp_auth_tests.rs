//! RESP access control over a real engine (`http::tests::engine`: KV writes applied at once): AUTH
//! and HELLO AUTH with the principals' passwords and the legacy requirepass, NOAUTH, NOPERM with
//! Redis's text, WRONGPASS for wrong and expired passwords, ACL WHOAMI, a revoked principal
//! refused at its next command, and the counts of each refusal; each command's requests carry
//! the session's principal (or the anonymous owner) for its quota, and QUOTA_EXCEEDED's text.

use super::resp::{RespSession, RespSettings};
use super::{AuthRefusals, Cx, Step, TcpAuth};
use crate::auth::Acl;
use crate::conn::http::tests::{engine, owners_engine, quota_principals, two_principals};
use crate::conn::http::tests::{ANONYMOUS_QUOTA, CAPPED_QUOTA};
use crate::engine::Engine;
use crate::projection::Owner;
use crate::protocol::resp::ArgTable;
use vigil_pmd::{ConnId, Nanos, Peer};

/// Runs the inline commands `lines` on one session; returns the replies and the refusals.
fn session(settings: &RespSettings, lines: &[&str]) -> (String, AuthRefusals) {
    session_on(&mut engine(), settings, lines)
}

/// `session` on `engine`.
fn session_on(engine: &mut Engine, settings: &RespSettings, lines: &[&str]) -> (String, AuthRefusals) {
    let mut args = ArgTable::new(&settings.limits);
    let mut session = RespSession::new(1);
    let (mut output, mut scratch, mut refusals) = (Vec::new(), vec![0u8; 64 << 10], AuthRefusals::default());
    for line in lines {
        let input = format!("{line}\r\n").into_bytes();
        let mut cx = Cx {
            engine: &mut *engine,
            peer: Peer::connection(ConnId { slot: 0, generation: 0 }),
            now: Nanos(1_000_000_000_000),
            output: &mut output,
            scratch: &mut scratch,
            datagram_bytes_max: 1472,
            output_bytes_max: 1 << 20,
            auth: &settings.auth,
            refusals: &mut refusals,
            // As `conn::run_session` starts every session's step.
            owner: settings.auth.anonymous_owner,
        };
        match session.run(&input, &mut args, settings, &mut cx) {
            Step::Consumed(n) | Step::Close { consumed: n } => assert_eq!(n, input.len(), "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
    (String::from_utf8_lossy(&output).into_owned(), refusals)
}

fn settings(auth: TcpAuth, requirepass: &str) -> RespSettings {
    RespSettings { auth, requirepass: requirepass.as_bytes().to_vec(), ..RespSettings::for_tests(1) }
}

const READER: &str = "password-of-reader-0123456789";
const WRITER: &str = "password-of-writer-0123456789";

#[test]
fn principals_log_in_by_password_and_run_what_their_acl_allows() {
    let s = settings(two_principals(None), "");
    let (out, refusals) = session(
        &s,
        &[
            "GET k",
            "ACL WHOAMI",
            "AUTH nobody x",
            &format!("AUTH reader {WRITER}"),
            &format!("AUTH reader {READER}"),
            "ACL WHOAMI",
            "GET k",
            "SET k v",
            &format!("AUTH {WRITER}"),
            "SET k v",
            "GET k",
        ],
    );
    let want = [
        "-NOAUTH Authentication required.",
        "-NOAUTH Authentication required.",
        "-WRONGPASS invalid username-password pair or user is disabled.",
        "-WRONGPASS invalid username-password pair or user is disabled.",
        "+OK",
        "$6\r\nreader",
        "$-1",
        "-NOPERM User reader has no permissions to run the 'set' command",
        "+OK",
        "+OK",
        "$1\r\nv",
    ];
    assert_eq!(out, format!("{}\r\n", want.join("\r\n")));
    assert_eq!((refusals.resp_noauth, refusals.resp_noperm, refusals.resp_wrongpass), (2, 1, 2));
}

#[test]
fn hello_auth_logs_in_and_anonymous_sessions_get_the_anonymous_acl() {
    let s = settings(two_principals(Some(Acl::READ)), "");
    let (out, refusals) =
        session(&s, &["GET k", "SET k v", "ACL WHOAMI", &format!("HELLO 3 AUTH writer {WRITER}"), "SET k v"]);
    assert!(out.starts_with("$-1\r\n-NOPERM User default has no permissions to run the 'set' command\r\n$7\r\ndefault\r\n%7\r\n"), "{out}");
    assert!(out.ends_with("+OK\r\n"), "{out}");
    assert_eq!(refusals.resp_noperm, 1);
    let (out, refusals) = session(&s, &["HELLO 3 AUTH writer wrong-wrong-wrong-wrong", "PING"]);
    assert_eq!(out, "-WRONGPASS invalid username-password pair or user is disabled.\r\n+PONG\r\n");
    assert_eq!(refusals.resp_wrongpass, 1);
}

#[test]
fn requirepass_keeps_its_default_user_with_every_right() {
    let s = settings(two_principals(Some(Acl::ALL)), "legacy-password-0123");
    let (out, refusals) = session(
        &s,
        &["SET k v", "HELLO 3", "AUTH legacy-password-0123", "SET k v", "AUTH default legacy-password-0123"],
    );
    assert_eq!(
        out, "-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n+OK\r\n+OK\r\n+OK\r\n",
        "requirepass set: no anonymous access, whatever auth.anonymous says"
    );
    assert_eq!(refusals.resp_noauth, 2);
    let open = settings(TcpAuth::open(), "");
    let (out, _) = session(&open, &["AUTH some-password-0123456"]);
    assert!(out.starts_with("-ERR AUTH <password> called without any password configured"), "{out}");
}

#[test]
fn a_revoked_principal_is_refused_at_its_next_command() {
    let s = settings(two_principals(None), "");
    let (mut engine, mut args) = (engine(), ArgTable::new(&s.limits));
    let mut session = RespSession::new(1);
    let (mut output, mut scratch, mut refusals) = (Vec::new(), vec![0u8; 64 << 10], AuthRefusals::default());
    let mut run = |line: &str, output: &mut Vec<u8>| {
        let input = format!("{line}\r\n").into_bytes();
        let mut cx = Cx {
            engine: &mut engine,
            peer: Peer::connection(ConnId { slot: 0, generation: 0 }),
            now: Nanos(0),
            output,
            scratch: &mut scratch,
            datagram_bytes_max: 1472,
            output_bytes_max: 1 << 20,
            auth: &s.auth,
            refusals: &mut refusals,
            owner: Default::default(),
        };
        session.run(&input, &mut args, &s, &mut cx);
    };
    run(&format!("AUTH writer {WRITER}"), &mut output);
    run("SET k v", &mut output);
    let revoked = s.auth.keys.load().with_revoked("writer").unwrap();
    s.auth.keys.store(std::sync::Arc::new(revoked));
    run("SET k w", &mut output);
    run("GET k", &mut output);
    assert_eq!(
        String::from_utf8_lossy(&output),
        "+OK\r\n+OK\r\n-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n"
    );
}

/// A session's writes are for the principal it logged in as (looked up at each command), for the
/// anonymous owner before (and for requirepass's default user, which is no principal); a write
/// past the quota gets the QUOTA error, and the session goes on.
#[test]
fn each_command_writes_for_the_session_s_principal_and_quota() {
    let (mut engine, owners) = owners_engine();
    let s = settings(quota_principals(), "");
    let (out, _) = session_on(
        &mut engine,
        &s,
        &[
            "SET a v",
            "AUTH capped password-of-capped-0123456789",
            "SET b v",
            "MSET c v d v",
            "SET e over",
            "INCR f",
            "HELLO 2 AUTH writer password-of-writer-0123456789",
            "DEL b",
        ],
    );
    let quota = "-QUOTA this user's quota of keys or bytes is used up (auth.clients keys_max/bytes_max, \
                 or auth.anonymous_keys_max/anonymous_bytes_max); the write was not applied";
    assert!(out.starts_with(&format!("+OK\r\n+OK\r\n+OK\r\n+OK\r\n{quota}\r\n:0\r\n")), "{out}");
    let anonymous = Owner { key_id: 0, quota: Some(ANONYMOUS_QUOTA) };
    let capped = Owner { key_id: 3, quota: Some(CAPPED_QUOTA) };
    let writer = Owner { key_id: 2, quota: None };
    assert_eq!(*owners.borrow(), [anonymous, capped, capped, capped, capped, writer]);

    // requirepass's default user is no principal: the anonymous owner.
    let (mut engine, owners) = owners_engine();
    let s = settings(quota_principals(), "legacy-password-0123");
    let (out, _) = session_on(&mut engine, &s, &["AUTH legacy-password-0123", "SET a v"]);
    assert_eq!(out, "+OK\r\n+OK\r\n");
    assert_eq!(*owners.borrow(), [anonymous]);
}
