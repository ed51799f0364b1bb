//! The registry's state machine: registration, overlay setup, runs and the end-of-run rule.
//! No I/O: see `crate::machine`.
//!
//! End of a run (docs/ARCHITECTURE.md): once every node reported task finished, the registry
//! polls every node's counters without resetting them. When, in two consecutive polls, the
//! totals are the same and every packet sent is accounted for (received, corrupted or dropped),
//! nothing is in flight: it then asks for the final summaries, which reset the counters. A
//! node lost meanwhile ends the run as FAIL, naming it; polls that show no progress at all for
//! `stall_timeout` end it as FAIL with the packets unaccounted for.
//!
//! The encoding decides what the registry may ask for (`Codec::PROGRESS_POLLS`,
//! `Codec::HAS_ACKS`, `Codec::encodable`): with the classic one there are no polls (a run ends
//! `settle` after the last task-finished), no window, and `start` or `setup-overlay` is refused
//! when the format cannot carry what it would send (extra payload, more than 255 nodes).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::net::SocketAddr;

use rand::rngs::{SmallRng, StdRng};
use rand::{Rng, SeedableRng};

use crate::auth::{NONCE_BYTES, Secret};
use crate::console::{REGISTRY_HELP, RegistryCommand, parse_registry};
use crate::limits::{
    ID_BITS_MAX, NODES_MAX, PAYLOAD_BYTES_MAX, TRACE_SLOTS_MAX, default_window_bytes,
};
use crate::machine::{CloseReason, ConnId, Effect, Machine, Nanos};
use crate::routing::{Ring, check_nr, longest_path_relays};
use crate::stats::RunStats;
use crate::summary::{NodeResult, RunResult};
use crate::wire::{
    Codec, Control, Counters, LinkCount, Manifest, ManifestEntry, NodeId, Peek, Status,
};

mod export;
pub mod progress;
mod run;

use progress::ProgressSample;
use run::{PollTiming, Run, Step};

/// A scripted session: wait for nodes, set up, run, report, exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub nodes: usize,
    pub nr: usize,
    pub packets: u64,
    pub runs: u32,
    pub extra_payload_bytes: u32,
    /// The overlay must be registered and set up within this long after start.
    pub ready_timeout: Nanos,
}

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// IDs are drawn from 0..2^id_bits.
    pub id_bits: u32,
    pub seed: u64,
    pub script: Option<Script>,
    /// Per-source window in bytes; `None` = derived from the in-flight budget.
    pub window_bytes: Option<u64>,
    /// Between counter polls while nodes are sending (progress, hung nodes).
    pub progress_interval: Nanos,
    /// First pause between counter polls once all nodes finished (doubles up to 64 times it).
    pub poll_interval: Nanos,
    /// Packets per second each node originates at most in a run (0 = as fast as it can).
    pub rate_per_s: u32,
    /// Print run summaries as JSON (the same object as the result file's runs) instead of the
    /// table.
    pub summary_json: bool,
    /// `--secret-file`: every connection must answer a challenge keyed by it first.
    pub secret: Option<Secret>,
    /// A connection that has not registered a node this long after it was accepted is closed
    /// (a peer that connects and says nothing must not hold a slot forever).
    pub stranger_timeout: Nanos,
    /// A run whose polls show no progress for this long ends as FAIL.
    pub stall_timeout: Nanos,
    /// Encodings without progress polls (classic): the wait between the last task-finished
    /// and the final summary requests, for packets still in flight.
    pub settle: Nanos,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            id_bits: crate::limits::ID_BITS_DEFAULT,
            seed: 0,
            script: None,
            window_bytes: None,
            progress_interval: 1_000_000_000,
            poll_interval: 1_000_000,
            stranger_timeout: 10_000_000_000,
            secret: None,
            summary_json: false,
            rate_per_s: 0,
            stall_timeout: 10_000_000_000,
            settle: SETTLE_DEFAULT,
        }
    }
}

