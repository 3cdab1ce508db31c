//! Access control on the stream side (RESP, HTTP, WebSocket; docs/SECURITY.md): who a
//! connection's requests run as, what they may do, and the count of every refusal.
//!
//! - RESP: a session runs as a [`User`]: anonymous until `AUTH` / `HELLO .. AUTH` names a
//!   `[[auth.clients]]` principal (by its password) or the legacy `tcp.requirepass` default user
//!   (every right). Anonymous sessions get `auth.anonymous`'s ACL, or none while `tcp.requirepass`
//!   is set (Redis's `requirepass`: NOAUTH until AUTH). A principal is kept by key id only and
//!   looked up in the shared key table at every command ([`RespRights::of`]): a principal revoked
//!   (or expired) since the login is refused at its next command, and an ACL changed by the admin
//!   API applies at once.
//! - HTTP and WebSocket: each request stands alone ([`TcpAuth::check_request`]): a bearer token
//!   (`Authorization: Bearer <password>`, or `access_token=` in a WebSocket upgrade's query,
//!   RFC 6750 s. 2.3) names a principal; none gets `auth.anonymous`'s ACL. Missing, wrong or
//!   expired credentials where they are needed: 401; a principal without the right: 403.
//! - Quotas: every request a check admits carries its [`Owner`] (`projection::owner`): the
//!   principal's key id and quota, or, for anonymous requests and `tcp.requirepass`'s default
//!   user (no principal), key id 0 with the anonymous quota (`auth.anonymous_keys_max`,
//!   `anonymous_bytes_max`). The session puts it into `Cx::owner` before it runs the request.
//!
//! Invariants: nothing here allocates (a login hashes the password on the stack and probes the
//! table; the key table is read through `ArcSwap::load`, no lock); a refusal runs nothing; every
//! refusal is counted once, by protocol and reason ([`AuthRefusals`]).

use crate::auth::{Acl, KeyTable, SharedKeys};
use crate::metrics::admin::strip_bearer;
use crate::projection::owner::ANONYMOUS_OWNER;
use crate::projection::{Owner, Quota};
use crate::protocol::http::response::Response;
use crate::protocol::http::Method;

/// What the stream side checks requests against: the node's principals and the anonymous ACL.
#[derive(Clone, Debug)]
pub struct TcpAuth {
    /// The node's principals (swapped whole by the admin API: always `load` at the check).
    pub keys: SharedKeys,
    /// What a request without credentials may do (`auth.anonymous`; none: refused).
    pub anonymous: Option<Acl>,
    /// Who a request without a principal writes for: key id 0 with the anonymous quota (the
    /// same owner as the gate's anonymous datagrams).
    pub anonymous_owner: Owner,
}

/// Why an HTTP or WebSocket request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Credentials are needed and missing, wrong or expired: 401.
    Unauthorized,
    /// The principal may not do this: 403.
    Forbidden,
}

impl TcpAuth {
    /// Checks against `keys`, anonymous requests getting `anonymous` and, when they write to
    /// the KV store, `anonymous_quota` (`auth.anonymous_quota()`).
    pub fn new(keys: SharedKeys, anonymous: Option<Acl>, anonymous_quota: Option<Quota>) -> Self {
        let anonymous_owner = Owner { key_id: ANONYMOUS_OWNER, quota: anonymous_quota };
        Self { keys, anonymous, anonymous_owner }
    }

    /// No principals, and anonymous requests may do everything, without a quota (unit tests of
    /// the protocols).
    pub fn open() -> Self {
        Self::new(KeyTable::default().shared(), Some(Acl::ALL), None)
    }

    /// The ACL and owner of a request that carries `authorization` (an `Authorization` value)
    /// or, without one, `token` (a WebSocket upgrade's `access_token`): the principal's, or the
    /// anonymous ones when it carries neither; `None` when its credentials (or, without any,
    /// anonymous requests) are refused.
    pub fn grant_of(
        &self,
        authorization: Option<&[u8]>,
        token: Option<&[u8]>,
        now_unix_s: u64,
    ) -> Option<(Acl, Owner)> {
        let token = match authorization {
            Some(value) => Some(strip_bearer(value)?),
            None => token,
        };
        match token {
            Some(t) => {
                let t = std::str::from_utf8(t).ok()?;
                self.keys.load().bearer(t, now_unix_s).ok().map(|p| (p.acl, p.owner()))
            }
            None => self.anonymous.map(|acl| (acl, self.anonymous_owner)),
        }
    }

