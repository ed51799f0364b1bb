//! `overlay registry`: its flags, the checks of a scripted session, and the registry started.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};
use overlay::io::{self, BusyPoll, DriverConfig};
use overlay::limits::{
    FRAME_BYTES_MAX, ID_BITS_DEFAULT, ID_BITS_MAX, IN_FLIGHT_BUDGET_BYTES, INTERVAL_NS_MIN,
    NODES_MAX, OPERATOR_WAIT_SECS_MAX, PACKETS_PER_NODE_MAX, PAYLOAD_BYTES_MAX,
    READY_TIMEOUT_DEFAULT_NS, REGISTRY_CONNECTIONS_MAX, REGISTRY_RECV_BUFFER_BYTES, RUN_SECS_MAX,
    SETTLE_DEFAULT_NS,
};
use overlay::machine::Nanos;
use overlay::metrics::{self, Published, Snapshot};
use overlay::registry::progress::CSV_HEADER;
use overlay::registry::{Goal, Registry, RegistryConfig, Script};
use overlay::routing::{Fingers, check_overlay, id_bits_for, nr_for};
use overlay::summary::Settings;
use overlay::wire::Codec;
use overlay::wire::classic::Classic;
use overlay::wire::native::Native;

use super::Least::{Above, AtLeast};
use super::output::{Out, ResultFile};
use super::shown::Shown;
use super::{Common, Ids, Rule, SHARED_RECV, Targets, Wire, seconds, secret, seed};

/// What the registry's standard output carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SummaryFormat {
    /// Status lines, progress and each run's summary table, for a person.
    Table,
    /// JSON only, as `iperf3 -J` does: scripted, one object at exit (the result file's);
    /// at the console, one line of JSON per run as it ends. Everything else goes to standard
    /// error.
    Json,
}

/// `--duration`, `--warmup`: seconds above 0 and at most a day.
pub(crate) fn seconds_arg(text: &str) -> Result<f64, String> {
    seconds(text, Above(0.0), RUN_SECS_MAX)
}

/// `--ready-timeout`, `--stall-timeout`: seconds, at least 1 and at most a day.
pub(crate) fn timeout_arg(text: &str) -> Result<f64, String> {
    seconds(text, AtLeast(1.0), OPERATOR_WAIT_SECS_MAX as f64)
}

/// `--export-overlay`: a path whose extension says what to write.
pub(crate) fn export_path_arg(text: &str) -> Result<String, String> {
    overlay::registry::export_format(text).map(|()| text.to_string())
}

/// `--interval`: seconds, at least [`INTERVAL_NS_MIN`].
pub(crate) fn interval_arg(text: &str) -> Result<f64, String> {
    let min = INTERVAL_NS_MIN as f64 / 1e9;
    match seconds(text, AtLeast(min), RUN_SECS_MAX) {
        Ok(s) => Ok(s),
        _ => Err(format!(
            "seconds, at least {min} (one poll of every node per interval) and at most \
             {RUN_SECS_MAX}, not '{text}'"
        )),
    }
}

pub(crate) fn nanos(seconds: f64) -> Nanos {
    (seconds * 1e9) as Nanos
}

/// `--placement`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Placement {
    Groups,
    Random,
}

