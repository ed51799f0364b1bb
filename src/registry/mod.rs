//! The registry's state machine: nodes register, the overlay is set up, runs start and end.
//! No I/O: see `crate::machine`. Events arrive here (the `Machine` impl, and `handle_frame` for
//! each message) and are handled by concern:
//!
//! - `membership.rs`: registration, deregistration, IDs, connections lost or never registered;
//! - `setup.rs`: `setup-overlay`, the manifests, the nodes' setup status;
//! - `runs.rs`: `start`, the nodes' reports fed to the run, its steps carried out, results;
//! - `run.rs`: the end-of-run rule (`Run`; docs/ARCHITECTURE.md, "The end of a run");
//! - `script.rs`: the scripted mode (`--nodes`, `--start`);
//! - `listings.rs`: `list-messaging-nodes`, `list-routing-tables`, `export-overlay`;
//! - `progress.rs`: a run's progress for the operator; `interval.rs`: `--interval` lines;
//!   `config.rs`: the registry's settings.
//!
//! The encoding decides what the registry may ask for (`Codec::PROGRESS_POLLS`,
//! `Codec::HAS_ACKS`, `Codec::encodable`): with the classic one there are no polls (a run ends
//! `settle` after the last task-finished), no window, and `start` or `setup-overlay` is refused
//! when the format cannot carry what it would send (extra payload, more than 255 nodes).

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::net::SocketAddr;

use rand::SeedableRng;
use rand::rngs::{SmallRng, StdRng};

use crate::auth::{self, Binding, Failure, Handshake, Outcome};
use crate::console::{REGISTRY_HELP, RegistryCommand, parse_registry};
use crate::limits::{
    CONNECTION_WARNINGS_MAX, ID_BITS_MAX, REGISTRY_LATE_NS_MAX, REGISTRY_QUEUED_BYTES_MAX,
    REGISTRY_STRANGERS_MAX, REGISTRY_STRANGERS_PER_ADDRESS_MAX,
};
use crate::machine::{CloseReason, ConnId, ConnMap, Effect, Farewells, Machine, Nanos};
use crate::routing::Fingers;
use crate::strangers::Strangers;
use crate::warnings::WarningLimit;
use crate::wire::{Codec, Control, NodeId, Peek, Refusal, WireError};

mod changes;
mod config;
mod export;
mod interval;
mod listings;
mod lookups;
mod membership;
mod placement;
pub mod progress;
mod results;
mod run;
mod runs;
mod script;
mod setup;

pub use config::RegistryConfig;
pub use run::Goal;
pub use script::Script;
pub use setup::OverlaySettings;

use interval::Intervals;
use membership::NodeRecord;
use progress::ProgressSample;
use run::Run;
use setup::Overlay;

pub use results::Results;

/// Whether `export-overlay` can write `path` (its extension says what: `.svg` or `.dot`).
pub fn export_format(path: &str) -> Result<(), String> {
    export::Format::of(path).map(|_| ())
}

/// See [`Registry::last_round`].
#[derive(Debug)]
pub struct LastRound<'a> {
    pub run: u32,
    pub nodes: Vec<(NodeId, SocketAddr, &'a crate::wire::Counters)>,
    pub stats: &'a crate::stats::RunStats,
    /// Each node's latency per hop over the run so far (`RegistryConfig::node_latency`).
    pub node_hop_latency: Option<&'a BTreeMap<NodeId, crate::stats::HopLatencyBuckets>>,
}

/// A connection the registry accepted: a node's once it registered, a stranger's until then.
#[derive(Debug)]
struct Connection {
    peer: SocketAddr,
    /// The node registered on this connection.
    node: Option<NodeId>,
    /// Bytes for the driver to send (`swap_outgoing`).
    pending: Vec<u8>,
    /// The handshake this connection must finish before anything else (`crate::auth`).
    handshake: Handshake,
    /// Its node left gracefully (changes.rs): what it still sends (answers to requests that
    /// crossed its departure) is ignored, and it closes the connection itself.
    left: bool,
    /// Warnings this connection caused, of which the first
    /// [`CONNECTION_WARNINGS_MAX`](crate::limits::CONNECTION_WARNINGS_MAX) are logged.
    warnings: u32,
}

