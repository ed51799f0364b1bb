//! The messaging node's state machine: registration, setup, origination, relaying, delivery,
//! counters. No I/O: see `crate::machine`.

pub mod flow;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::net::SocketAddr;

use rand::rngs::{SmallRng, StdRng};
use rand::{Rng, RngCore, SeedableRng};

use crate::auth::{NONCE_BYTES, Secret};
use crate::buffer;
use crate::console::{NODE_HELP, NodeCommand, parse_node};
use crate::limits::{ORIGINATE_BATCH_FRAMES, PAYLOAD_BYTES_MAX, SUMMARY_LINKS_MAX};
use crate::machine::{CloseReason, ConnId, ConnIds, Effect, Machine, Nanos};
use crate::routing::{Ring, Router};
use crate::stats::RunStats;
use crate::summary::thousands;
use crate::wire::{
    Ack, Codec, Control, Corruption, Counters, DataFrame, DataShape, LinkCount, Manifest, NodeId,
    PayloadCrc, Peek, Status,
};
use flow::Flow;

/// What a node is told at start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The address this node listens on, and registers.
    pub listen: SocketAddr,
    /// Where the registry listens.
    pub registry: SocketAddr,
    /// Seeds the node's random choices (sinks, payloads, challenge nonces).
    pub seed: u64,
    /// `--secret-file`: answer the challenges of the registry and of the nodes this node
    /// connects to, and challenge the nodes that connect to it.
    pub secret: Option<Secret>,
    /// Capacity of each table link's outgoing buffer, mapped when the overlay is set up
    /// (`buffer::mapped`; the binary uses `limits::SEND_BUFFER_BYTES`). 0 leaves the buffers
    /// to grow from empty (the simulator, whose overlays of 128 nodes would otherwise map
    /// hundreds of MiB).
    pub link_buffer_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting to the registry.
    Connecting,
    /// Registration sent, waiting for the answer.
    Registering,
    /// Registered; no overlay yet, or it was set up.
    Registered,
    /// Deregistration sent, waiting for the answer.
    Exiting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Registry,
    Entry(usize),
    /// A link another node opened to us, from this address.
    Inbound(SocketAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Connecting,
    Up,
    Down,
}

/// One routing-table entry and the connection to it.
#[derive(Debug)]
struct Entry {
    id: NodeId,
    addr: SocketAddr,
    conn: ConnId,
    link: Link,
    /// Frames queued for this entry, not yet taken by the driver.
    pending: Vec<u8>,
    /// Bytes the driver took with the last swap (being sent).
    with_driver: usize,
    /// Data packets handed to this link since the last final report (see [`LinkCount`]).
    packets_out: u64,
}

impl Entry {
    /// `lost` of the data packets handed to this link never left: they no longer count as
    /// sent on it. Saturating: a final report taken while frames were still queued (a forced
    /// collection) reset the count under them.
    fn take_back(&mut self, lost: u64) {
        self.packets_out = self.packets_out.saturating_sub(lost);
    }
}

/// Data frames of `bytes` (frames queued for a link) that do not lie wholly within its first
/// `sent` bytes: those that never reached the kernel.
fn unsent_data_frames<C: Codec>(bytes: &[u8], sent: usize) -> u64 {
    let mut unsent = 0;
    let mut offset = 0;
    while let Ok(Some(len)) = C::frame_len(&bytes[offset..]) {
        if offset + len > sent && matches!(C::peek(&bytes[offset..offset + len]), Ok(Peek::Data(_)))
        {
            unsent += 1;
        }
        offset += len;
    }
    unsent
}

/// The current run, from `TaskInitiate` to the last packet originated.
#[derive(Debug)]
struct Run {
    number: u32,
    remaining: u64,
    /// Packets originated so far in this run.
    originated: u64,
    /// At most this many packets per second (0 = as fast as the window allows), counted from
    /// `started_at`.
    rate_per_s: u32,
    started_at: Nanos,
    /// The value (overwritten per packet) followed by the run's extra payload bytes.
    payload: Vec<u8>,
}

impl Run {
    /// Packets the rate allows to have originated by `now` (one at the start).
    fn due(&self, now: Nanos) -> u64 {
        let elapsed = u128::from(now.saturating_sub(self.started_at));
        (elapsed * u128::from(self.rate_per_s) / 1_000_000_000) as u64 + 1
    }

    /// When the next packet may be originated (0 = now).
    fn next_send(&self) -> Nanos {
        if self.rate_per_s == 0 {
            return 0;
        }
        let at = u128::from(self.originated) * 1_000_000_000 / u128::from(self.rate_per_s);
        self.started_at + at as Nanos
    }
}

/// A frame a relay forwards: a data packet (its trace gains this node) or an ack (unchanged).
enum Relayed<'a, C: Codec> {
    Data(&'a DataFrame<'a, C>),
    Ack(&'a Ack<'a>),
}

/// Data frames found in one batch of bytes from a link.
#[derive(Debug, Clone, Copy)]
struct DataFrames {
    count: u64,
    /// The node at the other end: known already, or the previous hop of the first of them
    /// whose trace names one.
    previous_hop: Option<NodeId>,
}

/// The overlay as this node knows it after a manifest.
#[derive(Debug)]
struct Overlay {
    router: Router,
    shape: DataShape,
    entries: Vec<Entry>,
    connected: usize,
    setup_reported: bool,
}

