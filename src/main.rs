//! `overlay`: the registry and the messaging node of a Chord-like overlay.

use std::io::{IsTerminal, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use overlay::auth::Secret;
use overlay::io::{self, BusyPoll, DriverConfig, SharedRecv};
use overlay::limits::{
    BUSY_POLL_US_MAX, FRAME_BYTES_MAX, GROUP_NODES_MAX, ID_BITS_DEFAULT, ID_BITS_MAX,
    IN_FLIGHT_BUDGET_BYTES, INTERRUPT_CHECK_NS, INTERVAL_NS_MIN, NODE_CONNECTIONS_MAX,
    NODE_OUTBOUND_RESERVED, NODES_MAX, OPERATOR_WAIT_SECS_MAX, PACKETS_PER_NODE_MAX,
    PAYLOAD_BYTES_MAX, PROGRESS_LINE_GAP_NS_MIN, PROGRESS_SHOWN_GAP_NS_MIN,
    READY_TIMEOUT_DEFAULT_NS, RECV_BUFFER_BYTES, REGISTRY_CONNECTIONS_MAX,
    REGISTRY_RECV_BUFFER_BYTES, RUN_SECS_MAX, SEND_BUFFER_BYTES, SETTLE_DEFAULT_NS,
    SHARED_RECV_BUFFER_BYTES, SHARED_RECV_BUFFERS, STALL_TIMEOUT_DEFAULT_NS,
};
use overlay::machine::{CloseReason, ConnId, Effect, Machine, Nanos};
use overlay::metrics::{self, Published, Snapshot};
use overlay::node::{Group, Node, NodeConfig};
use overlay::registry::progress::{CSV_HEADER, ProgressPoint, ProgressTracker};
use overlay::registry::{Goal, Registry, RegistryConfig, Script};
use overlay::routing::{Fingers, check_overlay, id_bits_for, nr_for};
use overlay::summary::{RunReport, Settings};
use overlay::wire::Codec;
use overlay::wire::classic::Classic;
use overlay::wire::native::Native;

#[derive(Parser)]
#[command(
    name = "overlay",
    version,
    about = "A Chord-like structured P2P overlay: one registry, many messaging nodes, packets \
             routed by finger tables and verified end to end.",
    after_help = "Logging goes to standard error and is quiet by default (warnings only): set \
                  RUST_LOG=info or RUST_LOG=debug for more, e.g. RUST_LOG=overlay=debug."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The rule every flag's unit follows, at the end of `registry --help` and `node --help`.
const UNITS: &str = "Units: durations are in seconds (fractions where the help says so) unless \
                     the flag's name ends in its unit (--settle-ms, --busy-poll-us); sizes are \
                     in bytes (--window-bytes, --payload); --rate is packets per second per \
                     node.";

#[derive(Subcommand)]
enum Command {
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
enum Rule {
    /// Chord: finger i = successor(n + 2^i mod 2^m), lookups of random keys.
    Chord,
    /// The reference's: entry i = the node 2^i positions ahead, lookups of random other nodes.
    Positions,
}

/// How `overlay simulate` assigns identifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Ids {
    /// Uniformly at random, distinct.
    Random,
    /// The first m bits of SHA-256 of each node's address (consistent hashing), made distinct.
    Hash,
}

#[derive(Args)]
struct SimulateArgs {
    /// Nodes in the overlay.
    #[arg(long)]
    nodes: usize,
    /// Finger rule.
    #[arg(long, value_enum, default_value_t = Rule::Chord)]
    rule: Rule,
    /// Positions rule: entries per table (default: ceil(log2 NODES), the most the ring
    /// allows, as scripted runs pick).
    #[arg(long)]
    nr: Option<usize>,
    /// Identifier bits m (1..=160).
    #[arg(long, default_value_t = overlay::limits::CHORD_ID_BITS_MAX)]
    id_bits: u32,
    /// How identifiers are assigned.
    #[arg(long, value_enum, default_value_t = Ids::Random)]
    ids: Ids,
    /// Random lookups to walk.
    #[arg(long, default_value_t = 100_000)]
    lookups: u64,
    /// Instead of random lookups, every node to every other node.
    #[arg(long)]
    all_pairs: bool,
    /// Also place this many random keys and report keys per node (the paper's Fig. 8).
    #[arg(long)]
    keys: Option<u64>,
    /// Seed of every random choice (identifiers, lookups, keys).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn run_simulate(args: SimulateArgs) -> Result<u8> {
    use overlay::chord::FingerRule;
    use overlay::chord::simulate::{Assignment, Config, simulate};
    let rule = match args.rule {
        Rule::Chord => FingerRule::Chord,
        Rule::Positions => FingerRule::Positions {
            nr: args.nr.unwrap_or_else(|| nr_for(args.nodes)),
        },
    };
    let report = simulate(&Config {
        nodes: args.nodes,
        rule,
        id_bits: args.id_bits,
        assignment: match args.ids {
            Ids::Random => Assignment::Random,
            Ids::Hash => Assignment::Hashed,
        },
        lookups: args.lookups,
        all_pairs: args.all_pairs,
        keys: args.keys,
        seed: args.seed,
    })
    .map_err(|why| anyhow::anyhow!("simulate: {why}"))?;
    if args.json {
        say(format_args!("{}", serde_json::to_string_pretty(&report)?));
    } else {
        say(format_args!("{}", report.to_string().trim_end()));
    }
    Ok(0)
}

/// The encoding of every message on every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Wire {
    /// Ours: little-endian, CRC32-checked packets, acks and a window, progress polls.
    Native,
    /// The reference's format (docs/PROTOCOL.md, "Classic encoding"), byte for byte: works
    /// with registries and nodes written by others (no CRC, no window, no progress polls; a run
    /// ends by a settle time).
    Classic,
}

