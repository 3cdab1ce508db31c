//! `vigil-report`'s library: load-generator runs (the `--json` summary and the `--hist-log`
//! interval log) into one self-contained HTML report with inline SVG plots, and a plain-text table.
//!
//! From the inside out: [`svg`] (a minimal line chart), [`input`] (lenient reading of a run),
//! [`charts`] (percentile spectrum, latency over time, rate over time), [`table`] (the comparison
//! table, shared by HTML and text) and [`html`] (the page).
//!
//! Invariants: the output needs nothing but a browser (no JavaScript, no external assets); the
//! first run is the baseline every ratio is against; whatever an input lacks is said on the page
//! rather than drawn as zero.

pub mod charts;
pub mod html;
pub mod input;
pub mod svg;
pub mod table;

pub use html::render_html;
pub use input::{load_run, Run};
pub use table::render_text;

use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DD HH:MM UTC` for `unix_s` seconds since the epoch (no date crate for one line).
pub fn format_utc(unix_s: u64) -> String {
    let days = i64::try_from(unix_s / 86_400).unwrap_or(0);
    let secs = unix_s % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

/// The report's date: `SOURCE_DATE_EPOCH` when set (reproducible checked-in reports), else now.
pub fn generation_date() -> String {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    format_utc(now)
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(1_735_689_599), "2024-12-31 23:59 UTC");
    }
}