/// The default settle time (classic encoding): 1 s.
pub const SETTLE_DEFAULT: Nanos = 1_000_000_000;

#[derive(Debug)]
struct NodeRecord {
    addr: SocketAddr,
    conn: ConnId,
}

#[derive(Debug)]
struct Connection {
    peer: SocketAddr,
    node: Option<NodeId>,
    pending: Vec<u8>,
    /// The nonce this connection must answer before anything else (a secret is set).
    challenge: Option<[u8; NONCE_BYTES]>,
}

#[derive(Debug)]
struct Overlay {
    nr: usize,
    ring: Ring,
    /// Nodes that have not reported setup success yet.
    waiting: BTreeSet<NodeId>,
    ready: bool,
}

/// The registry.
pub struct Registry<C: Codec> {
    config: RegistryConfig,
    connections: HashMap<ConnId, Connection>,
    nodes: BTreeMap<NodeId, NodeRecord>,
    overlay: Option<Overlay>,
    run: Option<Run>,
    runs_started: u32,
    results: Vec<RunResult>,
    /// The last complete round of counter polls, for the operator (`progress`).
    progress: Option<ProgressSample>,
    /// Complete rounds of counter polls so far.
    rounds: u64,
    /// A scripted run to start at the next tick (packets, extra payload bytes).
    pending_script_start: Option<(u64, u32)>,
    /// A scripted registry gives up if the overlay is not ready by then.
    ready_deadline: Option<Nanos>,
    /// Connections accepted, in order, with the time by which they must have registered.
    strangers: VecDeque<(Nanos, ConnId)>,
    rng: SmallRng,
    /// Challenge nonces (seeded from the configured seed; main seeds it from the OS).
    nonces: StdRng,
    effects: Vec<Effect>,
    codec: PhantomData<C>,
}

impl<C: Codec> Registry<C> {
    pub fn new(config: RegistryConfig) -> Registry<C> {
        assert!((1..=ID_BITS_MAX).contains(&config.id_bits));
        let rng = SmallRng::seed_from_u64(config.seed);
        let nonces = StdRng::seed_from_u64(config.seed ^ 0x6e6f_6e63_6573_2121);
        Registry {
            config,
            connections: HashMap::new(),
            nodes: BTreeMap::new(),
            overlay: None,
            run: None,
            runs_started: 0,
            results: Vec::new(),
            progress: None,
            rounds: 0,
            pending_script_start: None,
            ready_deadline: None,
            strangers: VecDeque::new(),
            rng,
            nonces,
            effects: Vec::new(),
            codec: PhantomData,
        }
    }

    /// Results of the runs completed so far.
    pub fn results(&self) -> &[RunResult] {
        &self.results
    }

