//! The io_uring driver: one thread, one ring, every socket of the process.
//!
//! It carries out a [`Machine`]'s effects (connect, send, close, print, exit) and feeds it
//! events (accepted, connected, received, closed, console lines, ticks). Module map:
//! `setup` (ring creation, capability checks, pinning), `event_loop` (the loop), `conn`
//! (connection slots and the buffer-lifetime invariant), `ops` (`user_data` tokens),
//! `console` (the standard-input thread), `signals` (signals read through the ring),
//! `accept_pause` (the accept's pause while descriptors or
//! memory run out), `prefetch` (cache hints, the one piece of the driver the protocol core
//! uses), `busy_poll` (when the loop polls before sleeping), `core_token` (one
//! adaptive poller per core), `clock`.
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::multiple_unsafe_ops_per_block)]

mod accept_pause;
mod buf_ring;
mod busy_poll;
pub mod clock;
mod conn;
mod console;
mod core_token;
mod event_loop;
mod ops;
mod outcome;
pub mod prefetch;
mod setup;
mod signals;

use std::net::{IpAddr, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::limits::{DESCRIPTORS_BESIDES_CONNECTIONS, LISTEN_BACKLOG_CONNECTIONS};
use crate::machine::Machine;

pub use busy_poll::BusyPoll;

/// How the driver runs.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Pin the loop thread to this core; `None` picks `process id % number of cores`.
    pub core: Option<usize>,
    /// Bind outgoing connections to this local address (port 0) before connecting.
    pub local_ip: Option<IpAddr>,
    /// Most connections open at once (slab capacity, fixed at start-up). Accepted connections
    /// beyond it are closed; connects beyond it fail with `on_closed`.
    pub max_connections: usize,
    /// Slots of `max_connections` that only connections the machine opens may take: accepted
    /// connections beyond `max_connections - outbound_reserved` are closed at once (with a
    /// warning at most every `limits::STRANGER_WARNING_INTERVAL_NS`). A node's table links and
    /// registry connection so never wait for slots that accepted connections hold, even
    /// closed ones whose operations are still completing.
    pub outbound_reserved: usize,
    /// Bytes of each connection's receive buffer (normally `limits::RECV_BUFFER_BYTES`).
    pub recv_buffer_bytes: usize,
    /// Capacity the send buffer of each connection the machine opens starts with. When
    /// nonzero, those connections' buffers, and the receive buffers of the first
    /// `limits::MAPPED_INBOUND_RECV_BUFFERS` accepted ones, are mapped when their slot opens
    /// (`buffer::mapped`), not at first use in the middle of a run; 0 leaves every buffer to
    /// be mapped at first use (the registry, with up to thousands of mostly idle
    /// connections).
    pub send_buffer_bytes: usize,
    /// Receive into buffers shared by every connection (an io_uring provided buffer ring,
    /// `buf_ring`) instead of a buffer per connection: a connection then holds only the
    /// partial frame a receive ended with, and `recv_buffer_bytes` bounds that. For a process
    /// with thousands of connections (a group of nodes, the registry).
    pub shared_recv: Option<SharedRecv>,
    /// Once there is no work, whether and how long to poll the ring before sleeping.
    pub busy_poll: BusyPoll,
    /// Read standard input lines and deliver them with `Machine::on_command`.
    pub console: bool,
    /// Signals to deliver with `Machine::on_signal` (their default action no longer applies
    /// once the loop starts): each is read through the ring (`signals`), so it wakes the loop
    /// at once, and nothing wakes an idle loop to look for one.
    pub signals: Vec<i32>,
}

/// Carries out [`Effect::WriteFile`](crate::machine::Effect::WriteFile): writes the file and
/// returns the line for the operator (`Wrote PATH (N bytes)`, or why it could not).
pub fn write_file(path: &std::path::Path, contents: &str) -> String {
    match std::fs::write(path, contents) {
        Ok(()) => format!("Wrote {} ({} bytes)", path.display(), contents.len()),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot write file");
            format!("Cannot write {}: {error}", path.display())
        }
    }
}

/// The receive buffers a driver shares between its connections.
#[derive(Clone, Copy, Debug)]
pub struct SharedRecv {
    /// Buffers in the ring (a power of two, at most 32,768).
    pub buffers: u16,
    /// Bytes of each (a receive takes at most this many).
    pub buffer_bytes: usize,
}

