//! A command-line KV client over `vigil-client`, for trying a cluster by hand:
//!
//! ```sh
//! cargo run -p vigil-client --example kv -- 10.77.0.1:9000,10.77.0.2:9000,10.77.0.3:9000 set greeting hello
//! cargo run -p vigil-client --example kv -- 10.77.0.1:9000 get greeting
//! ```
//!
//! Commands: `get KEY`, `set KEY VALUE`, `del KEY`, `incr KEY DELTA`, `cas KEY VERSION VALUE`,
//! `ping`. Prints the answer, then what the client did (datagrams, redirects, timeouts, retries,
//! address cookies learnt).
//!
//! A node that wants signed datagrams: give the key of its `[[auth.clients]]` entry in the
//! environment (not on the command line, where `ps` shows it), and one of the client ids it
//! speaks for:
//!
//! ```sh
//! VIGIL_KEY_ID=7 VIGIL_KEY=$(cat loadgen.key) VIGIL_CLIENT_ID=100000 \
//!     cargo run -p vigil-client --example kv -- 10.77.0.1:9000 set greeting hello
//! ```

use std::process::ExitCode;
use vigil_client::{Client, ClientConfig, Credentials};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kv: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: kv NODE[,NODE...] get KEY | set KEY VALUE | del KEY | incr KEY DELTA | cas KEY VERSION VALUE | ping";
    let (nodes, cmd) = args.split_first().ok_or(usage)?;
    let mut c = connect(nodes)?;
    let arg = |i: usize| cmd.get(i).map(String::as_bytes).ok_or(usage);
    match cmd.first().map(String::as_str) {
        Some("get") => match c.get(arg(1)?)? {
            Some(v) => println!("{} (version {})", String::from_utf8_lossy(&v.value), v.version),
            None => println!("(not found)"),
        },
        Some("set") => println!("version {}", c.set(arg(1)?, arg(2)?)?),
        Some("del") => println!("{}", if c.del(arg(1)?)? { "deleted" } else { "(not found)" }),
        Some("incr") => {
            let delta: i64 = std::str::from_utf8(arg(2)?)?.parse()?;
            let (value, version) = c.incr(arg(1)?, delta)?;
            println!("{value} (version {version})");
        }
        Some("cas") => {
            let expected: u64 = std::str::from_utf8(arg(2)?)?.parse()?;
            match c.cas(arg(1)?, expected, arg(3)?)? {
                Some(v) => println!("version {v}"),
                None => println!("(version mismatch: nothing written)"),
            }
        }
        Some("ping") => {
            c.ping()?;
            println!("pong");
        }
        _ => return Err(usage.into()),
    }
    let s = c.stats();
    eprintln!(
        "kv: client {:#x}: {} datagrams, {} redirects, {} timeouts, {} retries, {} cookies learnt",
        c.client_id(),
        s.sent,
        s.redirects,
        s.timeouts,
        s.retried,
        s.cookies_learnt
    );
    Ok(())
}

/// A client of `nodes` (comma-separated), signing with $VIGIL_KEY_ID/$VIGIL_KEY as
/// $VIGIL_CLIENT_ID when $VIGIL_KEY is set.
fn connect(nodes: &str) -> Result<Client, Box<dyn std::error::Error>> {
    let Ok(key) = std::env::var("VIGIL_KEY") else { return Ok(Client::connect_cluster(nodes)?) };
    let var = |name: &str| -> Result<u64, Box<dyn std::error::Error>> {
        let v = std::env::var(name).map_err(|_| format!("VIGIL_KEY is set: set {name} too"))?;
        Ok(v.parse().map_err(|e| format!("{name}={v:?}: {e}"))?)
    };
    let key_id = u32::try_from(var("VIGIL_KEY_ID")?)?;
    let config = ClientConfig {
        credentials: Some(Credentials::from_hex(key_id, key.trim())?),
        client_id: Some(var("VIGIL_CLIENT_ID")?),
        ..ClientConfig::default()
    };
    Ok(Client::connect_cluster_with(nodes, config)?)
}
