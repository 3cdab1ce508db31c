//! A real single-node `vigil serve` for the client's integration tests (kernel sockets on
//! loopback, a durable store in a fresh directory), started as a child process with vigil's own
//! test helpers (tests/common: the workspace's `vigil` binary, `target/<profile>/vigil`, which
//! `cargo test` of the workspace builds; a missing binary fails the test, loudly).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

#[path = "../../../tests/common/mod.rs"]
pub mod common;

/// A running `vigil serve`; stopped (and its directory removed) when dropped.
pub struct Node {
    server: Option<common::Server>,
    /// Where it serves the binary protocol.
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Node {
    /// A node on the embedded dev config (its port changed, no web port) in a fresh directory on a
    /// filesystem that takes O_DIRECT.
    pub fn start(name: &str) -> Node {
        Self::start_with(name, |c| c)
    }

    /// As [`Node::start`], with the config changed by `edit` first.
    pub fn start_with(name: &str, edit: impl FnOnce(String) -> String) -> Node {
        let dir = common::disk_temp_dir(&format!("client-{name}"));
        let port = common::free_udp_port();
        let config = edit(common::dev_config(port));
        let server = common::Server::start(&dir, &config);
        Node { server: Some(server), addr: SocketAddr::from(([127, 0, 0, 1], port)), dir }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