/// The registry.
pub struct Registry<C: Codec> {
    config: RegistryConfig,
    /// Every connection accepted, registered or not.
    connections: ConnMap<Connection>,
    /// The registered nodes (membership.rs).
    nodes: BTreeMap<NodeId, NodeRecord>,
    /// IDs of members that left a live overlay (gracefully or lost) since the last run ended:
    /// not given again until then, since the nodes' counts, traces and the run's per-link
    /// account still name them (at most one per ID of the space).
    departed: BTreeSet<NodeId>,
    /// The overlay of the last `setup-overlay`, until the membership changes (setup.rs).
    overlay: Option<Overlay>,
    /// The run in progress (runs.rs; its end is decided by run.rs).
    run: Option<Run>,
    /// Nodes whose count of final reports (the run tag, docs/PROTOCOL.md) is behind the
    /// others': those that had not answered a run's final request when the run ended (given
    /// up on, or `stop`), and newcomers that were setting up when a run's final request went
    /// to the members. Until each answers, it would drop the next run's packets as stale, so
    /// no run starts (runs.rs). At most one entry per node.
    owed_finals: BTreeMap<NodeId, runs::Owed>,
    runs_started: u32,
    /// The finger rule of the overlay the current (or last) run started on.
    run_fingers: Fingers,
    /// Results of the runs completed so far (and a scripted session's failure to get ready).
    results: Results,
    /// The last complete round of counter polls, for the operator (`progress`).
    progress: Option<ProgressSample>,
    /// Complete rounds of counter polls so far.
    rounds: u64,
    /// A scripted run to start at the next tick (goal, extra payload bytes, to keys), once no
    /// membership change is under way (a leave put off until the end of the last run).
    pending_script_start: Option<(Goal, u32, bool)>,
    /// A scripted session's exit status, once no membership change is under way.
    pending_script_exit: Option<i32>,
    /// Lookups asked of nodes at the console, by number, until they answer (`lookups.rs`;
    /// at most `LOOKUPS_PENDING_MAX`).
    lookups: BTreeMap<u32, lookups::AskedLookup>,
    /// Lookups asked so far (the last one's number).
    lookups_asked: u32,
    /// `--interval` lines of the current run.
    intervals: Intervals,
    /// Interrupts (Ctrl-C in scripted mode) so far.
    interrupts: u32,
    /// A scripted registry gives up if the overlay is not ready by then.
    ready_deadline: Option<Nanos>,
    /// The last time the driver called in ([`Registry::catch_up`]).
    seen: Nanos,
    /// Connections that have not registered a node (`crate::strangers`): a bounded pool, a
    /// share per address, and `stranger_timeout` each to register.
    strangers: Strangers,
    /// Strangers pushed out or timed out are logged once per interval.
    stranger_warnings: WarningLimit,
    /// Draws node IDs.
    rng: SmallRng,
    /// Places the nodes of a process apart on the ring (`placement.rs`).
    placement: placement::Placement,
    /// Challenge nonces (seeded from the configured seed; main seeds it from the OS).
    nonces: StdRng,
    effects: Vec<Effect>,
    /// Why connections it closed were refused, until the driver sends it.
    farewells: Farewells,
    /// How many warnings about closed connections the log has had lately.
    close_warnings: WarningLimit,
    codec: PhantomData<C>,
}

impl<C: Codec> Registry<C> {
    pub fn new(config: RegistryConfig) -> Registry<C> {
        assert!((1..=ID_BITS_MAX).contains(&config.id_bits));
        let rng = SmallRng::seed_from_u64(config.seed);
        let nonces = StdRng::seed_from_u64(config.seed ^ 0x6e6f_6e63_6573_2121);
        let intervals = Intervals::new(config.interval);
        let strangers = Strangers::new(
            REGISTRY_STRANGERS_MAX,
            REGISTRY_STRANGERS_PER_ADDRESS_MAX,
            config.stranger_timeout,
        );
        Registry {
            config,
            connections: ConnMap::default(),
            nodes: BTreeMap::new(),
            departed: BTreeSet::new(),
            overlay: None,
            run: None,
            owed_finals: BTreeMap::new(),
            runs_started: 0,
            run_fingers: Fingers::Positions { nr: 0 },
            results: Results::default(),
            progress: None,
            rounds: 0,
            pending_script_start: None,
            pending_script_exit: None,
            lookups: BTreeMap::new(),
            lookups_asked: 0,
            intervals,
            interrupts: 0,
            ready_deadline: None,
            seen: 0,
            strangers,
            stranger_warnings: WarningLimit::for_strangers(),
            rng,
            placement: placement::Placement::default(),
            nonces,
            effects: Vec::new(),
            farewells: Farewells::default(),
            close_warnings: WarningLimit::for_closed_connections(),
            codec: PhantomData,
        }
    }

