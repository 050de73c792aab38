//! Project automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask ci`: what `.ci/run` does, on this machine: formatting,
//!   lints, and the README's test command with every test required.
//! - `cargo xtask bench [store|auth|upload|query|notify|log]`: the benchmarks behind BENCHMARKS.md, in
//!   release mode; PostgreSQL figures need `CPIS_TEST_DATABASE_URL`.

use std::process::{Command, ExitCode};

const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(args.get(1).map(String::as_str).unwrap_or("store")),
        _ => {
            eprintln!(
                "usage: cargo xtask ci | cargo xtask bench [store|auth|upload|query|notify|log]"
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
