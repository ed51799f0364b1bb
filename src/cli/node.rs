//! `overlay node`: its flags, and one node or a group of nodes started.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use overlay::io::{self, BusyPoll, DriverConfig};
use overlay::limits::{
    BUSY_POLL_US_MAX, GROUP_NODES_MAX, NODE_CONNECTIONS_MAX, NODE_OUTBOUND_RESERVED,
    OPERATOR_WAIT_SECS_MAX, RECV_BUFFER_BYTES, SEND_BUFFER_BYTES, TRUNK_CREDIT_BYTES_USER_TIMEOUT,
};
use overlay::node::{Group, Mux, Node, NodeConfig, TrunkCredit};
use overlay::wire::classic::Classic;
use overlay::wire::native::Native;
use overlay::wire::{Codec, GroupTag};

use super::terminate::{SIGTERM, Terminable};
use super::{Common, SHARED_RECV, Wire, say, secret, seed};

#[derive(Args)]
pub(crate) struct NodeArgs {
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
    /// nothing else to run, one process per core at a time; 0 sleeps at once.
    #[arg(long, default_value = "auto", value_parser = parse_busy_poll)]
    busy_poll_us: BusyPoll,
    /// Seconds to keep trying to reach the registry and register (it may start after the
    /// node, or lose a registration): attempts on fresh connections, 0.1 s apart at first and
    /// at most 2 s; an attempt unanswered for 5 s is tried again. 0 tries once.
    #[arg(long, default_value_t = overlay::limits::JOIN_WAIT_DEFAULT_SECS as f64, value_parser = registry_wait_arg)]
    registry_wait: f64,
    /// Run this many nodes in this process, on one event loop: each listens on its own port
    /// of the --bind address, registers and keeps its links as a node alone in its process
    /// would. Console commands go to every node; each line a node prints starts with its
    /// address. The process exits once every node has. Link buffers are then sized by
    /// traffic instead of mapped up front.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=GROUP_NODES_MAX as i64))]
    count: u32,
    /// With --count above 1 (the default there): links between the nodes of this process stay
    /// in memory, and links to the nodes of another such process share one connection with it
    /// (a trunk; docs/ARCHITECTURE.md, "Trunks"). Native format only.
    #[arg(long, conflicts_with = "no_trunks")]
    trunks: bool,
    /// With --count above 1: every link a connection of its own, as nodes alone in their
    /// processes have (no trunks, no links in memory).
    #[arg(long)]
    no_trunks: bool,
    #[command(flatten)]
    common: Common,
}

/// `--busy-poll-us`: `auto`, or microseconds up to `BUSY_POLL_US_MAX` (0: never poll).
/// `--registry-wait`: seconds, 0 (one attempt) to a day.
fn registry_wait_arg(text: &str) -> Result<f64, String> {
    super::seconds(
        text,
        super::Least::AtLeast(0.0),
        OPERATOR_WAIT_SECS_MAX as f64,
    )
}

pub(crate) fn parse_busy_poll(value: &str) -> Result<BusyPoll, String> {
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

/// The local address the kernel would use to reach `registry`, found without sending anything.
pub(crate) fn route_source(registry: SocketAddr) -> Result<IpAddr> {
    let any: SocketAddr = match registry {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any)?;
    socket.connect(registry)?;
    Ok(socket.local_addr()?.ip())
}

pub(crate) fn run_node(args: NodeArgs) -> Result<u8> {
    match args.common.wire {
        Wire::Native => run_node_with::<Native>(args),
        Wire::Classic => run_node_with::<Classic>(args),
    }
}

pub(crate) fn run_node_with<C: Codec>(args: NodeArgs) -> Result<u8> {
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
    // The registry places a group's nodes apart on the ring (docs/ARCHITECTURE.md,
    // "Placement"); the token only has to differ from other processes'.
    let group = (count > 1).then(|| GroupTag {
        token: rand::random(),
        size: count as u32,
    });
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
            registry_wait: (args.registry_wait * 1e9) as u64,
            group,
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
        signals: vec![SIGTERM],
    };
    // SIGTERM makes the node (every node of a group) leave gracefully, as exit-overlay.
    let code = if count == 1 {
        let node = Node::<C>::new(configs.remove(0));
        io::run(&mut Terminable::new(node), listeners, &config)?
    } else if !args.no_trunks && C::HELLO {
        // The group's links share a connection per other process (trunks) and stay in memory
        // within this one (`node::mux`).
        let credit = if io::links_outlast_closed_windows() {
            TrunkCredit::by_frames()
        } else {
            TrunkCredit::fixed(TRUNK_CREDIT_BYTES_USER_TIMEOUT)
        };
        let mux = Terminable::new(Mux::<C>::new(configs, credit));
        io::run(&mut { mux }, listeners, &config)?
    } else {
        let group = Terminable::new(Group::<C>::new(configs));
        io::run(&mut { group }, listeners, &config)?
    };
    if let Some(kib) = peak_resident_kib() {
        say(format_args!("Node exiting; peak resident memory {kib} KiB"));
    }
    Ok(code.clamp(0, 255) as u8)
}
/// This process's peak resident memory (VmHWM), for the exit line that tools/perf.sh reads.
pub(crate) fn peak_resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
