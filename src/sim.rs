//! A deterministic in-memory simulator: one [`Registry`] and many [`Node`]s driven exactly like
//! the io_uring driver drives them, with every choice (which event happens next, how many bytes
//! one receive returns) drawn from one seeded generator, on virtual time.
//!
//! What it models, and how it maps to the real driver (`crate::io`):
//! - **Listeners.** The registry listens on [`REGISTRY_ADDR`], node `i` on
//!   `127.0.0.1:(NODE_BASE_PORT + i)`. [`Effect::Connect`] becomes a pending connection
//!   attempt; when the scheduler picks it, the acceptor gets `on_accepted` (with the
//!   connector's listen IP and a fresh ephemeral port) and the connector `on_connected`, or
//!   the connector gets `on_closed` with [`LinkError::Refused`] when nothing listens there.
//! - **Sends.** Each connection end has one "send in flight" (the buffer taken with
//!   `swap_outgoing`). The sim swaps only when the previous send has completed and the link
//!   has room, moves as many bytes as the link's capacity allows (a short send), and swaps
//!   again once the send completes, as the driver's `start_send` does after a completion.
//! - **Links.** Bytes taken from the sender and not yet handed to the receiver sit in the
//!   receiving end's in-transit queue (the kernel's buffers). With
//!   [`SimConfig::capacity_bytes`] set, that queue never holds more: a full link backs the
//!   sender up into its machine's pending buffers, which is what flow control must bound.
//! - **Receives.** A receive takes a random number of bytes (1 up to everything in transit,
//!   bounded by the free space of a [`RECV_BUFFER_BYTES`] receive buffer), appends them after
//!   the bytes the machine did not consume last time, and offers the whole to `on_received`;
//!   the unconsumed tail is kept, exactly like the driver. Frames therefore straddle reads.
//! - **Close.** [`Effect::Close`] flushes what is pending, then closes; the peer receives the
//!   flushed bytes and then `on_closed(.., CloseReason::PeerClosed)`. What the peer sends meanwhile is
//!   not read. [`Effect::Exit`] (and [`Sim::kill`]) stops the machine: nothing more is sent
//!   or swapped out, bytes already in transit still arrive, then every peer sees the close.
//! - **Stall.** A stalled machine gets no events at all (no receives, no swaps, no ticks,
//!   no accepts): what is sent to it piles up in transit, up to the capacity.
//! - **Time.** Every scheduled event advances virtual time by [`SimConfig::step_nanos`]; when
//!   nothing can happen, time jumps to the earliest `next_tick`. `on_tick` runs whenever a
//!   machine's `next_tick()` has come.
//! - **Raw peers.** A test can open a connection of its own to any machine
//!   ([`Sim::raw_connect`]), write bytes on it and read what arrives, to craft messages a
//!   well-behaved node never sends.
//!
//! A data-plane tap watches every whole frame a node consumes: it counts data transmissions
//! (every arrival of a data frame at a node) and records each packet's arrival at its sink
//! with the relays the frame's header says it passed, so tests can check hop counts against
//! the routing formula independently of the nodes' own counters.
//!
//! No I/O, no clock (and, like all of the crate but `io`, `deny(unsafe_code)`); the same seed
//! gives the same run.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use zerocopy::FromBytes;

use crate::limits::RECV_BUFFER_BYTES;
use crate::machine::{CloseReason, ConnId, Effect, LinkError, Machine, Nanos};
use crate::node::{Node, NodeConfig};
use crate::registry::{Registry, RegistryConfig};
use crate::summary::RunResult;
use crate::wire::classic::{self, Classic};
use crate::wire::native::{DataHeader, Native};
use crate::wire::{Codec, Control, Counters, NodeId, Peek};

/// What the simulator's data-plane tap reads of a data frame that reached its sink: the source
/// and the relays its trace says it passed. One per encoding, so `Sim` runs either.
pub trait SimCodec: Codec {
    fn arrival(frame: &[u8]) -> Option<(NodeId, u8)>;
}

impl SimCodec for Native {
    fn arrival(frame: &[u8]) -> Option<(NodeId, u8)> {
        let (header, _) = DataHeader::ref_from_prefix(frame).ok()?;
        Some((header.source.get(), header.hop_count))
    }
}

impl SimCodec for Classic {
    fn arrival(frame: &[u8]) -> Option<(NodeId, u8)> {
        let field = |at: usize| -> Option<u32> {
            Some(u32::from_be_bytes(*frame.get(at..at + 4)?.first_chunk()?))
        };
        let source = field(classic::PREFIX_BYTES + 5)?;
        let relays = field(classic::DATA_HEADER_BYTES - 4)?;
        Some((source, u8::try_from(relays).unwrap_or(u8::MAX)))
    }
}

