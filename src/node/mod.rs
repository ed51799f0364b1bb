//! The messaging node's state machine. No I/O: see `crate::machine`.
//!
//! One file per concern:
//! - `data_plane.rs`: the receive loop of a data link, the relay path (`Overlay::relay`), the
//!   delivery path (`Overlay::deliver`) and acks;
//! - `originate.rs`: the current run and origination;
//! - `overlay.rs`: the overlay a manifest set up (its ID, table entries, counters, window);
//! - `links.rs`: one record per connection, the handshake on data links, table links coming
//!   up and going down;
//! - `control.rs`: registration, setup, tasks and summaries with the registry;
//! - `membership.rs`: joins and departures while traffic flows (table switches, sinks, a
//!   leaver's waits);
//! - `diagnostics.rs`: the `print-counters-and-diagnostics` text;
//! - `flow.rs`: the per-source window;
//! - `per_node.rs`: values per other node, sparse in large overlays.

mod control;
mod data_plane;
mod diagnostics;
pub mod flow;
pub mod group;
mod joining;
mod links;
mod lookups;
mod membership;
pub mod mux;
mod originate;
mod overlay;
mod per_node;
mod shares;
pub mod views;

use std::net::SocketAddr;

use rand::SeedableRng;
use rand::rngs::{SmallRng, StdRng};

use crate::auth::{self, Binding, Handshake, Secret};
use crate::console::{NODE_HELP, NodeCommand, parse_node};
use crate::limits::{
    NODE_HANDSHAKE_TIMEOUT_NS, NODE_INBOUND_LINKS_MAX, NODE_STRANGERS_MAX,
    NODE_STRANGERS_PER_ADDRESS_MAX,
};
use crate::machine::{
    CloseReason, ConnId, ConnIds, ConnMap, Effect, Farewells, Hole, Lent, Machine, Nanos, gathered,
};
use crate::strangers::Strangers;
use crate::warnings::WarningLimit;
use crate::wire::{Codec, Control, Counters, GroupTag, NodeId, PayloadCrc, Refusal};
use links::{Connection, Role};
use overlay::{Entry, Overlay, unsent_from};

pub use group::Group;
pub use mux::{Mux, TrunkCredit};

/// What a node is told at start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The address this node listens on, and registers.
    pub listen: SocketAddr,
    /// Where the registry listens.
    pub registry: SocketAddr,
    /// Seeds the node's random choices (sinks, payloads, challenge nonces).
    pub seed: u64,
    /// `--secret-file`: authenticate every connection, to the registry and between nodes, in
    /// both directions (`crate::auth`).
    pub secret: Option<Secret>,
    /// Capacity of each table link's outgoing buffer, mapped when the overlay is set up
    /// (`buffer::mapped`; the binary uses `limits::SEND_BUFFER_BYTES`). 0 leaves the buffers
    /// to grow from empty (the simulator, whose overlays of 128 nodes would otherwise map
    /// hundreds of MiB).
    pub link_buffer_bytes: usize,
    /// How long to keep trying to reach the registry and register (the registry may start
    /// after the node, or not answer at once) before giving up; 0 tries once.
    pub registry_wait: Nanos,
    /// The process's nodes, named in the registration so that the registry places them apart
    /// on the ring (`overlay node --count K`, K > 1); `None` for a node alone.
    pub group: Option<GroupTag>,
}

/// Whether the reason a connection is closed has been printed already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    /// Not yet: the log says it, as a warning.
    InTheLog,
    /// In a line of the node's own (`say`): a warning would repeat it.
    Already,
}

/// Where the node stands with the registry. The ID exists only once registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting to the registry.
    Connecting,
    /// Registration sent, waiting for the answer.
    Registering,
    /// Registered as `id`; no overlay yet, or it was set up.
    Registered { id: NodeId },
    /// Deregistration sent, waiting for the answer.
    Exiting { id: NodeId },
}

impl Phase {
    fn id(self) -> Option<NodeId> {
        match self {
            Phase::Registered { id } | Phase::Exiting { id } => Some(id),
            Phase::Connecting | Phase::Registering => None,
        }
    }
}

