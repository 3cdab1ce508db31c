//! `[admin]`: the operators' admin operations on the web port (`/api/admin/...`: a snapshot,
//! compaction, the log level; docs/OPERATIONS.md, "Admin operations"), allowed to a request that
//! carries `Authorization: Bearer <admin.token>`; and `admin.read_token`, which (when set) every
//! read of `/metrics` and of the web port's operator pages must carry (or `admin.token`).
//!
//! The exposure rule (`check_exposure`, part of `Config::validate`): the metrics and the dashboard
//! tell a stranger the node's shape and load, so serving them on an address other than loopback
//! without `admin.read_token` is refused unless `auth.protected_mode = false` says so.

use super::{invalid, Config, ConfigError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddrV4;

/// The shortest token accepted: 16 characters (a guessable token is no protection).
pub const TOKEN_CHARS_MIN: usize = 16;

/// The admin operations.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The bearer token an admin request must carry; empty (the default): admin operations are
    /// off (every one answers 403). Printable ASCII without spaces, at least 16 characters.
    #[serde(default)]
    pub token: String,
    /// The bearer token a read of `/metrics` or of the web port's operator pages (`/`,
    /// `/dashboard.js`, `/api/...`) must carry (`admin.token` is accepted too); empty (the
    /// default): those reads are open. Same rules as `token`.
    #[serde(default)]
    pub read_token: String,
}

fn check(key: &'static str, token: &str) -> Result<(), ConfigError> {
    if token.is_empty() {
        return Ok(());
    }
    if token.len() < TOKEN_CHARS_MIN {
        return Err(invalid(
            key,
            format!("{} characters; at least {TOKEN_CHARS_MIN} (or \"\" for none)", token.len()),
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(key, "only printable ASCII without spaces"));
    }
    Ok(())
}

impl AdminConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check("admin.token", &self.token)?;
        check("admin.read_token", &self.read_token)
    }
}

/// The exposure rule (see the module header): the first of `metrics.listen` and
/// `tcp.web_listen` that is not loopback, when `admin.read_token` is empty and protected mode on.
pub(super) fn check_exposure(config: &Config) -> Result<(), ConfigError> {
    if !config.admin.read_token.is_empty() || !config.auth.protected_mode {
        return Ok(());
    }
    let outside = |addrs: &[SocketAddrV4]| addrs.iter().find(|a| !a.ip().is_loopback()).copied();
    for (key, addrs) in
        [("metrics.listen", &config.metrics.listen), ("tcp.web_listen", &config.tcp.web_listen)]
    {
        if let Some(addr) = outside(addrs) {
            return Err(invalid(
                key,
                format!(
                    "serves {addr}, not loopback, without admin.read_token: set admin.read_token (the \
                     bearer token scrapers and browsers then give), or auth.protected_mode = false \
                     for a private lab link"
                ),
            ));
        }
    }
    Ok(())
}
