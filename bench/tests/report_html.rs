//! `vigil-report` end to end: synthetic load-generator runs (JSON summary + V2-deflate `.hlog`
//! interval log, written the way `vigil-loadgen` writes them) rendered by the real binary, checked
//! as text, and opened in headless Chromium (screenshot + DOM).
//!
//! Invariants: fixtures are deterministic (a fixed-seed generator), so a failure reproduces;
//! outputs stay under `target/tmp/report-test/<test>/` for a look after the run; Chromium missing
//! is a failure, never a skip (scripts/test installs it).

use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh output directory for one test.
fn out_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-test").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// xorshift64*: deterministic noise without a dependency.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The latency shapes of the fixture runs.
#[derive(Clone, Copy)]
enum Shape {
    /// ~20 µs with a mild spread.
    Steady,
    /// ~12 µs, but 1% of requests take 0.3-3 ms (a GC-like tail).
    Tail,
    /// Latency climbing second by second and answers falling behind the offered rate.
    Overload,
}

struct Fixture {
    name: &'static str,
    shape: Shape,
    offered_rps: u64,
    seconds: u32,
    /// Write the `.hlog` next to the JSON.
    hlog: bool,
    /// Name the `.hlog` through the JSON's `hist_log` key (in a subdirectory) instead.
    hist_log_key: bool,
    /// Add the per-interval `timeline` array.
    timeline: bool,
}

/// Requests per second of every fixture: each is one sample in its second's histogram, so the
/// counts of the interval log and the JSON's rates agree.
const SAMPLES: u32 = 20_000;

/// Writes `f`'s JSON (and `.hlog`) into `dir`; returns the JSON's path.
fn write_run(dir: &Path, f: &Fixture) -> PathBuf {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ f.name.len() as u64);
    let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut intervals = Vec::new();
    let mut timeline = Vec::new();
    let mut answered_total = 0u64;
    for s in 0..f.seconds {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        // Overload answers fewer each second: the server falls behind.
        let answered = match f.shape {
            Shape::Overload => SAMPLES - SAMPLES / 10 * s.min(5),
            _ => SAMPLES,
        };
        for _ in 0..answered {
            let u = rng.unit();
            let ns = match f.shape {
                Shape::Steady => 15_000.0 + 10_000.0 * u * u,
                Shape::Tail => {
                    if rng.unit() < 0.01 {
                        300_000.0 + 2_700_000.0 * u
                    } else {
                        10_000.0 + 4_000.0 * u
                    }
                }
                Shape::Overload => (30_000.0 + 40_000.0 * u) * f64::from(1 + 3 * s),
            };
            h.record(ns as u64).unwrap();
        }
        merged.add(&h).unwrap();
        answered_total += u64::from(answered);
        let scale = f.offered_rps as f64 / f64::from(SAMPLES);
        timeline.push(json!({
            "t_s": f64::from(s), "seconds": 1.0,
            "offered": f.offered_rps, "sent": f.offered_rps,
            "answered": (f64::from(answered) * scale).round(),
            "errors": 0, "timeouts": (f64::from(SAMPLES - answered) * scale).round(),
        }));
        intervals.push(h);
    }
    let q = |p: f64| merged.value_at_quantile(p);
    let sent = f.offered_rps * u64::from(f.seconds);
    let received = (answered_total as f64 * f.offered_rps as f64 / f64::from(SAMPLES)).round() as u64;
    let json_path = dir.join(format!("{}.json", f.name));
    let hlog_path = if f.hist_log_key {
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        dir.join("logs").join(format!("{}-latency.hlog", f.name))
    } else {
        json_path.with_extension("hlog")
    };
    let mut v = json!({
        "backend": "kernel", "server": "127.0.0.1:9000", "op": "ping", "payload_bytes": 0,
        "batch": 1, "reflector": false,
        "offered_rps": f.offered_rps, "achieved_rps": received as f64 / f64::from(f.seconds),
        "duration_s": f64::from(f.seconds), "warmup_s": 1.0, "timeout_ms": 1000,
        "sent": sent, "received": received, "errors": 0, "errors_by_status": {},
        "timeouts": sent - received, "unexpected": 0, "malformed": 0,
        "latency_ns": {
            "count": merged.len(), "min": merged.min(), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
            "p999": q(0.999), "p9999": q(0.9999), "max": merged.max(), "mean": merged.mean(),
        },
        "warmup": { "sent": 0, "received": 0, "errors": 0, "timeouts": 0 },
        "io": { "rx_packets": received },
        "some_future_key": { "nested": [1, 2, 3] },
    });
    if f.timeline {
        v["timeline"] = json!(timeline);
    }
    if f.hist_log_key {
        v["hist_log"] = json!(format!("logs/{}-latency.hlog", f.name));
    }
    std::fs::write(&json_path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    if f.hlog {
        // As bench/src/report.rs writes it: V2 deflate, one interval per second from 0.
        let mut file = std::fs::File::create(&hlog_path).unwrap();
        let mut ser = V2DeflateSerializer::new();
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment("test fixture, ns")
            .with_max_value_divisor(1e6)
            .begin_log_with(&mut file, &mut ser)
            .unwrap();
        for (i, h) in intervals.iter().enumerate() {
            log.write_histogram(h, Duration::from_secs(i as u64), Duration::from_secs(1), None).unwrap();
        }
    }
    json_path
}

