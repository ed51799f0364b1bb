//! `overlay`: the registry and the messaging node of a Chord-like overlay.

mod cli;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use overlay::io;

use cli::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours only for a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    // `simulate` opens no socket and no ring: it runs on any kernel.
    let uses_io_uring = !matches!(cli.command, Command::Simulate(_));
    if uses_io_uring && let Err(error) = io::check_support() {
        eprintln!("overlay: {error}");
        return ExitCode::from(1);
    }
    let result = match cli.command {
        Command::Registry(args) => cli::registry::run_registry(*args),
        Command::Node(args) => cli::node::run_node(args),
        Command::Simulate(args) => cli::simulate::run_simulate(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("overlay: {error:#}");
            ExitCode::from(1)
        }
    }
}