    /// Whether a request that needs `needed` may run (see `grant_of`): who it runs for, or the
    /// refusal. Anonymous requests without the right are told to authenticate (401):
    /// credentials would help them. A request that needs nothing runs as anonymous (it writes
    /// nothing), its credentials unchecked.
    pub fn check_request(
        &self,
        authorization: Option<&[u8]>,
        token: Option<&[u8]>,
        needed: Acl,
        now_unix_s: u64,
    ) -> Result<Owner, Refused> {
        if needed == Acl::NONE {
            return Ok(self.anonymous_owner);
        }
        let credentials = authorization.is_some() || token.is_some();
        match self.grant_of(authorization, token, now_unix_s) {
            Some((acl, owner)) if acl.allows(needed) => Ok(owner),
            Some(_) if credentials => Err(Refused::Forbidden),
            _ => Err(Refused::Unauthorized),
        }
    }
}

/// The category an HTTP data request needs: reads for GET and HEAD, writes for PUT, POST and
/// DELETE (another method is answered 405, needing nothing).
pub fn needed_by_method(method: Method) -> Acl {
    match method {
        Method::Get | Method::Head => Acl::READ,
        Method::Put | Method::Post | Method::Delete => Acl::WRITE,
        Method::Other => Acl::NONE,
    }
}

/// The status of a refusal.
pub fn status_of(refused: Refused) -> u16 {
    match refused {
        Refused::Unauthorized => 401,
        Refused::Forbidden => 403,
    }
}

/// Finishes `r` (started with `status_of(refused)`) as the refusal: a 401 carries the challenge
/// `WWW-Authenticate: Bearer realm="vigil"` (RFC 6750 s. 3).
pub fn finish_refusal(mut r: Response<'_>, refused: Refused, head_only: bool) {
    let text: &[u8] = match refused {
        Refused::Unauthorized => {
            r.header("WWW-Authenticate", "Bearer realm=\"vigil\"");
            b"credentials needed: Authorization: Bearer <password> (docs/CLIENTS.md)\n"
        }
        Refused::Forbidden => b"the credentials given do not allow this request\n",
    };
    r.finish(Some("text/plain; charset=utf-8"), text, head_only);
}

/// Who a RESP session runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    /// Not logged in: the anonymous ACL (none: NOAUTH).
    Anonymous,
    /// `tcp.requirepass`'s default user: every right.
    Default,
    /// A principal, by key id (looked up again at every command).
    Principal(u32),
}

/// A RESP session's rights at one command.
#[derive(Clone, Copy, Debug)]
pub struct RespRights<'k> {
    /// The user's name (`default` when anonymous or the requirepass user).
    pub name: &'k [u8],
    /// What it may do; `None`: it must authenticate first (NOAUTH).
    pub acl: Option<Acl>,
    /// Who its writes are for: the principal, or (anonymous, or the requirepass user, which is
    /// no principal) the anonymous owner.
    pub owner: Owner,
    /// It was a principal that is gone (revoked) or expired since its login.
    pub lost: bool,
}

/// What a RESP session without a principal gets: its ACL (none: NOAUTH) and its owner.
#[derive(Clone, Copy, Debug)]
pub struct Unnamed {
    /// What a session without a login may do (`RespSettings::anonymous_acl`).
    pub acl: Option<Acl>,
    /// Who its writes are for (`TcpAuth::anonymous_owner`).
    pub owner: Owner,
}

