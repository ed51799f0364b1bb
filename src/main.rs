//! `overlay`: the registry and the messaging node of a Chord-like overlay.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use overlay::io::{self, DriverConfig};
use overlay::limits::{
    ID_BITS_DEFAULT, ID_BITS_MAX, NODE_CONNECTIONS_MAX, RECV_BUFFER_BYTES, REGISTRY_CONNECTIONS_MAX,
};
use overlay::node::{Node, NodeConfig};
use overlay::registry::{Registry, RegistryConfig, SETTLE_DEFAULT, Script};
use overlay::summary::ScriptResult;
use overlay::wire::Codec;
use overlay::wire::classic::Classic;
use overlay::wire::native::Native;

#[derive(Parser)]
#[command(
    name = "overlay",
    version,
    about = "A Chord-like structured P2P overlay: one registry, many messaging nodes, packets \
             routed by finger tables and verified end to end."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry. Reads commands from standard input (type `help`).
    Registry(RegistryArgs),
    /// Run a messaging node. Reads commands from standard input (type `help`).
    Node(NodeArgs),
}

/// The encoding of every message on every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Wire {
    /// Ours: little-endian, CRC32-checked packets, acks and a window, progress polls.
    Native,
    /// REFERENCE.md's format, byte for byte: works with registries and nodes written by
    /// others (no CRC, no window, no progress polls; a run ends by a settle time).
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
    /// Seed for random choices (default: from the clock and process ID).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Args)]
struct RegistryArgs {
    /// Port to listen on; 0 or omitted picks a free port (printed at start).
    port: Option<u16>,
    /// Local address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Node IDs are drawn from 0..2^BITS (7 = the reference's 0..=127).
    #[arg(long, default_value_t = ID_BITS_DEFAULT, value_parser = clap::value_parser!(u32).range(1..=ID_BITS_MAX as i64))]
    id_bits: u32,
    /// Bytes of data a source may have unacknowledged (default: 16 MiB / nodes, at least
    /// 256 KiB).
    #[arg(long)]
    window_bytes: Option<u64>,
    /// Write the listening port to this file once listening.
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// Scripted mode: wait for this many nodes, set up, run, print the summary and exit
    /// (status 0 only if every run passed).
    #[arg(long, requires = "start")]
    nodes: Option<usize>,
    /// Scripted mode: routing-table size.
    #[arg(long, default_value_t = overlay::console::DEFAULT_NR)]
    nr: usize,
    /// Scripted mode: packets each node sends per run.
    #[arg(long, requires = "nodes")]
    start: Option<u64>,
    /// Scripted mode: how many runs.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// Extra payload bytes per packet (scripted mode).
    #[arg(long, default_value_t = 0)]
    payload: u32,
    /// Scripted mode: write the result as JSON to this path.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Scripted mode: seconds to wait for every node to register and set up.
    #[arg(long, default_value_t = 120)]
    ready_timeout: u64,
    /// Seconds without any progress after which a run fails.
    #[arg(long, default_value_t = 10)]
    stall_timeout: u64,
    /// Packets per second each node originates at most (0 = as fast as flow control allows;
    /// native wire only). For latency at light load.
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// `--wire classic` only: classic nodes answer a summary request once and reset, so the
    /// registry cannot poll them; it waits this many milliseconds after the last
    /// task-finished (packets may still be in flight), then asks for the final summaries.
    #[arg(long, default_value_t = SETTLE_DEFAULT / 1_000_000)]
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
    #[arg(long)]
    bind: Option<IpAddr>,
    #[command(flatten)]
    common: Common,
}

fn seed(common: &Common) -> u64 {
    common.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        now ^ (u64::from(std::process::id()) << 32)
    })
}

fn run_registry(args: RegistryArgs) -> Result<u8> {
    match args.common.wire {
        Wire::Native => run_registry_with::<Native>(args),
        Wire::Classic => {
            if args.id_bits > 31 {
                bail!("--wire classic carries IDs as i32: --id-bits must be at most 31");
            }
            if args.payload != 0 {
                bail!("--wire classic packets carry one i32: --payload is not available");
            }
            if args.rate != 0 {
                bail!("--wire classic nodes send as fast as they can: --rate is not available");
            }
            run_registry_with::<Classic>(args)
        }
    }
}

fn run_registry_with<C: Codec>(args: RegistryArgs) -> Result<u8> {
    let (listener, local) = io::listen(SocketAddr::new(args.bind, args.port.unwrap_or(0)))
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port.unwrap_or(0)))?;
    println!("Registry listening on {local}");
    if C::NAME != Native::NAME {
        println!("Wire format: {}", C::NAME);
    }
    if let Some(path) = &args.port_file {
        std::fs::write(path, format!("{}\n", local.port()))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let script = match (args.nodes, args.start) {
        (Some(nodes), Some(packets)) => Some(Script {
            nodes,
            nr: args.nr,
            packets,
            runs: args.runs.max(1),
            extra_payload_bytes: args.payload,
            ready_timeout: args.ready_timeout.max(1) * 1_000_000_000,
        }),
        _ => None,
    };
    let scripted = script.is_some();
    let mut registry = Registry::<C>::new(RegistryConfig {
        id_bits: args.id_bits,
        seed: seed(&args.common),
        script,
        window_bytes: args.window_bytes,
        stall_timeout: args.stall_timeout.max(1) * 1_000_000_000,
        rate_per_s: args.rate,
        settle: args.settle_ms.saturating_mul(1_000_000),
        ..RegistryConfig::default()
    });
    let config = DriverConfig {
        core: args.common.core,
        local_ip: None,
        max_connections: REGISTRY_CONNECTIONS_MAX,
        recv_buffer_bytes: 64 * 1024,
        console: true,
    };
    let code = io::run(&mut registry, Some(listener), &config)?;
    if let Some(path) = &args.json {
        let result = ScriptResult::new(registry.results().to_vec());
        let text = match &result {
            Some(result) => serde_json::to_string_pretty(result)?,
            None => serde_json::json!({
                "verdict": "FAIL",
                "failures": ["no run completed"],
            })
            .to_string(),
        };
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if scripted {
        let passed =
            !registry.results().is_empty() && registry.results().iter().all(|r| r.passed());
        return Ok(if passed && code == 0 {
            0
        } else {
            code.clamp(1, 255) as u8
        });
    }
    Ok(code.clamp(0, 255) as u8)
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
    let (listener, local) =
        io::listen(SocketAddr::new(bind, 0)).with_context(|| format!("cannot listen on {bind}"))?;
    println!("Node listening on {local}, registry {registry}");
    let mut node = Node::<C>::new(NodeConfig {
        listen: local,
        registry,
        seed: seed(&args.common),
    });
    let config = DriverConfig {
        core: args.common.core,
        local_ip: Some(bind),
        max_connections: NODE_CONNECTIONS_MAX,
        recv_buffer_bytes: RECV_BUFFER_BYTES,
        console: true,
    };
    let code = io::run(&mut node, Some(listener), &config)?;
    Ok(code.clamp(0, 255) as u8)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(error) = io::check_support() {
        eprintln!("overlay: {error}");
        return ExitCode::from(1);
    }
    let result = match cli.command {
        Command::Registry(args) => run_registry(args),
        Command::Node(args) => run_node(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("overlay: {error:#}");
            ExitCode::from(1)
        }
    }
}
