//! The dashboard's HTML: the page around the live part (head, style, the no-script refresh, the
//! config in force, how to run the admin operations) and the live part itself (the node, the
//! latency chart, the shards' rates, the partitions' Raft and log state, errors and drops).
//!
//! Invariants: text that is not a number or fixed is escaped (`html_escape`); the partitions table
//! holds at most `PARTITION_ROWS_MAX` rows (a node of thousands of partitions says how many more),
//! so a rendering's size is bounded whatever the node.

use super::{chart, fmt_bytes, fmt_rate, fmt_us, Rendered, HISTORY_SECONDS};
use crate::candle::page::iso8601;
use crate::metrics::history::{History, Sample};
use crate::metrics::prom::ProcessStats;
use crate::metrics::{PartitionTotals, ShardStats};
use html_escape::encode_text_to_string as text;
use std::fmt::Write;
use std::sync::Arc;

/// Rows of the partitions table, at most.
pub const PARTITION_ROWS_MAX: usize = 256;

/// Seconds between reloads of the page without JavaScript.
const RELOAD_S: u64 = 2;

/// What the dashboard shows (the dashboard thread gathers it).
#[derive(Debug)]
pub struct NodeView<'a> {
    /// This node's Raft id, and when it started and now (Unix ns).
    pub node_id: u64,
    pub started_ns: u64,
    pub now_ns: u64,
    /// Shards in the node, and their latest snapshots (those that published).
    pub shards_total: usize,
    pub latest: &'a [Arc<ShardStats>],
    /// The last minute.
    pub history: &'a History,
    /// The process's memory.
    pub process: ProcessStats,
    /// The config in force, TOML, secrets hidden.
    pub config_toml: &'a str,
    /// Whether admin operations are on (`admin.token` set).
    pub admin_on: bool,
    /// The data directory's use of its disk (none: memory storage, or unreadable).
    pub disk: Option<DiskUse>,
}