/// A messaging node.
pub struct Node<C: Codec> {
    config: NodeConfig,
    conn_ids: ConnIds,
    /// The connection to the registry (its record's role is [`Role::Registry`]); a new one
    /// for each attempt to register.
    registry: ConnId,
    phase: Phase,
    /// Attempts to reach the registry and register, until it answers.
    joining: Option<joining::Joining>,
    /// Every open connection: the registry, the table links, inbound links.
    connections: ConnMap<Connection>,
    /// The overlay of the last manifest that set one up: everything the data plane uses.
    overlay: Option<Overlay<C>>,
    /// A manifest that comes in several frames, until its last members arrive (bounded by
    /// `limits::MANIFEST_MEMBERS_MAX`).
    manifest_parts: Option<crate::wire::ManifestAssembly>,
    /// Accepted connections whose handshake is not done (`crate::strangers`): bounded, a share
    /// per address, [`NODE_HANDSHAKE_TIMEOUT_NS`] each.
    strangers: Strangers,
    /// Strangers closed are logged once per interval.
    stranger_warnings: WarningLimit,
    /// Handshake nonces (`crate::auth`).
    nonces: StdRng,
    /// Sinks, values and extra payload bytes of originated packets.
    rng: SmallRng,
    effects: Vec<Effect>,
    /// Why connections it closed were refused, until the driver sends it.
    farewells: Farewells,
    /// The time of the event being handled (warnings are rate-limited by it).
    now: Nanos,
    /// How many warnings about closed connections the log has had lately.
    warnings: WarningLimit,
    /// Table links closed at departure, until the driver has flushed them.
    flushing: std::collections::HashSet<ConnId>,
    /// Deregistered: exit once `flushing` is empty, or at this time.
    exit_at: Option<Nanos>,
    /// The current run's payload CRC from its value (the extra bytes are the same all run);
    /// kept between runs and overlays, since its tables depend only on the payload's length.
    payload_crc: Option<PayloadCrc>,
    /// The membership views of this process (shared by the nodes of a group).
    views: views::Views,
}

impl<C: Codec> Node<C> {
    pub fn new(config: NodeConfig) -> Node<C> {
        Node::sharing(config, views::Views::default())
    }

    /// A node that takes its membership views from `views`, shared with other nodes of its
    /// process (a group's).
    pub fn sharing(config: NodeConfig, views: views::Views) -> Node<C> {
        let rng = SmallRng::seed_from_u64(config.seed);
        let nonces = StdRng::seed_from_u64(config.seed ^ 0x6e6f_6e63_6573_2121);
        let mut conn_ids = ConnIds::default();
        // The first attempt's connection (`on_start`); later attempts get fresh ones.
        let registry = conn_ids.next_outbound();
        Node {
            config,
            conn_ids,
            registry,
            phase: Phase::Connecting,
            joining: None,
            connections: ConnMap::default(),
            overlay: None,
            manifest_parts: None,
            strangers: Strangers::new(
                NODE_STRANGERS_MAX,
                NODE_STRANGERS_PER_ADDRESS_MAX,
                NODE_HANDSHAKE_TIMEOUT_NS,
            ),
            stranger_warnings: WarningLimit::for_strangers(),
            nonces,
            rng,
            effects: Vec::new(),
            farewells: Farewells::default(),
            now: 0,
            warnings: WarningLimit::for_closed_connections(),
            flushing: std::collections::HashSet::new(),
            exit_at: None,
            payload_crc: None,
            views,
        }
    }

    /// This node's ID, once registered.
    pub fn id(&self) -> Option<NodeId> {
        self.phase.id()
    }

    /// The address this node listens on.
    pub fn listen(&self) -> SocketAddr {
        self.config.listen
    }

    /// The version of the membership this node routes by (0 at setup; one more per change
    /// it switched to), and its number of table entries; `None` without an overlay.
    pub fn membership_version(&self) -> Option<(u32, usize)> {
        self.overlay
            .as_ref()
            .map(|overlay| (overlay.version, overlay.entries.len()))
    }

    /// The counters since the last final report (zero without an overlay).
    pub fn counters(&self) -> Counters {
        self.overlay
            .as_ref()
            .map_or_else(Counters::default, |overlay| overlay.counters)
    }

    /// A manifest set up an overlay here whose setup status is not sent yet (its links are
    /// not all up).
    pub fn setting_up(&self) -> bool {
        self.overlay
            .as_ref()
            .is_some_and(|overlay| !overlay.setup_reported)
    }