fn three_fixtures() -> [Fixture; 3] {
    [
        Fixture {
            name: "steady",
            shape: Shape::Steady,
            offered_rps: u64::from(SAMPLES),
            seconds: 8,
            hlog: true,
            hist_log_key: false,
            timeline: false,
        },
        Fixture {
            name: "tail",
            shape: Shape::Tail,
            offered_rps: u64::from(SAMPLES),
            seconds: 8,
            hlog: true,
            hist_log_key: true,
            timeline: false,
        },
        Fixture {
            name: "overload",
            shape: Shape::Overload,
            offered_rps: u64::from(SAMPLES),
            seconds: 8,
            hlog: true,
            hist_log_key: false,
            timeline: true,
        },
    ]
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn vigil_report(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-report"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1735689600")
        .output()
        .expect("running vigil-report");
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The checks every rendered page must pass.
fn check_page(html: &str, labels: &[&str]) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 3, "one <svg per plot");
    assert!(!html.contains("<script"), "no JavaScript");
    for external in ["src=", "<link", "@import", "url(http"] {
        assert!(!html.contains(external), "no external assets: {external}");
    }
    assert!(html.contains("2025-01-01 00:00 UTC"), "generation date");
    assert!(html.contains("How to read this"));
    for l in labels {
        assert!(html.contains(&format!("</span>{l}</td><td class=\"num\">")), "table row of {l}");
        assert!(html.matches(l).count() >= 4, "{l} in runs, table and legends");
    }
    for h in ["p50 µs", "p99.99 µs", "vs base", "achieved/s"] {
        assert!(html.contains(h), "header {h}");
    }
}

#[test]
fn one_run_renders_html_and_text() {
    let dir = out_dir("one-run");
    let json = write_run(&dir, &three_fixtures()[0]);
    let html_path = dir.join("report.html");
    let out = vigil_report(&["--out", s(&html_path), "--text", "--title", "One run", s(&json)]);
    assert!(out.ok, "{}", out.stderr);
    let html = std::fs::read_to_string(&html_path).unwrap();
    check_page(&html, &["steady"]);
    assert!(html.contains("<title>One run</title>"));
    assert!(html.contains("1.00x"), "the baseline's ratio");
    assert!(html.contains("interval log counts"), "rate from the hlog without a timeline");
    assert!(!html.contains("no interval log"));
    // The text table: header, one row, same numbers as the HTML.
    assert!(out.stdout.starts_with("One run\n"), "{}", out.stdout);
    let row = out.stdout.lines().find(|l| l.starts_with("steady")).expect("the run's row");
    for cell in ["20000", "1.00x", "160000"] {
        assert!(row.contains(cell), "{cell} in {row}");
        assert!(html.contains(&format!(">{cell}<")), "{cell} in the HTML table");
    }
    println!("report: {}", html_path.display());
}

