//! What the registry is told when it starts.

use super::Script;
use crate::auth::Secret;
use crate::limits::{
    DRAIN_POLL_INTERVAL_NS, ID_BITS_DEFAULT, PROGRESS_POLL_INTERVAL_NS, SETTLE_DEFAULT_NS,
    STRANGER_TIMEOUT_NS,
};
use crate::machine::Nanos;

/// The registry's settings; `Default` takes the defaults of `crate::limits`.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// IDs are drawn from 0..2^id_bits.
    pub id_bits: u32,
    /// Nodes that name their process's group get IDs that place the group's nodes apart on
    /// the ring (`placement.rs`); false: every ID at random (`--placement random`).
    pub place_groups: bool,
    pub seed: u64,
    pub script: Option<Script>,
    /// Per-source window in bytes; `None` = derived from the in-flight budget.
    pub window_bytes: Option<u64>,
    /// Between counter polls while nodes are sending (progress, hung nodes).
    pub progress_interval: Nanos,
    /// First pause between counter polls once all nodes finished (doubles up to
    /// [`DRAIN_POLL_BACKOFF_MAX`](crate::limits::DRAIN_POLL_BACKOFF_MAX) times it).
    pub poll_interval: Nanos,
    /// Packets per second each node originates at most in a run (0 = as fast as it can).
    pub rate_per_s: u32,
    /// `--secret-file`: every connection must answer a challenge keyed by it first.
    pub secret: Option<Secret>,
    /// A connection that has not registered a node this long after it was accepted is closed
    /// (a peer that connects and says nothing must not hold a slot forever).
    pub stranger_timeout: Nanos,
    /// A run whose polls show no progress for this long ends as FAIL (`None`: grows with the
    /// run's nodes, `limits::stall_timeout_for`).
    pub stall_timeout: Option<Nanos>,
    /// Encodings without progress polls (classic): the wait between the last task-finished
    /// and the final summary requests, for packets still in flight.
    pub settle: Nanos,
    /// The first this long of every run is left out of its rate and latency (0: none; native
    /// wire only).
    pub warmup: Nanos,
    /// `--interval`: a line with the rate, latency and progress of each interval this long.
    pub interval: Option<Nanos>,
    /// `--metrics`: keep each node's latency per hop from its progress replies
    /// ([`Registry::last_round`](super::Registry::last_round)).
    pub node_latency: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            id_bits: ID_BITS_DEFAULT,
            place_groups: true,
            seed: 0,
            script: None,
            window_bytes: None,
            progress_interval: PROGRESS_POLL_INTERVAL_NS,
            poll_interval: DRAIN_POLL_INTERVAL_NS,
            stranger_timeout: STRANGER_TIMEOUT_NS,
            secret: None,
            rate_per_s: 0,
            stall_timeout: None,
            settle: SETTLE_DEFAULT_NS,
            warmup: 0,
            interval: None,
            node_latency: false,
        }
    }
}
