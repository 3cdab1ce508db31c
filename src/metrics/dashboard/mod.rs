//! The operators' dashboard at `/` on the web port (docs/OPERATIONS.md, "The dashboard"): one
//! server-rendered HTML page, rendered once per second by the dashboard thread from the shards'
//! published snapshots and the `History`, and kept in a `DashboardSlot` that every shard's web
//! sessions copy from.
//!
//! - Without JavaScript the page is whole and reloads itself (`<meta http-equiv="refresh">`
//!   inside `<noscript>`, and a Refresh link).
//! - With JavaScript, `/dashboard.js` (`SCRIPT`) opens `/api/live`, a server-sent event stream
//!   whose every event is the page's live part (`<main id="live">`) rendered again, and puts it
//!   in place: the same HTML, one renderer.
//!
//! Rendering once for every viewer keeps the shards' cost to a copy per viewer and second: no
//! shard renders, and no shard is asked anything.
//!
//! Invariants: everything shown that is not a number or fixed text is escaped (`html_escape`);
//! an event's data lines hold no carriage return or empty line (the SSE framing); a rendering's
//! `seq` is larger than every earlier one's.

mod chart;
mod page;

pub use page::{render, DiskUse, NodeView};

use arc_swap::ArcSwapOption;
use std::sync::Arc;

/// Seconds of history the chart and the rates cover.
pub const HISTORY_SECONDS: usize = 60;

/// How often the dashboard is rendered again (and each live viewer sent an event), ms.
pub const RENDER_EVERY_MS: u64 = 1_000;

/// The script of `/dashboard.js`: takes the live events into the page (see the module header).
pub const SCRIPT: &str = r#""use strict";
(function () {
  var live = document.getElementById("live"), mode = document.getElementById("mode");
  if (!live || !window.EventSource) return;
  var events = new EventSource("/api/live");
  events.onmessage = function (e) {
    live.innerHTML = e.data;
    document.body.setAttribute("data-live", "on");
    if (mode) mode.textContent = "live: updated every second";
  };
  events.onerror = function () {
    document.body.setAttribute("data-live", "lost");
    if (mode) mode.textContent = "live updates lost: reconnecting (or reload)";
  };
})();
"#;

/// One rendering of the dashboard.
#[derive(Debug, Default)]
pub struct Rendered {
    /// Its number (the first is 1).
    pub seq: u64,
    /// The whole page.
    pub page: String,
    /// The live part as one server-sent event (`id:` and `data:` lines, a blank line).
    pub event: String,
}

impl Rendered {
    /// Rendering `seq` of `html` (the page) whose live part is `live`.
    pub fn new(seq: u64, page: String, live: &str) -> Self {
        let mut event = String::with_capacity(live.len() + live.len() / 32 + 16);
        event.push_str("id: ");
        event.push_str(&seq.to_string());
        event.push('\n');
        for line in live.trim_end_matches(['\n', '\r']).split('\n') {
            event.push_str("data: ");
            event.push_str(line.trim_end_matches('\r'));
            event.push('\n');
        }
        event.push('\n');
        Self { seq, page, event }
    }
}

/// The latest rendering, shared by the dashboard thread (which stores) and the web sessions
/// (which load): a pointer swap, no lock.
#[derive(Debug, Default)]
pub struct DashboardSlot {
    latest: ArcSwapOption<Rendered>,
}

impl DashboardSlot {
    /// Stores a new rendering.
    pub fn store(&self, r: Rendered) {
        self.latest.store(Some(Arc::new(r)));
    }

    /// The latest rendering (none before the first).
    pub fn latest(&self) -> Option<Arc<Rendered>> {
        self.latest.load_full()
    }

    /// The latest rendering's number (0: none yet), without taking a reference.
    pub fn seq(&self) -> u64 {
        self.latest.load().as_ref().map_or(0, |r| r.seq)
    }
}

/// A duration in us, short: `850 µs`, `1.2 ms`, `35 ms`, `2.5 s`.
pub fn fmt_us(us: f64) -> String {
    let ms = us / 1e3;
    if us < 1e3 {
        format!("{us:.0} µs")
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1e3 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1e3)
    }
}

/// A rate per second, short: `0`, `12.5`, `3.2k`, `1.05M`.
pub fn fmt_rate(r: f64) -> String {
    if r < 1e3 {
        let s = format!("{r:.1}");
        s.strip_suffix(".0").map_or(s.clone(), str::to_string)
    } else if r < 1e6 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{:.2}M", r / 1e6)
    }
}

/// Bytes, short: `512 B`, `4.0 KiB`, `1.5 MiB`, `2.0 GiB`.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_the_live_part_in_data_lines() {
        let r = Rendered::new(7, "<html>".into(), "<p>a</p>\n<p>b</p>\r\n");
        assert_eq!(r.event, "id: 7\ndata: <p>a</p>\ndata: <p>b</p>\n\n");
        let slot = DashboardSlot::default();
        assert_eq!(slot.seq(), 0);
        slot.store(r);
        assert_eq!((slot.seq(), slot.latest().unwrap().page.as_str()), (7, "<html>"));
    }

    #[test]
    fn numbers_read_short() {
        assert_eq!(
            [fmt_us(850.0), fmt_us(1_234.0), fmt_us(35_000.0), fmt_us(2.5e6)],
            ["850 µs", "1.2 ms", "35 ms", "2.5 s"]
        );
        assert_eq!(
            [fmt_rate(0.0), fmt_rate(12.5), fmt_rate(3_200.0), fmt_rate(1_050_000.0)],
            ["0", "12.5", "3.2k", "1.05M"]
        );
        assert_eq!([fmt_bytes(512), fmt_bytes(4096), fmt_bytes(3 << 29)], ["512 B", "4.0 KiB", "1.5 GiB"]);
    }
}
