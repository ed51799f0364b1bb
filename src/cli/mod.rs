//! The command line: clap's definitions, and the glue that runs each subcommand.

pub(crate) mod node;
pub(crate) mod output;
pub(crate) mod registry;
pub(crate) mod shown;
pub(crate) mod simulate;
mod terminate;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use overlay::auth::Secret;
use overlay::io::SharedRecv;
use overlay::limits::{SHARED_RECV_BUFFER_BYTES, SHARED_RECV_BUFFERS};

use node::NodeArgs;
use registry::RegistryArgs;
use simulate::SimulateArgs;

#[derive(Parser)]
#[command(
    name = "overlay",
    version,
    about = "A Chord-like structured P2P overlay: one registry, many messaging nodes, packets \
             routed by finger tables and verified end to end.",
    after_help = "Logging goes to standard error and is quiet by default (warnings only): set \
                  RUST_LOG=info or RUST_LOG=debug for more, e.g. RUST_LOG=overlay=debug."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The rule every flag's unit follows, at the end of `registry --help` and `node --help`.
pub(crate) const UNITS: &str = "Units: durations are in seconds (2.5 or 2.5s) unless \
                     the flag's name ends in its unit (--settle-ms, --busy-poll-us); sizes are \
                     in bytes (--window-bytes, --payload); --rate is packets per second per \
                     node.";

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the registry. Reads commands from standard input (type `help`).
    #[command(after_help = UNITS)]
    Registry(Box<RegistryArgs>),
    /// Run a messaging node. Reads commands from standard input (type `help`).
    #[command(after_help = UNITS)]
    Node(NodeArgs),
    /// Path lengths and load balance of an overlay computed in memory (no sockets), with the
    /// nodes' finger tables and next-hop code: the Chord paper's Fig. 8 and 10 (docs/CHORD.md).
    Simulate(SimulateArgs),
}

/// The finger rule `overlay simulate` builds tables with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Rule {
    /// Chord: finger i = successor(n + 2^i mod 2^m), lookups of random keys.
    Chord,
    /// The reference's: entry i = the node 2^i positions ahead, lookups of random other nodes.
    Positions,
}

/// What a scripted run's packets are addressed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Targets {
    /// Each packet to a random other node.
    Nodes,
    /// Each packet to a random key (Chord's identifiers, or node IDs under position fingers)
    /// that another node owns, routed by the key and delivered at its owner.
    Keys,
}

/// How `overlay simulate` assigns identifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Ids {
    /// Uniformly at random, distinct.
    Random,
    /// The first m bits of SHA-256 of each node's address (consistent hashing), made distinct.
    Hash,
}

/// The encoding of every message on every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Wire {
    /// Ours: little-endian, CRC32-checked packets, acks and a window, progress polls.
    Native,
    /// The reference's format (docs/PROTOCOL.md, "Classic encoding"), byte for byte: works
    /// with registries and nodes written by others (no CRC, no window, no progress polls; a run
    /// ends by a settle time).
    Classic,
}

#[derive(Args)]
pub(crate) struct Common {
    /// Wire format: `classic` speaks the reference's format with peers written by others.
    #[arg(long, value_enum, default_value_t = Wire::Native)]
    wire: Wire,
    /// Pin the event loop to this CPU core (default: one picked from the process ID).
    #[arg(long)]
    core: Option<usize>,
    /// Seed for random choices, challenge nonces included (default: from the operating
    /// system's random source; a fixed seed is for tests).
    #[arg(long)]
    seed: Option<u64>,
    /// A file holding a shared secret (at least 16 bytes): every connection, to the registry
    /// and between nodes, starts with a challenge-response keyed by it (HMAC-SHA256), and a
    /// peer without it is refused. Native wire only; registry and nodes need the same file.
    #[arg(long)]
    secret_file: Option<PathBuf>,
}

/// The shared receive buffers of a registry or a group of nodes.
pub(crate) const SHARED_RECV: SharedRecv = SharedRecv {
    buffers: SHARED_RECV_BUFFERS,
    buffer_bytes: SHARED_RECV_BUFFER_BYTES,
};

/// The smallest value a duration flag takes.
#[derive(Clone, Copy)]
pub(crate) enum Least {
    /// Anything above this.
    Above(f64),
    /// This or more.
    AtLeast(f64),
}

/// The seconds of a duration flag, every one alike: decimals allowed, and an optional `s`
/// suffix as `start 2.5s` at the console takes it (`2.5`, `2.5s`), from `least` to `max`.
pub(crate) fn seconds(text: &str, least: Least, max: f64) -> Result<f64, String> {
    let value = text.strip_suffix('s').unwrap_or(text).parse::<f64>().ok();
    let (fits, from) = match least {
        Least::Above(min) => (value.is_some_and(|s| s > min), format!("above {min}")),
        Least::AtLeast(min) => (value.is_some_and(|s| s >= min), format!("at least {min}")),
    };
    match value {
        Some(s) if fits && s <= max => Ok(s),
        _ => Err(format!(
            "seconds {from} and at most {max} (decimals allowed, an s after them too: 2.5 or \
             2.5s), not '{text}'"
        )),
    }
}

pub(crate) fn seed(common: &Common) -> u64 {
    common.seed.unwrap_or_else(rand::random)
}

/// The shared secret of `--secret-file`, if given (native wire only).
pub(crate) fn secret(common: &Common) -> Result<Option<Secret>> {
    let Some(path) = &common.secret_file else {
        return Ok(None);
    };
    if common.wire == Wire::Classic {
        bail!("--secret-file needs the native wire: classic peers know no challenge-response");
    }
    Secret::read_file(path)
        .map(Some)
        .map_err(|why| anyhow::anyhow!("--secret-file: {why}"))
}
/// A line for the operator on standard output. A closed or broken output (its reader went
/// away) is not an error of ours: the line is dropped, nothing panics.
pub(crate) fn say(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use overlay::registry::progress::CSV_HEADER;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    /// Duration flags: decimals, an optional `s`, the bounds; anything else refused.
    #[test]
    fn seconds_with_or_without_an_s() {
        let run = |text| seconds(text, Least::Above(0.0), 86_400.0);
        assert_eq!(run("2.5"), Ok(2.5));
        assert_eq!(run("2.5s"), Ok(2.5));
        assert_eq!(run("10"), Ok(10.0));
        assert_eq!(run("86400s"), Ok(86_400.0));
        for bad in [
            "0", "0s", "-1", "2.5ms", "1m", "s", "", "nan", "inf", "86401", "2.5 s",
        ] {
            let error = run(bad).unwrap_err();
            assert!(error.contains(&format!("not '{bad}'")), "{error}");
        }
        assert_eq!(seconds("0", Least::AtLeast(0.0), 1.0), Ok(0.0));
        assert!(seconds("0.5", Least::AtLeast(1.0), 10.0).is_err());
    }

    /// `--csv`'s help names every column the file has, in the header's order.
    #[test]
    fn csv_help_names_every_column() {
        let command = Cli::command();
        let registry = command.find_subcommand("registry").expect("registry");
        let csv = registry
            .get_arguments()
            .find(|arg| arg.get_id() == "csv")
            .expect("--csv");
        let help = csv
            .get_long_help()
            .or(csv.get_help())
            .expect("help")
            .to_string();
        let mut from = 0;
        for column in CSV_HEADER.split(',') {
            let at = help[from..]
                .find(column)
                .unwrap_or_else(|| panic!("{column} not in order in: {help}"));
            from += at + column.len();
        }
    }
}
