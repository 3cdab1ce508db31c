//! The admin API's changes to the principals, kept in `storage.dir/auth-clients.toml`
//! (`auth::admin`): read at start and applied over `[auth]`'s principals, rewritten whole (to a
//! temporary file, synced, renamed, the directory synced) before each change takes effect, so a
//! principal added survives a restart and a revoked key never comes back.
//!
//! A node without a data directory (the memory backend) keeps the changes in memory only, and
//! its answers say so. Changes are serialised by one mutex: admin requests are rare, and two at
//! once must not lose each other's line in the file.

use crate::auth::admin::{AddRequest, Changes, ClientControl, Listed, CHANGES_FILE};
use crate::auth::keys::Principal;
use crate::auth::SharedKeys;
use crate::config::{ClientConfig, Config};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The changes file of `config`'s data directory, if it has one.
pub(super) fn changes_path(config: &Config) -> Option<PathBuf> {
    config.storage.dir.as_ref().map(|d| d.join(CHANGES_FILE))
}

/// The changes recorded in `path` (none if it does not exist), or why they cannot be read.
pub(super) fn load(path: Option<&Path>) -> Result<Changes, String> {
    let Some(path) = path else { return Ok(Changes::default()) };
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Changes::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes `changes` to `path` atomically and durably.
fn save(path: &Path, changes: &Changes) -> Result<(), String> {
    let text = format!(
        "# Principals added and key ids revoked through the admin API (docs/SECURITY.md). Written by\n\
         # vigil; read at every start over [auth] in the config. Secrets are in clear: keep it 0600.\n{}",
        toml::to_string(changes).map_err(|e| e.to_string())?
    );
    let tmp = path.with_extension("toml.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new();
        f.write(true).create(true).truncate(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
        let mut f = f.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
    };
    write().map_err(|e| format!("{}: {e}", path.display()))
}

/// The admin API's hold on the node's principals.
#[derive(Debug)]
pub(super) struct ClientStore {
    keys: SharedKeys,
    path: Option<PathBuf>,
    changes: Mutex<Changes>,
}

impl ClientStore {
    pub(super) fn new(keys: SharedKeys, path: Option<PathBuf>, changes: Changes) -> Arc<Self> {
        Arc::new(Self { keys, path, changes: Mutex::new(changes) })
    }

    /// Records `next` (file first), then swaps `table` in.
    fn commit(
        &self,
        changes: &mut Changes,
        next: Changes,
        table: crate::auth::KeyTable,
    ) -> Result<bool, String> {
        if let Some(path) = &self.path {
            save(path, &next)?;
        }
        *changes = next;
        self.keys.store(Arc::new(table));
        Ok(self.path.is_some())
    }
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).map_err(|e| format!("no random secret: {e}"))?;
    Ok(hex::encode(b))
}

impl ClientControl for ClientStore {
    fn list(&self) -> (Vec<Listed>, Vec<u32>) {
        let t = self.keys.load();
        (t.principals().iter().map(Listed::of).collect(), t.revoked().to_vec())
    }

    fn add(&self, r: AddRequest) -> Result<(ClientConfig, bool), String> {
        let mut changes = self.changes.lock().map_err(|_| "the principals' lock is poisoned")?;
        let table = self.keys.load_full();
        let client = ClientConfig {
            name: r.name,
            key_id: r.key_id.unwrap_or_else(|| table.next_key_id()),
            client_id: r.client_id,
            client_ids: r.client_ids.unwrap_or(1),
            key: Some(r.key.map_or_else(|| random_hex(32), Ok)?),
            password: Some(r.password.map_or_else(|| random_hex(24), Ok)?),
            acl: r.acl,
            expires_unix_s: r.expires_unix_s,
            keys_max: r.keys_max,
            bytes_max: r.bytes_max,
        };
        let next_table = table.with_added(Principal::from_config(&client)?)?;
        let mut next = changes.clone();
        next.clients.push(client.clone());
        let persisted = self.commit(&mut changes, next, next_table)?;
        tracing::info!(target: "vigil", "admin: principal {} added (key id {})", client.name, client.key_id);
        Ok((client, persisted))
    }

    fn revoke(&self, name: &str) -> Result<bool, String> {
        let mut changes = self.changes.lock().map_err(|_| "the principals' lock is poisoned")?;
        let table = self.keys.load_full();
        let key_id = table.principals().iter().find(|p| p.name == name).map(|p| p.key_id);
        let next_table = table.with_revoked(name)?;
        let mut next = changes.clone();
        next.clients.retain(|c| c.name != name);
        next.revoked.extend(key_id);
        let persisted = self.commit(&mut changes, next, next_table)?;
        tracing::info!(target: "vigil", "admin: principal {name} revoked (key id {key_id:?})");
        Ok(persisted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KeyTable;
    use crate::projection::{Owner, Quota};

    fn request(name: &str, keys_max: Option<u64>, bytes_max: Option<u64>) -> AddRequest {
        AddRequest {
            name: name.into(),
            key_id: None,
            client_id: 7000,
            client_ids: None,
            acl: "+@read +@write".into(),
            key: None,
            password: None,
            expires_unix_s: None,
            keys_max,
            bytes_max,
        }
    }

    /// A principal's quota added through the admin API is listed, written to the file and read
    /// back at the next start; a quota of 0 is refused and nothing is written.
    #[test]
    fn a_quota_added_is_listed_kept_in_the_file_and_loaded_back() {
        let dir = std::env::temp_dir().join(format!("vigil-auth-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(CHANGES_FILE);
        let _ = std::fs::remove_file(&path);
        let store = ClientStore::new(KeyTable::default().shared(), Some(path.clone()), Changes::default());
        let (added, persisted) = store.add(request("capped", Some(2), Some(4096))).unwrap();
        assert!(persisted);
        assert_eq!((added.keys_max, added.bytes_max), (Some(2), Some(4096)));
        store.add(request("keys-only", Some(5), None)).unwrap();
        let refused = store.add(request("zero", Some(0), None)).unwrap_err();
        assert!(refused.contains("keys_max must be at least 1"), "{refused}");
        assert!(store.add(request("zero", None, Some(0))).is_err());

        let (listed, _) = store.list();
        let figures: Vec<_> = listed.iter().map(|l| (l.name.as_str(), l.keys_max, l.bytes_max)).collect();
        assert_eq!(figures, [("capped", Some(2), Some(4096)), ("keys-only", Some(5), None)]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("keys_max = 2") && text.contains("bytes_max = 4096"), "{text}");
        assert!(!text.contains("zero"), "a refused principal is not written: {text}");

        // The next start: the file over an empty config.
        let table = load(Some(&path)).unwrap().apply(KeyTable::default()).unwrap();
        let capped = table.principals().iter().find(|p| p.name == "capped").unwrap();
        let quota = Some(Quota { keys_max: 2, bytes_max: 4096 });
        assert_eq!(capped.owner(), Owner { key_id: capped.key_id, quota });
        let keys_only = table.principals().iter().find(|p| p.name == "keys-only").unwrap();
        assert_eq!(keys_only.quota, Some(Quota { keys_max: 5, bytes_max: u64::MAX }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