#[derive(Args)]
struct Common {
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

/// What the registry's standard output carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum SummaryFormat {
    /// Status lines, progress and each run's summary table, for a person.
    Table,
    /// JSON only, as `iperf3 -J` does: scripted, one object at exit (the result file's);
    /// at the console, one line of JSON per run as it ends. Everything else goes to standard
    /// error.
    Json,
}

/// Seconds (decimals allowed), above 0 and at most a day.
fn seconds_arg(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= RUN_SECS_MAX => Ok(s),
        _ => Err(format!(
            "seconds above 0 and at most {RUN_SECS_MAX} (decimals allowed), not '{text}'"
        )),
    }
}

/// `--interval`: seconds, at least [`INTERVAL_NS_MIN`].
fn interval_arg(text: &str) -> Result<f64, String> {
    let min = INTERVAL_NS_MIN as f64 / 1e9;
    match seconds_arg(text) {
        Ok(s) if s >= min => Ok(s),
        _ => Err(format!(
            "seconds, at least {min} (one poll of every node per interval) and at most \
             {RUN_SECS_MAX}, not '{text}'"
        )),
    }
}

fn nanos(seconds: f64) -> Nanos {
    (seconds * 1e9) as Nanos
}

#[derive(Args)]
#[command(group(ArgGroup::new("goal").args(["start", "duration"])))]
struct RegistryArgs {
    /// Port to listen on; 0 or omitted picks a free port (printed at start).
    port: Option<u16>,
    /// Local address to listen on.
    #[arg(short, long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Node IDs are drawn from 0..2^BITS [default: 7, the reference's 0..=127, or in scripted
    /// mode the fewest bits that give each of --nodes an ID].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=ID_BITS_MAX as i64))]
    id_bits: Option<u32>,
    /// Bytes of data a source may have unacknowledged (default: nodes x 128 KiB, at most
    /// 256 MiB / nodes, within 256 KiB..=4 MiB: 1.25 MiB for 10 nodes, 4 MiB from 32 to 64). At least the largest frame (64 KiB): a smaller window would stall
    /// a source on every frame; at most 256 MiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(FRAME_BYTES_MAX as u64..=IN_FLIGHT_BUDGET_BYTES))]
    window_bytes: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100; port 0 picks
    /// one, printed at start): packets sent, received, relayed, corrupted and dropped, over
    /// all nodes and by node, packets by hops, runs by verdict, the receive rate and an
    /// end-to-end latency histogram, from the registry's counter polls (about once a second
    /// during a run). Served by a thread of its own, one connection at a time.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Write the listening port to this file once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// Scripted mode: wait for this many nodes, set up, run, print the summary and exit
    /// (status 0 only if every run passed; Ctrl-C ends the run early with its report, status
    /// 130; a second Ctrl-C exits at once).
    #[arg(short, long, requires = "goal")]
    nodes: Option<usize>,
    /// Scripted mode: routing-table size [default: ceil(log2 NODES), so paths stay about
    /// log2 N long at any size]. Position fingers only.
    #[arg(long)]
    nr: Option<usize>,
    /// Scripted mode: the finger rule. `positions` (the reference's tables: entry i = the
    /// node 2^i positions ahead) or `chord` (finger i = successor(n + 2^i) over identifiers of
    /// --chord-bits bits, as `overlay simulate` builds them).
    #[arg(long, value_enum, default_value_t = Rule::Positions)]
    fingers: Rule,
    /// Scripted mode, Chord fingers: identifier bits m (1..=160).
    #[arg(long, default_value_t = overlay::limits::CHORD_ID_BITS_MAX, value_parser = clap::value_parser!(u32).range(1..=overlay::limits::CHORD_ID_BITS_MAX as i64))]
    chord_bits: u32,
    /// Scripted mode, Chord fingers: how the registry assigns identifiers (distinct either
    /// way): at random, or the first bits of SHA-256 of each node's address.
    #[arg(long, value_enum, default_value_t = Ids::Random)]
    chord_ids: Ids,
    /// Scripted mode: packets each node sends per run (at most 10^12; for longer runs give
    /// --duration).
    #[arg(short, long, requires = "nodes", value_parser = clap::value_parser!(u64).range(0..=PACKETS_PER_NODE_MAX))]
    start: Option<u64>,
    /// Scripted mode: seconds each node sends per run (instead of --start); then the run
    /// drains and verifies every packet sent (native wire only).
    #[arg(short = 't', long, requires = "nodes", value_parser = seconds_arg)]
    duration: Option<f64>,
    /// Seconds at the start of every run left out of its packets/s and latency (the summary
    /// says so; native wire only).
    #[arg(long, value_parser = seconds_arg)]
    warmup: Option<f64>,
    /// Print a line every this many seconds of a run with the rate, latency and progress of
    /// that interval (at least 0.1; native wire only).
    #[arg(short, long, value_parser = interval_arg)]
    interval: Option<f64>,
    /// Scripted mode: how many runs.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Extra payload bytes per packet (scripted mode).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=(PAYLOAD_BYTES_MAX - 4) as i64))]
    payload: u32,
    /// Write the result as JSON to this path (scripted or at the console): the settings, the
    /// total of every run and the runs, rewritten as each run ends and at exit. Checked
    /// before the registry listens.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the progress of every run as CSV to this path: a header, then one row per
    /// progress round (about a second apart) and one at the end of each run. Columns: run;
    /// elapsed_s (since start); packets_sent, packets_received, packets_relayed (so far);
    /// rate_pps (packets received per second since the previous row); latency_p50_us,
    /// latency_p99_us (end to end, of the packets delivered since the previous row; on a
    /// run's last row, of the whole run). `tools/plot.py` draws it.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Scripted mode: seconds to wait for every node to register and set up.
    #[arg(long, default_value_t = READY_TIMEOUT_DEFAULT_NS / 1_000_000_000, value_parser = clap::value_parser!(u64).range(1..=OPERATOR_WAIT_SECS_MAX))]
    ready_timeout: u64,
    /// Seconds without any progress after which a run fails.
    #[arg(long, default_value_t = STALL_TIMEOUT_DEFAULT_NS / 1_000_000_000, value_parser = clap::value_parser!(u64).range(1..=OPERATOR_WAIT_SECS_MAX))]
    stall_timeout: u64,
    /// Packets per second each node originates at most (0 = as fast as flow control allows;
    /// native wire only). For latency at light load.
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// What standard output carries: `table` (status lines and each run's summary, for a
    /// person) or `json` (JSON only; every other line goes to standard error).
    #[arg(short, long, value_enum, default_value_t = SummaryFormat::Table)]
    format: SummaryFormat,
    /// `--wire classic` only: classic nodes answer a summary request once and reset, so the
    /// registry cannot poll them; it waits this many milliseconds after the last
    /// task-finished (packets may still be in flight), then asks for the final summaries.
    #[arg(long, default_value_t = SETTLE_DEFAULT_NS / 1_000_000, value_parser = clap::value_parser!(u64).range(0..=OPERATOR_WAIT_SECS_MAX * 1000))]
    settle_ms: u64,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct NodeArgs {
    /// Host name or address of the registry.
    registry_host: String,
    /// Port of the registry.
    registry_port: u16,
    /// Local address to listen on and to connect from (default: the address that routes to
    /// the registry).
    #[arg(short, long)]
    bind: Option<IpAddr>,
    /// Once the event loop runs out of work, keep polling for this many microseconds before
    /// sleeping, yielding the core to any other runnable process in between: lowers latency
    /// at light load (no wake-up of an idle core) at the cost of a busy core. `auto`
    /// (default): poll up to 1 ms only while traffic is light and recent and the core has
    /// nothing else to run; 0 sleeps at once.
    #[arg(long, default_value = "auto", value_parser = parse_busy_poll)]
    busy_poll_us: BusyPoll,
    /// Seconds to keep trying to reach the registry and register (it may start after the
    /// node, or lose a registration): attempts on fresh connections, 0.1 s apart at first and
    /// at most 2 s; an attempt unanswered for 5 s is tried again. 0 tries once.
    #[arg(long, default_value_t = overlay::limits::JOIN_WAIT_DEFAULT_SECS, value_parser = clap::value_parser!(u64).range(0..=OPERATOR_WAIT_SECS_MAX))]
    registry_wait: u64,
    /// Run this many nodes in this process, on one event loop: each listens on its own port
    /// of the --bind address, registers and keeps its links as a node alone in its process
    /// would. Console commands go to every node; each line a node prints starts with its
    /// address. The process exits once every node has. Link buffers are then sized by
    /// traffic instead of mapped up front.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=GROUP_NODES_MAX as i64))]
    count: u32,
    #[command(flatten)]
    common: Common,
}

/// `--busy-poll-us`: `auto`, or microseconds up to `BUSY_POLL_US_MAX` (0: never poll).
fn parse_busy_poll(value: &str) -> Result<BusyPoll, String> {
    if value == "auto" {
        return Ok(BusyPoll::Auto);
    }
    match value.parse::<u64>() {
        Ok(0) => Ok(BusyPoll::Off),
        Ok(us) if us <= BUSY_POLL_US_MAX => Ok(BusyPoll::For(Duration::from_micros(us))),
        _ => Err(format!(
            "expected `auto` or microseconds from 0 to {BUSY_POLL_US_MAX}"
        )),
    }
}

/// The shared receive buffers of a registry or a group of nodes.
const SHARED_RECV: SharedRecv = SharedRecv {
    buffers: SHARED_RECV_BUFFERS,
    buffer_bytes: SHARED_RECV_BUFFER_BYTES,
};

fn seed(common: &Common) -> u64 {
    common.seed.unwrap_or_else(rand::random)
}

/// The shared secret of `--secret-file`, if given (native wire only).
fn secret(common: &Common) -> Result<Option<Secret>> {
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

impl RegistryArgs {
    /// `--id-bits`, or its default for `--nodes`.
    fn id_bits(&self) -> u32 {
        self.id_bits
            .unwrap_or_else(|| self.nodes.map_or(ID_BITS_DEFAULT, id_bits_for))
    }

    /// `--nr`, or its default for `--nodes` (scripted mode only).
    fn nr(&self) -> usize {
        self.nr
            .unwrap_or_else(|| self.nodes.map_or(overlay::console::DEFAULT_NR, nr_for))
    }

    /// The finger rule of a scripted setup.
    fn fingers(&self) -> Fingers {
        match self.fingers {
            Rule::Positions => Fingers::Positions { nr: self.nr() },
            Rule::Chord => Fingers::Chord {
                bits: self.chord_bits,
                hashed: self.chord_ids == Ids::Hash,
            },
        }
    }
}

/// Refuses a scripted session that cannot work, before anything listens or registers: every
/// limit a node's registration or the overlay's setup would otherwise hit later.
fn check_script(args: &RegistryArgs, nodes: usize) -> Result<()> {
    if nodes > NODES_MAX {
        bail!("--nodes {nodes}: the registry takes at most {NODES_MAX} nodes");
    }
    let id_bits = args.id_bits();
    let ids = 1u64 << id_bits;
    if nodes as u64 > ids {
        bail!(
            "--nodes {nodes} needs {nodes} distinct IDs, but --id-bits {id_bits} gives {ids}: \
             use --id-bits {} or more",
            id_bits_for(nodes)
        );
    }
    if let (Some(warmup), Some(duration)) = (args.warmup, args.duration)
        && warmup >= duration
    {
        bail!("--warmup {warmup} must be shorter than --duration {duration}");
    }
    if args.fingers == Rule::Chord {
        if args.nr.is_some() {
            bail!(
                "--nr sets the size of position tables: Chord fingers are one per distinct successor(n + 2^i)"
            );
        }
        if args.chord_bits < 64 && nodes as u64 > 1u64 << args.chord_bits {
            bail!(
                "--nodes {nodes} needs {nodes} distinct identifiers, but --chord-bits {} gives {}",
                args.chord_bits,
                1u64 << args.chord_bits
            );
        }
        return Ok(());
    }
    let nr = args.nr();
    check_overlay(nodes, nr).map_err(|why| anyhow::anyhow!("--nodes {nodes} --nr {nr}: {why}"))
}

fn run_registry(args: RegistryArgs) -> Result<u8> {
    match args.common.wire {
        Wire::Native => run_registry_with::<Native>(args),
        Wire::Classic => {
            if args.id_bits() > 31 {
                bail!("--wire classic carries IDs as i32: --id-bits must be at most 31");
            }
            if args.payload != 0 {
                bail!("--wire classic packets carry one i32: --payload is not available");
            }
            if args.fingers == Rule::Chord {
                bail!(
                    "--wire classic nodes route by position tables: --fingers chord is native only"
                );
            }
            if args.rate != 0 {
                bail!("--wire classic nodes send as fast as they can: --rate is not available");
            }
            for (given, flag) in [
                (args.duration.is_some(), "--duration"),
                (args.warmup.is_some(), "--warmup"),
                (args.interval.is_some(), "--interval"),
            ] {
                if given {
                    bail!(
                        "--wire classic nodes cannot be polled or told to stop: {flag} is not \
                         available"
                    );
                }
            }
            run_registry_with::<Classic>(args)
        }
    }
}

fn run_registry_with<C: Codec>(args: RegistryArgs) -> Result<u8> {
    // Everything an operator typed is checked, and every file opened, before the registry
    // listens: a mistake costs nobody a registration or a run.
    if let Some(nodes) = args.nodes {
        check_script(&args, nodes)?;
    }
    let secret = secret(&args.common)?;
    let json_stdout = args.format == SummaryFormat::Json;
    let out = Out { json_stdout };
    let result_file = match &args.json {
        Some(path) => Some(ResultFile::create(path)?),
        None => None,
    };
    let csv = match &args.csv {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(file, "{CSV_HEADER}")
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some((file, path.clone()))
        }
        None => None,
    };
    let seed = seed(&args.common);
    let settings = Settings {
        version: env!("CARGO_PKG_VERSION"),
        host: host_name(),
        started_at: format!("{:.0}", jiff::Timestamp::now()),
        wire: C::NAME,
        finger_rule: None,
        nr: None,
        id_bits: args.id_bits(),
        window_bytes: None,
        rate_per_s: args.rate,
        extra_payload_bytes: None,
        seed,
    };
    let metrics = match args.metrics {
        Some(addr) => Some(
            metrics::bind(addr).with_context(|| format!("--metrics: cannot listen on {addr}"))?,
        ),
        None => None,
    };
    let (listener, local) = io::listen(SocketAddr::new(args.bind, args.port.unwrap_or(0)))
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port.unwrap_or(0)))?;
    out.status(format_args!("Registry listening on {local}"));
    let published = match metrics {
        Some((metrics_listener, metrics_local)) => {
            let published = Published::default();
            metrics::serve(metrics_listener, published.clone())
                .context("--metrics: cannot start its thread")?;
            out.status(format_args!("Metrics at http://{metrics_local}/metrics"));
            Some(published)
        }
        None => None,
    };
    if C::NAME != Native::NAME {
        out.status(format_args!("Wire format: {}", C::NAME));
    }
    if let Some(path) = &args.port_file {
        std::fs::write(path, format!("{}\n", local.port()))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let goal = match (args.start, args.duration) {
        (Some(packets), _) => Some(Goal::Packets(packets)),
        (None, Some(duration)) => Some(Goal::Duration(nanos(duration))),
        (None, None) => None,
    };
    let script = match (args.nodes, goal) {
        (Some(nodes), Some(goal)) => Some(Script {
            nodes,
            fingers: args.fingers(),
            goal,
            runs: args.runs,
            extra_payload_bytes: args.payload,
            ready_timeout: args.ready_timeout * 1_000_000_000,
        }),
        _ => None,
    };
    let scripted = script.is_some();
    let registry = Registry::<C>::new(RegistryConfig {
        id_bits: args.id_bits(),
        seed,
        secret,
        script,
        window_bytes: args.window_bytes,
        stall_timeout: args.stall_timeout * 1_000_000_000,
        rate_per_s: args.rate,
        settle: args.settle_ms.saturating_mul(1_000_000),
        warmup: args.warmup.map_or(0, nanos),
        interval: args.interval.map(nanos),
        ..RegistryConfig::default()
    });
    // Ctrl-C ends a scripted run early (a console has `stop`, and Ctrl-C there ends the
    // registry as usual).
    let interrupts = if scripted {
        Some(Interrupts::install().context("cannot handle Ctrl-C")?)
    } else {
        None
    };
    let config = DriverConfig {
        core: args.common.core,
        local_ip: None,
        max_connections: REGISTRY_CONNECTIONS_MAX,
        outbound_reserved: 0,
        recv_buffer_bytes: REGISTRY_RECV_BUFFER_BYTES,
        send_buffer_bytes: 0,
        shared_recv: Some(SHARED_RECV),
        busy_poll: BusyPoll::Off,
        console: true,
    };
    let mut shown = Shown::new(
        registry,
        out,
        settings,
        csv,
        result_file,
        interrupts,
        args.interval.is_some(),
    );
    shown.scripted = scripted;
    shown.metrics = published.map(|published| (Snapshot::default(), published));
    let code = io::run(&mut shown, vec![listener], &config)?;
    shown.close();
    if json_stdout && scripted {
        let mut stdout = std::io::stdout().lock();
        // A closed standard output is its reader's choice; the exit status still says it all.
        let _ = writeln!(stdout, "{}", shown.result_text());
        let _ = stdout.flush();
    }
    if scripted {
        let passed = shown.registry.results().all_passed();
        return Ok(if passed && code == 0 {
            0
        } else {
            code.clamp(1, 255) as u8
        });
    }
    Ok(code.clamp(0, 255) as u8)
}