    /// Deadlines outside a run that judge others (a scripted registry's ready timeout, a
    /// membership change's stage) count time the registry ran, as a run's do, by the same
    /// rule (`Run::catch_up`): entered more than [`REGISTRY_LATE_NS_MAX`] after such a
    /// deadline, the registry was stopped or starved, and they move by the time since its
    /// previous call. Called first on every entry with a time.
    fn catch_up(&mut self, now: Nanos) {
        let due = [
            self.ready_deadline.filter(|_| !self.is_ready()),
            self.change_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(due) = due
            && now > due.saturating_add(REGISTRY_LATE_NS_MAX)
        {
            let lost = now.saturating_sub(self.seen);
            tracing::warn!(
                "the registry did not run for {} ms (stopped or starved); the set-up's and \
                 membership changes' deadlines move by that much, so that no node is blamed for \
                 it",
                lost / 1_000_000
            );
            if let Some(deadline) = self.ready_deadline.as_mut() {
                *deadline = deadline.saturating_add(lost);
            }
            self.move_change_deadline(lost);
        }
        self.seen = self.seen.max(now);
    }

    /// Results of the runs completed so far.
    pub fn results(&self) -> &Results {
        &self.results
    }

    /// The last complete round of counter polls of a run (the current or a finished one):
    /// a driver may show it as progress. A new round has a new `round`.
    pub fn progress(&self) -> Option<&ProgressSample> {
        self.progress.as_ref()
    }

    /// The last complete round of counter polls of the run in progress: the run's number,
    /// each node's counters and address, and the hop counts and latencies of the packets
    /// delivered since the round before. `None` between runs. A new round shows as a new
    /// [`ProgressSample::round`].
    pub fn last_round(&self) -> Option<LastRound<'_>> {
        let run = self.run.as_ref()?;
        Some(LastRound {
            run: run.number,
            nodes: run
                .last_round
                .iter()
                .filter_map(|(id, counters)| Some((*id, self.nodes.get(id)?.addr, counters)))
                .collect(),
            stats: &run.last_round_stats,
            node_hop_latency: run.node_hop_latency.as_ref(),
        })
    }

    /// Registered nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// `node 5 at 127.0.0.2:4000` for log lines.
    fn describe(&self, id: NodeId) -> String {
        match self.nodes.get(&id) {
            Some(node) => format!("node {id} at {}", node.addr),
            None => format!("node {id}"),
        }
    }

    /// Registered node IDs.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Whether node `id` still owes the final summary of a run that ended while it was
    /// joining (or while it was given up on): until it answers, `start` is refused.
    pub fn owes_final_summary(&self, id: NodeId) -> bool {
        self.owed_finals.contains_key(&id)
    }

    /// True once every node reported setup success.
    pub fn is_ready(&self) -> bool {
        self.overlay.as_ref().is_some_and(|o| o.ready)
    }

