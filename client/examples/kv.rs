//! A command-line KV client over `vigil-client`, for trying a cluster by hand:
//!
//! ```sh
//! cargo run -p vigil-client --example kv -- 10.77.0.1:9000,10.77.0.2:9000,10.77.0.3:9000 set greeting hello
//! cargo run -p vigil-client --example kv -- 10.77.0.1:9000 get greeting
//! ```
//!
//! Commands: `get KEY`, `set KEY VALUE`, `del KEY`, `incr KEY DELTA`, `cas KEY VERSION VALUE`,
//! `ping`. Prints the answer, then what the client did (datagrams, redirects, timeouts, retries).

use std::process::ExitCode;
use vigil_client::Client;

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
    let mut c = Client::connect_cluster(nodes)?;
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
        "kv: client {:#x}: {} datagrams, {} redirects, {} timeouts, {} retries",
        c.client_id(),
        s.sent,
        s.redirects,
        s.timeouts,
        s.retried
    );
    Ok(())
}