    /// Bytes queued for the table entries (pending plus being sent): what this node holds.
    pub fn queued_bytes(&self) -> usize {
        self.overlay.as_ref().map_or(0, Overlay::queued_bytes)
    }

    fn say(&mut self, line: impl Into<String>) {
        self.effects.push(Effect::Print(line.into()));
    }

    /// Who is at the other end of `conn`, for log lines.
    fn peer_of(&self, conn: ConnId) -> String {
        match self.connections.get(&conn).map(|c| c.role) {
            Some(Role::Registry) => format!("the registry at {}", self.config.registry),
            Some(Role::Entry(index)) => self
                .overlay
                .as_ref()
                .and_then(|o| o.entries.get(index))
                .map_or("table entry".to_string(), |e| {
                    format!("node {} at {}", e.id, e.addr)
                }),
            Some(Role::Inbound(peer)) => peer.to_string(),
            None => "an unknown connection".to_string(),
        }
    }

    /// Closes `conn`, telling the peer why first (`refusal`: a frame the driver sends before
    /// it shuts the connection down). `Said::Already`: the node has printed `why` in a line of
    /// its own, so the log does not repeat it as a warning.
    fn close_telling(&mut self, conn: ConnId, refusal: Option<Refusal>, why: String, said: Said) {
        if let Some(refusal) = refusal.filter(|_| C::HELLO) {
            let mut farewell = Vec::new();
            C::encode_control(&Control::Refused(refusal), &mut farewell);
            self.farewells.keep(conn, farewell);
        }
        self.close_saying(conn, why, said);
    }

    /// Closes an accepted connection that never became a link (`why`, told as `refusal`),
    /// logging at most one such line per [`STRANGER_WARNING_INTERVAL_NS`](crate::limits::STRANGER_WARNING_INTERVAL_NS): any host can open
    /// connections as fast as it likes, and the log must not grow with them.
    fn close_stranger(&mut self, now: Nanos, conn: ConnId, refusal: Option<Refusal>, why: &str) {
        if let Some(held) = self.stranger_warnings.admit(now) {
            let more = match held {
                0 => String::new(),
                held => format!(
                    " ({held} more connections that never became links were closed since the \
                     last such line)"
                ),
            };
            tracing::warn!(
                "closing the connection with {}: {why}{more}",
                self.peer_of(conn)
            );
        }
        if let Some(refusal) = refusal.filter(|_| C::HELLO) {
            let mut farewell = Vec::new();
            C::encode_control(&Control::Refused(refusal), &mut farewell);
            self.farewells.keep(conn, farewell);
        }
        self.strangers.leave(conn);
        self.connections.remove(&conn);
        self.effects.push(Effect::Close(conn));
    }

    /// Forgets accepted connection `conn` without a word (it said nothing to this node yet:
    /// its process's multiplexer took it as a trunk, `node::mux`).
    pub(crate) fn forget(&mut self, conn: ConnId) {
        self.strangers.leave(conn);
        self.connections.remove(&conn);
    }

    /// Accepted strangers whose handshake did not finish in time are closed.
    fn expire_strangers(&mut self, now: Nanos) {
        while let Some(conn) = self.strangers.expired(now) {
            let why = format!(
                "no handshake within {} s of connecting",
                NODE_HANDSHAKE_TIMEOUT_NS / 1_000_000_000
            );
            self.close_stranger(now, conn, None, &why);
        }
    }

    /// An accepted connection finished its handshake: a link now, unless the node already
    /// holds [`NODE_INBOUND_LINKS_MAX`] of them (then it is refused as busy). Returns whether it
    /// stays.
    fn inbound_link_up(&mut self, now: Nanos, conn: ConnId) -> bool {
        self.strangers.leave(conn);
        let links = self
            .connections
            .iter()
            .filter(|(other, c)| {
                matches!(c.role, Role::Inbound(_)) && !self.strangers.contains(**other)
            })
            .count();
        if links > NODE_INBOUND_LINKS_MAX {
            let why =
                format!("this node already holds {NODE_INBOUND_LINKS_MAX} links from other nodes");
            self.close_stranger(now, conn, Some(Refusal::Busy), &why);
            return false;
        }
        true
    }

    /// Closes `conn` with a warning saying why (at most so many a while: `crate::warnings`).
    fn close(&mut self, conn: ConnId, why: String) {
        self.close_saying(conn, why, Said::InTheLog);
    }