/// The data directory's files and the file system holding them, bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskUse {
    /// Bytes the directory's files take on disk (allocated blocks: the logs are preallocated).
    pub files_bytes: u64,
    /// Free and whole size of the file system.
    pub fs_free_bytes: u64,
    pub fs_size_bytes: u64,
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin:1.4em 0 .4em}\
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee}\
th{background:#f4f4f4}td.l,th.l{text-align:left}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:6px 18px}\
.grid div{border-left:3px solid #ccd;padding-left:8px}.grid b{display:block;font-size:1.2em}\
.bad{color:#c92a2a}.muted{color:#777}pre{background:#f8f8f8;padding:8px;overflow:auto}";

/// Renders the whole page and its live part as rendering `seq`.
pub fn render(v: &NodeView<'_>, seq: u64) -> Rendered {
    let mut live = String::with_capacity(16 << 10);
    write_live(&mut live, v);
    let mut page = String::with_capacity(live.len() + v.config_toml.len() + 4096);
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Vigil node {}</title><meta name="viewport" content="width=device-width"><noscript><meta http-equiv="refresh" content="{RELOAD_S}"></noscript><style>{STYLE}</style><script src="/dashboard.js" defer></script></head><body data-live="off"><header><h1>Vigil · node {}</h1><p><span id="mode">reloads every {RELOAD_S} s</span> · <a href="/">Refresh</a> · <a href="/api/status">JSON API</a> · <a href="/candles">Candles</a></p></header>"#,
        v.node_id, v.node_id
    );
    page.push_str("<main id=\"live\">\n");
    page.push_str(&live);
    page.push_str("</main>\n");
    write_static(&mut page, v);
    page.push_str("</body></html>\n");
    Rendered::new(seq, page, &live)
}

/// The live part (what each event replaces).
fn write_live(out: &mut String, v: &NodeView<'_>) {
    write_node(out, v);
    let _ = writeln!(out, "<h2>Durable write latency, each second of the last {HISTORY_SECONDS} s</h2>");
    chart::write_chart(out, v.history.samples(), HISTORY_SECONDS);
    out.push('\n');
    write_shards(out, v);
    write_partitions(out, v.latest);
    write_errors(out, v.latest);
}

/// The node at a glance.
fn write_node(out: &mut String, v: &NodeView<'_>) {
    let t = PartitionTotals::of(v.latest);
    let last = v.history.last();
    let rate = |f: fn(&Sample) -> f64| last.map_or_else(|| "–".into(), |s| fmt_rate(f(s)));
    let uptime = v.now_ns.saturating_sub(v.started_ns) / 1_000_000_000;
    let errors: u64 = v.latest.iter().map(|s| s.engine.answers_error).sum();
    let drops: u64 = v.latest.iter().map(|s| s.drops_total()).sum();
    let disk = v.disk.map_or("–".into(), |d| {
        format!(
            "{} in files; {} free of {}",
            fmt_bytes(d.files_bytes),
            fmt_bytes(d.fs_free_bytes),
            fmt_bytes(d.fs_size_bytes)
        )
    });
    let cells: [(&str, String); 13] = [
        ("up", format!("{}h {:02}m {:02}s", uptime / 3600, uptime / 60 % 60, uptime % 60)),
        ("shards reporting", format!("{} of {}", v.latest.len(), v.shards_total)),
        ("partitions", format!("{} ({} leading, {} quiet)", t.partitions, t.leading, t.quiet)),
        ("keys", t.keys.to_string()),
        ("requests/s", rate(Sample::requests)),
        ("durable writes/s", rate(|s| s.shards.iter().map(|r| r.writes).sum())),
        ("write p99, last second", last.filter(|s| s.writes > 0).map_or("–".into(), |s| fmt_us(s.p99_us))),
        ("errors/s", rate(|s| s.shards.iter().map(|r| r.errors).sum())),
        ("drops/s", rate(|s| s.shards.iter().map(|r| r.drops).sum())),
        ("errors, drops (total)", format!("{errors}, {drops}")),
        ("memory (resident)", fmt_bytes(v.process.resident_bytes)),
        ("log in use", format!("{} of {}", fmt_bytes(t.log_used_bytes), fmt_bytes(t.log_ring_bytes))),
        ("disk (storage.dir)", disk),
    ];
    out.push_str("<div class=\"grid\" id=\"node\">");
    for (label, value) in cells {
        let _ = write!(out, "<div>{label}<b>");
        text(&value, out);
        out.push_str("</b></div>");
    }
    let _ =
        writeln!(out, "</div><p class=\"muted\">as of {}</p>", iso8601((v.now_ns / 1_000_000_000) as u32));
}

/// The shards' rates over the last second, and their totals.
fn write_shards(out: &mut String, v: &NodeView<'_>) {
    out.push_str("<h2>Shards</h2><table id=\"shards\"><tr><th>shard</th><th>requests/s</th><th>rx/s</th><th>tx/s</th><th>durable writes/s</th><th>errors/s</th><th>drops/s</th><th>forwards waiting</th><th>TCP connections</th><th>requests</th></tr>\n");
    let last = v.history.last();
    for s in v.latest {
        let r = last.and_then(|l| l.shards.iter().find(|r| r.shard == s.shard));
        let f =
            |g: fn(&crate::metrics::history::ShardRates) -> f64| r.map_or("–".into(), |r| fmt_rate(g(r)));
        let conns = s.conns.map_or("–".into(), |(c, _)| c.opened.saturating_sub(c.closed).to_string());
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{conns}</td><td>{}</td></tr>",
            s.shard,
            f(|r| r.requests),
            f(|r| r.rx),
            f(|r| r.tx),
            f(|r| r.writes),
            f(|r| r.errors),
            f(|r| r.drops),
            s.forwards_in_flight,
            s.engine.requests
        );
    }
    out.push_str("</table>\n");
}

/// Each partition's Raft state and log (`PARTITION_ROWS_MAX` rows at most).
fn write_partitions(out: &mut String, shards: &[Arc<ShardStats>]) {
    out.push_str("<h2>Partitions</h2><table id=\"partitions\"><tr><th>partition</th><th>shard</th><th class=\"l\">role</th><th>term</th><th>leader</th><th>commit</th><th>applied</th><th>keys</th><th>log lsn (durable)</th><th>log in use</th><th>waiting</th><th>snapshots</th><th>BUSY</th></tr>\n");
    let mut rows = 0usize;
    let total: usize = shards.iter().map(|s| s.partitions.len()).sum();
    for s in shards {
        for p in &s.partitions {
            if rows == PARTITION_ROWS_MAX {
                break;
            }
            rows += 1;
            let role = match (p.is_leader, p.leader, p.quiet) {
                (true, _, false) => "leader",
                (true, _, true) => "leader, quiet",
                (false, 0, _) => "no leader known",
                (false, _, false) => "follower",
                (false, _, true) => "follower, quiet",
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"l\">{role}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{} of {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.id,
                s.shard,
                p.term,
                p.leader,
                p.commit,
                p.applied,
                p.keys,
                p.log_last_lsn,
                p.log_durable_lsn,
                fmt_bytes(p.log_used_bytes()),
                fmt_bytes(p.log_ring_bytes()),
                p.waiting,
                p.counters.snapshots,
                p.counters.busy
            );
        }
    }
    out.push_str("</table>\n");
    if total > rows {
        let _ = writeln!(
            out,
            "<p class=\"muted\">and {} more partitions: /api/partitions lists them all</p>",
            total - rows
        );
    }
}

/// Errors, drops and access-control refusals by reason, every shard together (the non-zero ones).
fn write_errors(out: &mut String, shards: &[Arc<ShardStats>]) {
    let mut reasons: Vec<(&str, u64)> = Vec::new();
    let mut add = |reason: &'static str, n: u64| match reasons.iter_mut().find(|(r, _)| *r == reason) {
        Some((_, total)) => *total += n,
        None => reasons.push((reason, n)),
    };
    for s in shards {
        add("error answers", s.engine.answers_error);
        for (reason, n) in s.drops() {
            add(reason, n);
        }
        for (reason, n) in s.auth.refusals() {
            add(reason, n);
        }
        for p in &s.partitions {
            let c = &p.counters;
            add("BUSY: log ring full", c.busy_log_ring);
            add("BUSY: waiters full", c.busy_waiters);
            add("BUSY: write window full", c.busy_window);
            add("BUSY: proposals full", c.busy_proposals);
            add("BUSY: Raft refused", c.busy_raft);
            add("snapshot failures", c.snapshot_failures);
        }
    }
    reasons.retain(|(_, n)| *n > 0);
    out.push_str("<h2>Errors and drops</h2>");
    if reasons.is_empty() {
        out.push_str("<p id=\"errors\">none since the start</p>\n");
        return;
    }
    out.push_str("<table id=\"errors\"><tr><th class=\"l\">what</th><th>since the start</th></tr>");
    for (reason, n) in reasons {
        let _ = write!(out, "<tr><td class=\"l bad\">{reason}</td><td>{n}</td></tr>");
    }
    out.push_str("</table>\n");
}

