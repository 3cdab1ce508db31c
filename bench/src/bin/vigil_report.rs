//! `vigil-report`: one or more `vigil-loadgen` runs (each a `--json` summary and its `--hist-log`
//! interval log) into one self-contained HTML report with inline SVG plots, and/or a plain-text
//! table on stdout.
//!
//! Invariants: the first run is the baseline; a run's `.hlog` comes from its JSON's `hist_log`
//! (relative to the JSON's directory) or else sits next to the JSON with the extension `.hlog`; a
//! missing `.hlog` is a warning (the report says what it could not draw), a missing or unparsable
//! JSON is an error.
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;
use vigil_bench::plot;

/// Turns vigil-loadgen runs into one HTML report (inline SVG plots, no JavaScript) and/or a
/// plain-text table.
///
/// Each RUN.json is a `vigil-loadgen --json` summary; its interval log (`--hist-log`) is the JSON's
/// `hist_log` key, else RUN.hlog next to it. The first run is the baseline for ratios.
///
/// Example: vigil-report --title "ping, kernel vs DPDK" --out report.html --label kernel
/// --label dpdk kernel.json dpdk.json
#[derive(Parser, Debug)]
#[command(name = "vigil-report", version)]
struct Cli {
    /// Write the HTML report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the plain-text table to stdout (as well as writing --out, if given).
    #[arg(long)]
    text: bool,
    /// The report's title.
    #[arg(long, default_value = "Vigil load report")]
    title: String,
    /// Name of a run in legends and tables, one per run in order (repeatable); runs without one
    /// are named by their JSON file's stem.
    #[arg(long = "label", value_name = "NAME")]
    labels: Vec<String>,
    /// vigil-loadgen JSON summaries; the first is the baseline.
    #[arg(value_name = "RUN.json", required = true)]
    runs: Vec<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.out.is_none() && !cli.text {
        bail!("nothing to do: give --out FILE for the HTML report and/or --text for the table");
    }
    if cli.labels.len() > cli.runs.len() {
        bail!("{} labels for {} runs: give at most one --label per run", cli.labels.len(), cli.runs.len());
    }
    let runs = cli
        .runs
        .iter()
        .enumerate()
        .map(|(i, path)| plot::load_run(path, cli.labels.get(i).map(String::as_str)))
        .collect::<Result<Vec<_>>>()?;
    if let Some(out) = &cli.out {
        for r in &runs {
            for n in &r.notes {
                eprintln!("vigil-report: {}: {n}", r.label);
            }
        }
        let html = plot::render_html(&runs, &cli.title, &plot::generation_date());
        std::fs::write(out, html).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("vigil-report: wrote {}", out.display());
    }
    if cli.text {
        print!("{}\n{}", cli.title, plot::render_text(&runs));
    }
    Ok(())
}