    /// [`Node::close`]; with `Said::Already` the reason goes to the log at debug level only.
    fn close_saying(&mut self, conn: ConnId, why: String, said: Said) {
        let peer = self.peer_of(conn);
        self.strangers.leave(conn);
        let role = self.connections.remove(&conn).map(|c| c.role);
        let admitted = match said {
            Said::InTheLog => self.warnings.admit(self.now),
            Said::Already => None,
        };
        match admitted {
            Some(0) => tracing::warn!("closing the connection with {peer}: {why}"),
            Some(hidden) => tracing::warn!(
                "closing the connection with {peer}: {why} (and {hidden} more closed connections \
                 since the last warning, not shown)"
            ),
            None => tracing::debug!("closing the connection with {peer}: {why}"),
        }
        self.effects.push(Effect::Close(conn));
        // One of our own table links: it is down from now on (the driver does not report a
        // close the machine asked for), and what is queued for it is dropped.
        if let Some(Role::Entry(index)) = role {
            self.on_entry_closed(index, &why);
        }
    }
}

impl<C: Codec> Node<C> {
    /// Bytes from `conn` (in a buffer the driver lends, if `lent`).
    fn received(
        &mut self,
        now: Nanos,
        conn: ConnId,
        bytes: &[u8],
        lent: Option<&Lent<'_>>,
    ) -> usize {
        self.now = now;
        match self.connections.get(&conn).map(|c| c.role) {
            Some(Role::Registry) => {
                self.heard_from_registry();
                self.on_registry_bytes(now, bytes)
            }
            Some(_) => self.on_data_bytes(now, conn, bytes, lent),
            None => bytes.len(),
        }
    }
}

impl<C: Codec> Machine for Node<C> {
    fn on_start(&mut self, now: Nanos) {
        self.now = now;
        self.start_joining(now);
    }

    fn on_accepted(&mut self, now: Nanos, conn: ConnId, peer: SocketAddr, local: SocketAddr) {
        self.now = now;
        tracing::debug!("accepted a link from {peer}");
        if !C::HELLO {
            // The classic format has no hello: a reference node's link says nothing until a
            // run, so it is a link at once (within the bound on links).
            self.connections
                .insert(conn, Connection::new(Role::Inbound(peer), Handshake::Done));
            self.inbound_link_up(now, conn);
            return;
        }
        // A stranger until its handshake is done (`crate::strangers`).
        let handshake = Handshake::accept(Binding {
            acceptor: auth::Role::Node,
            acceptor_addr: local,
        });
        self.connections
            .insert(conn, Connection::new(Role::Inbound(peer), handshake));
        if let Some(old) = self.strangers.admit(now, conn, peer.ip()) {
            self.close_stranger(
                now,
                old,
                Some(Refusal::Busy),
                "pushed out by a newer connection (too many wait to finish their handshake)",
            );
        }
    }

