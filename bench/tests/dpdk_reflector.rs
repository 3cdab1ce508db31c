//! The DPDK path end to end: `vigil-loadgen --backend dpdk --reflector` as a memif client against
//! `dpdk-testpmd --forward-mode=5tswap` as the memif server (the link-baseline set-up), both
//! without hugepages, with one generator thread on one queue pair and with two threads on two
//! (testpmd `--rxq=2 --txq=2`: memif pairs client queue i with server queue i, and 5tswap sends
//! each frame back on the queue it came in on). Spawns both binaries (EAL initialises once per
//! process) with their own file prefixes and socket path; the two tests take turns (a lock), as
//! both busy-poll the machine's two cores.
//!
//! Needs root, `dpdk-testpmd` and two CPUs (testpmd forwards on a second lcore); without them it
//! fails loudly rather than skipping.
#![cfg(feature = "dpdk")]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Fails the test, loudly, where it cannot run: it is never skipped (CI runs as root with DPDK).
fn require_root_testpmd_and_two_cpus() {
    let uid = Command::new("id").arg("-u").output().expect("running id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "\n\n*** memif_reflector_against_testpmd_5tswap NEEDS ROOT (DPDK vdevs): run as root, as scripts/test and CI do ***\n"
    );
    let testpmd =
        Command::new("dpdk-testpmd").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        testpmd.is_ok(),
        "\n\n*** dpdk-testpmd is NOT INSTALLED (apt-get install dpdk); scripts/test installs it ***\n"
    );
    assert!(
        std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2,
        "\n\n*** this test needs 2 CPUs: testpmd forwards on its second lcore ***\n"
    );
}

/// Runs testpmd 5tswap with `queues` queue pairs and the generator with `threads` threads at
/// `rate` for 1 s (after 0.3 s of warm-up); returns the generator's JSON.
fn reflect(tag: &str, queues: u32, threads: u32, rate: u32, extra: &[&str]) -> serde_json::Value {
    require_root_testpmd_and_two_cpus();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let sock = format!("/tmp/vigil-loadgen-test-{tag}-{pid}.sock");
    let _ = std::fs::remove_file(&sock);
    let mut testpmd = Command::new("dpdk-testpmd")
        .args(["-l", "0,1", "--no-huge", "-m", "512", "--no-pci", "--no-telemetry"])
        .args(["--file-prefix", &format!("vigil-lg-test-tpmd-{tag}-{pid}")])
        .args(["--vdev", &format!("net_memif0,role=server,socket={sock},id=0")])
        .args(["--", "-i", "--total-num-mbufs=16384", &format!("--rxq={queues}"), &format!("--txq={queues}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dpdk-testpmd");
    let mut cmds = testpmd.stdin.take().unwrap();
    cmds.write_all(b"set fwd 5tswap\nstart\n").unwrap();
    cmds.flush().unwrap();

    // The generator retries starting its memif client until testpmd listens (--link-timeout).
    let json = format!("/tmp/vigil-loadgen-test-{tag}-{pid}.json");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-loadgen"))
        .args(["--backend", "dpdk", "--vdev", &format!("net_memif0,role=client,socket={sock},id=0")])
        .args(["--file-prefix", &format!("vigil-lg-test-lg-{tag}-{pid}"), "--reflector"])
        .args([
            "--server",
            "10.0.0.1:9000",
            "--rate",
            &rate.to_string(),
            "--duration",
            "1",
            "--warmup",
            "0.3",
        ])
        .args(["--threads", &threads.to_string(), "--json", &json, "--link-timeout", "20", "--quiet"])
        .args(extra)
        .output()
        .expect("run vigil-loadgen");

    // The memif client goes first (a client whose server quit first has been seen to crash).
    std::thread::sleep(Duration::from_millis(200));
    cmds.write_all(b"show port stats all\nstop\nquit\n").unwrap();
    drop(cmds);
    let tp = testpmd.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&sock);

    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tp_out = String::from_utf8_lossy(&tp.stdout);
    assert!(out.status.success(), "loadgen failed\n{stdout}\n{stderr}\ntestpmd:\n{tp_out}");
    eprint!("{stdout}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(v["backend"], "dpdk");
    assert_eq!(v["reflector"], true);
    assert_eq!(v["threads"], threads);
    assert_eq!(v["timeline"].as_array().map(|t| t.len()), Some(1));
    if queues > 1 {
        // Every queue of testpmd forwarded: its forward statistics list one stream per queue.
        let streams = tp_out.matches("Forward Stats for RX Port= 0/Queue=").count();
        assert!(streams >= queues as usize, "testpmd used {streams} streams\n{tp_out}");
    }
    v
}

#[test]
fn memif_reflector_against_testpmd_5tswap() {
    let v = reflect("q1", 1, 1, 100_000, &["--core", "0", "--batch", "4"]);
    assert_eq!(v["sent"], 100_000);
    assert_eq!(v["timeouts"], 0);
    assert_eq!(v["received"], 100_000);
    // Every request came back (above); the rate itself is only checked loosely here: over a 1 s
    // window on a busy 2-vCPU machine the generator can lag (seen: 61 ms, 4% of the window), and
    // the rate controller's precision is what tests/engine_rate.rs measures (1% over 5 s).
    let achieved = v["achieved_rps"].as_f64().unwrap();
    assert!(achieved >= 85_000.0, "{achieved}");
}

#[test]
fn memif_two_queues_two_generator_threads() {
    // Thread 1 shares core 1 with testpmd's forwarding lcore: modest rate, a little loss allowed
    // (testpmd's transmit ring can overflow while it is descheduled).
    let v = reflect("q2", 2, 2, 20_000, &["--cores", "0,1", "--timeout-ms", "2000"]);
    assert_eq!(v["sent"], 20_000);
    let received = v["received"].as_u64().unwrap();
    assert!(received >= 19_800, "{v}");
    assert_eq!(v["unexpected"], 0);
}