/// Ctrl-C (SIGINT), counted. signal-hook's handler writes one byte per signal into a socket
/// (a write is async-signal-safe, and the crate owns the handler's registration); the registry's
/// loop reads them every [`INTERRUPT_CHECK_NS`]. Reading them through the ring would wake it at
/// once, but a signal goes to any thread of the process (the console thread as often as the
/// loop), so a check at a bounded interval is needed anyway, and a tenth of a second costs the
/// registry nothing.
struct Interrupts {
    signals: UnixStream,
}

impl Interrupts {
    fn install() -> std::io::Result<Interrupts> {
        let (signals, handler_end) = UnixStream::pair()?;
        signals.set_nonblocking(true)?;
        handler_end.set_nonblocking(true)?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, handler_end)?;
        Ok(Interrupts { signals })
    }

    /// Signals since the last call.
    fn take(&mut self) -> usize {
        let mut bytes = [0u8; 64];
        let mut count = 0;
        while let Ok(read @ 1..) = self.signals.read(&mut bytes) {
            count += read;
        }
        count
    }
}

/// Where the registry's lines go: standard output, or standard error when standard output
/// carries JSON only (`--format json`).
#[derive(Debug, Clone, Copy)]
struct Out {
    json_stdout: bool,
}

impl Out {
    /// A line for the operator.
    fn status(self, line: std::fmt::Arguments) {
        if self.json_stdout {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        } else {
            say(line);
        }
    }