    fn on_connected(&mut self, now: Nanos, conn: ConnId) {
        self.now = now;
        if conn == self.registry {
            self.connected_to_registry(now);
        }
        match self.connections.get(&conn).map(|c| c.role) {
            Some(Role::Registry) => self.greet_registry(),
            Some(Role::Entry(index)) => self.greet_entry(conn, index),
            _ => {}
        }
    }

    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        self.received(now, conn, bytes, None)
    }

    fn on_received_in(&mut self, now: Nanos, conn: ConnId, bytes: &[u8], lent: Lent<'_>) -> usize {
        self.received(now, conn, bytes, Some(&lent))
    }

    fn on_closed(&mut self, now: Nanos, conn: ConnId, reason: CloseReason) {
        self.now = now;
        match self.connections.remove(&conn).map(|c| c.role) {
            // While joining, a failed attempt is tried again (joining.rs).
            Some(Role::Registry) if self.join_failed(now, &reason.to_string(), true) => {}
            // Deregistered: the links are flushing before the node exits.
            Some(Role::Registry) if self.exit_at.is_some() => {}
            Some(Role::Registry) => {
                self.say(format!(
                    "the registry connection closed ({reason}); exiting"
                ));
                self.effects.push(Effect::Exit(1));
            }
            Some(Role::Entry(index)) => self.on_entry_closed(index, &reason.to_string()),
            Some(Role::Inbound(peer)) => {
                tracing::debug!("inbound link from {peer} closed: {reason}");
                self.check_leaving();
            }
            None => {}
        }
    }

    fn on_unsent(&mut self, now: Nanos, conn: ConnId, taken: &[u8], sent: usize) {
        self.now = now;
        // Frames for a dead link that never reached the kernel whole go on around it with
        // those still queued, once the close arrives (`on_entry_closed`).
        let Some(Role::Entry(index)) = self.connections.get(&conn).map(|c| c.role) else {
            return;
        };
        if let Some(overlay) = self.overlay.as_mut() {
            let from = unsent_from::<C>(taken, sent);
            overlay.entries[index]
                .stranded
                .extend_from_slice(&taken[from..]);
        }
    }

    fn on_command(&mut self, now: Nanos, line: &str) {
        self.now = now;
        match parse_node(line) {
            Ok(None) => {}
            Ok(Some(NodeCommand::Help)) => self.say(NODE_HELP),
            Ok(Some(NodeCommand::Lookup { key })) => self.lookup(now, &key, None),
            Ok(Some(NodeCommand::PrintCountersAndDiagnostics)) => {
                let text = self.diagnostics();
                self.say(text);
            }
            Ok(Some(NodeCommand::ExitOverlay)) => match self.phase {
                Phase::Exiting { .. } => {
                    self.say("Already leaving: waiting for the registry to let this node go")
                }
                Phase::Registered { id } => {
                    self.phase = Phase::Exiting { id };
                    self.send_control(&Control::Deregister {
                        addr: self.config.listen,
                        id,
                    });
                }
                Phase::Connecting | Phase::Registering => {
                    self.say("Not registered; exiting");
                    self.effects.push(Effect::Exit(0));
                }
            },
            Err(message) => self.say(message),
        }
    }

    fn on_flushed(&mut self, now: Nanos, conn: ConnId) {
        self.now = now;
        self.flushed(conn);
    }

    fn on_tick(&mut self, now: Nanos) {
        self.now = now;
        self.departure_tick(now);
        self.on_join_tick(now);
        self.expire_strangers(now);
        self.originate(now);
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.expire_lookups(&mut self.effects, now);
        }
        self.report_lookups();
    }

    fn next_tick(&self) -> Option<Nanos> {
        let send = self.overlay.as_ref().and_then(Overlay::next_send);
        let lookups = self
            .overlay
            .as_ref()
            .and_then(|o| o.lookups.next_deadline());
        [
            send,
            lookups,
            self.join_tick(),
            self.strangers.next_deadline(),
            self.exit_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        std::mem::swap(&mut self.effects, into);
    }

    fn pending_len(&self, conn: ConnId) -> usize {
        match self.connections.get(&conn) {
            Some(Connection {
                role: Role::Entry(index),
                ..
            }) => self
                .overlay
                .as_ref()
                .and_then(|o| o.entries.get(*index))
                .map_or(0, Entry::queued_len),
            Some(connection) => connection.pending.len(),
            None => 0,
        }
    }

    fn frame_len(&self, bytes: &[u8]) -> Option<usize> {
        C::frame_len(bytes).ok().flatten()
    }

    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        let mut holes = Vec::new();
        self.swap_outgoing_held(conn, buf, &mut holes);
        if !holes.is_empty() {
            // A driver that lends no buffers never finds held bytes; copied in all the same.
            *buf = gathered(buf, &holes);
        }
    }

    fn swap_outgoing_held(&mut self, conn: ConnId, buf: &mut Vec<u8>, holes: &mut Vec<Hole>) {
        debug_assert!(buf.is_empty() && holes.is_empty());
        match self.connections.get_mut(&conn) {
            Some(Connection {
                role: Role::Entry(index),
                ..
            }) => {
                if let Some(overlay) = self.overlay.as_mut() {
                    let entry = &mut overlay.entries[*index];
                    let taken = entry.queued_len();
                    std::mem::swap(&mut entry.pending, buf);
                    std::mem::swap(&mut entry.held, holes);
                    entry.held_bytes = 0;
                    entry.with_driver = taken;
                    overlay.dequeued(*index, taken);
                }
            }
            Some(connection) => std::mem::swap(&mut connection.pending, buf),
            None => {
                self.farewells.swap_out(conn, buf);
            }
        }
    }
}

#[cfg(test)]
mod tests;
