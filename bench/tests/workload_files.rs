//! The workload files shipped in `bench/workloads/` all parse and validate, and invalid workloads
//! are rejected naming the field to fix (tests as data: one row per mistake).

use std::path::PathBuf;
use vigil_bench::spec::{KeyDistribution, MalformedKind, OpKind, ScheduleSpec};
use vigil_bench::workload::{self, DATAGRAM_BYTES_MAX};

fn workloads_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("workloads")
}

#[test]
fn every_shipped_workload_parses_and_validates() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(workloads_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let w = workload::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(Some(w.name.as_str()), path.file_stem().and_then(|s| s.to_str()), "name matches file");
        assert!(w.description.is_some(), "{}: say what it is for", path.display());
        // Modest enough for the kernel backend on a small VM.
        assert!(w.schedule.peak_rate() <= 50_000.0, "{}: peak {}", path.display(), w.schedule.peak_rate());
        // Every request of the workload fits the datagram it is batched in.
        let mut traffic = w.traffic().unwrap();
        let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
        let mut wr = vigil::wire::DatagramWriter::request(&mut buf, 1).unwrap();
        for k in 0..u64::from(w.batch) {
            traffic.push_request(k, &mut wr).unwrap();
        }
        names.push(w.name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "bursts",
            "candles",
            "echo-mix-zipf",
            "kv-read-heavy",
            "kv-write-heavy",
            "malformed",
            "ping-fixed",
            "poisson",
            "ramp",
            "step"
        ]
    );
}

#[test]
fn shipped_workloads_say_what_the_issue_asked_for() {
    let load = |name: &str| workload::load(&workloads_dir().join(format!("{name}.toml"))).unwrap();
    let bursts = load("bursts");
    assert_eq!(bursts.schedule, ScheduleSpec::Bursts { requests: 35_000, within: 20.0, idle: 40.0 });
    let mix = load("echo-mix-zipf");
    assert_eq!(mix.batch, 4);
    assert_eq!((mix.values.min, mix.values.max), (16, 256));
    assert_eq!(mix.keys.count, 100_000);
    let echo: f64 = mix.ops.iter().filter(|o| o.op == OpKind::Echo).map(|o| o.weight).sum();
    let all: f64 = mix.ops.iter().map(|o| o.weight).sum();
    assert_eq!(echo / all, 0.9);
    let share = |w: &workload::Workload, op: OpKind| {
        let all: f64 = w.ops.iter().map(|o| o.weight).sum();
        w.ops.iter().filter(|o| o.op == op).map(|o| o.weight).sum::<f64>() / all
    };
    let read = load("kv-read-heavy");
    assert_eq!((share(&read, OpKind::Get), share(&read, OpKind::Set)), (0.9, 0.1));
    assert_eq!(read.keys.distribution, KeyDistribution::Zipfian { s: 0.99 });
    assert_eq!((read.keys.count, read.values.min, read.values.max), (100_000, 100, 100));
    let write = load("kv-write-heavy");
    assert_eq!((share(&write, OpKind::Get), share(&write, OpKind::Set)), (0.5, 0.5));
    assert_eq!(write.keys.distribution, KeyDistribution::Uniform);
    assert_eq!((write.keys.count, write.values.min, write.values.max), (100_000, 100, 100));
    let malformed = load("malformed").malformed.unwrap();
    assert_eq!(malformed.kinds_or_all().len(), 4);
    assert!(malformed.kinds_or_all().contains(&MalformedKind::Oversized));
    let candles = load("candles");
    assert_eq!((share(&candles, OpKind::CandleLight), share(&candles, OpKind::CandleGet)), (0.2, 0.8));
    let traffic = candles.traffic().unwrap();
    let pool = traffic.candle_pool().expect("a LIGHT mix has its bodies made at start");
    assert_eq!(pool.len(), vigil_bench::candles::CANDLE_POOL_BODIES);
    assert!(pool.body_bytes_max() <= vigil_bench::candles::CANDLE_BODY_BYTES_MAX);
    let ScheduleSpec::Step { steps } = load("step").schedule else { panic!("step is a step schedule") };
    assert_eq!(steps.len(), 3);
}

/// A valid workload; each row of the table below changes one line of it.
const BASE: &str = r#"
name = "base"
duration_s = 10
batch = 2
ops = [{ op = "echo", weight = 3 }, { op = "ping", weight = 1 }]
keys = { count = 1000, bytes = 16, distribution = { kind = "zipfian", s = 0.99 } }
values = { min = 16, max = 256 }
[schedule]
kind = "fixed"
rate = 1000
[malformed]
rate = 100
"#;