#[test]
fn three_runs_overlay_with_labels_and_ratios() {
    let dir = out_dir("three-runs");
    let jsons: Vec<PathBuf> = three_fixtures().iter().map(|f| write_run(&dir, f)).collect();
    let html_path = dir.join("report.html");
    let out = vigil_report(&[
        "--out",
        s(&html_path),
        "--text",
        "--label",
        "baseline",
        "--label",
        "long-tail",
        s(&jsons[0]),
        s(&jsons[1]),
        s(&jsons[2]),
    ]);
    assert!(out.ok, "{}", out.stderr);
    let html = std::fs::read_to_string(&html_path).unwrap();
    // Two labels given, the third run is named by its file stem.
    check_page(&html, &["baseline", "long-tail", "overload"]);
    assert!(html.contains("logs/tail-latency.hlog"), "hist_log key, relative to the JSON's directory");
    assert!(html.contains("timeline in the JSON"), "overload's rates come from its timeline");
    assert!(html.contains("overload p99"), "latency-over-time legend");
    assert!(html.contains("overload offered"), "rate legend");
    // Overload answered less than it was offered: its ratio is below the baseline's.
    let text = &out.stdout;
    assert_eq!(text.lines().filter(|l| l.contains("µs")).count(), 1, "one header line: {text}");
    for l in ["baseline", "long-tail", "overload"] {
        assert!(text.lines().any(|line| line.starts_with(l)), "{l} row in {text}");
    }
    let overload = text.lines().find(|l| l.starts_with("overload")).unwrap();
    let ratio: f64 = overload.split_whitespace().nth(3).unwrap().trim_end_matches('x').parse().unwrap();
    assert!(ratio < 0.9 && ratio > 0.5, "{overload}");
    // Distinct colours per run.
    for c in ["#0072B2", "#D55E00", "#009E73"] {
        assert!(html.contains(&format!("stroke=\"{c}\"")), "{c}");
    }
    println!("report: {}", html_path.display());
}

#[test]
fn json_alone_renders_and_says_what_is_missing() {
    let dir = out_dir("json-only");
    let mut f = three_fixtures();
    f[1].hlog = false;
    let with = write_run(&dir, &f[0]);
    let without = write_run(&dir, &f[1]);
    // An older, sparser JSON: no latency count, no io, a float count.
    let old = dir.join("old.json");
    std::fs::write(
        &old,
        r#"{"offered_rps": 5000, "achieved_rps": 4999.5, "sent": 50000.0, "received": 49995,
            "errors": 5, "timeouts": 0, "duration_s": 10.0,
            "latency_ns": {"p50": 21000, "p90": 30000, "p99": 45000, "p999": 90000, "max": 400000}}"#,
    )
    .unwrap();
    let html_path = dir.join("report.html");
    let out = vigil_report(&["--out", s(&html_path), "--text", s(&with), s(&without), s(&old)]);
    assert!(out.ok, "{}", out.stderr);
    let html = std::fs::read_to_string(&html_path).unwrap();
    check_page(&html, &["steady", "tail", "old"]);
    assert!(html.contains("no interval log"), "the page says the hlog is missing");
    assert!(html.contains("tail (JSON percentiles)"), "spectrum falls back to the JSON's points");
    assert!(out.stderr.contains("tail: no interval log"), "{}", out.stderr);
    let old_row = out.stdout.lines().find(|l| l.starts_with("old")).unwrap();
    assert!(old_row.contains("50000") && old_row.contains("400.0"), "{old_row}");
    assert!(old_row.trim_end().ends_with("400.0"));
    assert!(old_row.split_whitespace().any(|c| c == "-"), "p99.99 absent, shown as -: {old_row}");
}