    /// Whether the stream the status lines go to is a terminal (a progress bar is drawn).
    fn terminal(self) -> bool {
        if self.json_stdout {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        }
    }
}

/// `--json PATH`: opened before the registry listens, rewritten whole as each run ends and
/// at exit (a file that is not a regular one, a pipe say, is written once, at exit).
struct ResultFile {
    file: std::fs::File,
    path: PathBuf,
    regular: bool,
}

impl ResultFile {
    fn create(path: &std::path::Path) -> Result<ResultFile> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        Ok(ResultFile {
            file,
            path: path.to_path_buf(),
            regular,
        })
    }

    /// Replaces the file's contents with `text`.
    fn write(&mut self, text: &str) -> std::io::Result<()> {
        use std::io::Seek as _;
        if self.regular {
            self.file.set_len(0)?;
            self.file.rewind()?;
        }
        self.file.write_all(text.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.file.flush()
    }
}

/// The name of this host, for a result's settings (empty if the kernel does not say).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

/// The registry with its progress shown: a bar when the status stream is a terminal, a plain
/// line at most every 5 s when it is not, CSV rows and the result file if asked, and with
/// `--format json` every line moved to standard error and JSON alone on standard output. It
/// passes every event to the registry and reads `Registry::progress` and `Registry::results`
/// after each; the registry itself does no I/O.
struct Shown<C: Codec> {
    registry: Registry<C>,
    tracker: ProgressTracker,
    out: Out,
    /// The status stream is a terminal: draw a bar.
    terminal: bool,
    bar: Option<ProgressBar>,
    csv: Option<(std::fs::File, PathBuf)>,
    result_file: Option<ResultFile>,
    /// The registry's settings, with those of the last overlay seen.
    settings: Settings,
    /// Scripted: `--format json` prints the whole result at exit, not a line per run.
    scripted: bool,
    results_seen: u32,
    /// Scripted mode: Ctrl-C, and when it was last looked for.
    interrupts: Option<Interrupts>,
    interrupts_checked: Nanos,
    /// `--metrics`: what the endpoint shows, and where it is published for its thread.
    metrics: Option<(Snapshot, Published)>,
    /// The poll round and the node count the metrics last saw.
    metrics_seen: (u64, usize),
    /// The receive rate of the last progress point.
    rate_pps: f64,
}

