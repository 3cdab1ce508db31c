//! `[admin]`: the operators' admin operations on the web port (`/api/admin/...`: a snapshot,
//! compaction, the log level; docs/OPERATIONS.md, "Admin operations"), allowed to a request that
//! carries `Authorization: Bearer <admin.token>`.

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

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
}

impl AdminConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.token.is_empty() {
            return Ok(());
        }
        if self.token.len() < TOKEN_CHARS_MIN {
            return Err(invalid(
                "admin.token",
                format!(
                    "{} characters; at least {TOKEN_CHARS_MIN} (or \"\" for no admin operations)",
                    self.token.len()
                ),
            ));
        }
        if !self.token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("admin.token", "only printable ASCII without spaces"));
        }
        Ok(())
    }
}