    /// The last complete round of counter polls of a run (the current or a finished one):
    /// a driver may show it as progress. A new round has a new `round`.
    pub fn progress(&self) -> Option<&ProgressSample> {
        self.progress.as_ref()
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

    /// True once every node reported setup success.
    pub fn is_ready(&self) -> bool {
        self.overlay.as_ref().is_some_and(|o| o.ready)
    }

    fn id_space(&self) -> u64 {
        1u64 << self.config.id_bits
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
        let conns: Vec<ConnId> = self.nodes.values().map(|n| n.conn).collect();
        for conn in conns {
            self.send(conn, message);
        }
    }

    /// Refuses a peer's message and closes its connection.
    fn refuse_and_close(&mut self, now: Nanos, conn: ConnId, why: String) {
        let peer = self
            .connections
            .get(&conn)
            .map_or("?".to_string(), |c| c.peer.to_string());
        tracing::warn!("{peer}: {why}; closing the connection");
        self.effects.push(Effect::Close(conn));
        self.forget_connection(now, conn, &why);
    }

    fn pick_id(&mut self) -> Option<NodeId> {
        let space = self.id_space();
        if self.nodes.len() as u64 >= space || self.nodes.len() >= NODES_MAX {
            return None;
        }
        if space <= 1 << 16 {
            let free: Vec<NodeId> = (0..space as u32)
                .filter(|id| !self.nodes.contains_key(id))
                .collect();
            Some(free[self.rng.random_range(0..free.len())])
        } else {
            loop {
                let id = self.rng.random_range(0..space) as NodeId;
                if !self.nodes.contains_key(&id) {
                    return Some(id);
                }
            }
        }
    }

    /// Answers a request with a refusal (`reply` builds the status message from the reason)
    /// and logs it with the peer's address; the connection stays open.
    fn refuse(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        reply: impl FnOnce(String) -> Control,
        info: String,
    ) {
        tracing::warn!("{peer}: {info}");
        self.send(conn, &reply(info));
    }

    fn on_register(&mut self, conn: ConnId, addr: SocketAddr) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        let peer = connection.peer;
        let refusal = if addr.ip() != peer.ip() {
            Some(format!(
                "registration refused: the request says {} but came from {}",
                addr.ip(),
                peer.ip()
            ))
        } else if let Some(id) = connection.node {
            Some(format!(
                "registration refused: this connection already registered node {id}"
            ))
        } else if let Some((id, _)) = self.nodes.iter().find(|(_, n)| n.addr == addr) {
            Some(format!(
                "registration refused: {addr} is already registered as node {id}"
            ))
        } else if self.run.is_some() {
            Some("registration refused: a run is in progress".to_string())
        } else {
            None
        };
        if let Some(info) = refusal {
            self.refuse(
                conn,
                peer,
                |info| Control::RegisterStatus {
                    status: Status::Failed,
                    info,
                },
                info,
            );
            return;
        }
        let Some(id) = self.pick_id() else {
            let space = self.id_space();
            let info = format!(
                "registration refused: all {} IDs (0..={}) are taken; start the registry with \
                 a wider --id-bits",
                space.min(NODES_MAX as u64),
                space.min(NODES_MAX as u64) - 1
            );
            self.refuse(
                conn,
                peer,
                |info| Control::RegisterStatus {
                    status: Status::Failed,
                    info,
                },
                info,
            );
            return;
        };
        self.nodes.insert(id, NodeRecord { addr, conn });
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.node = Some(id);
        }
        let count = self.nodes.len();
        self.send(
            conn,
            &Control::RegisterStatus {
                status: Status::Ok(id),
                info: format!(
                    "Registration request successful. The number of messaging nodes currently \
                     constituting the overlay is ({count})"
                ),
            },
        );
        self.say(format!("Registered node {id} at {addr} ({count} nodes)"));
        self.overlay_changed(format!("node {id} joined"));
        self.maybe_script_setup();
    }

    fn on_deregister(&mut self, now: Nanos, conn: ConnId, addr: SocketAddr, id: NodeId) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        let peer = connection.peer;
        let refusal = if addr.ip() != peer.ip() {
            Some(format!(
                "deregistration refused: the request says {} but came from {}",
                addr.ip(),
                peer.ip()
            ))
        } else {
            match self.nodes.get(&id) {
                None => Some(format!(
                    "deregistration refused: node {id} is not registered"
                )),
                Some(node) if node.addr != addr && !self.loose_port_match(node, conn, addr) => {
                    Some(format!(
                        "deregistration refused: node {id} is registered at {}, not {addr}",
                        node.addr
                    ))
                }
                Some(node) if node.conn != conn => Some(format!(
                    "deregistration refused: node {id} registered on another connection"
                )),
                Some(_) => None,
            }
        };
        if let Some(info) = refusal {
            self.refuse(
                conn,
                peer,
                |info| Control::DeregisterStatus {
                    status: Status::Failed,
                    info,
                },
                info,
            );
            return;
        }
        self.send(
            conn,
            &Control::DeregisterStatus {
                status: Status::Ok(id),
                info: format!(
                    "Deregistration request successful. The number of messaging nodes \
                     currently constituting the overlay is ({})",
                    self.nodes.len() - 1
                ),
            },
        );
        self.remove_node(now, id, "deregistered".to_string());
    }

    /// `LOOSE_PORTS` encodings: a message on the node's own connection, from its registered
    /// IP, identifies the node even if the port it names differs (peers written by others
    /// may send another port); the difference is logged.
    fn loose_port_match(&self, node: &NodeRecord, conn: ConnId, addr: SocketAddr) -> bool {
        let matches = C::LOOSE_PORTS && node.conn == conn && node.addr.ip() == addr.ip();
        if matches {
            tracing::info!(
                "node at {} named port {} in a message on its own connection: accepted",
                node.addr,
                addr.port()
            );
        }
        matches
    }

    /// A registered node is gone (deregistered, disconnected or refused).
    fn remove_node(&mut self, now: Nanos, id: NodeId, why: String) {
        let Some(node) = self.nodes.remove(&id) else {
            return;
        };
        if let Some(connection) = self.connections.get_mut(&node.conn) {
            connection.node = None;
        }
        self.say(format!(
            "Node {id} at {} left: {why} ({} nodes)",
            node.addr,
            self.nodes.len()
        ));
        if self.run.is_some() {
            self.fail_run(
                now,
                format!("node {id} at {} left during the run: {why}", node.addr),
            );
        }
        self.overlay_changed(format!("node {id} left"));
    }

    fn overlay_changed(&mut self, what: String) {
        if self.overlay.take().is_some() {
            self.say(format!(
                "The overlay changed ({what}): run setup-overlay again before start"
            ));
        }
    }

    fn forget_connection(&mut self, now: Nanos, conn: ConnId, why: &str) {
        if let Some(connection) = self.connections.remove(&conn)
            && let Some(id) = connection.node
        {
            self.remove_node(now, id, why.to_string());
        }
    }

    fn setup_overlay(&mut self, nr: usize) {
        if self.run.is_some() {
            self.say("setup-overlay refused: a run is in progress");
            return;
        }
        let count = self.nodes.len();
        if let Err(why) = check_nr(count, nr) {
            self.say(format!("setup-overlay refused: {why}"));
            return;
        }
        let slots = longest_path_relays(count, nr);
        if slots > TRACE_SLOTS_MAX {
            let fits = (nr + 1..=crate::limits::NR_MAX).find(|&n| {
                check_nr(count, n).is_ok() && longest_path_relays(count, n) <= TRACE_SLOTS_MAX
            });
            self.say(format!(
                "setup-overlay refused: with {count} nodes and NR {nr} the longest path passes \
                 {slots} relays, but a packet's hop trace holds at most {TRACE_SLOTS_MAX}{}",
                fits.map_or(String::new(), |n| format!("; use NR {n} or more"))
            ));
            return;
        }
        let window_bytes = if C::HAS_ACKS {
            self.config
                .window_bytes
                .unwrap_or_else(|| default_window_bytes(count))
        } else {
            0
        };
        let ring = Ring::new(self.nodes.keys().copied().collect());
        let mut manifests = Vec::with_capacity(count);
        for (position, id) in ring.ids().iter().enumerate() {
            let entries = ring
                .table(position, nr)
                .into_iter()
                .map(|entry| ManifestEntry {
                    id: entry,
                    addr: self.nodes[&entry].addr,
                })
                .collect();
            manifests.push((
                *id,
                Manifest {
                    entries,
                    all_ids: ring.ids().to_vec(),
                    trace_slots: slots as u8,
                    window_bytes,
                },
            ));
        }
        for (_, manifest) in manifests.iter_mut() {
            // Checked in place: the manifest moves into the message and back, no copy.
            let message = Control::Manifest(std::mem::take(manifest));
            let checked = C::encodable(&message);
            if let Control::Manifest(back) = message {
                *manifest = back;
            }
            if let Err(error) = checked {
                self.say(format!("setup-overlay refused: {error}"));
                return;
            }
        }
        self.overlay = Some(Overlay {
            nr,
            waiting: ring.ids().iter().copied().collect(),
            ring,
            ready: false,
        });
        self.say(if C::HAS_ACKS {
            format!(
                "Setting up the overlay: {count} nodes, {nr} table entries each, trace of {slots} \
                 relays, window {window_bytes} bytes per source"
            )
        } else {
            format!(
                "Setting up the overlay: {count} nodes, {nr} table entries each, at most {slots} \
                 relays per packet, no window ({} wire format)",
                C::NAME
            )
        });
        for (id, manifest) in manifests {
            self.send_to_node(id, &Control::Manifest(manifest));
        }
    }

    fn on_setup_status(&mut self, id: NodeId, status: Status, info: String) {
        let Some(overlay) = self.overlay.as_mut() else {
            self.say(format!(
                "Ignoring setup status from node {id}: no setup in progress ({info})"
            ));
            return;
        };
        match status {
            Status::Ok(reported) if reported == id => {
                if overlay.waiting.remove(&id) && overlay.waiting.is_empty() {
                    overlay.ready = true;
                    self.say("Registry now ready to initiate tasks.");
                    self.maybe_script_start();
                }
            }
            Status::Ok(reported) => {
                self.say(format!(
                    "Node {id} reported setup success for node {reported}: counted as failure"
                ));
                self.overlay = None;
            }
            Status::Failed => {
                self.say(format!(
                    "Node {id} failed to set up its connections: {info}; run setup-overlay again"
                ));
                self.overlay = None;
            }
        }
    }

    fn start(&mut self, now: Nanos, packets: u64, extra_payload_bytes: u32) {
        if self.run.is_some() {
            self.say("start refused: a run is in progress");
            return;
        }
        let Some(overlay) = self.overlay.as_ref().filter(|o| o.ready) else {
            self.say("start refused: the overlay is not set up (run setup-overlay and wait for \"Registry now ready to initiate tasks.\")");
            return;
        };
        if extra_payload_bytes as usize > PAYLOAD_BYTES_MAX - 4 {
            self.say(format!(
                "start refused: extra payload of {extra_payload_bytes} bytes exceeds {}",
                PAYLOAD_BYTES_MAX - 4
            ));
            return;
        }
        let number = self.runs_started + 1;
        let initiate = Control::TaskInitiate {
            run: number,
            packets,
            extra_payload_bytes,
            rate_per_s: self.config.rate_per_s,
        };
        if let Err(error) = C::encodable(&initiate) {
            self.say(format!("start refused: {error}"));
            return;
        }
        self.runs_started = number;
        let timing = PollTiming {
            progress_interval: self.config.progress_interval,
            drain_interval: self.config.poll_interval,
            stall_timeout: self.config.stall_timeout,
            settle: (!C::PROGRESS_POLLS).then_some(self.config.settle),
        };
        self.run = Some(Run::new(
            number,
            packets,
            extra_payload_bytes,
            overlay.nr,
            self.nodes.keys().copied().collect(),
            now,
            timing,
        ));
        self.say(format!(
            "Run {number}: {} nodes send {packets} packets each",
            self.nodes.len()
        ));
        self.broadcast(&initiate);
    }

    fn on_task_finished(&mut self, now: Nanos, id: NodeId) {
        let nodes = self.nodes.len();
        let Some(run) = self.run.as_mut() else {
            tracing::warn!("{}: task finished outside a run", self.describe(id));
            return;
        };
        let step = run.on_finished(now, id, nodes);
        self.apply_step(now, step);
    }

    fn on_summary(
        &mut self,
        now: Nanos,
        id: NodeId,
        reset: bool,
        counters: Counters,
        stats: Option<RunStats>,
        links: Vec<LinkCount>,
    ) {
        let nodes = self.nodes.len();
        let Some(run) = self.run.as_mut() else {
            tracing::warn!("{}: a traffic summary nobody asked for", self.describe(id));
            return;
        };
        let step = if reset {
            run.on_final(id, counters, stats, links, nodes)
        } else {
            let rounds = run.rounds;
            let step = run.on_progress(now, id, counters, stats, nodes);
            if run.rounds != rounds
                && let Some(totals) = run.last_totals
            {
                self.rounds += 1;
                self.progress = Some(ProgressSample {
                    round: self.rounds,
                    run: run.number,
                    elapsed: now.saturating_sub(run.started_at),
                    expected: run.packets.saturating_mul(nodes as u64),
                    sent: totals.sent,
                    received: totals.received,
                    relayed: totals.relayed,
                    corrupted: totals.corrupted,
                    dropped: totals.dropped,
                    latency: run.last_window,
                });
            }
            step
        };
        self.apply_step(now, step);
    }

    /// Carries out what the run decided.
    fn apply_step(&mut self, now: Nanos, step: Step) {
        match step {
            Step::Nothing => {}
            Step::PollAll => {
                debug_assert!(C::PROGRESS_POLLS, "a poll without progress polls");
                if C::PROGRESS_POLLS {
                    self.broadcast(&Control::SummaryRequest { reset: false });
                }
            }
            Step::CollectAll => self.broadcast(&Control::SummaryRequest { reset: true }),
            Step::StopAll => {
                // A task of no packets ends each node's run at once; what is in flight still
                // arrives (or is dropped) and is counted before the final summaries.
                let run = self.run.as_ref().map_or(0, |run| run.number);
                self.broadcast(&Control::TaskInitiate {
                    run,
                    packets: 0,
                    extra_payload_bytes: 0,
                    rate_per_s: 0,
                });
                if C::PROGRESS_POLLS {
                    self.broadcast(&Control::SummaryRequest { reset: false });
                }
            }
            Step::Finish { replies, failures } => self.finish_run(now, replies, failures),
        }
    }

    fn finish_run(
        &mut self,
        now: Nanos,
        replies: BTreeMap<NodeId, Counters>,
        failures: Vec<String>,
    ) {
        let Some(run) = self.run.take() else {
            return;
        };
        let node = replies
            .iter()
            .map(|(id, counters)| {
                let addr = self
                    .nodes
                    .get(id)
                    .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |n| n.addr);
                NodeResult::new(*id, addr, counters)
            })
            .collect();
        let duration_s = now.saturating_sub(run.started_at) as f64 / 1e9;
        let result = RunResult::new(
            run.nr,
            run.packets,
            run.extra_payload_bytes,
            duration_s,
            node,
            failures,
        )
        .with_links(&run.members, &run.links)
        .with_stats(run.stats);
        let text = if self.config.summary_json {
            serde_json::to_string_pretty(&result).unwrap_or_else(|error| error.to_string())
        } else {
            result.table()
        };
        self.say(format!("Run {} summary:\n{text}", run.number));
        self.results.push(result);
        self.script_next();
    }

    /// Ends the current run as FAIL (a node left): the surviving nodes are asked for their
    /// final summaries, so the report shows what they counted.
    fn fail_run(&mut self, now: Nanos, why: String) {
        let nodes = self.nodes.len();
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let number = run.number;
        let first = run.fail(now, why.clone());
        let collected = run.check_collected(nodes);
        self.say(format!("Run {number} FAIL: {why}"));
        self.apply_step(now, first);
        self.apply_step(now, collected);
    }

    fn maybe_script_setup(&mut self) {
        if let Some(script) = &self.config.script
            && self.nodes.len() == script.nodes
            && self.overlay.is_none()
            && self.results.is_empty()
        {
            let nr = script.nr;
            self.setup_overlay(nr);
            if self.overlay.is_none() {
                self.effects.push(Effect::Exit(2));
            }
        }
    }

    fn maybe_script_start(&mut self) {
        if let Some(script) = self.config.script.clone()
            && self.results.is_empty()
            && self.run.is_none()
        {
            // Started by the next tick (due at once), after the rest of the events at hand.
            self.pending_script_start = Some((script.packets, script.extra_payload_bytes));
        }
    }

    fn script_next(&mut self) {
        let Some(script) = self.config.script.clone() else {
            return;
        };
        let all_passed = self.results.iter().all(|r| r.passed());
        if self.results.len() < script.runs as usize && all_passed {
            self.pending_script_start = Some((script.packets, script.extra_payload_bytes));
        } else {
            self.effects
                .push(Effect::Exit(if all_passed { 0 } else { 1 }));
        }
    }

    fn list_nodes(&self) -> String {
        if self.nodes.is_empty() {
            return "No messaging nodes are registered.".to_string();
        }
        let mut out = String::new();
        for (id, node) in &self.nodes {
            let _ = writeln!(out, "{} {} {id}", node.addr.ip(), node.addr.port());
        }
        out.pop();
        out
    }

    /// `export-overlay FILE`: the overlay as Graphviz DOT, written by the driver.
    fn export_overlay(&mut self, path: String) {
        let Some(overlay) = &self.overlay else {
            self.say("export-overlay refused: the overlay is not set up: run setup-overlay first.");
            return;
        };
        let addrs = self.nodes.iter().map(|(id, n)| (*id, n.addr)).collect();
        let contents = export::dot(&overlay.ring, overlay.nr, &addrs);
        self.effects.push(Effect::WriteFile {
            path: path.into(),
            contents,
        });
    }

    fn list_tables(&self) -> String {
        let Some(overlay) = &self.overlay else {
            return "The overlay is not set up: run setup-overlay first.".to_string();
        };
        let mut out = String::new();
        for (position, id) in overlay.ring.ids().iter().enumerate() {
            let addr = self.nodes.get(id).map(|n| n.addr);
            let _ = writeln!(
                out,
                "Node {id} at {}",
                addr.map_or("?".to_string(), |a| a.to_string())
            );
            for (hop, entry) in overlay.ring.table(position, overlay.nr).iter().enumerate() {
                let entry_addr = self.nodes.get(entry).map(|n| n.addr);
                let _ = writeln!(
                    out,
                    "  +{:<4} node {entry:>10} at {}",
                    1u64 << hop,
                    entry_addr.map_or("?".to_string(), |a| a.to_string())
                );
            }
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out
    }

    fn handle_frame(&mut self, now: Nanos, conn: ConnId, frame: &[u8]) -> Result<(), String> {
        if matches!(C::peek(frame), Ok(Peek::Data(_) | Peek::Ack(_))) {
            return Err("the registry does not route data packets".to_string());
        }
        let message = C::decode_control(frame).map_err(|e| format!("bad message: {e}"))?;
        if let Some(nonce) = self.connections.get(&conn).and_then(|c| c.challenge) {
            let secret = self
                .config
                .secret
                .as_ref()
                .expect("a challenge needs a secret");
            return match message {
                Control::Response { mac } if secret.verify(&nonce, &mac) => {
                    if let Some(connection) = self.connections.get_mut(&conn) {
                        connection.challenge = None;
                    }
                    Ok(())
                }
                Control::Response { .. } => {
                    Err("authentication failed: the response does not match the secret".into())
                }
                other => Err(format!(
                    "{} before authenticating (this registry requires --secret-file)",
                    other.name()
                )),
            };
        }
        let node = self.connections.get(&conn).and_then(|c| c.node);
        match (message, node) {
            (Control::Register { addr }, _) => self.on_register(conn, addr),
            (Control::Deregister { addr, id }, _) => self.on_deregister(now, conn, addr, id),
            (Control::SetupStatus { status, info }, Some(id)) => {
                self.on_setup_status(id, status, info)
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
            (
                message @ (Control::SetupStatus { .. }
                | Control::TaskFinished { .. }
                | Control::Summary { .. }),
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
        if let Some(script) = &self.config.script {
            self.ready_deadline = Some(now + script.ready_timeout);
        }
    }

    fn on_accepted(&mut self, now: Nanos, conn: ConnId, peer: SocketAddr) {
        tracing::debug!("connection from {peer}");
        self.strangers
            .push_back((now + self.config.stranger_timeout, conn));
        let challenge = self.config.secret.is_some().then(|| self.nonces.random());
        self.connections.insert(
            conn,
            Connection {
                peer,
                node: None,
                pending: Vec::new(),
                challenge,
            },
        );
        if let Some(nonce) = challenge {
            self.send(conn, &Control::Challenge { nonce });
        }
    }

    fn on_connected(&mut self, _now: Nanos, _conn: ConnId) {}

    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        let mut offset = 0;
        while self.connections.contains_key(&conn) {
            let len = match C::frame_len(&bytes[offset..]) {
                Ok(Some(len)) => len,
                Ok(None) => return offset,
                Err(error) => {
                    self.refuse_and_close(now, conn, format!("bad frame: {error}"));
                    break;
                }
            };
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
        self.forget_connection(now, conn, &format!("connection lost ({reason})"));
    }

    fn on_command(&mut self, now: Nanos, line: &str) {
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
            Ok(Some(RegistryCommand::SetupOverlay { nr })) => self.setup_overlay(nr),
            Ok(Some(RegistryCommand::ExportOverlay { path })) => self.export_overlay(path),
            Ok(Some(RegistryCommand::Start {
                packets,
                extra_payload_bytes,
            })) => self.start(now, packets, extra_payload_bytes),
            Err(message) => self.say(message),
        }
    }

    fn on_tick(&mut self, now: Nanos) {
        while let Some(&(at, conn)) = self.strangers.front() {
            if at > now {
                break;
            }
            self.strangers.pop_front();
            if self
                .connections
                .get(&conn)
                .is_some_and(|c| c.node.is_none())
            {
                let seconds = self.config.stranger_timeout / 1_000_000_000;
                self.refuse_and_close(
                    now,
                    conn,
                    format!("did not register a node within {seconds} s of connecting"),
                );
            }
        }
        if self.is_ready() || !self.results.is_empty() {
            self.ready_deadline = None;
        }
        if let (Some(deadline), Some(script)) = (self.ready_deadline, self.config.script.clone())
            && now >= deadline
        {
            self.ready_deadline = None;
            let why = format!(
                "the overlay was not ready within {} s: {} of {} nodes registered{}",
                script.ready_timeout / 1_000_000_000,
                self.nodes.len(),
                script.nodes,
                match &self.overlay {
                    Some(overlay) =>
                        format!(", {} had not reported setup success", overlay.waiting.len()),
                    None => String::new(),
                }
            );
            let result = RunResult::new(
                script.nr,
                script.packets,
                script.extra_payload_bytes,
                0.0,
                Vec::new(),
                vec![why],
            );
            self.say(result.verdict_line());
            self.results.push(result);
            self.effects.push(Effect::Exit(1));
            return;
        }
        let ids = self.node_ids();
        if let Some(run) = self.run.as_mut() {
            let step = run.on_tick(now, &ids);
            self.apply_step(now, step);
        }
        if let Some((packets, extra)) = self.pending_script_start.take() {
            self.start(now, packets, extra);
        }
    }

    fn next_tick(&self) -> Option<Nanos> {
        if self.pending_script_start.is_some() {
            return Some(0);
        }
        let poll = self.run.as_ref().and_then(Run::next_tick);
        let deadline = self.ready_deadline.filter(|_| !self.is_ready());
        let stranger = self.strangers.front().map(|(at, _)| *at);
        [poll, deadline, stranger].into_iter().flatten().min()
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        std::mem::swap(&mut self.effects, into);
    }

    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            std::mem::swap(&mut connection.pending, buf);
        }
    }
}