/// A messaging node.
pub struct Node<C: Codec> {
    config: NodeConfig,
    conn_ids: ConnIds,
    registry: ConnId,
    registry_pending: Vec<u8>,
    phase: Phase,
    id: Option<NodeId>,
    roles: HashMap<ConnId, Role>,
    overlay: Option<Overlay>,
    flow: Flow,
    run: Option<Run>,
    counters: Counters,
    /// Hop counts and latencies of the packets received since the last final report, up to
    /// the last report (`window` holds those since).
    stats: RunStats,
    /// Challenge nonces for links other nodes open to us.
    nonces: StdRng,
    /// Inbound links that have not answered their challenge yet.
    challenges: HashMap<ConnId, [u8; NONCE_BYTES]>,
    /// Bytes for inbound links (only their challenge).
    inbound_pending: HashMap<ConnId, Vec<u8>>,
    /// The node at the other end of each link data arrived on, from its first data packet.
    link_peers: HashMap<ConnId, NodeId>,
    /// Data packets taken from each node's links since the last final report.
    received_from: HashMap<NodeId, u64>,
    /// The same since the last progress report (latency over time at the registry).
    window: RunStats,
    rng: SmallRng,
    effects: Vec<Effect>,
    /// The current run's payload CRC from its value (the extra bytes are the same all run);
    /// kept between runs, since its tables depend only on the payload's length.
    payload_crc: Option<PayloadCrc>,
    /// Problems reported so far (corrupted packets, unknown sinks), to keep logs short.
    problems_logged: u64,
    codec: PhantomData<C>,
}

/// Most individual problem lines a node prints; the counters keep counting after that.
const PROBLEM_LINES_MAX: u64 = 20;

impl<C: Codec> Node<C> {
    pub fn new(config: NodeConfig) -> Node<C> {
        let mut conn_ids = ConnIds::default();
        let registry = conn_ids.next_outbound();
        let rng = SmallRng::seed_from_u64(config.seed);
        let nonces = StdRng::seed_from_u64(config.seed ^ 0x6e6f_6e63_6573_2121);
        Node {
            nonces,
            challenges: HashMap::new(),
            inbound_pending: HashMap::new(),
            link_peers: HashMap::new(),
            received_from: HashMap::new(),
            config,
            conn_ids,
            registry,
            registry_pending: Vec::new(),
            phase: Phase::Connecting,
            id: None,
            roles: HashMap::from([(registry, Role::Registry)]),
            overlay: None,
            flow: Flow::default(),
            run: None,
            counters: Counters::default(),
            stats: RunStats::default(),
            window: RunStats::default(),
            rng,
            effects: Vec::new(),
            payload_crc: None,
            problems_logged: 0,
            codec: PhantomData,
        }
    }

    /// This node's ID, once registered.
    pub fn id(&self) -> Option<NodeId> {
        self.id
    }

    /// The counters since the last final report.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Bytes queued for the table entries (pending plus being sent): what this node holds.
    pub fn queued_bytes(&self) -> usize {
        self.overlay.as_ref().map_or(0, |overlay| {
            overlay
                .entries
                .iter()
                .map(|entry| entry.pending.len() + entry.with_driver)
                .sum()
        })
    }

    fn say(&mut self, line: impl Into<String>) {
        self.effects.push(Effect::Print(line.into()));
    }

    fn problem(&mut self, line: impl Into<String>) {
        self.problems_logged += 1;
        if self.problems_logged <= PROBLEM_LINES_MAX {
            self.say(line);
        }
    }

    fn send_control(&mut self, message: &Control) {
        if self.registry_pending.is_empty() {
            self.effects.push(Effect::Send(self.registry));
        }
        C::encode_control(message, &mut self.registry_pending);
    }

    fn close(&mut self, conn: ConnId, why: String) {
        let peer = match self.roles.get(&conn) {
            Some(Role::Registry) => format!("registry {}", self.config.registry),
            Some(&Role::Entry(index)) => self
                .overlay
                .as_ref()
                .and_then(|o| o.entries.get(index))
                .map_or("table entry".to_string(), |e| {
                    format!("node {} at {}", e.id, e.addr)
                }),
            Some(Role::Inbound(peer)) => peer.to_string(),
            None => "an unknown connection".to_string(),
        };
        tracing::warn!("closing the connection with {peer}: {why}");
        self.challenges.remove(&conn);
        self.inbound_pending.remove(&conn);
        self.link_peers.remove(&conn);
        let role = self.roles.remove(&conn);
        self.effects.push(Effect::Close(conn));
        // One of our own table links: it is down from now on (the driver does not report a
        // close the machine asked for), and what is queued for it is dropped.
        if let Some(Role::Entry(index)) = role {
            self.on_entry_closed(index, &why);
        }
    }

    fn handle_control(&mut self, now: Nanos, message: Control) {
        match message {
            Control::RegisterStatus { status, info } => self.on_register_status(status, info),
            Control::DeregisterStatus { status, info } => match status {
                Status::Ok(_) if self.phase == Phase::Exiting => {
                    self.say(format!("Deregistered: {info}"));
                    self.effects.push(Effect::Exit(0));
                }
                Status::Ok(_) => self.say(format!("Unrequested deregistration status: {info}")),
                Status::Failed => {
                    self.phase = Phase::Registered;
                    self.say(format!("Deregistration refused: {info}"));
                }
            },
            Control::Manifest(manifest) => self.on_manifest(manifest),
            Control::TaskInitiate {
                run,
                packets,
                extra_payload_bytes,
                rate_per_s,
            } => self.on_task_initiate(now, run, packets, extra_payload_bytes, rate_per_s),
            Control::SummaryRequest { reset } => self.on_summary_request(reset),
            Control::Challenge { nonce } if self.phase == Phase::Connecting => {
                match self.config.secret.as_ref().map(|s| s.respond(&nonce)) {
                    Some(mac) => {
                        self.send_control(&Control::Response { mac });
                        self.register();
                    }
                    None => self.registry_failed(
                        "the registry requires a shared secret (--secret-file)".into(),
                    ),
                }
            }
            other => {
                let why = format!(
                    "registry sent a {} message, which only nodes send; closing the registry \
                     connection",
                    other.name()
                );
                self.close(self.registry, why);
                self.effects.push(Effect::Exit(1));
            }
        }
    }