impl<C: Codec> Shown<C> {
    /// With `intervals`, the registry prints `--interval` lines: no plain progress lines.
    fn new(
        registry: Registry<C>,
        out: Out,
        settings: Settings,
        csv: Option<(std::fs::File, PathBuf)>,
        result_file: Option<ResultFile>,
        interrupts: Option<Interrupts>,
        intervals: bool,
    ) -> Shown<C> {
        Shown {
            registry,
            tracker: ProgressTracker::new(
                PROGRESS_SHOWN_GAP_NS_MIN,
                if intervals {
                    Nanos::MAX
                } else {
                    PROGRESS_LINE_GAP_NS_MIN
                },
            ),
            out,
            terminal: out.terminal(),
            bar: None,
            csv,
            result_file,
            settings,
            scripted: false,
            results_seen: 0,
            interrupts,
            interrupts_checked: 0,
            metrics: None,
            metrics_seen: (0, 0),
            rate_pps: 0.0,
        }
    }

    fn csv_row(&mut self, point: &ProgressPoint) {
        if let Some((file, path)) = &mut self.csv
            && let Err(error) = writeln!(file, "{}", point.csv_row())
        {
            tracing::warn!(path = %path.display(), %error, "cannot write the CSV; no more rows");
            self.csv = None;
        }
    }

