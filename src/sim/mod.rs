//! A deterministic in-memory simulator: one [`Registry`] and many [`Node`]s driven exactly like
//! the io_uring driver drives them, with every choice (which event happens next, how many bytes
//! one receive returns) drawn from one seeded generator, on virtual time.
//!
//! What it models, and how it maps to the real driver (`crate::io`):
//! - **Listeners.** The registry listens on [`REGISTRY_ADDR`], node `i` on
//!   `127.0.0.1:(NODE_BASE_PORT + i)`. [`Effect::Connect`] becomes a pending connection
//!   attempt; when the scheduler picks it, the acceptor gets `on_accepted` (with the
//!   connector's listen IP and a fresh ephemeral port) and the connector `on_connected`, or
//!   the connector gets `on_closed` with `LinkError::Refused` when nothing listens there.
//! - **Sends.** Each connection end has one "send in flight" (the buffer taken with
//!   `swap_outgoing`). The sim swaps only when the previous send has completed and the link
//!   has room, moves as many bytes as the link's capacity allows (a short send), and swaps
//!   again once the send completes, as the driver's `start_send` does after a completion.
//! - **Links.** Bytes taken from the sender and not yet handed to the receiver sit in the
//!   receiving end's in-transit queue (the kernel's buffers). With
//!   [`SimConfig::capacity_bytes`] set, that queue never holds more: a full link backs the
//!   sender up into its machine's pending buffers, which is what flow control must bound.
//! - **Receives.** A receive takes a random number of bytes (1 up to everything in transit,
//!   bounded by the free space of a `RECV_BUFFER_BYTES` receive buffer), appends them after
//!   the bytes the machine did not consume last time, and offers the whole to `on_received`;
//!   the unconsumed tail is kept, exactly like the driver. Frames therefore straddle reads.
//! - **Close.** [`Effect::Close`] flushes what is pending, then closes; the peer receives the
//!   flushed bytes and then `on_closed(.., CloseReason::PeerClosed)`. What the peer sends
//!   meanwhile is not read. [`Effect::Exit`] (and [`Sim::kill`]) stops the machine: nothing more is sent
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
//!
//! Modules: `scheduler` (which event happens next, virtual time, running until a condition
//! holds, [`SimError`]), `link` (the connection ends and the bytes between them), `raw` (raw
//! peers), `tap` (the data-plane tap), `fixtures` ([`ReadyNode`], [`task_initiate`]). Built
//! only for tests (`cfg(test)`) and with the `testing` feature (the tests in `tests/`, the
//! benches and the fuzz targets): it is not part of the binary or of the library's API.

mod fixtures;
mod link;
mod raw;
mod scheduler;
mod tap;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::machine::{self, ConnId, Effect, EffectSink, Machine, Nanos};
use crate::node::{Node, NodeConfig};
use crate::registry::{Registry, RegistryConfig};
use crate::summary::RunResult;
use crate::wire::native::Native;
use crate::wire::{Codec, Counters, NodeId};

pub use fixtures::{ReadyNode, task_initiate, task_initiate_to};
use link::{EPHEMERAL_PORT_FIRST, End, EndState, Owner, PendingConnect};
use raw::Raw;
pub use raw::RawId;
use scheduler::Action;
pub use scheduler::SimError;
pub use tap::Arrival;

/// Where the simulated registry listens.
pub const REGISTRY_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9000);

/// Node `i` listens on `127.0.0.1:(NODE_BASE_PORT + i)`.
pub const NODE_BASE_PORT: u16 = 10_000;

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

#[derive(Debug)]
struct Slot {
    listen: SocketAddr,
    stalled: bool,
    exit: Option<i32>,
    printed: Vec<String>,
    next_inbound: u64,
    conns: BTreeMap<ConnId, usize>,
}

/// The simulation: a registry, nodes, the connections between them, and virtual time, all
/// speaking encoding `C` (native unless built with [`Sim::with_codec`]).
pub struct Sim<C: Codec = Native> {
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
    /// The nodes' seeds are derived from it.
    seed: u64,
}

/// Node `i` of a simulation seeded with `seed`.
fn sim_node<C: Codec>(seed: u64, i: usize) -> Node<C> {
    let port = NODE_BASE_PORT
        .checked_add(u16::try_from(i).expect("node count fits a port"))
        .expect("node ports fit below 65536");
    Node::new(NodeConfig {
        listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        registry: REGISTRY_ADDR,
        secret: None,
        link_buffer_bytes: 0,
        registry_wait: 0,
        group: None,
        seed: seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(i as u64 + 1),
    })
}

impl Sim {
    /// Builds the machines (native encoding) and starts them: every node is about to connect
    /// to the registry.
    pub fn new(config: SimConfig) -> Sim {
        Sim::with_codec(config)
    }
}