    fn on_register_status(&mut self, status: Status, info: String) {
        if self.phase != Phase::Registering {
            self.say(format!(
                "Ignoring an unrequested registration status: {info}"
            ));
            return;
        }
        match status {
            Status::Ok(id) => {
                self.id = Some(id);
                self.phase = Phase::Registered;
                self.say(format!("Registered as node {id}: {info}"));
            }
            Status::Failed => {
                self.say(format!("Registration refused: {info}"));
                self.effects.push(Effect::Exit(1));
            }
        }
    }

    fn on_manifest(&mut self, manifest: Manifest) {
        let Some(id) = self.id else {
            self.send_control(&Control::SetupStatus {
                status: Status::Failed,
                info: "got a manifest before being registered".into(),
            });
            return;
        };
        // A new setup replaces the old overlay and its connections.
        if let Some(old) = self.overlay.take() {
            for entry in old.entries {
                self.roles.remove(&entry.conn);
                self.effects.push(Effect::Close(entry.conn));
            }
        }
        // A new overlay starts from zero: no run, no counters, a fresh window.
        self.run = None;
        self.counters = Counters::default();
        self.stats.reset();
        self.window.reset();
        self.received_from.clear();
        let nodes = manifest.all_ids.len();
        let ring = Ring::new(manifest.all_ids);
        let nr = manifest.entries.len();
        let failure = if nr == 0 {
            Some("the manifest has no table entries".to_string())
        } else if ring.len() != nodes {
            Some("the manifest lists an ID twice".to_string())
        } else {
            match Router::new(ring, nr, id) {
                None => Some(format!("the manifest does not list this node's ID {id}")),
                Some(router) => {
                    let table = router.ring().table(router.self_position(), nr);
                    let ids: Vec<NodeId> = manifest.entries.iter().map(|e| e.id).collect();
                    if table != ids {
                        Some(format!(
                            "the manifest's table {ids:?} is not the ring's {table:?}"
                        ))
                    } else {
                        let mut entries = Vec::with_capacity(nr);
                        for entry in &manifest.entries {
                            let conn = self.conn_ids.next_outbound();
                            self.roles.insert(conn, Role::Entry(entries.len()));
                            self.effects.push(Effect::Connect {
                                conn,
                                addr: entry.addr,
                            });
                            entries.push(Entry {
                                id: entry.id,
                                addr: entry.addr,
                                conn,
                                link: Link::Connecting,
                                pending: buffer::mapped_empty(self.config.link_buffer_bytes),
                                with_driver: 0,
                                packets_out: 0,
                            });
                        }
                        self.flow = Flow::new(nodes, manifest.window_bytes);
                        self.overlay = Some(Overlay {
                            router,
                            shape: DataShape {
                                trace_slots: usize::from(manifest.trace_slots),
                                extra_payload_bytes: 0,
                            },
                            entries,
                            connected: 0,
                            setup_reported: false,
                        });
                        None
                    }
                }
            }
        };
        if let Some(info) = failure {
            self.say(format!("Overlay setup failed: {info}"));
            self.send_control(&Control::SetupStatus {
                status: Status::Failed,
                info,
            });
        }
    }