impl<'k> RespRights<'k> {
    /// `user`'s rights now, from `keys` (the node's table: needed for a principal only; without
    /// it a principal has none); `unnamed` is what a session without a principal gets.
    pub fn of(user: User, keys: Option<&'k KeyTable>, unnamed: Unnamed, now_unix_s: u64) -> Self {
        const DEFAULT: &[u8] = b"default";
        let owner = unnamed.owner;
        match user {
            User::Anonymous => Self { name: DEFAULT, acl: unnamed.acl, owner, lost: false },
            User::Default => Self { name: DEFAULT, acl: Some(Acl::ALL), owner, lost: false },
            User::Principal(key_id) => {
                match keys.and_then(|k| k.by_key_id(key_id)).filter(|p| !p.expired(now_unix_s)) {
                    Some(p) => {
                        Self { name: p.name.as_bytes(), acl: Some(p.acl), owner: p.owner(), lost: false }
                    }
                    None => Self { name: DEFAULT, acl: None, owner, lost: true },
                }
            }
        }
    }
}

/// The stream side's refusals, by protocol and reason: plain integers the shard owns (in its
/// `ConnCounters`), published with them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthRefusals {
    /// RESP commands refused NOAUTH (no login, and anonymous access off; or the login lost).
    pub resp_noauth: u64,
    /// RESP commands refused NOPERM (the user lacks the command's category).
    pub resp_noperm: u64,
    /// RESP AUTH / HELLO AUTH refused WRONGPASS (wrong, unknown or expired).
    pub resp_wrongpass: u64,
    /// HTTP requests refused 401.
    pub http_unauthorized: u64,
    /// HTTP requests refused 403.
    pub http_forbidden: u64,
    /// WebSocket upgrades refused 401.
    pub ws_unauthorized: u64,
    /// WebSocket upgrades refused 403.
    pub ws_forbidden: u64,
    /// Reads of the web port's operator pages refused 401 (no `admin.read_token`).
    pub web_unauthorized: u64,
}