    /// Logs a warning `conn`'s peer caused, up to [`CONNECTION_WARNINGS_MAX`] per connection
    /// (a peer repeating a bad request must not fill the log); the rest are counted and
    /// reported once when the connection goes.
    fn warn(&mut self, conn: ConnId, line: &str) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            tracing::warn!("{line}");
            return;
        };
        connection.warnings = connection.warnings.saturating_add(1);
        if connection.warnings <= CONNECTION_WARNINGS_MAX {
            tracing::warn!("{line}");
        }
    }

    /// [`Registry::warn`] for the connection of node `id`.
    fn warn_node(&mut self, id: NodeId, line: &str) {
        match self.nodes.get(&id).map(|node| node.conn) {
            Some(conn) => self.warn(conn, line),
            None => tracing::warn!("{line}"),
        }
    }

    fn say(&mut self, line: impl Into<String>) {
        self.effects.push(Effect::Print(line.into()));
    }

    fn send(&mut self, conn: ConnId, message: &Control) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            if connection.pending.is_empty() {
                self.effects.push(Effect::Send(conn));
            }
            C::encode_control(message, &mut connection.pending);
        }
    }

    fn send_to_node(&mut self, id: NodeId, message: &Control) {
        if let Some(conn) = self.nodes.get(&id).map(|n| n.conn) {
            self.send(conn, message);
        }
    }

    fn broadcast(&mut self, message: &Control) {
        // A run's messages: the joiners are not in it yet.
        let conns: Vec<ConnId> = self
            .nodes
            .iter()
            .filter(|&(&id, _)| !self.is_joiner(id))
            .map(|(_, n)| n.conn)
            .collect();
        for conn in conns {
            self.send(conn, message);
        }
    }

    /// One message from `conn`: the handshake's first (a hello, and with a secret the proof);
    /// then each
    /// kind to the part of the registry that handles it. An error closes the connection.
    fn handle_frame(&mut self, now: Nanos, conn: ConnId, frame: &[u8]) -> Result<(), String> {
        if matches!(
            C::peek(frame),
            Ok(Peek::Data(_)
                | Peek::Keyed(_)
                | Peek::Lookup(_)
                | Peek::LookupReply(_)
                | Peek::Ack(_))
        ) {
            return Err("the registry does not route data packets".to_string());
        }
        let message = C::decode_control(frame).map_err(|e| format!("bad message: {e}"))?;
        if let Some(connection) = self.connections.get_mut(&conn)
            && !connection.handshake.is_done()
        {
            let secret = self.config.secret.as_ref();
            match connection
                .handshake
                .on_message(secret, Some(&message), &mut self.nonces)
            {
                Outcome::Reply(reply) | Outcome::Done(Some(reply)) => {
                    self.send(conn, &reply);
                    return Ok(());
                }
                Outcome::Done(None) => return Ok(()),
                Outcome::PassThrough => {}
                Outcome::Failed(failure) => {
                    let first = match failure {
                        Failure::PeerHasNoSecret => {
                            format!(" (its first message: {})", message.name())
                        }
                        _ => String::new(),
                    };
                    let why = format!("{}{first}", failure.describe("the peer"));
                    self.tell_and_close(now, conn, failure.tell(), why);
                    return Ok(());
                }
            }
        }
        if self.connections.get(&conn).is_some_and(|c| c.left) {
            tracing::debug!("{} from a node that left: ignored", message.name());
            return Ok(());
        }
        let node = self.connections.get(&conn).and_then(|c| c.node);
        match (message, node) {
            (Control::Register { addr, group }, _) => self.on_register(now, conn, addr, group),
            (Control::Deregister { addr, id }, _) => self.on_deregister(now, conn, addr, id),
            (Control::SetupStatus { status, info }, Some(id)) => {
                self.on_setup_status(now, id, status, info)
            }
            (Control::MembershipAck { version, count }, Some(id)) => {
                self.on_membership_ack(now, id, version, count)
            }
            (Control::TaskFinished { addr, id }, Some(own)) => {
                let matches = self.nodes.get(&own).is_some_and(|node| {
                    node.addr == addr || self.loose_port_match(node, conn, addr)
                });
                if id != own || !matches {
                    return Err(format!(
                        "task finished for node {id} at {addr} from the connection of node {own}"
                    ));
                }
                self.on_task_finished(now, id)
            }
            (
                Control::Summary {
                    id,
                    reset,
                    counters,
                    stats,
                    links,
                },
                Some(own),
            ) => {
                if id != own {
                    return Err(format!(
                        "traffic summary for node {id} from the connection of node {own}"
                    ));
                }
                self.on_summary(now, id, reset, counters, stats, links)
            }
            (Control::LookupResult { number, result }, Some(own)) => {
                self.on_lookup_result(own, number, result)?
            }
            (
                message @ (Control::SetupStatus { .. }
                | Control::TaskFinished { .. }
                | Control::Summary { .. }
                | Control::LookupResult { .. }
                | Control::MembershipAck { .. }),
                None,
            ) => {
                return Err(format!(
                    "{} from a connection that has not registered",
                    message.name()
                ));
            }
            (message, _) => {
                return Err(format!(
                    "{} is a message the registry sends, not one it accepts",
                    message.name()
                ));
            }
        }
        Ok(())
    }
}

impl<C: Codec> Machine for Registry<C> {
    fn on_start(&mut self, now: Nanos) {
        self.seen = now;
        if let Some(script) = &self.config.script {
            self.ready_deadline = Some(now + script.ready_timeout);
        }
    }

    fn on_accepted(&mut self, now: Nanos, conn: ConnId, peer: SocketAddr, local: SocketAddr) {
        self.catch_up(now);
        tracing::debug!("connection from {peer}");
        // The hello comes first (the classic format has none: its first message is a
        // request).
        let handshake = if C::HELLO {
            Handshake::accept(Binding {
                acceptor: auth::Role::Registry,
                acceptor_addr: local,
            })
        } else {
            Handshake::Done
        };
        self.connections.insert(
            conn,
            Connection {
                peer,
                node: None,
                pending: Vec::new(),
                handshake,
                left: false,
                warnings: 0,
            },
        );
        if let Some(old) = self.strangers.admit(now, conn, peer.ip()) {
            self.strangers_closed(
                now,
                old,
                Some(Refusal::Busy),
                "pushed out by a newer connection (too many connections wait to register)",
            );
        }
    }