    /// The result file's text: the settings, the total and the kept runs (a FAIL object
    /// with the settings when no run completed).
    fn result_text(&self) -> String {
        let text = match self.registry.results().file() {
            Some(mut result) => {
                result.settings = Some(self.settings.clone());
                serde_json::to_string_pretty(&result)
            }
            None => serde_json::to_string_pretty(&serde_json::json!({
                "settings": self.settings,
                "verdict": "FAIL",
                "failures": ["no run completed"],
            })),
        };
        text.unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    }

    /// Rewrites `--json PATH` (at exit also when it is not a regular file).
    fn write_result_file(&mut self, at_exit: bool) {
        if !self
            .result_file
            .as_ref()
            .is_some_and(|file| file.regular || at_exit)
        {
            return;
        }
        let text = self.result_text();
        if let Some(file) = &mut self.result_file
            && let Err(error) = file.write(&text)
        {
            tracing::warn!(path = %file.path.display(), %error, "cannot write the JSON result");
            self.result_file = None;
        }
    }

    /// After each event: new progress, finished runs, and lines printed around the bar.
    fn show(&mut self, effects: &mut Vec<Effect>) {
        if let Some(overlay) = self.registry.overlay_settings() {
            self.settings.nr = Some(overlay.nr);
            self.settings.finger_rule = Some(overlay.rule.name());
            self.settings.window_bytes = Some(overlay.window_bytes);
        }
        if let Some(point) = self
            .registry
            .progress()
            .and_then(|s| self.tracker.observe(s))
        {
            self.csv_row(&point);
            self.rate_pps = point.rate_pps;
            if self.terminal {
                let bar = self.bar.get_or_insert_with(|| {
                    new_bar(point.expected, self.out, point.goal_s.is_some())
                });
                if point.goal_s.is_some() {
                    // A run by time: the bar shows the time, in thousandths.
                    bar.set_position((point.fraction() * 1000.0) as u64);
                } else {
                    bar.set_length(point.expected);
                    bar.set_position(point.received.min(point.expected));
                }
                bar.set_message(point.bar_message());
            } else if self.tracker.line_due(&point) {
                effects.push(Effect::Print(point.line()));
            }
        }
        let results = self.registry.results();
        // Runs completed since the last look, of which the registry still keeps the last.
        let new = (results.completed() - self.results_seen) as usize;
        let first = results.recent().len().saturating_sub(new);
        let mut points = Vec::new();
        let mut reports = Vec::new();
        for result in results.recent().range(first..) {
            self.results_seen += 1;
            points.push(self.tracker.finish(self.results_seen, result));
            self.settings.extra_payload_bytes = Some(result.extra_payload_bytes);
            if self.out.json_stdout && !self.scripted {
                let report = RunReport {
                    run: self.results_seen,
                    settings: &self.settings,
                    result,
                };
                reports.push(serde_json::to_string(&report).unwrap_or_default());
            }
        }
        if let Some((snapshot, _)) = &mut self.metrics {
            for result in results.recent().range(first..) {
                snapshot.finished(result, results.stats());
            }
        }
        self.results_seen = results.completed();
        self.update_metrics(!points.is_empty());
        if !points.is_empty() {
            self.write_result_file(false);
        }
        for point in points {
            self.csv_row(&point);
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
        }
        if self.out.json_stdout {
            // Standard output carries JSON alone: every line for a person goes to standard
            // error (above the bar, if one is drawn), and files written are said there too.
            for effect in effects.iter_mut() {
                if let Effect::WriteFile { path, contents } = effect {
                    let line = io::write_file(path, contents);
                    *effect = Effect::Print(line);
                }
            }
            effects.retain(|effect| match effect {
                Effect::Print(line) => {
                    match &self.bar {
                        Some(bar) => bar.println(line),
                        None => self.out.status(format_args!("{line}")),
                    }
                    false
                }
                _ => true,
            });
            if !reports.is_empty() {
                let mut stdout = std::io::stdout().lock();
                for report in reports {
                    let _ = writeln!(stdout, "{report}");
                }
                let _ = stdout.flush();
            }
        } else if let Some(bar) = &self.bar {
            // Lines printed while the bar is drawn go above it.
            effects.retain(|effect| match effect {
                Effect::Print(line) => {
                    bar.println(line);
                    false
                }
                _ => true,
            });
        }
    }