/// What does not change while the node runs: the config, and how to run the admin operations.
fn write_static(out: &mut String, v: &NodeView<'_>) {
    out.push_str("<h2>Config in force</h2><details><summary>show</summary><pre>");
    text(v.config_toml, out);
    out.push_str("</pre></details>\n<h2>Admin operations</h2>");
    if v.admin_on {
        out.push_str("<p>With the token of <code>admin.token</code> (docs/OPERATIONS.md):</p><pre>curl -X POST -H \"Authorization: Bearer $TOKEN\" http://HOST/api/admin/snapshot\ncurl -X POST -H \"Authorization: Bearer $TOKEN\" http://HOST/api/admin/compact\ncurl -X PUT  -H \"Authorization: Bearer $TOKEN\" --data debug http://HOST/api/admin/log-level</pre>\n");
    } else {
        out.push_str("<p class=\"muted\">Off: set <code>admin.token</code> in the config to take snapshots, compact and change the log level over HTTP.</p>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::PartitionStats;

    #[test]
    fn the_page_holds_every_section_and_its_live_part_is_the_event() {
        let mut s = ShardStats { shard: 0, at_ns: 1_000_000_000, ..ShardStats::default() };
        s.partitions = vec![PartitionStats {
            id: 3,
            is_leader: true,
            leader: 1,
            term: 2,
            log_segments: 64,
            log_segments_free: 60,
            log_segment_bytes: 1 << 20,
            ..PartitionStats::default()
        }];
        s.engine.answers_error = 4;
        let latest = vec![Arc::new(s)];
        let history = History::new(HISTORY_SECONDS);
        let v = NodeView {
            node_id: 1,
            started_ns: 0,
            now_ns: 3_725_000_000_000,
            shards_total: 2,
            latest: &latest,
            history: &history,
            process: ProcessStats { resident_bytes: 3 << 20, ..ProcessStats::default() },
            config_toml: "[tcp]\nrequirepass = \"<(set)>\"\n",
            admin_on: false,
            disk: Some(DiskUse { files_bytes: 128 << 20, fs_free_bytes: 10 << 30, fs_size_bytes: 20 << 30 }),
        };
        let r = render(&v, 5);
        for needle in [
            "<meta http-equiv=\"refresh\" content=\"2\">",
            "<script src=\"/dashboard.js\" defer>",
            "<main id=\"live\">",
            "1h 02m 05s",
            "1 of 2",
            "1 (1 leading, 0 quiet)",
            "4.0 MiB of 64.0 MiB",
            "128.0 MiB in files; 10.0 GiB free of 20.0 GiB",
            "<td class=\"l\">leader</td>",
            "no durable writes",
            "error answers</td><td>4</td>",
            "&lt;(set)&gt;",
            "Off: set <code>admin.token</code>",
        ] {
            assert!(r.page.contains(needle), "{needle} missing from the page");
        }
        assert!(r.event.starts_with("id: 5\ndata: <div class=\"grid\""));
        assert!(!r.event.contains("Config in force"), "the config is not live");
        assert!(r.event.lines().all(|l| l.is_empty() || l.starts_with("id: ") || l.starts_with("data: ")));
    }
}