/// Where the simulated registry listens.
pub const REGISTRY_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9000);

/// Node `i` listens on `127.0.0.1:(NODE_BASE_PORT + i)`.
pub const NODE_BASE_PORT: u16 = 10_000;

/// First ephemeral port given to the connecting side of a connection.
const EPHEMERAL_PORT_FIRST: u16 = 40_000;

/// What the registry prints once every node reported setup success.
pub const READY_LINE: &str = "Registry now ready to initiate tasks.";

/// A machine of the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Who {
    Registry,
    /// Node by index (0-based, in creation order; not its overlay ID).
    Node(usize),
}

impl Who {
    fn index(self) -> usize {
        match self {
            Who::Registry => 0,
            Who::Node(i) => i + 1,
        }
    }
}

/// A connection end owned by the test (see [`Sim::raw_connect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawId(usize);

/// How to build a simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Messaging nodes (the registry is always there).
    pub nodes: usize,
    /// Seeds the scheduler; the nodes' seeds are derived from it.
    pub seed: u64,
    /// The registry's configuration (its `seed` is used as given).
    pub registry: RegistryConfig,
    /// Most bytes a connection holds in transit (`None`: unbounded).
    pub capacity_bytes: Option<usize>,
    /// Virtual time each scheduled event takes.
    pub step_nanos: Nanos,
}

impl SimConfig {
    /// `nodes` nodes, everything seeded from `seed`, unbounded links, 1 µs per event.
    pub fn new(nodes: usize, seed: u64) -> SimConfig {
        SimConfig {
            nodes,
            seed,
            registry: RegistryConfig {
                seed,
                ..RegistryConfig::default()
            },
            capacity_bytes: None,
            step_nanos: 1_000,
        }
    }
}

/// Why [`Sim::run_until`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimError {
    /// The step bound was reached before the condition held.
    StepLimit { steps: u64 },
    /// Nothing could happen any more (no event, no timer) and the condition does not hold.
    Stuck { steps: u64 },
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::StepLimit { steps } => write!(f, "step limit reached after {steps} steps"),
            SimError::Stuck { steps } => {
                write!(f, "nothing can happen any more (after {steps} steps)")
            }
        }
    }
}

impl std::error::Error for SimError {}