#[test]
fn bad_invocations_fail_with_a_reason() {
    let dir = out_dir("bad");
    let json = write_run(&dir, &three_fixtures()[0]);
    let out = vigil_report(&[s(&json)]);
    assert!(!out.ok && out.stderr.contains("nothing to do"), "{}", out.stderr);
    let out = vigil_report(&["--text", s(&dir.join("missing.json"))]);
    assert!(!out.ok && out.stderr.contains("missing.json"), "{}", out.stderr);
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "not json").unwrap();
    let out = vigil_report(&["--text", s(&garbage)]);
    assert!(!out.ok && out.stderr.contains("not JSON"), "{}", out.stderr);
    let out = vigil_report(&["--text", "--label", "a", "--label", "b", s(&json)]);
    assert!(!out.ok && out.stderr.contains("2 labels for 1 runs"), "{}", out.stderr);
    let corrupt = dir.join("corrupt.json");
    std::fs::copy(&json, &corrupt).unwrap();
    std::fs::write(dir.join("corrupt.hlog"), "#[hello]\nthis is not a histogram\n").unwrap();
    let out = vigil_report(&["--text", s(&corrupt)]);
    assert!(out.ok, "a corrupt hlog is a note, not a failure: {}", out.stderr);
    assert!(out.stdout.contains("interval log unreadable"), "{}", out.stdout);
    let out = vigil_report(&["--help"]);
    assert!(out.ok && out.stdout.contains("--label"), "{}", out.stdout);
}

/// Runs Chromium headless with `args` (plus the flags that keep it off the network and out of the
/// user's profile) for at most 60 s; returns (success, stdout, stderr).
fn chromium(dir: &Path, args: &[String]) -> (bool, String, String) {
    use std::os::unix::process::CommandExt;
    let bin = Path::new("/usr/bin/chromium");
    assert!(
        bin.exists(),
        "/usr/bin/chromium is missing: the report's browser test needs it (scripts/test installs the \
         Debian package `chromium`; or run: apt-get install -y chromium)"
    );
    let profile = dir.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let stdout_path = dir.join("chromium.stdout");
    let stderr_path = dir.join("chromium.stderr");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        // Its own process group, so a hang is ended with all its helpers and nothing else.
        .process_group(0)
        .spawn()
        .expect("starting chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = std::fs::remove_dir_all(&profile);
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(status.is_some(), "chromium did not finish within 60 s; stderr:\n{stderr}");
    (status.is_some_and(|s| s.success()), stdout, stderr)
}

#[test]
fn report_opens_in_headless_chromium() {
    let dir = out_dir("chromium");
    let jsons: Vec<PathBuf> = three_fixtures().iter().map(|f| write_run(&dir, f)).collect();
    let html_path = dir.join("report.html");
    let out = vigil_report(&["--out", s(&html_path), s(&jsons[0]), s(&jsons[1]), s(&jsons[2])]);
    assert!(out.ok, "{}", out.stderr);
    let html_abs = std::fs::canonicalize(&html_path).unwrap();
    let url = format!("file://{}", html_abs.display());

    let (ok, dom, stderr) = chromium(&dir, &["--dump-dom".into(), url.clone()]);
    assert!(ok, "chromium --dump-dom failed:\n{stderr}");
    assert_eq!(
        dom.matches("<svg").count(),
        3,
        "the DOM has the three plots:\n{}",
        &dom[..dom.len().min(2000)]
    );
    assert!(dom.contains("<polyline"), "the plots have lines");
    for l in ["steady", "tail", "overload"] {
        assert!(dom.contains(l), "{l} in the DOM");
    }

    let png = dir.join("report.png");
    let (ok, _, stderr) =
        chromium(&dir, &[format!("--screenshot={}", png.display()), "--window-size=1280,2400".into(), url]);
    assert!(ok, "chromium --screenshot failed:\n{stderr}");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot {} is only {size} bytes", png.display());
    let head = std::fs::read(&png).unwrap();
    assert_eq!(&head[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    println!("screenshot: {} ({size} bytes)", png.display());
}
