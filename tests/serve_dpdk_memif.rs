//! `vigil serve` on DPDK `net_memif` with the load generator as the memif peer: the appliance is the
//! memif server, `vigil-loadgen --backend dpdk` the client; it resolves Vigil's MAC by ARP, then
//! drives PING, batched ECHO and batched durable SET traffic open-loop, and every request must be
//! answered; the SETs of one datagram commit together and their late answers come back gathered
//! (fewer answer datagrams than answers), each answer frame accounted by the load generator.
//! Needs root and DPDK: it fails loudly without them (CI runs it as root).

mod common;

use common::*;
use std::process::Command;

fn loadgen(args: &[&str]) -> serde_json::Value {
    let out =
        Command::new(workspace_bin("vigil-loadgen")).args(args).output().expect("running vigil-loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(out.status.success(), "vigil-loadgen failed: {}\n{stdout}\n{stderr}", out.status);
    let json_path = args.iter().skip_while(|a| **a != "--json").nth(1).expect("--json given");
    serde_json::from_str(&std::fs::read_to_string(json_path).expect("summary JSON written"))
        .expect("summary JSON")
}

#[test]
fn dpdk_memif_serves_the_load_generator() {
    require_root_and_dpdk("dpdk_memif_serves_the_load_generator");
    let pid = std::process::id();
    let dir = temp_dir("memif");
    let sock = dir.join("memif.sock").display().to_string();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let config = dpdk_node_config(
        cores - 1,
        "10.77.9.1",
        "net_memif0",
        &format!("net_memif0,role=server,socket={sock},id=0,mac=02:56:47:00:09:01"),
        "",
        &format!("vigil-test-memif-{pid}"),
    );
    // The metrics endpoint too: the port's counters and xstats come from DPDK while it serves.
    let metrics_port = free_tcp_port();
    let config = format!("{config}[metrics]\nlisten = [\"127.0.0.1:{metrics_port}\"]\npublish_ms = 50\n");
    let server = Server::start(&dir, &config);
    assert!(server.ready_line.contains("backend=dpdk"), "{}", server.ready_line);

    let vdev = format!("net_memif0,role=client,socket={sock},id=0");
    let common_args = |prefix: &str, json: &str| -> Vec<String> {
        [
            "--backend",
            "dpdk",
            "--vdev",
            &vdev,
            "--file-prefix",
            prefix,
            "--server",
            "10.77.9.1:9000",
            "--local-ip",
            "10.77.9.2",
            "--memory-mb",
            "256",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--timeout-ms",
            "2000",
            "--json",
            json,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // PING, one per datagram.
    let json = dir.join("ping.json").display().to_string();
    let mut args = common_args(&format!("vigil-test-lg-{pid}-a"), &json);
    args.extend(["--op", "ping", "--rate", "20000"].map(String::from));
    let ping = loadgen(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // ECHO, eight requests per datagram, 100-byte bodies.
    let json = dir.join("echo.json").display().to_string();
    let mut args = common_args(&format!("vigil-test-lg-{pid}-b"), &json);
    args.extend(
        ["--op", "echo", "--payload-bytes", "100", "--batch", "8", "--rate", "40000"].map(String::from),
    );
    let echo = loadgen(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // Durable SETs, eight per datagram: deferred answers over DPDK, gathered per client.
    let json = dir.join("set.json").display().to_string();
    let mut args = common_args(&format!("vigil-test-lg-{pid}-c"), &json);
    args.extend(
        ["--op", "set", "--keys", "1000", "--value-bytes", "16", "--batch", "8", "--rate", "4000"]
            .map(String::from),
    );
    let set = loadgen(&args.iter().map(String::as_str).collect::<Vec<_>>());

    for (name, s) in [("ping", &ping), ("echo", &echo), ("set", &set)] {
        assert_eq!(s["errors"], 0, "{name}: {s}");
        assert_eq!(s["timeouts"], 0, "{name}: {s}");
        assert_eq!(s["sent"], s["received"], "{name}: {s}");
        let (offered, achieved) = (s["offered_rps"].as_f64().unwrap(), s["achieved_rps"].as_f64().unwrap());
        assert!(achieved > offered * 0.95, "{name}: achieved {achieved} of {offered}");
        assert!(s["latency_ns"]["p50"].as_u64().unwrap() > 0, "{name}: {s}");
    }

    std::thread::sleep(std::time::Duration::from_millis(200)); // a publish interval and more
    let metrics = scrape_metrics(metrics_port);
    let pings = metric_sum(&metrics, "vigil_requests_total", &["opcode=\"ping\""]);
    assert!(pings >= ping["received"].as_f64().unwrap(), "{pings} PINGs counted:\n{metrics}");
    let rx = metric_sum(&metrics, "vigil_port_packets_total", &["direction=\"rx\""]);
    // net_memif counts nothing in its port statistics (the stop report's `port:` line says 0
    // too): the families are there, with the driver's xstats names; tests/serve_dpdk_tap.rs
    // checks the counts on a driver that keeps them.
    assert!(rx >= 0.0 && metrics.contains("vigil_port_packets_total{direction=\"tx\"}"), "{metrics}");
    assert!(
        metrics.contains("vigil_port_xstats_total{name=\"rx_good_packets\"}"),
        "the driver's xstats:\n{metrics}"
    );

    let (status, out) = server.stop();
    assert!(status.success(), "vigil exited with {status}");
    // One ARP resolution per load generator run; a busy machine may make a generator ask again.
    let arp: u64 = out
        .split("arp_replies ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("arp_replies in the final counters");
    assert!(arp >= 3, "one ARP resolution per load generator run:\n{out}");
    let counter = |name: &str| -> u64 {
        let rest = out.split(&format!(" {name} ")).nth(1).unwrap_or_else(|| panic!("{name} in:\n{out}"));
        rest.split_whitespace().next().and_then(|n| n.parse().ok()).expect("a number")
    };
    let (late, datagrams) = (counter("late-answers"), counter("late-datagrams"));
    assert!(late >= set["received"].as_u64().unwrap(), "every SET answered late:\n{out}");
    assert!(datagrams * 2 <= late, "late answers gathered: {late} answers in {datagrams} datagrams\n{out}");
    assert_eq!((counter("no-buffer"), counter("queue-full")), (0, 0), "{out}");
    let _ = std::fs::remove_dir_all(dir);
    remove_dpdk_runtime_dirs();
}