/// One data packet's arrival at its sink, as the frame's header showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub source: NodeId,
    pub sink: NodeId,
    /// Relays the frame's header says it passed (its hop count).
    pub relays: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Machine(usize),
    Raw(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndState {
    Open,
    /// The owner asked to close: send what is pending, then close. Nothing more is read.
    Flushing,
    Closed,
}

/// One end of a simulated TCP connection.
#[derive(Debug)]
struct End {
    owner: Owner,
    /// The owner's name for the connection.
    conn: ConnId,
    /// The other end (index into `Sim::ends`).
    peer: usize,
    state: EndState,
    /// The owner said `Send`, or a send completed: swap its pending bytes out next.
    need_swap: bool,
    /// The send in flight: bytes taken from the owner, `send_offset` of them moved already.
    send_buffer: Vec<u8>,
    send_offset: usize,
    /// Bytes in transit towards this end (sent by the peer, not yet received here).
    inbound: VecDeque<u8>,
    /// Bytes received but not consumed by the owner (the driver's receive buffer).
    unconsumed: Vec<u8>,
    /// The peer closed: once `inbound` is empty the owner learns it.
    eof: bool,
}

#[derive(Debug)]
struct Slot {
    listen: SocketAddr,
    stalled: bool,
    exit: Option<i32>,
    printed: Vec<String>,
    next_inbound: u64,
    conns: BTreeMap<ConnId, usize>,
}

#[derive(Debug)]
struct Raw {
    end: usize,
    received: Vec<u8>,
    closed: bool,
}

#[derive(Debug)]
struct PendingConnect {
    machine: usize,
    conn: ConnId,
    addr: SocketAddr,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Connect(usize),
    Deliver(usize),
    Pump(usize),
    Tick(usize),
}

/// The simulation: a registry, nodes, the connections between them, and virtual time, all
/// speaking encoding `C` (native unless built with [`Sim::with_codec`]).
pub struct Sim<C: SimCodec = Native> {
    registry: Registry<C>,
    nodes: Vec<Node<C>>,
    /// Index 0 is the registry, index `i + 1` node `i`.
    slots: Vec<Slot>,
    listeners: BTreeMap<SocketAddr, usize>,
    ends: Vec<End>,
    /// Ends that may have something to do (data to move, a close to report), in the order
    /// they were marked; `marked[e]` says whether `e` is in it. Scanning only these keeps a
    /// step cheap in overlays with thousands of idle links.
    busy: Vec<usize>,
    marked: Vec<bool>,
    raws: Vec<Raw>,
    connects: Vec<PendingConnect>,
    now: Nanos,
    steps: u64,
    rng: SmallRng,
    capacity_bytes: Option<usize>,
    step_nanos: Nanos,
    next_port: u16,
    effects: Vec<Effect>,
    actions: Vec<Action>,
    data_transmissions: u64,
    ack_transmissions: u64,
    arrivals: Vec<Arrival>,
    in_transit_max: usize,
}

impl Sim {
    /// Builds the machines (native encoding) and starts them: every node is about to connect
    /// to the registry.
    pub fn new(config: SimConfig) -> Sim {
        Sim::with_codec(config)
    }
}

impl<C: SimCodec> Sim<C> {
    /// Builds the machines speaking encoding `C` and starts them.
    pub fn with_codec(config: SimConfig) -> Sim<C> {
        let registry = Registry::new(config.registry.clone());
        let mut slots = vec![Slot::new(REGISTRY_ADDR)];
        let mut listeners = BTreeMap::from([(REGISTRY_ADDR, 0)]);
        let mut nodes = Vec::with_capacity(config.nodes);
        for i in 0..config.nodes {
            let port = NODE_BASE_PORT
                .checked_add(u16::try_from(i).expect("node count fits a port"))
                .expect("node ports fit below 65536");
            let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            nodes.push(Node::new(NodeConfig {
                listen,
                registry: REGISTRY_ADDR,
                secret: None,
                link_buffer_bytes: 0,
                seed: config
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(i as u64 + 1),
            }));
            listeners.insert(listen, i + 1);
            slots.push(Slot::new(listen));
        }
        let mut sim = Sim {
            registry,
            nodes,
            slots,
            listeners,
            ends: Vec::new(),
            busy: Vec::new(),
            marked: Vec::new(),
            raws: Vec::new(),
            connects: Vec::new(),
            now: 0,
            steps: 0,
            rng: SmallRng::seed_from_u64(config.seed),
            capacity_bytes: config.capacity_bytes,
            step_nanos: config.step_nanos,
            next_port: EPHEMERAL_PORT_FIRST,
            effects: Vec::new(),
            actions: Vec::new(),
            data_transmissions: 0,
            ack_transmissions: 0,
            arrivals: Vec::new(),
            in_transit_max: 0,
        };
        for m in 0..sim.slots.len() {
            let now = sim.now;
            sim.machine(m).on_start(now);
            sim.apply_effects(m);
        }
        sim
    }

    // ----- Queries -----

    /// Virtual time now.
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Number of messaging nodes (registered or not).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn registry(&self) -> &Registry<C> {
        &self.registry
    }

    pub fn node(&self, i: usize) -> &Node<C> {
        &self.nodes[i]
    }

    /// Node `i`'s overlay ID, once registered.
    pub fn node_id(&self, i: usize) -> Option<NodeId> {
        self.nodes[i].id()
    }

    /// The index of the node registered with `id`.
    pub fn node_index(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id() == Some(id))
    }

    pub fn counters(&self, i: usize) -> Counters {
        self.nodes[i].counters()
    }

    /// Bytes node `i` holds for its table entries.
    pub fn queued_bytes(&self, i: usize) -> usize {
        self.nodes[i].queued_bytes()
    }

    /// The registry's completed runs.
    pub fn results(&self) -> &[RunResult] {
        self.registry.results()
    }

    pub fn is_ready(&self) -> bool {
        self.registry.is_ready()
    }

    /// Where `who` listens.
    pub fn listen_addr(&self, who: Who) -> SocketAddr {
        self.slots[who.index()].listen
    }

    /// Every line `who` printed so far.
    pub fn printed(&self, who: Who) -> &[String] {
        &self.slots[who.index()].printed
    }

    /// True if a line `who` printed contains `text`.
    pub fn printed_contains(&self, who: Who, text: &str) -> bool {
        self.printed(who).iter().any(|line| line.contains(text))
    }

    /// The status `who` exited with (or `Some(-9)` after [`Sim::kill`]).
    pub fn exit_code(&self, who: Who) -> Option<i32> {
        self.slots[who.index()].exit
    }

    /// Data frames received by any node so far (every hop of every packet).
    pub fn data_transmissions(&self) -> u64 {
        self.data_transmissions
    }

    /// Ack frames received by any node so far.
    pub fn ack_transmissions(&self) -> u64 {
        self.ack_transmissions
    }

    /// Every data packet's arrival at its sink so far.
    pub fn arrivals(&self) -> &[Arrival] {
        &self.arrivals
    }

    /// Forgets the tap's records (between runs).
    pub fn clear_tap(&mut self) {
        self.data_transmissions = 0;
        self.ack_transmissions = 0;
        self.arrivals.clear();
    }

    /// The most bytes any one link held in transit so far.
    pub fn in_transit_max(&self) -> usize {
        self.in_transit_max
    }

    // ----- Control -----

    /// Stalls (or resumes) node `i`: a stalled node is given no events at all.
    pub fn stall(&mut self, i: usize, stalled: bool) {
        self.slots[i + 1].stalled = stalled;
    }

    /// Node `i` dies: it gets no more events and all its connections close (bytes already in
    /// transit still reach its peers).
    pub fn kill(&mut self, i: usize) {
        let m = i + 1;
        if self.slots[m].exit.is_none() {
            self.slots[m].exit = Some(-9);
            self.disconnect(m);
        }
    }

    /// Types `line` at `who`'s console.
    pub fn command(&mut self, who: Who, line: &str) {
        let m = who.index();
        if self.slots[m].exit.is_some() {
            return;
        }
        let now = self.now;
        self.machine(m).on_command(now, line);
        self.apply_effects(m);
    }

    // ----- Running -----

    /// Takes one step: one event chosen at random among those that can happen, or a jump of
    /// virtual time to the next timer. False when nothing can happen at all.
    pub fn step(&mut self) -> bool {
        self.step_within(Nanos::MAX)
    }

    /// Like [`Sim::step`], but virtual time never jumps to a timer later than `until`: false
    /// when no event can happen before then (models a pause shorter than those timers).
    pub fn step_within(&mut self, until: Nanos) -> bool {
        self.collect_actions();
        if self.actions.is_empty() {
            let next = (0..self.slots.len())
                .filter(|&m| self.active(m))
                .filter_map(|m| self.next_tick(m))
                .min();
            return match next {
                Some(at) if at > self.now && at <= until => {
                    self.now = at;
                    self.steps += 1;
                    true
                }
                _ => false,
            };
        }
        let action = self.actions[self.rng.random_range(0..self.actions.len())];
        match action {
            Action::Connect(index) => self.do_connect(index),
            Action::Deliver(e) => self.do_deliver(e),
            Action::Pump(e) => self.do_pump(e),
            Action::Tick(m) => {
                let now = self.now;
                self.machine(m).on_tick(now);
                self.apply_effects(m);
            }
        }
        self.now += self.step_nanos;
        self.steps += 1;
        true
    }

    /// Steps until `condition` holds (checked before every step). Fails after `max_steps`
    /// steps, or when nothing can happen any more.
    pub fn run_until(
        &mut self,
        mut condition: impl FnMut(&Sim<C>) -> bool,
        max_steps: u64,
    ) -> Result<u64, SimError> {
        let mut taken = 0;
        loop {
            if condition(self) {
                return Ok(taken);
            }
            if taken >= max_steps {
                return Err(SimError::StepLimit { steps: taken });
            }
            if !self.step() {
                return Err(SimError::Stuck { steps: taken });
            }
            taken += 1;
        }
    }

    /// Steps until nothing can happen any more; fails after `max_steps` steps.
    pub fn run_until_quiet(&mut self, max_steps: u64) -> Result<u64, SimError> {
        let mut taken = 0;
        while self.step() {
            taken += 1;
            if taken >= max_steps {
                return Err(SimError::StepLimit { steps: taken });
            }
        }
        Ok(taken)
    }

    /// Runs until every node that has not exited is registered.
    pub fn register_all(&mut self, max_steps: u64) -> Result<u64, SimError> {
        self.run_until(
            |sim| {
                (0..sim.nodes.len())
                    .all(|i| sim.nodes[i].id().is_some() || sim.slots[i + 1].exit.is_some())
                    && sim.connects.is_empty()
            },
            max_steps,
        )
    }

    /// Types `setup-overlay nr` at the registry and runs until it is ready.
    pub fn setup_overlay(&mut self, nr: usize, max_steps: u64) -> Result<u64, SimError> {
        self.command(Who::Registry, &format!("setup-overlay {nr}"));
        self.run_until(|sim| sim.is_ready(), max_steps)
    }

    /// Types `start packets` at the registry and runs until the run has a result.
    pub fn run_packets(&mut self, packets: u64, max_steps: u64) -> Result<RunResult, SimError> {
        let before = self.results().len();
        self.command(Who::Registry, &format!("start {packets}"));
        self.run_until(|sim| sim.results().len() > before, max_steps)?;
        Ok(self.results()[before].clone())
    }

    // ----- Raw peers -----

    /// Opens a connection owned by the test, from `from` (a fresh port) to `to`, which must
    /// be running. `to` gets `on_accepted` at once.
    pub fn raw_connect(&mut self, from: IpAddr, to: Who) -> RawId {
        let target = to.index();
        assert!(
            self.slots[target].exit.is_none(),
            "raw_connect to a machine that exited"
        );
        let raw = self.raws.len();
        let port = self.ephemeral_port();
        let inbound = self.slots[target].inbound_id();
        let (raw_end, _) = self.link(
            Owner::Raw(raw),
            ConnId::inbound(raw as u64),
            Owner::Machine(target),
            inbound,
        );
        self.raws.push(Raw {
            end: raw_end,
            received: Vec::new(),
            closed: false,
        });
        let now = self.now;
        self.machine(target)
            .on_accepted(now, inbound, SocketAddr::new(from, port));
        self.apply_effects(target);
        RawId(raw)
    }

    /// Writes `bytes` on a raw connection (they arrive in random-sized reads; the capacity
    /// does not apply). Ignored once the connection is closed.
    pub fn raw_send(&mut self, raw: RawId, bytes: &[u8]) {
        let end = self.raws[raw.0].end;
        let peer = self.ends[end].peer;
        if self.ends[end].state == EndState::Open && self.ends[peer].state != EndState::Closed {
            self.ends[peer].inbound.extend(bytes);
            self.mark(peer);
        }
    }

    /// Encodes `message` with the native codec and writes it on a raw connection.
    pub fn raw_send_control(&mut self, raw: RawId, message: &Control) {
        let mut frame = Vec::new();
        C::encode_control(message, &mut frame);
        self.raw_send(raw, &frame);
    }

    /// Bytes that arrived on a raw connection and were not taken yet.
    pub fn raw_received(&self, raw: RawId) -> &[u8] {
        &self.raws[raw.0].received
    }

    /// Decodes and removes every whole control frame that arrived on a raw connection.
    pub fn raw_take_controls(&mut self, raw: RawId) -> Vec<Control> {
        let received = &mut self.raws[raw.0].received;
        let mut out = Vec::new();
        let mut offset = 0;
        while let Ok(Some(len)) = C::frame_len(&received[offset..]) {
            let frame = &received[offset..offset + len];
            out.push(C::decode_control(frame).expect("a control frame on a raw link"));
            offset += len;
        }
        received.drain(..offset);
        out
    }

    /// True once the machine closed the raw connection (and everything it sent arrived).
    pub fn raw_closed(&self, raw: RawId) -> bool {
        self.raws[raw.0].closed
    }

    /// Closes a raw connection: the machine sees the close after what is in transit.
    pub fn raw_close(&mut self, raw: RawId) {
        let end = self.raws[raw.0].end;
        self.raws[raw.0].closed = true;
        self.close_end(end);
    }

    // ----- Internals -----

    fn machine(&mut self, m: usize) -> &mut dyn Machine {
        if m == 0 {
            &mut self.registry
        } else {
            &mut self.nodes[m - 1]
        }
    }

    fn next_tick(&self, m: usize) -> Option<Nanos> {
        if m == 0 {
            self.registry.next_tick()
        } else {
            self.nodes[m - 1].next_tick()
        }
    }

    fn active(&self, m: usize) -> bool {
        let slot = &self.slots[m];
        !slot.stalled && slot.exit.is_none()
    }

    fn ephemeral_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port == u16::MAX {
            EPHEMERAL_PORT_FIRST
        } else {
            port + 1
        };
        port
    }

    /// Creates the two ends of a connection; returns their indices.
    fn link(&mut self, a: Owner, a_conn: ConnId, b: Owner, b_conn: ConnId) -> (usize, usize) {
        let first = self.ends.len();
        for (owner, conn, peer) in [(a, a_conn, first + 1), (b, b_conn, first)] {
            if let Owner::Machine(m) = owner {
                self.slots[m].conns.insert(conn, self.ends.len());
            }
            self.busy.push(self.ends.len());
            self.marked.push(true);
            self.ends.push(End {
                owner,
                conn,
                peer,
                state: EndState::Open,
                // One swap at the start picks up anything queued before the connection was up.
                need_swap: true,
                send_buffer: Vec::new(),
                send_offset: 0,
                inbound: VecDeque::new(),
                unconsumed: Vec::new(),
                eof: false,
            });
        }
        (first, first + 1)
    }

    /// Closes end `e` for good; its peer sees the close once it has received what is in
    /// transit.
    fn close_end(&mut self, e: usize) {
        let end = &mut self.ends[e];
        if end.state == EndState::Closed {
            return;
        }
        end.state = EndState::Closed;
        end.inbound.clear();
        end.unconsumed.clear();
        end.send_buffer.clear();
        end.send_offset = 0;
        let (owner, conn, peer) = (end.owner, end.conn, end.peer);
        if let Owner::Machine(m) = owner {
            self.slots[m].conns.remove(&conn);
        }
        if self.ends[peer].state != EndState::Closed {
            self.ends[peer].eof = true;
            self.mark(peer);
        }
    }

    /// Notes that end `e` may have something to do.
    fn mark(&mut self, e: usize) {
        if !self.marked[e] {
            self.marked[e] = true;
            self.busy.push(e);
        }
    }

    /// True while end `e` has work, whether or not it can do it now.
    fn has_work(&self, e: usize) -> bool {
        let end = &self.ends[e];
        end.state != EndState::Closed
            && (!end.inbound.is_empty()
                || end.eof
                || end.need_swap
                || end.send_offset < end.send_buffer.len()
                || end.state == EndState::Flushing)
    }

    /// Machine `m` is gone: close all its connections and forget its connection attempts.
    fn disconnect(&mut self, m: usize) {
        let ends: Vec<usize> = self.slots[m].conns.values().copied().collect();
        for e in ends {
            self.close_end(e);
        }
        self.connects.retain(|c| c.machine != m);
    }

    /// Free room on the link into end `into`.
    fn room(&self, into: usize) -> usize {
        let end = &self.ends[into];
        if end.state == EndState::Closed {
            return usize::MAX;
        }
        self.capacity_bytes
            .map_or(usize::MAX, |c| c.saturating_sub(end.inbound.len()))
    }

    fn apply_effects(&mut self, m: usize) {
        loop {
            if self.slots[m].exit.is_some() {
                return;
            }
            let mut batch = std::mem::take(&mut self.effects);
            self.machine(m).take_effects(&mut batch);
            if batch.is_empty() {
                self.effects = batch;
                return;
            }
            for effect in batch.drain(..) {
                if self.slots[m].exit.is_some() {
                    // The driver stops at Exit: later effects are never carried out.
                    break;
                }
                self.apply(m, effect);
            }
            batch.clear();
            self.effects = batch;
        }
    }

    fn apply(&mut self, m: usize, effect: Effect) {
        match effect {
            Effect::Connect { conn, addr } => self.connects.push(PendingConnect {
                machine: m,
                conn,
                addr,
            }),
            Effect::Send(conn) => {
                if let Some(&e) = self.slots[m].conns.get(&conn) {
                    self.ends[e].need_swap = true;
                    self.mark(e);
                }
            }
            Effect::Close(conn) => match self.slots[m].conns.get(&conn) {
                Some(&e) => {
                    let end = &mut self.ends[e];
                    if end.state == EndState::Open {
                        end.state = EndState::Flushing;
                        end.need_swap = true;
                        self.mark(e);
                    }
                }
                // Closed before it was connected: the attempt is abandoned silently.
                None => self
                    .connects
                    .retain(|c| !(c.machine == m && c.conn == conn)),
            },
            Effect::Print(line) => self.slots[m].printed.push(line),
            // Nothing is written: the simulator says what the driver would.
            Effect::WriteFile { path, contents } => self.slots[m].printed.push(format!(
                "Wrote {} ({} bytes)",
                path.display(),
                contents.len()
            )),
            Effect::Exit(code) => {
                self.slots[m].exit = Some(code);
                self.disconnect(m);
            }
        }
    }

    fn collect_actions(&mut self) {
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        for (index, connect) in self.connects.iter().enumerate() {
            if !self.active(connect.machine) {
                continue;
            }
            // A listener that is stalled accepts nothing yet; a missing one refuses.
            let blocked = self
                .listeners
                .get(&connect.addr)
                .is_some_and(|&t| self.slots[t].exit.is_none() && self.slots[t].stalled);
            if !blocked {
                actions.push(Action::Connect(index));
            }
        }
        let mut busy = std::mem::take(&mut self.busy);
        busy.retain(|&e| {
            let keep = self.has_work(e);
            self.marked[e] = keep;
            keep
        });
        for &e in &busy {
            let end = &self.ends[e];
            match end.owner {
                Owner::Machine(m) => {
                    if !self.active(m) {
                        continue;
                    }
                    if end.state == EndState::Open && (!end.inbound.is_empty() || end.eof) {
                        actions.push(Action::Deliver(e));
                    }
                    if self.pump_ready(e) {
                        actions.push(Action::Pump(e));
                    }
                }
                Owner::Raw(_) => {
                    if end.state == EndState::Open && (!end.inbound.is_empty() || end.eof) {
                        actions.push(Action::Deliver(e));
                    }
                }
            }
        }
        self.busy = busy;
        for m in 0..self.slots.len() {
            if self.active(m) && self.next_tick(m).is_some_and(|at| at <= self.now) {
                actions.push(Action::Tick(m));
            }
        }
        self.actions = actions;
    }

    fn pump_ready(&self, e: usize) -> bool {
        let end = &self.ends[e];
        if end.state == EndState::Closed {
            return false;
        }
        let room = self.room(end.peer);
        if end.send_offset < end.send_buffer.len() || end.need_swap {
            room > 0
        } else {
            end.state == EndState::Flushing
        }
    }

    fn do_connect(&mut self, index: usize) {
        let PendingConnect {
            machine: m,
            conn,
            addr,
        } = self.connects.remove(index);
        let now = self.now;
        let target = self
            .listeners
            .get(&addr)
            .copied()
            .filter(|&t| self.slots[t].exit.is_none());
        let Some(t) = target else {
            let reason = CloseReason::ConnectFailed {
                addr,
                error: LinkError::Refused,
            };
            self.machine(m).on_closed(now, conn, reason);
            self.apply_effects(m);
            return;
        };
        let port = self.ephemeral_port();
        let peer_addr = SocketAddr::new(self.slots[m].listen.ip(), port);
        let inbound = self.slots[t].inbound_id();
        let (connector_end, _) = self.link(Owner::Machine(m), conn, Owner::Machine(t), inbound);
        self.machine(t).on_accepted(now, inbound, peer_addr);
        self.apply_effects(t);
        if self.slots[m].exit.is_none() && self.ends[connector_end].state != EndState::Closed {
            self.machine(m).on_connected(now, conn);
            self.apply_effects(m);
        }
    }

    fn do_deliver(&mut self, e: usize) {
        let now = self.now;
        let (owner, conn) = (self.ends[e].owner, self.ends[e].conn);
        if self.ends[e].inbound.is_empty() {
            debug_assert!(self.ends[e].eof);
            self.close_end(e);
            match owner {
                Owner::Machine(m) => {
                    self.machine(m)
                        .on_closed(now, conn, CloseReason::PeerClosed);
                    self.apply_effects(m);
                }
                Owner::Raw(r) => self.raws[r].closed = true,
            }
            return;
        }
        let m = match owner {
            Owner::Machine(m) => m,
            Owner::Raw(r) => {
                let bytes: Vec<u8> = self.ends[e].inbound.drain(..).collect();
                self.raws[r].received.extend(bytes);
                return;
            }
        };
        let end = &mut self.ends[e];
        let space = RECV_BUFFER_BYTES - end.unconsumed.len();
        let most = end.inbound.len().min(space);
        let count = self.rng.random_range(1..=most);
        let mut buffer = std::mem::take(&mut end.unconsumed);
        buffer.extend(end.inbound.drain(..count));
        let consumed = self
            .machine(m)
            .on_received(now, conn, &buffer)
            .min(buffer.len());
        if m > 0 {
            self.tap(m - 1, &buffer[..consumed]);
        }
        self.apply_effects(m);
        if self.ends[e].state != EndState::Open {
            return;
        }
        buffer.drain(..consumed);
        if buffer.len() == RECV_BUFFER_BYTES {
            // The driver's rule: a frame that cannot fit the receive buffer fails the link.
            self.close_end(e);
            self.machine(m)
                .on_closed(now, conn, CloseReason::FrameTooLarge);
            self.apply_effects(m);
            return;
        }
        self.ends[e].unconsumed = buffer;
    }

    fn do_pump(&mut self, e: usize) {
        let peer = self.ends[e].peer;
        let room = self.room(peer);
        let end = &mut self.ends[e];
        if end.send_offset == end.send_buffer.len() {
            if end.need_swap {
                end.need_swap = false;
                let mut buffer = std::mem::take(&mut end.send_buffer);
                buffer.clear();
                end.send_offset = 0;
                let (owner, conn) = (end.owner, end.conn);
                let Owner::Machine(m) = owner else {
                    unreachable!("raw ends send directly");
                };
                self.machine(m).swap_outgoing(conn, &mut buffer);
                self.ends[e].send_buffer = buffer;
            }
            if self.ends[e].send_buffer.is_empty() {
                if self.ends[e].state == EndState::Flushing {
                    self.close_end(e);
                }
                return;
            }
        }
        let end = &mut self.ends[e];
        let count = (end.send_buffer.len() - end.send_offset).min(room);
        end.send_offset += count;
        if end.send_offset == end.send_buffer.len() {
            // The send completed: the driver takes whatever is pending next.
            end.need_swap = true;
        }
        if self.ends[peer].state != EndState::Closed {
            let (sender, receiver) = pair_mut(&mut self.ends, e, peer);
            let start = sender.send_offset - count;
            receiver
                .inbound
                .extend(&sender.send_buffer[start..sender.send_offset]);
            self.in_transit_max = self.in_transit_max.max(receiver.inbound.len());
            self.mark(peer);
        }
    }

    /// Watches the whole frames node `i` consumed.
    fn tap(&mut self, i: usize, bytes: &[u8]) {
        let Some(me) = self.nodes[i].id() else {
            return;
        };
        let mut offset = 0;
        while let Ok(Some(len)) = C::frame_len(&bytes[offset..]) {
            let frame = &bytes[offset..offset + len];
            offset += len;
            match C::peek(frame) {
                Ok(Peek::Data(data)) => {
                    self.data_transmissions += 1;
                    let sink = data.sink();
                    if sink == me
                        && let Some((source, relays)) = C::arrival(frame)
                    {
                        self.arrivals.push(Arrival {
                            source,
                            sink,
                            relays,
                        });
                    }
                }
                Ok(Peek::Ack(_)) => self.ack_transmissions += 1,
                _ => {}
            }
        }
    }
}