    fn on_entry_connected(&mut self, index: usize) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let entry = &mut overlay.entries[index];
        if entry.link != Link::Connecting {
            return;
        }
        entry.link = Link::Up;
        overlay.connected += 1;
        if overlay.connected == overlay.entries.len() && !overlay.setup_reported {
            overlay.setup_reported = true;
            let count = overlay.entries.len();
            let id = self.id.unwrap_or_default();
            self.send_control(&Control::SetupStatus {
                status: Status::Ok(id),
                info: format!("node {id} connected to its {count} table entries"),
            });
        }
    }

    fn on_entry_closed(&mut self, index: usize, reason: &str) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let entry = &mut overlay.entries[index];
        let was = entry.link;
        entry.link = Link::Down;
        // Frames still queued for the entry can no longer be delivered: account for them.
        let lost = unsent_data_frames::<C>(&entry.pending, 0);
        entry.pending.clear();
        entry.take_back(lost);
        let line = format!(
            "lost the link to table entry {} (node {} at {}): {reason}; {lost} queued packets \
             counted as dropped",
            index, entry.id, entry.addr
        );
        let report_failure = was == Link::Connecting && !overlay.setup_reported;
        if report_failure {
            overlay.setup_reported = true;
        }
        self.counters.dropped += lost;
        self.problem(line);
        if report_failure {
            let entry = &self.overlay.as_ref().expect("overlay").entries[index];
            let info = format!(
                "could not connect to node {} at {}: {reason}",
                entry.id, entry.addr
            );
            self.send_control(&Control::SetupStatus {
                status: Status::Failed,
                info,
            });
        }
    }

    fn on_task_initiate(
        &mut self,
        now: Nanos,
        number: u32,
        packets: u64,
        extra: u32,
        rate_per_s: u32,
    ) {
        let Some(overlay) = self.overlay.as_mut() else {
            self.say("Task initiate refused: the overlay is not set up");
            return;
        };
        let extra = extra as usize;
        if extra > PAYLOAD_BYTES_MAX - 4 {
            let line = format!(
                "Task initiate refused: {extra} bytes of extra payload exceed {}",
                PAYLOAD_BYTES_MAX - 4
            );
            tracing::warn!("registry {}: {line}", self.config.registry);
            self.say(line);
            return;
        }
        overlay.shape.extra_payload_bytes = extra;
        let mut payload = vec![0u8; 4 + extra];
        self.rng.fill_bytes(&mut payload[4..]);
        if packets > 0 {
            match &mut self.payload_crc {
                Some(payload_crc) => payload_crc.retarget(&payload),
                None => self.payload_crc = Some(PayloadCrc::new(&payload)),
            }
        }
        self.run = Some(Run {
            number,
            remaining: packets,
            originated: 0,
            rate_per_s,
            started_at: now,
            payload,
        });
        if packets == 0 {
            self.finish_run();
        }
    }

    fn finish_run(&mut self) {
        if let (Some(id), Some(run)) = (self.id, self.run.take()) {
            tracing::debug!("run {} originated", run.number);
            self.send_control(&Control::TaskFinished {
                addr: self.config.listen,
                id,
            });
        }
    }

    fn on_summary_request(&mut self, reset: bool) {
        let id = self.id.unwrap_or_default();
        // A final report carries the run's histograms, a progress report those since the
        // previous one (small: only what arrived in between).
        // Packets are recorded once, in `window`, which joins the run's `stats` at each report.
        let window = std::mem::take(&mut self.window);
        self.stats.add(&window);
        let stats = C::HAS_STATS.then(|| if reset { self.stats.clone() } else { window });
        let links = if reset {
            self.link_counts()
        } else {
            Vec::new()
        };
        self.send_control(&Control::Summary {
            id,
            reset,
            counters: self.counters,
            stats,
            links,
        });
        if reset {
            self.counters = Counters::default();
            self.received_from.clear();
            if let Some(overlay) = self.overlay.as_mut() {
                overlay
                    .entries
                    .iter_mut()
                    .for_each(|entry| entry.packets_out = 0);
            }
            self.stats.reset();
            self.window.reset();
            self.flow.next_epoch();
            self.problems_logged = 0;
        }
    }

    /// Data packets per link since the last final report, one row per peer node.
    fn link_counts(&self) -> Vec<LinkCount> {
        let mut links = std::collections::BTreeMap::<NodeId, LinkCount>::new();
        for entry in self.overlay.iter().flat_map(|o| &o.entries) {
            let link = links.entry(entry.id).or_insert(LinkCount {
                peer: entry.id,
                ..LinkCount::default()
            });
            link.sent += entry.packets_out;
        }
        for (&peer, &received) in &self.received_from {
            let link = links.entry(peer).or_insert(LinkCount {
                peer,
                ..LinkCount::default()
            });
            link.received += received;
        }
        // Never more rows than a summary may carry (only a node that a stream of hostile links
        // fed could reach it; the registry then reports the difference as unaccounted).
        links.into_values().take(SUMMARY_LINKS_MAX).collect()
    }

    /// Originates up to one batch of packets, as far as the window allows.
    fn originate(&mut self, now: Nanos) {
        let (Some(id), Some(overlay), Some(run), Some(payload_crc)) = (
            self.id,
            self.overlay.as_mut(),
            self.run.as_mut(),
            self.payload_crc.as_ref(),
        ) else {
            return;
        };
        let ring_len = overlay.router.ring().len();
        let self_position = overlay.router.self_position();
        let mut batch = ORIGINATE_BATCH_FRAMES as u64;
        if run.rate_per_s > 0 {
            batch = batch.min(run.due(now).saturating_sub(run.originated));
        }
        while batch > 0 && run.remaining > 0 && self.flow.may_send() {
            batch -= 1;
            run.remaining -= 1;
            run.originated += 1;
            // One 64-bit draw per packet: the low half is the value, the high half picks one
            // of the n - 1 positions other than our own (multiply-shift: each gets floor or
            // ceil of 2^32 / (n - 1) of the draws, a bias below n / 2^32).
            let draw = self.rng.next_u64();
            let value = draw as u32 as i32;
            let mut position = (((draw >> 32) * (ring_len as u64 - 1)) >> 32) as usize;
            if position >= self_position {
                position += 1;
            }
            let sink = overlay.router.ring().ids()[position];
            let value_bytes = value.to_le_bytes();
            run.payload[..4].copy_from_slice(&value_bytes);
            self.counters.sent += 1;
            self.counters.sum_sent = self.counters.sum_sent.wrapping_add(i64::from(value));
            let index = overlay
                .router
                .next_hop(sink)
                .expect("a ring position other than our own has a next hop");
            let entry = &mut overlay.entries[index];
            if entry.link != Link::Up {
                self.counters.dropped += 1;
                continue;
            }
            if entry.pending.is_empty() {
                self.effects.push(Effect::Send(entry.conn));
            }
            let bytes = C::append_data_with_crc(
                &mut entry.pending,
                id,
                sink,
                overlay.shape,
                now,
                &run.payload,
                payload_crc.of(value_bytes),
            );
            entry.packets_out += 1;
            self.flow.on_originated(bytes);
        }
        if run.remaining == 0 {
            self.finish_run();
        }
    }

    /// Asks the registry to register this node at its listening address.
    fn register(&mut self) {
        self.phase = Phase::Registering;
        self.send_control(&Control::Register {
            addr: self.config.listen,
        });
    }

    /// With a secret, the first frame on a link: the challenge of a node we connected to (we
    /// answer it; the entry is then up), or the response of a node that connected to us.
    /// `None` when this link is past that; otherwise the bytes consumed.
    fn authenticate(&mut self, conn: ConnId, bytes: &[u8]) -> Option<usize> {
        let secret = self.config.secret.clone()?;
        let entry = match self.roles.get(&conn) {
            Some(&Role::Entry(index))
                if self
                    .overlay
                    .as_ref()
                    .is_some_and(|o| o.entries[index].link == Link::Connecting) =>
            {
                Some(index)
            }
            Some(Role::Inbound(_)) if self.challenges.contains_key(&conn) => None,
            _ => return None,
        };
        let len = match C::frame_len(bytes) {
            Ok(Some(len)) => len,
            Ok(None) => return Some(0),
            Err(error) => {
                self.close(conn, format!("bad frame before authenticating: {error}"));
                return Some(bytes.len());
            }
        };
        let message = C::peek(&bytes[..len])
            .ok()
            .filter(|peek| matches!(peek, Peek::Control))
            .and_then(|_| C::decode_control(&bytes[..len]).ok());
        match (entry, message) {
            (Some(index), Some(Control::Challenge { nonce })) => {
                let conn = self.overlay.as_ref().expect("entry").entries[index].conn;
                self.queue_for_entry(
                    index,
                    &Control::Response {
                        mac: secret.respond(&nonce),
                    },
                );
                debug_assert_eq!(self.roles.get(&conn), Some(&Role::Entry(index)));
                self.on_entry_connected(index);
                Some(len)
            }
            (None, Some(Control::Response { mac }))
                if secret.verify(&self.challenges[&conn], &mac) =>
            {
                self.challenges.remove(&conn);
                Some(len)
            }
            (Some(_), _) => {
                self.close(conn, "the node did not send a challenge first".into());
                Some(bytes.len())
            }
            (None, _) => {
                self.challenges.remove(&conn);
                self.close(
                    conn,
                    "authentication failed: the peer did not answer the challenge with the \
                     shared secret"
                        .into(),
                );
                Some(bytes.len())
            }
        }
    }

    /// Appends a control message to a table entry's link.
    fn queue_for_entry(&mut self, index: usize, message: &Control) {
        if let Some(entry) = self.overlay.as_mut().map(|o| &mut o.entries[index]) {
            if entry.pending.is_empty() {
                self.effects.push(Effect::Send(entry.conn));
            }
            C::encode_control(message, &mut entry.pending);
        }
    }

    fn on_data_bytes(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        match self.authenticate(conn, bytes) {
            None => self.on_data_frames(now, conn, bytes),
            Some(0) => 0,
            Some(used) if used >= bytes.len() => used,
            Some(used) if self.roles.contains_key(&conn) => {
                used + self.on_data_frames(now, conn, &bytes[used..])
            }
            Some(_) => bytes.len(),
        }
    }

    fn on_data_frames(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        let Some(id) = self.id else {
            self.close(conn, "data arrived before this node registered".into());
            return bytes.len();
        };
        if self.overlay.is_none() {
            self.close(
                conn,
                "data arrived before the overlay was set up; closing that connection".into(),
            );
            return bytes.len();
        }
        // The peer is looked up before routing: a bad frame may close the link midway, and
        // the frames before it still count.
        let known = self.link_peers.get(&conn).copied();
        let mut data = DataFrames {
            count: 0,
            previous_hop: known,
        };
        let consumed = self.route_frames(now, conn, id, bytes, &mut data);
        if data.count > 0 {
            self.count_received(conn, known.is_none(), data);
        }
        consumed
    }

    /// Adds `data` to the count of the node at the other end of `conn`; if `naming`, the
    /// first data packet's previous hop names that node, once it is a member of the overlay
    /// (so foreign IDs cannot grow the table).
    fn count_received(&mut self, conn: ConnId, naming: bool, data: DataFrames) {
        let Some(peer) = data.previous_hop else {
            return;
        };
        if naming {
            let member = self
                .overlay
                .as_ref()
                .is_some_and(|o| o.router.position(peer).is_some());
            if !member {
                return;
            }
            if self.roles.contains_key(&conn) {
                self.link_peers.insert(conn, peer);
            }
        }
        let count = self.received_from.entry(peer).or_default();
        *count = count.saturating_add(data.count);
    }

    /// Delivers, relays or takes every whole frame of `bytes`; counts data frames in `data`.
    /// Returns the bytes consumed.
    fn route_frames(
        &mut self,
        now: Nanos,
        conn: ConnId,
        id: NodeId,
        bytes: &[u8],
        data: &mut DataFrames,
    ) -> usize {
        let mut offset = 0;
        loop {
            let len = match C::frame_len(&bytes[offset..]) {
                Ok(Some(len)) => len,
                Ok(None) => return offset,
                Err(error) => {
                    self.close(conn, format!("bad frame from a peer: {error}"));
                    return bytes.len();
                }
            };
            let frame = &bytes[offset..offset + len];
            offset += len;
            // Matched by reference: the view is read where `peek` put it, not copied.
            match &C::peek(frame) {
                Ok(Peek::Data(data_frame)) => {
                    if data.previous_hop.is_none() {
                        data.previous_hop = data_frame.previous_hop();
                    }
                    data.count += 1;
                    if data_frame.sink() == id {
                        self.deliver(now, data_frame);
                    } else {
                        self.relay(id, data_frame.sink(), Relayed::Data(data_frame));
                    }
                }
                Ok(Peek::Ack(ack)) if ack.sink() == id => self.on_ack(ack),
                Ok(Peek::Ack(ack)) => self.relay(id, ack.sink(), Relayed::Ack(ack)),
                Ok(Peek::Control) => {
                    self.close(conn, "a peer sent a control message on a data link".into());
                    return bytes.len();
                }
                Err(error) => {
                    self.close(conn, format!("bad frame from a peer: {error}"));
                    return bytes.len();
                }
            }
        }
    }

    #[inline(always)]
    fn relay(&mut self, id: NodeId, sink: NodeId, frame: Relayed<'_, C>) {
        let data = matches!(frame, Relayed::Data(_));
        let overlay = self.overlay.as_mut().expect("checked by on_data_bytes");
        let Some(index) = overlay.router.next_hop(sink) else {
            if data {
                self.counters.dropped += 1;
            }
            self.problem(format!("dropped a packet for unknown node {sink}"));
            return;
        };
        let entry = &mut overlay.entries[index];
        if entry.link != Link::Up {
            if data {
                self.counters.dropped += 1;
            }
            return;
        }
        if entry.pending.is_empty() {
            self.effects.push(Effect::Send(entry.conn));
        }
        match frame {
            Relayed::Data(frame) => C::append_relayed(frame, id, &mut entry.pending),
            Relayed::Ack(ack) => entry.pending.extend_from_slice(ack.bytes()),
        }
        if data {
            self.counters.relayed += 1;
            entry.packets_out += 1;
        }
    }

    fn deliver(&mut self, now: Nanos, frame: &DataFrame<'_, C>) {
        let overlay = self.overlay.as_mut().expect("checked by on_data_bytes");
        // Plain matches rather than combinators: the checked fields stay in registers (a
        // `Result` of them built in memory and read back cost a store-forwarding stall).
        let delivered = match C::check_delivered(frame, overlay.shape) {
            Ok(delivered) => delivered,
            Err(corruption) => return self.corrupted(corruption),
        };
        let position = overlay.router.position(delivered.source);
        let expected = position.and_then(|p| overlay.router.expected_relays_from_position(p));
        let (Some(position), Some(expected)) = (position, expected) else {
            return self.wrong_trace(frame, delivered.source, None);
        };
        if !frame.trace_is(expected) {
            let expected = expected.to_vec();
            return self.wrong_trace(frame, delivered.source, Some(expected));
        }
        self.counters.received += 1;
        // A send time of 0 means none (the classic format has no timestamp).
        let latency =
            (delivered.send_time_ns != 0).then(|| now.saturating_sub(delivered.send_time_ns));
        self.window.record(delivered.relays, latency);
        self.counters.sum_received = self
            .counters
            .sum_received
            .wrapping_add(i64::from(delivered.value));
        if let Some(acked) = self.flow.on_delivered(position, frame.bytes().len()) {
            let index = overlay
                .router
                .next_hop(delivered.source)
                .expect("source is another node");
            let entry = &mut overlay.entries[index];
            if entry.link == Link::Up {
                if entry.pending.is_empty() {
                    self.effects.push(Effect::Send(entry.conn));
                }
                let id = self.id.unwrap_or_default();
                C::append_ack(
                    &mut entry.pending,
                    id,
                    delivered.source,
                    self.flow.epoch,
                    acked,
                );
            }
        }
    }

    /// A packet whose trace is not the route from its source (`expected`, if the source is
    /// known): the trace is copied out only to say how it differs.
    #[cold]
    fn wrong_trace(
        &mut self,
        frame: &DataFrame<'_, C>,
        origin: NodeId,
        expected: Option<Vec<NodeId>>,
    ) {
        self.corrupted(Corruption::Trace {
            origin,
            trace: frame.trace().collect(),
            expected: expected.unwrap_or_default(),
        });
    }

    #[cold]
    fn corrupted(&mut self, corruption: Corruption) {
        self.counters.corrupted += 1;
        self.problem(format!("corrupted packet: {corruption}"));
    }

    fn on_ack(&mut self, ack: &Ack<'_>) {
        let overlay = self.overlay.as_ref().expect("checked by on_data_bytes");
        let (from, epoch, acked) = (ack.source(), ack.epoch(), ack.acked_bytes());
        match overlay.router.position(from) {
            Some(position) => {
                if !self.flow.on_ack(position, epoch, acked) {
                    tracing::debug!("ignored ack from {from} (epoch {epoch}, {acked} bytes)");
                }
            }
            None => self.problem(format!("ack from unknown node {from}")),
        }
    }

    fn on_registry_bytes(&mut self, now: Nanos, bytes: &[u8]) -> usize {
        let mut offset = 0;
        loop {
            let len = match C::frame_len(&bytes[offset..]) {
                Ok(Some(len)) => len,
                Ok(None) => return offset,
                Err(error) => {
                    self.registry_failed(format!("bad frame from the registry: {error}"));
                    return bytes.len();
                }
            };
            let frame = &bytes[offset..offset + len];
            offset += len;
            match C::decode_control(frame) {
                Ok(message) => self.handle_control(now, message),
                Err(error) => {
                    self.registry_failed(format!("bad message from the registry: {error}"));
                    return bytes.len();
                }
            }
        }
    }

    fn registry_failed(&mut self, why: String) {
        self.close(self.registry, format!("{why}; exiting"));
        self.effects.push(Effect::Exit(1));
    }

    fn diagnostics(&self) -> String {
        let mut out = String::new();
        let c = &self.counters;
        let _ = writeln!(
            out,
            "{:>10} {:>16} {:>16} {:>16} {:>22} {:>22} {:>10} {:>10}",
            "Node",
            "Packets Sent",
            "Packets Received",
            "Packets Relayed",
            "Sum Values Sent",
            "Sum Values Received",
            "Corrupted",
            "Dropped"
        );
        let _ = writeln!(
            out,
            "{:>10} {:>16} {:>16} {:>16} {:>22} {:>22} {:>10} {:>10}",
            self.id.map_or("-".to_string(), |id| id.to_string()),
            thousands(c.sent.into()),
            thousands(c.received.into()),
            thousands(c.relayed.into()),
            thousands(c.sum_sent.into()),
            thousands(c.sum_received.into()),
            thousands(c.corrupted.into()),
            thousands(c.dropped.into()),
        );
        let _ = writeln!(
            out,
            "node {} listening on {}, registry {} ({:?})",
            self.id
                .map_or("(unregistered)".to_string(), |id| id.to_string()),
            self.config.listen,
            self.config.registry,
            self.phase
        );
        match &self.overlay {
            None => {
                let _ = writeln!(out, "overlay: not set up");
            }
            Some(overlay) => {
                let _ = writeln!(
                    out,
                    "overlay: {} nodes, trace slots {}, window {} bytes, epoch {}",
                    overlay.router.ring().len(),
                    overlay.shape.trace_slots,
                    self.flow.window_bytes,
                    self.flow.epoch
                );
                for (index, entry) in overlay.entries.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "  entry {index}: node {:>10} at {:<21} {:?}, {} bytes queued",
                        entry.id,
                        entry.addr.to_string(),
                        entry.link,
                        entry.pending.len() + entry.with_driver
                    );
                }
            }
        }
        let inbound = self
            .roles
            .values()
            .filter(|r| matches!(r, Role::Inbound(_)))
            .count();
        let _ = writeln!(out, "inbound links: {inbound}");
        let _ = write!(
            out,
            "run: {}, {} bytes in flight",
            match &self.run {
                Some(run) => format!("{} packets left to send", run.remaining),
                None => "idle".to_string(),
            },
            self.flow.in_flight_bytes
        );
        out
    }
}