#[derive(Args)]
#[command(group(ArgGroup::new("goal").args(["start", "duration"])))]
pub(crate) struct RegistryArgs {
    /// Port to listen on; 0 or omitted picks a free port (printed at start).
    port: Option<u16>,
    /// Local address to listen on.
    #[arg(short, long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Node IDs are drawn from 0..2^BITS [default: 7, the reference's 0..=127, or in scripted
    /// mode the fewest bits that give each of --nodes an ID]. BITS also sets the width of the
    /// data frames' trace slots: 1 byte up to 8 bits, 2 up to 16, else 4.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=ID_BITS_MAX as i64))]
    id_bits: Option<u32>,
    /// Where registering nodes go on the ring. groups: the nodes of a process of several
    /// (`node --count K`) spread over the ID space and the processes interleaved, so that
    /// most hops stay within a process (with two processes, all but the hops of one
    /// position); with --nodes N and N / K processes no power of two, in arcs of the ring, one
    /// for each bit of their number, each holding a power of two of processes interleaved.
    /// Only processes of at most 128 nodes; lone nodes at random. random: every node at
    /// random.
    #[arg(long, value_enum, default_value_t = Placement::Groups)]
    placement: Placement,
    /// Bytes of data a source may have unacknowledged (default: nodes x 128 KiB, at most
    /// 256 MiB / nodes, within 256 KiB..=4 MiB: 1.25 MiB for 10 nodes, 4 MiB from 32 to 64). At least the largest frame (64 KiB): a smaller window would stall
    /// a source on every frame; at most 256 MiB.
    #[arg(long, value_parser = clap::value_parser!(u64).range(FRAME_BYTES_MAX as u64..=IN_FLIGHT_BUDGET_BYTES))]
    window_bytes: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100; port 0 picks
    /// one, printed at start): packets sent, received, relayed, corrupted and dropped, over
    /// all nodes and by node, packets by hops, runs by verdict, the receive rate, an
    /// end-to-end latency histogram and each node's latency-per-hop histogram, from the
    /// registry's counter polls (about once a second during a run). Served by a thread of its
    /// own, one connection at a time.
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
    /// Scripted mode: what each packet is addressed to. `keys`: a random key of the ID space
    /// (Chord's identifiers, or node IDs under position fingers), routed by the key at every
    /// hop and delivered at its owner, which checks that it owns it (native wire only).
    #[arg(long, value_enum, default_value_t = Targets::Nodes, requires = "nodes")]
    targets: Targets,
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
    /// Scripted mode: after the last run, write the overlay to this file as the console's
    /// `export-overlay` does: FILE.svg a picture (nodes at their IDs' angles on the ring, the
    /// arrows as wide as the packets each link carried in that run), FILE.dot Graphviz DOT.
    #[arg(long, value_name = "FILE", requires = "nodes", value_parser = export_path_arg)]
    export_overlay: Option<String>,
    /// Scripted mode: seconds to wait for every node to register and set up.
    #[arg(long, default_value_t = (READY_TIMEOUT_DEFAULT_NS / 1_000_000_000) as f64, value_parser = timeout_arg)]
    ready_timeout: f64,
    /// Seconds without any progress after which a run fails [default: 10 + 0.01 per node of
    /// the run: 20 s at 1,000 nodes, 110 s at 10,000].
    #[arg(long, value_parser = timeout_arg)]
    stall_timeout: Option<f64>,
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
pub(crate) fn check_script(args: &RegistryArgs, nodes: usize) -> Result<()> {
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

pub(crate) fn run_registry(args: RegistryArgs) -> Result<u8> {
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
            if args.targets == Targets::Keys {
                bail!(
                    "--wire classic packets carry a node ID, not a key: --targets keys is native \
                     only"
                );
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

pub(crate) fn run_registry_with<C: Codec>(args: RegistryArgs) -> Result<u8> {
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
        targets: None,
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
            keys: args.targets == Targets::Keys,
            ready_timeout: nanos(args.ready_timeout),
            export_overlay: args.export_overlay.clone(),
        }),
        _ => None,
    };
    let scripted = script.is_some();
    let registry = Registry::<C>::new(RegistryConfig {
        id_bits: args.id_bits(),
        place_groups: args.placement == Placement::Groups,
        seed,
        secret,
        script,
        window_bytes: args.window_bytes,
        stall_timeout: args.stall_timeout.map(nanos),
        rate_per_s: args.rate,
        settle: args.settle_ms.saturating_mul(1_000_000),
        warmup: args.warmup.map_or(0, nanos),
        interval: args.interval.map(nanos),
        node_latency: args.metrics.is_some(),
        ..RegistryConfig::default()
    });
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
        // Ctrl-C ends a scripted run early (a console has `stop`, and Ctrl-C there ends the
        // registry as usual).
        signals: if scripted {
            vec![signal_hook::consts::SIGINT]
        } else {
            Vec::new()
        },
    };
    let mut shown = Shown::new(
        registry,
        out,
        settings,
        csv,
        result_file,
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
/// The name of this host, for a result's settings (empty if the kernel does not say).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}