impl AuthRefusals {
    /// Every count as (protocol, reason, count): the labels of `vigil_auth_refusals_total`.
    pub fn by_reason(&self) -> [(&'static str, &'static str, u64); 8] {
        [
            ("resp", "noauth", self.resp_noauth),
            ("resp", "noperm", self.resp_noperm),
            ("resp", "wrongpass", self.resp_wrongpass),
            ("http", "unauthorized", self.http_unauthorized),
            ("http", "forbidden", self.http_forbidden),
            ("ws", "unauthorized", self.ws_unauthorized),
            ("ws", "forbidden", self.ws_forbidden),
            ("web", "unauthorized", self.web_unauthorized),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::auth::{AuthConfig, ClientConfig};

    fn client(name: &str, key_id: u32, acl: &str, expires: Option<u64>) -> ClientConfig {
        let c = crate::config::auth::test_client(name, key_id, u64::from(key_id) * 100, acl);
        ClientConfig { key: None, expires_unix_s: expires, ..c }
    }

    /// The anonymous quota of these tests.
    const ANONYMOUS_QUOTA: Quota = Quota { keys_max: 9, bytes_max: u64::MAX };

    fn auth(anonymous: Option<Acl>) -> TcpAuth {
        let clients = vec![
            client("reader", 1, "+@read", None),
            client("old", 2, "+@all", Some(100)),
            ClientConfig { keys_max: Some(2), bytes_max: Some(300), ..client("capped", 3, "+@all", None) },
        ];
        let table = KeyTable::from_config(&AuthConfig { clients, ..AuthConfig::default() }).unwrap();
        TcpAuth::new(table.shared(), anonymous, Some(ANONYMOUS_QUOTA))
    }

    fn unnamed(a: &TcpAuth) -> Unnamed {
        Unnamed { acl: a.anonymous, owner: a.anonymous_owner }
    }

    #[test]
    fn bearer_tokens_name_principals_and_no_token_is_anonymous() {
        let a = auth(None);
        let reader = Some(&b"Bearer password-of-reader-0123456789"[..]);
        assert!(a.check_request(reader, None, Acl::READ, 0).is_ok());
        assert_eq!(a.check_request(reader, None, Acl::WRITE, 0), Err(Refused::Forbidden));
        assert_eq!(a.check_request(None, None, Acl::READ, 0), Err(Refused::Unauthorized));
        assert_eq!(
            a.check_request(Some(b"Bearer wrong-wrong-wrong-wrong"), None, Acl::READ, 0),
            Err(Refused::Unauthorized)
        );
        assert_eq!(a.check_request(Some(b"Basic abc"), None, Acl::READ, 0), Err(Refused::Unauthorized));
        assert!(a.check_request(None, None, Acl::NONE, 0).is_ok(), "nothing needed: nothing checked");
        let token = Some(&b"password-of-reader-0123456789"[..]);
        assert!(a.check_request(None, token, Acl::READ, 0).is_ok());
        let old = Some(&b"Bearer password-of-old-0123456789"[..]);
        assert!(a.check_request(old, None, Acl::WRITE, 99).is_ok());
        assert_eq!(a.check_request(old, None, Acl::WRITE, 100), Err(Refused::Unauthorized), "expired");
        let ro = auth(Some(Acl::READ));
        assert!(ro.check_request(None, None, Acl::READ, 0).is_ok());
        assert_eq!(ro.check_request(None, None, Acl::WRITE, 0), Err(Refused::Unauthorized));
    }

    #[test]
    fn a_revoked_or_expired_principal_loses_its_rights_at_the_next_command() {
        let a = auth(Some(Acl::READ));
        let keys = a.keys.load();
        let r = RespRights::of(User::Principal(1), Some(&keys), unnamed(&a), 0);
        assert_eq!((r.name, r.acl, r.lost), (&b"reader"[..], Some(Acl::READ), false));
        assert!(RespRights::of(User::Principal(2), Some(&keys), unnamed(&a), 100).lost);
        assert_eq!(RespRights::of(User::Anonymous, None, unnamed(&a), 0).acl, Some(Acl::READ));
        let requirepass = Unnamed { acl: None, owner: a.anonymous_owner };
        assert_eq!(RespRights::of(User::Default, None, requirepass, 0).acl, Some(Acl::ALL));
        a.keys.store(std::sync::Arc::new(keys.with_revoked("reader").unwrap()));
        let now = a.keys.load();
        let r = RespRights::of(User::Principal(1), Some(&now), unnamed(&a), 0);
        assert!(r.lost && r.acl.is_none());
    }

    #[test]
    fn requests_carry_their_principal_and_quota_or_the_anonymous_ones() {
        let a = auth(Some(Acl::READ));
        let anonymous = Owner { key_id: ANONYMOUS_OWNER, quota: Some(ANONYMOUS_QUOTA) };
        assert_eq!(a.anonymous_owner, anonymous);
        let capped = Owner { key_id: 3, quota: Some(Quota { keys_max: 2, bytes_max: 300 }) };
        let token = Some(&b"Bearer password-of-capped-0123456789"[..]);
        assert_eq!(a.check_request(token, None, Acl::WRITE, 0), Ok(capped));
        let in_query = Some(&b"password-of-capped-0123456789"[..]);
        assert_eq!(a.check_request(None, in_query, Acl::READ, 0), Ok(capped), "a WebSocket's access_token");
        let reader = Some(&b"Bearer password-of-reader-0123456789"[..]);
        assert_eq!(a.check_request(reader, None, Acl::READ, 0), Ok(Owner { key_id: 1, quota: None }));
        assert_eq!(a.check_request(None, None, Acl::READ, 0), Ok(anonymous));
        assert_eq!(
            a.check_request(token, None, Acl::NONE, 0),
            Ok(anonymous),
            "nothing needed, nothing written"
        );
        // RESP: the principal logged in; anonymous sessions and requirepass's default user (no
        // principal) the anonymous owner.
        let keys = a.keys.load();
        assert_eq!(RespRights::of(User::Principal(3), Some(&keys), unnamed(&a), 0).owner, capped);
        assert_eq!(RespRights::of(User::Anonymous, None, unnamed(&a), 0).owner, anonymous);
        assert_eq!(RespRights::of(User::Default, None, unnamed(&a), 0).owner, anonymous);
        assert_eq!(TcpAuth::open().anonymous_owner, Owner::ANONYMOUS);
    }
}