    fn on_connected(&mut self, _now: Nanos, _conn: ConnId) {}

    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        self.catch_up(now);
        let mut offset = 0;
        while self.connections.contains_key(&conn) {
            let len = match C::frame_len(&bytes[offset..]) {
                Ok(Some(len)) => len,
                Ok(None) => return offset,
                Err(error) => {
                    if let WireError::OtherFormat { .. } = error {
                        self.farewells.keep(conn, C::farewell_to_the_other_format());
                    }
                    self.refuse_and_close(now, conn, format!("bad frame: {error}"));
                    break;
                }
            };
            // A peer that sends requests and does not read the answers is cut: what is queued
            // for one connection stays bounded (limits.rs).
            let queued = self.connections.get(&conn).map_or(0, |c| c.pending.len());
            if queued > REGISTRY_QUEUED_BYTES_MAX {
                self.refuse_and_close(
                    now,
                    conn,
                    format!(
                        "it sends requests but does not read the answers ({queued} bytes \
                         queued for it)"
                    ),
                );
                break;
            }
            let frame = &bytes[offset..offset + len];
            offset += len;
            if let Err(why) = self.handle_frame(now, conn, frame) {
                self.refuse_and_close(now, conn, why);
                break;
            }
        }
        bytes.len()
    }

    fn on_closed(&mut self, now: Nanos, conn: ConnId, reason: CloseReason) {
        self.catch_up(now);
        self.forget_connection(now, conn, &format!("connection lost ({reason})"));
    }

    fn on_command(&mut self, now: Nanos, line: &str) {
        self.catch_up(now);
        match parse_registry(line) {
            Ok(None) => {}
            Ok(Some(RegistryCommand::Help)) => self.say(REGISTRY_HELP),
            Ok(Some(RegistryCommand::ListMessagingNodes)) => {
                let text = self.list_nodes();
                self.say(text);
            }
            Ok(Some(RegistryCommand::ListRoutingTables)) => {
                let text = self.list_tables();
                self.say(text);
            }
            Ok(Some(RegistryCommand::SetupOverlay { fingers })) => self.setup_overlay(fingers),
            Ok(Some(RegistryCommand::ExportOverlay { path })) => self.export_overlay(path),
            Ok(Some(RegistryCommand::Start {
                goal,
                extra_payload_bytes,
                keys,
            })) => self.start(now, goal, extra_payload_bytes, keys),
            Ok(Some(RegistryCommand::Stop)) => self.stop(now),
            Ok(Some(RegistryCommand::Lookup { key, node })) => self.lookup(key, node),
            Err(message) => self.say(message),
        }
    }

    fn on_tick(&mut self, now: Nanos) {
        self.catch_up(now);
        self.expire_strangers(now);
        self.change_tick(now);
        if self.give_up_unless_ready(now) {
            return;
        }
        let ids = self.run_node_ids();
        if let Some(run) = self.run.as_mut() {
            let step = run.on_tick(now, &ids);
            self.apply_step(now, step);
        }
        if self.membership_changing() {
            return;
        }
        if let Some((goal, extra, keys)) = self.pending_script_start.take() {
            self.start(now, goal, extra, keys);
        }
        if let Some(code) = self.pending_script_exit.take() {
            self.effects.push(Effect::Exit(code));
        }
    }

    fn awaits_hand_over(&self) -> bool {
        self.run.as_ref().is_some_and(Run::handing) || self.change_handing()
    }

    fn on_handed_over(&mut self, now: Nanos) {
        if let Some(run) = self.run.as_mut() {
            run.on_handed(now);
        }
        self.change_handed(now);
    }

    fn next_tick(&self) -> Option<Nanos> {
        if (self.pending_script_start.is_some() || self.pending_script_exit.is_some())
            && !self.membership_changing()
        {
            return Some(0);
        }
        let poll = self.run.as_ref().and_then(Run::next_tick);
        let deadline = self.ready_deadline.filter(|_| !self.is_ready());
        let stranger = self.strangers.next_deadline();
        let change = self.change_deadline();
        let retry = self.join_retry_due();
        [poll, deadline, stranger, change, retry]
            .into_iter()
            .flatten()
            .min()
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        std::mem::swap(&mut self.effects, into);
    }

    fn frame_len(&self, bytes: &[u8]) -> Option<usize> {
        C::frame_len(bytes).ok().flatten()
    }

    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        match self.connections.get_mut(&conn) {
            Some(connection) => std::mem::swap(&mut connection.pending, buf),
            None => {
                self.farewells.swap_out(conn, buf);
            }
        }
    }
}
