//! `vigil-loadgen`: parses the command line, installs the Ctrl-C handling, runs the generator (or
//! the search) on the chosen backend and prints (and optionally writes) the summary.
//!
//! Invariants: the first Ctrl-C (or SIGTERM) only sets a flag the loop polls, so the run ends early
//! and still reports; a second one exits at once.
#![forbid(unsafe_code)]

use anyhow::{Context, Result};
use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use vigil_bench::backend::{run_selected, Options};
use vigil_bench::cli::Cli;
use vigil_bench::report::{write_interval_log, Summary};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: &Cli) -> Result<()> {
    let spec = cli.load_spec()?;
    let opts = Options { cores: cli.cores()?, progress: !cli.quiet, search: cli.search_spec(&spec)? };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag before the second registration sets it: a second
        // signal exits with status 1 instead of waiting for the drain.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing the signal handler")?;
    }
    let done = run_selected(cli, &spec, &opts, &stop)?;
    let mut summary = Summary::new(cli.backend.name(), &cli.targets(), &spec, &done.out);
    summary.hist_log = cli.hist_log.as_ref().map(|p| p.display().to_string());
    summary.search = done.search;
    if let Some(search) = &summary.search {
        // The reported trial's spec: its rate and length, not the search's range.
        if let Some(t) =
            search.trials.iter().find(|t| Some(t.rate) == search.best_rate).or(search.trials.last())
        {
            summary.offered_rps = t.rate.round() as u64;
        }
    }
    print!("{}", summary.render());
    if let Some(path) = &cli.json {
        summary.write_json(path)?;
    }
    if let Some(path) = &cli.hist_log {
        write_interval_log(path, &done.out)?;
    }
    Ok(())
}