    /// Folds a new poll round into the metrics and publishes them when anything changed
    /// (`changed`: a run finished).
    fn update_metrics(&mut self, mut changed: bool) {
        let Some((snapshot, published)) = &mut self.metrics else {
            return;
        };
        let round = self.registry.progress().map_or(0, |sample| sample.round);
        if round != self.metrics_seen.0 {
            self.metrics_seen.0 = round;
            if let Some(last) = self.registry.last_round() {
                snapshot.round(last.run, last.nodes.into_iter(), last.stats, self.rate_pps);
                changed = true;
            }
        }
        let nodes = self.registry.node_count();
        if nodes != self.metrics_seen.1 {
            self.metrics_seen.1 = nodes;
            snapshot.nodes = nodes as u64;
            changed = true;
        }
        if changed {
            published.publish(snapshot);
        }
    }

    /// The loop is over: clear the bar, flush the CSV, write the result file.
    fn close(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some((file, path)) = &mut self.csv
            && let Err(error) = file.flush()
        {
            tracing::warn!(path = %path.display(), %error, "cannot write the CSV");
        }
        self.write_result_file(true);
    }
}

/// A bar of `length` packets, or of a run's time (`timed`: the message says the packets).
fn new_bar(length: u64, out: Out, timed: bool) -> ProgressBar {
    let target = if out.json_stdout {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::stdout()
    };
    let (length, template) = if timed {
        (1000, "{bar:40.cyan/blue} {msg}")
    } else {
        (
            length,
            "{bar:40.cyan/blue} {human_pos}/{human_len} packets  {msg}",
        )
    };
    let bar = ProgressBar::with_draw_target(Some(length), target);
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

impl<C: Codec> Machine for Shown<C> {
    fn on_start(&mut self, now: Nanos) {
        self.registry.on_start(now)
    }
    fn on_accepted(&mut self, now: Nanos, conn: ConnId, peer: SocketAddr, local: SocketAddr) {
        self.registry.on_accepted(now, conn, peer, local)
    }
    fn on_connected(&mut self, now: Nanos, conn: ConnId) {
        self.registry.on_connected(now, conn)
    }
    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        self.registry.on_received(now, conn, bytes)
    }
    fn on_closed(&mut self, now: Nanos, conn: ConnId, reason: CloseReason) {
        self.registry.on_closed(now, conn, reason)
    }
    fn on_command(&mut self, now: Nanos, line: &str) {
        self.registry.on_command(now, line)
    }
    fn on_tick(&mut self, now: Nanos) {
        if let Some(interrupts) = &mut self.interrupts {
            self.interrupts_checked = now;
            for _ in 0..interrupts.take() {
                self.registry.interrupt(now);
            }
        }
        if self.registry.next_tick().is_some_and(|tick| tick <= now) {
            self.registry.on_tick(now)
        }
    }
    fn next_tick(&self) -> Option<Nanos> {
        let check = self
            .interrupts
            .as_ref()
            .map(|_| self.interrupts_checked.saturating_add(INTERRUPT_CHECK_NS));
        match (self.registry.next_tick(), check) {
            (Some(tick), Some(check)) => Some(tick.min(check)),
            (tick, check) => tick.or(check),
        }
    }
    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        self.registry.take_effects(into);
        self.show(into);
    }
    fn frame_len(&self, bytes: &[u8]) -> Option<usize> {
        self.registry.frame_len(bytes)
    }
    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        self.registry.swap_outgoing(conn, buf)
    }
}