impl<C: Codec> Machine for Node<C> {
    fn on_start(&mut self, _now: Nanos) {
        self.effects.push(Effect::Connect {
            conn: self.registry,
            addr: self.config.registry,
        });
    }

    fn on_accepted(&mut self, _now: Nanos, conn: ConnId, peer: SocketAddr) {
        tracing::debug!("accepted a link from {peer}");
        self.roles.insert(conn, Role::Inbound(peer));
        if self.config.secret.is_some() {
            let nonce: [u8; NONCE_BYTES] = self.nonces.random();
            self.challenges.insert(conn, nonce);
            let mut bytes = Vec::new();
            C::encode_control(&Control::Challenge { nonce }, &mut bytes);
            self.inbound_pending.insert(conn, bytes);
            self.effects.push(Effect::Send(conn));
        }
    }

    fn on_connected(&mut self, _now: Nanos, conn: ConnId) {
        match self.roles.get(&conn) {
            // With a secret, the registry and the entries speak first (their challenge).
            Some(Role::Registry) if self.config.secret.is_none() => self.register(),
            Some(&Role::Entry(index)) if self.config.secret.is_none() => {
                self.on_entry_connected(index)
            }
            _ => {}
        }
    }

    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        match self.roles.get(&conn) {
            Some(Role::Registry) => self.on_registry_bytes(now, bytes),
            Some(_) => self.on_data_bytes(now, conn, bytes),
            None => bytes.len(),
        }
    }

    fn on_closed(&mut self, _now: Nanos, conn: ConnId, reason: CloseReason) {
        self.challenges.remove(&conn);
        self.link_peers.remove(&conn);
        self.inbound_pending.remove(&conn);
        match self.roles.remove(&conn) {
            Some(Role::Registry) => {
                let line = if self.phase == Phase::Connecting {
                    format!(
                        "cannot reach the registry at {}: {reason}",
                        self.config.registry
                    )
                } else {
                    format!("the registry connection closed ({reason}); exiting")
                };
                self.say(line);
                self.effects.push(Effect::Exit(1));
            }
            Some(Role::Entry(index)) => self.on_entry_closed(index, &reason.to_string()),
            Some(Role::Inbound(peer)) => {
                tracing::debug!("inbound link from {peer} closed: {reason}")
            }
            None => {}
        }
    }

    fn on_unsent(&mut self, _now: Nanos, conn: ConnId, taken: &[u8], sent: usize) {
        // Packets for a dead link that never reached the kernel are undeliverable: count them
        // like those still queued (`on_entry_closed`).
        let Some(&Role::Entry(index)) = self.roles.get(&conn) else {
            return;
        };
        let lost = unsent_data_frames::<C>(taken, sent);
        self.counters.dropped += lost;
        if let Some(entry) = self.overlay.as_mut().map(|o| &mut o.entries[index]) {
            entry.take_back(lost);
        }
    }

    fn on_command(&mut self, _now: Nanos, line: &str) {
        match parse_node(line) {
            Ok(None) => {}
            Ok(Some(NodeCommand::Help)) => self.say(NODE_HELP),
            Ok(Some(NodeCommand::PrintCountersAndDiagnostics)) => {
                let text = self.diagnostics();
                self.say(text);
            }
            Ok(Some(NodeCommand::ExitOverlay)) => match (self.id, self.phase) {
                (Some(id), Phase::Registered | Phase::Exiting) => {
                    self.phase = Phase::Exiting;
                    self.send_control(&Control::Deregister {
                        addr: self.config.listen,
                        id,
                    });
                }
                _ => {
                    self.say("Not registered; exiting");
                    self.effects.push(Effect::Exit(0));
                }
            },
            Err(message) => self.say(message),
        }
    }

    fn on_tick(&mut self, now: Nanos) {
        self.originate(now);
    }

    fn next_tick(&self) -> Option<Nanos> {
        match &self.run {
            Some(run) if run.remaining > 0 && self.flow.may_send() => Some(run.next_send()),
            _ => None,
        }
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        std::mem::swap(&mut self.effects, into);
    }

    fn pending_len(&self, conn: ConnId) -> usize {
        match self.roles.get(&conn) {
            Some(Role::Registry) => self.registry_pending.len(),
            Some(&Role::Entry(index)) => self
                .overlay
                .as_ref()
                .and_then(|o| o.entries.get(index))
                .map_or(0, |e| e.pending.len()),
            Some(Role::Inbound(_)) => self.inbound_pending.get(&conn).map_or(0, Vec::len),
            None => 0,
        }
    }

    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        debug_assert!(buf.is_empty());
        match self.roles.get(&conn) {
            Some(Role::Registry) => std::mem::swap(&mut self.registry_pending, buf),
            Some(&Role::Entry(index)) => {
                if let Some(overlay) = self.overlay.as_mut() {
                    let entry = &mut overlay.entries[index];
                    std::mem::swap(&mut entry.pending, buf);
                    entry.with_driver = buf.len();
                }
            }
            Some(Role::Inbound(_)) => {
                if let Some(pending) = self.inbound_pending.remove(&conn) {
                    *buf = pending;
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::LinkError;
    use crate::sim::{ReadyNode, task_initiate};
    use crate::wire::native::Native;

    #[test]
    fn packets_the_driver_could_not_send_on_a_dead_link_are_dropped() {
        // Node 10 of the ring 10 20 30 40, NR 1: its one entry is 20.
        let ReadyNode {
            mut node,
            registry,
            entries,
        } = ReadyNode::new(10, &[10, 20, 30, 40], 1, 2, 0);
        let entry = entries[0];
        node.on_received(0, registry, &task_initiate(5));
        node.on_tick(1);
        assert_eq!(node.counters().sent, 5);
        // The driver takes the five frames, gets one and a half into the kernel, then the link
        // dies: three and a half never left, so three whole frames plus the cut one are lost.
        let mut taken = Vec::new();
        node.swap_outgoing(entry, &mut taken);
        let frame = taken.len() / 5;
        node.on_unsent(2, entry, &taken, frame + frame / 2);
        node.on_closed(2, entry, CloseReason::SendFailed(LinkError::Reset));
        assert_eq!(node.counters().dropped, 4);
        // The link counts agree: 5 handed over, 4 taken back as dropped.
        assert_eq!(node.link_counts()[0].sent, 1);
    }

    #[test]
    fn a_table_link_the_node_closes_itself_is_down() {
        // Node 10 of the ring 10 20 30 40, NR 1: its one entry is 20, which sends garbage.
        let ReadyNode {
            mut node,
            registry,
            entries,
        } = ReadyNode::new(10, &[10, 20, 30, 40], 1, 2, 0);
        let garbage = [0u8; 8]; // a zero length prefix: a bad frame
        assert_eq!(node.on_received(0, entries[0], &garbage), garbage.len());
        let mut effects = Vec::new();
        node.take_effects(&mut effects);
        assert!(effects.contains(&Effect::Close(entries[0])), "{effects:?}");
        node.on_received(1, registry, &task_initiate(5));
        node.on_tick(2);
        // Nothing is queued for the closed link: all five are counted as dropped.
        assert_eq!(node.counters().sent, 5);
        assert_eq!(node.counters().dropped, 5);
        assert_eq!(node.queued_bytes(), 0);
        assert_eq!(node.link_counts()[0].sent, 0);
    }

    #[test]
    fn a_packet_whose_trace_is_not_its_route_is_corrupted() {
        // Node 10 of the ring 10 20 30 40, NR 2: from 40 (its predecessor) packets come
        // direct, with no relay in their trace.
        let ReadyNode { mut node, .. } = ReadyNode::new(10, &[10, 20, 30, 40], 2, 2, 0);
        let inbound = ConnId::inbound(1);
        node.on_accepted(0, inbound, "127.0.0.1:9".parse().unwrap());
        let shape = DataShape {
            trace_slots: 2,
            extra_payload_bytes: 0,
        };
        let mut direct = Vec::new();
        Native::append_data(&mut direct, 40, 10, shape, 1, &7i32.to_le_bytes());
        let mut detour = Vec::new();
        let Ok(Peek::Data(data)) = Native::peek(&direct) else {
            panic!("a data frame");
        };
        Native::append_relayed(&data, 30, &mut detour);
        let mut bytes = direct.clone();
        bytes.extend_from_slice(&detour);
        assert_eq!(node.on_received(2, inbound, &bytes), bytes.len());
        let counters = node.counters();
        assert_eq!((counters.received, counters.corrupted), (1, 1));
        let mut effects = Vec::new();
        node.take_effects(&mut effects);
        assert!(
            effects.iter().any(|effect| matches!(
                effect,
                Effect::Print(line) if line.contains("corrupted packet") && line.contains("30")
            )),
            "{effects:?}"
        );
        // Both came over the link from 40: the first packet names it.
        let links = node.link_counts();
        let from_40 = links
            .iter()
            .find(|link| link.peer == 40)
            .expect("a row for 40");
        assert_eq!(from_40.received, 2);
    }
}