impl Slot {
    fn new(listen: SocketAddr) -> Slot {
        Slot {
            listen,
            stalled: false,
            exit: None,
            printed: Vec::new(),
            next_inbound: 0,
            conns: BTreeMap::new(),
        }
    }

    fn inbound_id(&mut self) -> ConnId {
        self.next_inbound += 1;
        ConnId::inbound(self.next_inbound)
    }
}

/// Two distinct elements of `ends`, mutably.
fn pair_mut(ends: &mut [End], a: usize, b: usize) -> (&mut End, &mut End) {
    assert_ne!(a, b);
    if a < b {
        let (low, high) = ends.split_at_mut(b);
        (&mut low[a], &mut high[0])
    } else {
        let (low, high) = ends.split_at_mut(a);
        (&mut high[0], &mut low[b])
    }
}

/// The registry's `TaskInitiate` for run 1 (`packets` each, no extra payload, no rate) in
/// the native format: what a [`ReadyNode`]'s registry connection receives to start a run.
pub fn task_initiate(packets: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    Native::encode_control(
        &Control::TaskInitiate {
            run: 1,
            packets,
            extra_payload_bytes: 0,
            rate_per_s: 0,
        },
        &mut bytes,
    );
    bytes
}

/// A lone `Node<Native>` brought, through its `Machine` interface alone, to the state a run
/// finds it in: registered as `self_id`, given the manifest of the ring `ids` with `nr`
/// entries, every entry link up. For tests and benches that feed one node bytes directly.
pub struct ReadyNode {
    pub node: Node<Native>,
    /// The connection to the (absent) registry: feed it control frames.
    pub registry: ConnId,
    /// The connections to the node's table entries, in hop order.
    pub entries: Vec<ConnId>,
}