/// The local address the kernel would use to reach `registry`, found without sending anything.
fn route_source(registry: SocketAddr) -> Result<IpAddr> {
    let any: SocketAddr = match registry {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect(registry)?;
    Ok(socket.local_addr()?.ip())
}

fn run_node(args: NodeArgs) -> Result<u8> {
    match args.common.wire {
        Wire::Native => run_node_with::<Native>(args),
        Wire::Classic => run_node_with::<Classic>(args),
    }
}

fn run_node_with<C: Codec>(args: NodeArgs) -> Result<u8> {
    let registry = (args.registry_host.as_str(), args.registry_port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve registry host {}", args.registry_host))?
        .next()
        .with_context(|| format!("registry host {} has no address", args.registry_host))?;
    let bind = match args.bind {
        Some(ip) => ip,
        None => route_source(registry)
            .with_context(|| format!("no route to the registry at {registry}"))?,
    };
    if bind.is_unspecified() {
        bail!("--bind must be a concrete address: the registry checks it against the connection");
    }
    let secret = secret(&args.common)?;
    let count = args.count as usize;
    let mut listeners = Vec::with_capacity(count);
    let mut configs = Vec::with_capacity(count);
    let seed = seed(&args.common);
    // A group's nodes map no link buffers up front: K nodes would map K times a node's.
    let link_buffer_bytes = if count == 1 { SEND_BUFFER_BYTES } else { 0 };
    for index in 0..count {
        let (listener, local) = io::listen(SocketAddr::new(bind, 0))
            .with_context(|| format!("cannot listen on {bind}"))?;
        say(format_args!(
            "Node listening on {local}, registry {registry}"
        ));
        listeners.push(listener);
        configs.push(NodeConfig {
            listen: local,
            registry,
            seed: seed.wrapping_add((index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            secret: secret.clone(),
            link_buffer_bytes,
            registry_wait: args.registry_wait.saturating_mul(1_000_000_000),
        });
    }
    let config = DriverConfig {
        core: args.common.core,
        local_ip: Some(bind),
        max_connections: NODE_CONNECTIONS_MAX * count,
        outbound_reserved: NODE_OUTBOUND_RESERVED * count,
        recv_buffer_bytes: RECV_BUFFER_BYTES,
        send_buffer_bytes: link_buffer_bytes,
        // A node alone maps a buffer per link (throughput); a group shares its receive
        // buffers, so that an idle node costs kilobytes.
        shared_recv: (count > 1).then_some(SHARED_RECV),
        busy_poll: args.busy_poll_us,
        console: true,
    };
    let code = if count == 1 {
        let mut node = Node::<C>::new(configs.remove(0));
        io::run(&mut node, listeners, &config)?
    } else {
        io::run(&mut Group::<C>::new(configs), listeners, &config)?
    };
    if let Some(kib) = peak_resident_kib() {
        say(format_args!("Node exiting; peak resident memory {kib} KiB"));
    }
    Ok(code.clamp(0, 255) as u8)
}

/// A line for the operator on standard output. A closed or broken output (its reader went
/// away) is not an error of ours: the line is dropped, nothing panics.
fn say(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// This process's peak resident memory (VmHWM), for the exit line that tools/perf.sh reads.
fn peak_resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

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
        Command::Registry(args) => run_registry(*args),
        Command::Node(args) => run_node(args),
        Command::Simulate(args) => run_simulate(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("overlay: {error:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
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