impl<C: Codec> Sim<C> {
    /// Builds the machines speaking encoding `C` and starts them.
    pub fn with_codec(config: SimConfig) -> Sim<C> {
        let registry = Registry::new(config.registry.clone());
        let mut slots = vec![Slot::new(REGISTRY_ADDR)];
        let mut listeners = BTreeMap::from([(REGISTRY_ADDR, 0)]);
        let mut nodes = Vec::with_capacity(config.nodes);
        for i in 0..config.nodes {
            let node = sim_node(config.seed, i);
            listeners.insert(node.listen(), i + 1);
            slots.push(Slot::new(node.listen()));
            nodes.push(node);
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
            seed: config.seed,
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

    /// The registry's most recent completed runs, oldest first (all of them in tests, which
    /// complete fewer than the registry keeps).
    pub fn results(&self) -> &VecDeque<RunResult> {
        self.registry.results().recent()
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

    /// The most bytes any one link held in transit so far.
    pub fn in_transit_max(&self) -> usize {
        self.in_transit_max
    }

    // ----- Control -----

    /// Stalls (or resumes) node `i`: a stalled node is given no events at all.
    pub fn stall(&mut self, i: usize, stalled: bool) {
        self.slots[i + 1].stalled = stalled;
    }

    /// Virtual time moves on to `at` with nothing happening meanwhile (every machine paused,
    /// every byte in transit held), as a host that did not run; no earlier than now.
    pub fn pause_until(&mut self, at: Nanos) {
        self.now = self.now.max(at);
    }

    /// The driver tells `who` that everything it asked to send is in the kernel, if it waits
    /// for that (`Machine::on_handed_over`); the simulator otherwise never does.
    pub fn hand_over(&mut self, who: Who) {
        let m = who.index();
        let now = self.now;
        if self.slots[m].exit.is_none() && self.machine(m).awaits_hand_over() {
            self.machine(m).on_handed_over(now);
            self.apply_effects(m);
        }
    }

    /// Holds (or releases) what node `from` sends node `to` on the links it opened to it: held,
    /// the bytes stay in transit (up to the link's capacity, then `from` queues them), as on a
    /// slow path, while both nodes go on with everything else. Links opened later are not
    /// held.
    pub fn hold(&mut self, from: usize, to: usize, held: bool) {
        self.hold_ends(from + 1, to + 1, held);
    }

    /// Holds (or releases) what node `from` sends the registry, the close of its connection
    /// included: held, the registry hears nothing more of it (not even that it died) until
    /// released, as a registry that reads its other connections first.
    pub fn hold_registry(&mut self, from: usize, held: bool) {
        self.hold_ends(from + 1, 0, held);
    }

    /// Holds (or releases) what machine `from` sends machine `to` on the connections `from`
    /// opened to `to`.
    fn hold_ends(&mut self, from: usize, to: usize, held: bool) {
        let (sender, receiver) = (Owner::Machine(from), Owner::Machine(to));
        for e in 0..self.ends.len() {
            let end = &self.ends[e];
            if end.owner == receiver
                && self.ends[end.peer].owner == sender
                && !end.conn.is_outbound()
            {
                self.ends[e].held = held;
                self.mark(e);
            }
        }
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

    /// Starts one more node (its index is returned): it connects to the registry and
    /// registers, as a node started while the overlay runs.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let node = sim_node(self.seed, i);
        let listen = node.listen();
        self.nodes.push(node);
        self.listeners.insert(listen, i + 1);
        self.slots.push(Slot::new(listen));
        let now = self.now;
        self.machine(i + 1).on_start(now);
        self.apply_effects(i + 1);
        i
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

    /// Carries out machine `m`'s effects as the driver does ([`machine::drain_effects`]).
    fn apply_effects(&mut self, m: usize) {
        let Ok(()) = machine::drain_effects(&mut MachineEffects { sim: self, m });
    }

    fn apply(&mut self, m: usize, effect: Effect) {
        match effect {
            Effect::Connect { conn, addr, .. } => self.connects.push(PendingConnect {
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
}

/// Machine `m`'s side of carrying out effects in the simulation.
struct MachineEffects<'s, C: Codec> {
    sim: &'s mut Sim<C>,
    m: usize,
}

impl<C: Codec> EffectSink for MachineEffects<'_, C> {
    type Error = std::convert::Infallible;

    fn scratch(&mut self) -> &mut Vec<Effect> {
        &mut self.sim.effects
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        self.sim.machine(self.m).take_effects(into);
    }

    fn apply(&mut self, effect: Effect) -> Result<(), Self::Error> {
        self.sim.apply(self.m, effect);
        Ok(())
    }

    fn exited(&self) -> bool {
        self.sim.slots[self.m].exit.is_some()
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