impl ReadyNode {
    /// Node `self_id` (one of `ids`) listens on 127.0.0.1:`port(self_id)`, where each entry
    /// is too; `trace_slots` and `window_bytes` are the manifest's.
    pub fn new(
        self_id: NodeId,
        ids: &[NodeId],
        nr: usize,
        trace_slots: u8,
        window_bytes: u64,
    ) -> ReadyNode {
        let addr = |id: NodeId| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port(id));
        let ring = crate::routing::Ring::new(ids.to_vec());
        let position = ring.position(self_id).expect("self_id is in the ring");
        let mut node = Node::<Native>::new(NodeConfig {
            listen: addr(self_id),
            registry: REGISTRY_ADDR,
            seed: 1,
            secret: None,
            link_buffer_bytes: 0,
        });
        let mut effects = Vec::new();
        node.on_start(0);
        node.take_effects(&mut effects);
        let Some(Effect::Connect { conn: registry, .. }) = effects.first().cloned() else {
            panic!("a node connects to the registry first: {effects:?}");
        };
        node.on_connected(0, registry);
        let mut bytes = Vec::new();
        Native::encode_control(
            &Control::RegisterStatus {
                status: crate::wire::Status::Ok(self_id),
                info: String::new(),
            },
            &mut bytes,
        );
        Native::encode_control(
            &Control::Manifest(crate::wire::Manifest {
                entries: ring
                    .table(position, nr)
                    .into_iter()
                    .map(|id| crate::wire::ManifestEntry { id, addr: addr(id) })
                    .collect(),
                all_ids: ring.ids().to_vec(),
                trace_slots,
                window_bytes,
            }),
            &mut bytes,
        );
        assert_eq!(node.on_received(0, registry, &bytes), bytes.len());
        effects.clear();
        node.take_effects(&mut effects);
        let entries: Vec<ConnId> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Connect { conn, .. } => Some(*conn),
                _ => None,
            })
            .collect();
        assert_eq!(entries.len(), nr, "one link per entry: {effects:?}");
        for conn in &entries {
            node.on_connected(0, *conn);
        }
        effects.clear();
        node.take_effects(&mut effects);
        ReadyNode {
            node,
            registry,
            entries,
        }
    }
}

/// The port a [`ReadyNode`] gives node `id`.
fn port(id: NodeId) -> u16 {
    20_000 + (id % 40_000) as u16
}
