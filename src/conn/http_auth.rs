//! Access control of the HTTP data API and its WebSocket upgrades (`conn::auth` decides; this
//! answers): a refusal is a response in order like any other (401 with the bearer challenge, or
//! 403), counted once it is written.

use super::super::auth::{self, Refused};
use super::{Cx, Head, HttpSession, Ran};
use crate::protocol::http::target;

impl HttpSession {
    /// A watch needs `@read`, from `Authorization: Bearer` or, since browsers cannot set headers
    /// on a WebSocket, `?access_token=` (RFC 6750 s. 2.3): the refusal (401/403, before any
    /// switch of protocols), counted, or `None` when it may go on.
    pub(super) fn refuse_watcher(&mut self, head: &Head<'_>, query: &[u8], cx: &mut Cx<'_>) -> Option<Ran> {
        // Decoded into its own buffer (once per watch: an upgrade is a connection's first request).
        let mut token = Vec::new();
        let raw = target::query_param(query, b"access_token");
        let decoded = raw.is_some_and(|t| target::query_decode(t, &mut token));
        let given = match (raw, decoded) {
            (Some(_), true) => Some(&token[..]),
            (Some(_), false) => Some(&b"\0"[..]), // a malformed token is a wrong one
            (None, _) => None,
        };
        let now_s = cx.now.0 / 1_000_000_000;
        let refused =
            cx.auth.check_request(head.authorization, given, crate::auth::Acl::READ, now_s).err()?;
        Some(self.refuse_auth(head, refused, true, cx))
    }

    /// Answers a request refused by access control (in order), counted once answered.
    pub(super) fn refuse_auth(
        &mut self,
        head: &Head<'_>,
        refused: Refused,
        ws: bool,
        cx: &mut Cx<'_>,
    ) -> Ran {
        let ran = self.local(head, cx, |out, reply| {
            auth::finish_refusal(reply.start(out, auth::status_of(refused)), refused, reply.head_only)
        });
        if matches!(ran, Ran::Done) {
            let r = &mut *cx.refusals;
            *match (ws, refused) {
                (false, Refused::Unauthorized) => &mut r.http_unauthorized,
                (false, Refused::Forbidden) => &mut r.http_forbidden,
                (true, Refused::Unauthorized) => &mut r.ws_unauthorized,
                (true, Refused::Forbidden) => &mut r.ws_forbidden,
            } += 1;
        }
        ran
    }
}