#[test]
fn the_base_of_the_table_is_valid() {
    workload::parse(BASE).unwrap();
}

#[test]
fn invalid_workloads_name_their_field() {
    // (what is wrong, the line replaced, its replacement, the field the error must name)
    let rows: &[(&str, &str, &str, &str)] = &[
        ("unknown key", "duration_s = 10", "duration_s = 10\ncolour = \"red\"", "colour"),
        ("unknown nested key", "bytes = 16,", "bytes = 16, shape = 1,", "keys.shape"),
        ("unknown key in a schedule", "rate = 1000", "rate = 1000\nseed = 3", "schedule.seed"),
        ("negative rate", "rate = 1000", "rate = -5", "schedule.rate"),
        ("zero rate", "rate = 1000", "rate = 0", "schedule.rate"),
        ("zero weight", "weight = 1 }", "weight = 0 }", "ops[1].weight"),
        ("negative weight", "weight = 3 }", "weight = -3 }", "ops[0].weight"),
        ("no ops", r#"ops = [{ op = "echo", weight = 3 }, { op = "ping", weight = 1 }]"#, "ops = []", "ops"),
        ("unknown op name", r#"op = "echo""#, r#"op = "incr""#, "ops[0].op"),
        ("zipf s = 0", "s = 0.99", "s = 0.0", "keys.distribution.s"),
        ("zipf s < 0", "s = 0.99", "s = -1.0", "keys.distribution.s"),
        ("unknown key distribution", r#"kind = "zipfian""#, r#"kind = "pareto""#, "keys.distribution.kind"),
        ("no keys", "count = 1000", "count = 0", "keys.count"),
        ("zero-byte keys", "bytes = 16", "bytes = 0", "keys.bytes"),
        ("values.min > max", "min = 16", "min = 300", "values.min"),
        ("value bigger than a datagram", "max = 256", "max = 1500", "values.max"),
        ("batch too big for a datagram", "batch = 2", "batch = 8", "batch"),
        ("batch of zero", "batch = 2", "batch = 0", "batch"),
        ("batch past the limit", "batch = 2", "batch = 5000", "batch"),
        ("negative batch", "batch = 2", "batch = -1", "batch"),
        ("zero duration", "duration_s = 10", "duration_s = 0", "duration_s"),
        ("negative warm-up", "duration_s = 10", "duration_s = 10\nwarmup_s = -1", "warmup_s"),
        ("zero timeout", "duration_s = 10", "duration_s = 10\ntimeout_ms = 0", "timeout_ms"),
        ("malformed.rate 0", "rate = 100\n", "rate = 0\n", "malformed.rate"),
        (
            "unknown malformed kind",
            "rate = 100\n",
            "rate = 100\nkinds = [\"garbled\"]\n",
            "malformed.kinds[0]",
        ),
        ("missing schedule", "[schedule]\nkind = \"fixed\"\nrate = 1000\n", "", "schedule"),
        ("missing schedule kind", "kind = \"fixed\"\n", "", "schedule.kind"),
        ("wrong schedule kind", r#"kind = "fixed""#, r#"kind = "sine""#, "schedule.kind"),
        ("wrong field for the kind", r#"kind = "fixed""#, r#"kind = "ramp""#, "schedule.rate"),
        ("missing name", "name = \"base\"\n", "", "name"),
        ("missing values", "values = { min = 16, max = 256 }\n", "", "values"),
        ("wrong type", "duration_s = 10", "duration_s = \"long\"", "duration_s"),
    ];
    let mut wrong = Vec::new();
    for (what, from, to, field) in rows {
        assert!(BASE.contains(from), "{what}: the base has no `{from}`");
        let text = BASE.replacen(from, to, 1);
        match workload::parse(&text) {
            Ok(_) => wrong.push(format!("{what}: accepted")),
            Err(e) if e.field != *field => wrong.push(format!("{what}: expected `{field}`, got {e}")),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn step_errors_name_the_step() {
    let text = BASE.replace(
        "kind = \"fixed\"\nrate = 1000",
        "kind = \"step\"\nsteps = [{ rate = 10, seconds = 1 }, { rate = -1, seconds = 1 }]",
    );
    assert_eq!(workload::parse(&text).unwrap_err().field, "schedule.steps[1].rate");
}
