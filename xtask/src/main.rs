//! Project automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask ci`: what `.ci/run` does, on this machine: formatting,
//!   lints, and the README's test command with every test required.
//! - `cargo xtask bench [store|auth|upload|query|notify|log|pages]`: the benchmarks behind BENCHMARKS.md, in
//!   release mode; PostgreSQL figures need `CPIS_TEST_DATABASE_URL`.
//! - `cargo xtask bench log-overhead`: the query benchmark with and without
//!   access records in the verifiable log, alternated in one run.

use std::process::{Command, ExitCode};

const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") if args.get(1).map(String::as_str) == Some("log-overhead") => log_overhead(),
        Some("bench") => bench(args.get(1).map(String::as_str).unwrap_or("store")),
        _ => {
            eprintln!(
                "usage: cargo xtask ci | cargo xtask bench [store|auth|upload|query|notify|log|pages|log-overhead]"
            );
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn ci() -> Result<(), String> {
    run(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    run(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let mut test = Command::new("cargo");
    test.args(["test", "--workspace"])
        .env("CPIS_REQUIRE_ALL", "1");
    if std::env::var_os("CPIS_TEST_DATABASE_URL").is_none() {
        test.env("CPIS_TEST_DATABASE_URL", LOCAL_POSTGRES);
    }
    run(&mut test)
}

fn bench(which: &str) -> Result<(), String> {
    let mut command = Command::new("cargo");
    command.args(["bench", "-p", "cpis", "--bench", which]);
    if std::env::var_os("CPIS_TEST_DATABASE_URL").is_none() {
        command.env("CPIS_TEST_DATABASE_URL", LOCAL_POSTGRES);
    }
    run(&mut command)
}

/// Runs the query benchmark built normally and built with the stores'
/// `bench-without-log` feature (in its own target directory, so neither build
/// undoes the other), alternating so both see the same machine, and prints
/// each figure's mean with the ratio of logged to unlogged.
fn log_overhead() -> Result<(), String> {
    const ROUNDS: usize = 3;
    let mut logged: Vec<(String, f64)> = Vec::new();
    let mut unlogged: Vec<(String, f64)> = Vec::new();
    for round in 1..=ROUNDS {
        for with_log in [true, false] {
            let mut command = Command::new("cargo");
            command.args(["bench", "-p", "cpis", "--bench", "query"]);
            if !with_log {
                command
                    .args(["--features", "bench-without-log"])
                    .env("CARGO_TARGET_DIR", "target/bench-without-log");
            }
            if std::env::var_os("CPIS_TEST_DATABASE_URL").is_none() {
                command.env("CPIS_TEST_DATABASE_URL", LOCAL_POSTGRES);
            }
            let output = command
                .output()
                .map_err(|error| format!("cannot run {command:?}: {error}"))?;
            if !output.status.success() {
                return Err(format!(
                    "{command:?} failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            let text = String::from_utf8_lossy(&output.stdout);
            let label = if with_log { "with the log" } else { "without" };
            for line in text.lines() {
                println!("round {round}, {label}: {line}");
                let Some(figure) = line.strip_prefix("figure: ") else {
                    continue;
                };
                let Some((name, value)) = figure.rsplit_once(' ') else {
                    continue;
                };
                let Ok(value) = value.parse::<f64>() else {
                    continue;
                };
                let into = if with_log { &mut logged } else { &mut unlogged };
                into.push((name.to_owned(), value));
            }
        }
    }
    let mean = |figures: &[(String, f64)], name: &str| {
        let values: Vec<f64> = figures
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    let mut names: Vec<&String> = Vec::new();
    for (name, _) in &logged {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        let (with, without) = (mean(&logged, name), mean(&unlogged, name));
        // `…-cpu-us` figures are the process's CPU time a look, the rest looks a second.
        let unit = if name.ends_with("-cpu-us") {
            "us of CPU a look"
        } else {
            "queries/s"
        };
        println!(
            "{name} {unit}, mean of {ROUNDS}: with the log {with:.1}, without {without:.1}; ratio {:.3}",
            with / without
        );
    }
    Ok(())
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}