/// Why the driver could not start, or had to stop.
#[derive(thiserror::Error, Debug)]
pub enum DriverError {
    /// The kernel refused to create a ring (too old, disabled by sysctl, seccomp, ...).
    #[error(
        "io_uring is unavailable (kernel {kernel}): {error}; overlay needs Linux 5.19 or later with io_uring enabled"
    )]
    Unavailable {
        kernel: String,
        error: std::io::Error,
    },
    /// The ring works but lacks an operation the driver uses.
    #[error(
        "io_uring on kernel {kernel} lacks the {operation} operation; overlay needs Linux 5.19 or later"
    )]
    MissingOperation {
        kernel: String,
        operation: &'static str,
    },
    /// The kernel is older than the first one with every feature the driver uses.
    #[error("kernel {kernel} is too old; overlay needs Linux 5.19 or later with io_uring enabled")]
    KernelTooOld { kernel: String },
    /// A resource the loop needs at start-up could not be created.
    #[error("driver setup failed ({what}): {source}")]
    Setup {
        what: &'static str,
        source: std::io::Error,
    },
    /// Submitting to or waiting on the ring failed in a way the loop cannot recover from.
    #[error("io_uring submission failed: {0}")]
    Ring(std::io::Error),
}

/// Checks that this kernel gives the driver everything it needs (a ring, every operation),
/// so that a process can refuse to start before it prints or binds anything.
pub fn check_support() -> Result<(), DriverError> {
    setup::ring(1).map(drop)
}

/// Whether this kernel keeps a link open however long its peer's window stays closed while
/// the peer answers (it has `TCP_RTO_MAX_MS`, Linux 6.15; before it links fall back to
/// `TCP_USER_TIMEOUT`, which closes them after `LINK_TIMEOUT_SECS` of a closed window):
/// docs/RELIABILITY.md, "Link liveness". A trunk's credit depends on it
/// (`limits::TRUNK_CREDIT_BYTES`).
pub fn links_outlast_closed_windows() -> bool {
    event_loop::links_outlast_closed_windows()
}

/// Opens a listening TCP socket (SO_REUSEADDR, nonblocking, backlog
/// `LISTEN_BACKLOG_CONNECTIONS`) on `addr` (port 0
/// picks one); returns it and its actual local address.
pub fn listen(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG_CONNECTIONS)?;
    let listener: TcpListener = socket.into();
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Runs the loop until the machine emits `Effect::Exit(code)`; returns `code`.
///
/// A connection accepted on `listeners[i]` reaches the machine named in group `i`
/// (`ConnId::group`). Errors only for setup failures (io_uring unavailable, ...) or fatal ring
/// errors.
pub fn run<M: Machine>(
    machine: &mut M,
    listeners: Vec<TcpListener>,
    config: &DriverConfig,
) -> Result<i32, DriverError> {
    assert!(
        listeners.len() <= crate::machine::ConnId::GROUPS_MAX,
        "more listeners than connection groups"
    );
    assert!(
        config.max_connections > config.outbound_reserved,
        "max_connections must leave room for accepted connections"
    );
    assert!(
        config.recv_buffer_bytes > 0,
        "recv_buffer_bytes must be positive"
    );
    // Every slot needs a descriptor: the soft limit is raised toward what the slab holds (up
    // to the hard limit; often 1024 against a registry's thousands). Below it, the machines'
    // own bounds on strangers would never be reached and accepts would pause instead
    // (`accept_pause`).
    let descriptors = config.max_connections as u64 + DESCRIPTORS_BESIDES_CONNECTIONS;
    if let Err(error) = rlimit::increase_nofile_limit(descriptors) {
        tracing::warn!(%error, "cannot raise the open-files limit toward {descriptors}");
    }
    let ring = setup::ring(config.max_connections)?;
    setup::ignore_sigpipe();
    let signals = config
        .signals
        .iter()
        .map(|&signal| signals::SignalReader::install(signal))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| DriverError::Setup {
            what: "signal handler",
            source,
        })?;
    let pinned = setup::pin(config.core);
    let console = if config.console {
        console::start().map_err(|source| DriverError::Setup {
            what: "console thread",
            source,
        })?
    } else {
        None
    };
    let shared = match config.shared_recv {
        Some(shared) => Some(
            buf_ring::BufRing::new(&ring, 0, shared.buffers, shared.buffer_bytes).map_err(
                |source| DriverError::Setup {
                    what: "shared receive buffers (io_uring provided buffer ring)",
                    source,
                },
            )?,
        ),
        None => None,
    };
    // The adaptive poll keeps a core awake for its other processes only if it knows which.
    let core_token = pinned.map(core_token::CoreToken::new);
    event_loop::Driver::new(
        machine, ring, shared, listeners, console, signals, core_token, config,
    )
    .run()
}
