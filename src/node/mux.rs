//! The links of a process of several nodes (`overlay node --count K`, a [`Group`]), carried
//! without a TCP connection each: links between two nodes of the process are handed over in
//! memory, and links to the nodes of another such process share one connection with it, a
//! *trunk* (docs/ARCHITECTURE.md, "Trunks"). No I/O, like the nodes.
//!
//! The nodes do not know: each link is still a connection (`ConnId`) that its node opens,
//! handshakes on, sends on and sees closed. The mux sits between the group and the driver and
//! turns a node's `Connect` to another process's listener into a *stream* of the trunk to that
//! process, and a node's pending bytes into DATA segments of that stream (a header per batch
//! the node queued, not per frame), taken from the node when the driver takes the trunk's
//! bytes, so that a node's queues, spans and shares count what waits exactly as they do on a
//! connection of its own.
//!
//! Which addresses are one process's: a trunk's two sides each list the listeners they serve
//! once authenticated. A process learns a peer's list by dialing, at the address one of its
//! nodes wants, a trunk (the connector's magic first): a process of several nodes takes it
//! from that node's listener; a node alone in its process refuses it as a bad frame, and its
//! address is remembered as no trunk's, so that links to it (and any link a trunk could not
//! take) go on connections of their own, as before. Connects to one host wait for a dial to
//! it already under way, so one dial finds a whole process.
//!
//! A trunk is authenticated before it carries anything (`crate::auth`, with the trunk's role in
//! the transcript); until then it is a stranger with a deadline. Garbage on a trunk, a trunk
//! that fails or is closed, closes every link on it: each node sees its links closed, as when
//! the peer's process dies.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::NodeConfig;
use super::group::Group;
use crate::auth::{self, Binding, Handshake, Outcome, Secret};
use crate::limits::{
    LEAVE_FLUSH_TIMEOUT_NS, LINK_TIMEOUT_SECS, NODE_HANDSHAKE_TIMEOUT_NS,
    NODE_STRANGERS_PER_ADDRESS_MAX, SEND_BATCH_BYTES, SPARE_QUEUE_BUFFERS_MAX, STREAM_BURST_GAP_NS,
    TRUNK_PLAIN_ADDRESSES_MAX, TRUNK_STRANGERS_MAX, TRUNK_STREAM_KEPT_BYTES_MAX, TRUNK_STREAMS_MAX,
    TRUNKS_MAX,
};
use crate::machine::{CloseReason, ConnId, ConnIds, ConnMap, Effect, Held, Hole, Machine, Nanos};
use crate::strangers::Strangers;
use crate::warnings::WarningLimit;
use crate::wire::{Codec, Control};

mod credit;
mod grown;
mod segment;
#[cfg(test)]
mod tests;
mod trunk;

pub use credit::TrunkCredit;
use segment::{CLOSE, CONTROL, CREDIT, DATA, HEADER_BYTES, LISTENERS, MAGIC, OPEN};
use trunk::{Stage, Trunk};

/// The group bits of the connections the mux dials itself (trunks): above every node's.
const TRUNK_GROUP: usize = ConnId::GROUPS_MAX - 1;
/// The sequences of the accepting ends the mux names (streams opened by a peer, the accepting
/// end of a link in memory) start here: the driver names accepted connections counting from
/// 0, and would need 2^47 accepts to get here.
const VIRTUAL_SEQUENCE_BASE: u64 = 1 << 47;

const _: () = assert!(crate::limits::GROUP_NODES_MAX < TRUNK_GROUP);

/// A connection the mux carries for a node instead of the driver.
#[derive(Debug)]
enum Link {
    /// A connect waiting for `trunk` to come up (it may then go elsewhere).
    Waiting { trunk: ConnId, addr: SocketAddr },
    /// One end of a link between two nodes of this process; `peer` is the other end (gone
    /// once that end closed).
    Local {
        peer: ConnId,
        kept: Vec<u8>,
        ready: bool,
    },
    /// A link carried by `trunk` as `stream`; `wanting`: its node has bytes pending and the
    /// trunk will take them; `held`: a batch taken from its node whose bytes from `held_at`
    /// on the trunk's credit did not let go yet (whole frames; they go before anything its
    /// node queues later), shared with the driver's sends of its earlier parts.
    Stream {
        trunk: ConnId,
        stream: u32,
        kept: Vec<u8>,
        wanting: bool,
        held: Option<Arc<Vec<u8>>>,
        held_at: usize,
    },
}

/// What the mux tells the group once the effects at hand are carried out.
#[derive(Debug)]
enum Event {
    Accepted {
        conn: ConnId,
        peer: SocketAddr,
        local: SocketAddr,
    },
    Connected(ConnId),
    Closed(ConnId, CloseReason),
    Flushed(ConnId),
    /// A closed link's last bytes, for its other end.
    Deliver(ConnId, Vec<u8>),
}

/// A group of nodes whose links share trunks, and stay in memory within the process.
pub struct Mux<C: Codec> {
    group: Group<C>,
    /// This process's listeners, and the node of each.
    own: HashMap<SocketAddr, usize>,
    own_list: Vec<SocketAddr>,
    registry: SocketAddr,
    secret: Option<Secret>,
    nonces: StdRng,
    ids: ConnIds,
    next_virtual: u64,
    trunks: ConnMap<Trunk>,
    /// Trunks that are up, by the peer's listeners.
    by_addr: HashMap<SocketAddr, ConnId>,
    /// Dialed trunks not up yet, by the host dialed.
    dialing: HashMap<IpAddr, ConnId>,
    /// Accepted trunks not authenticated yet.
    strangers: Strangers,
    /// Addresses that are no trunk's: links to them go on connections of their own.
    plain: HashSet<SocketAddr>,
    links: ConnMap<Link>,
    /// Accepted connections whose first bytes have not said yet whether they are a trunk
    /// (`(peer, local)`).
    unclassified: ConnMap<(SocketAddr, SocketAddr)>,
    /// Links in memory with bytes to hand over (at the next tick).
    local_ready: Vec<ConnId>,
    events: VecDeque<Event>,
    effects: Vec<Effect>,
    scratch: Vec<Effect>,
    /// A node's bytes on their way into a trunk's (kept to reuse its allocation).
    taken: Vec<u8>,
    /// Emptied allocations of what streams held, for the next batch that passes a trunk's
    /// credit (`limits::SPARE_QUEUE_BUFFERS_MAX`).
    spares: Vec<Vec<u8>>,
    /// Batches streams held that are all sent, while the driver may still send from them
    /// (their allocations become spares once it has let go; as many as spares at most).
    let_go: Vec<Arc<Vec<u8>>>,
    /// When a spare was last kept or used: they are freed [`STREAM_BURST_GAP_NS`] after.
    spares_at: Nanos,
    /// Batches that passed a credit and were held as they were (into a spare), not copied.
    held_in_place: u64,
    warnings: WarningLimit,
    /// The last bytes of trunks closed for what their peers did (a refusal), until the driver
    /// takes them or says the trunk is flushed: at most one per trunk, kept or stranger.
    last_words: ConnMap<Vec<u8>>,
    /// The latest time the driver passed in (`swap_outgoing` is told none): what the group did
    /// while the driver took a trunk's bytes is routed with it before the driver takes the
    /// effects, and DATA sent then is dated with it.
    now: Nanos,
    /// The group exited with this status: the process exits once every trunk's peer has
    /// consumed what the trunk carried for its nodes, or at the deadline
    /// ([`LEAVE_FLUSH_TIMEOUT_NS`]).
    exiting: Option<(i32, Nanos)>,
    /// The exit was passed on to the driver.
    exited: bool,
    /// DATA bytes a trunk may have outstanding (not yet credited back by its peer).
    credit: TrunkCredit,
    /// Streams' queue buffers grown in bursts that still recur (`grown.rs`).
    grown: grown::Grown,
}

impl<C: Codec> Mux<C> {
    /// The group of one node per configuration, its links multiplexed; each trunk has
    /// `credit` bytes outstanding at most (`TrunkCredit::by_frames`, or a fixed
    /// `TRUNK_CREDIT_BYTES_USER_TIMEOUT` on a kernel whose links time out with a closed window).
    pub fn new(configs: Vec<NodeConfig>, credit: TrunkCredit) -> Mux<C> {
        assert!(C::HELLO, "trunks carry the native format only");
        let registry = configs[0].registry;
        let secret = configs[0].secret.clone();
        let seed = configs[0].seed ^ 0x7472_756e_6b73_2121;
        let own_list: Vec<SocketAddr> = configs.iter().map(|c| c.listen).collect();
        let own = own_list
            .iter()
            .enumerate()
            .map(|(index, &addr)| (addr, index))
            .collect();
        Mux {
            group: Group::new(configs),
            own,
            own_list,
            registry,
            secret,
            nonces: StdRng::seed_from_u64(seed),
            ids: ConnIds::default(),
            next_virtual: 0,
            trunks: ConnMap::default(),
            by_addr: HashMap::new(),
            dialing: HashMap::new(),
            strangers: Strangers::new(
                TRUNK_STRANGERS_MAX,
                NODE_STRANGERS_PER_ADDRESS_MAX,
                NODE_HANDSHAKE_TIMEOUT_NS,
            ),
            plain: HashSet::new(),
            links: ConnMap::default(),
            unclassified: ConnMap::default(),
            local_ready: Vec::new(),
            events: VecDeque::new(),
            effects: Vec::new(),
            scratch: Vec::new(),
            taken: Vec::new(),
            spares: Vec::new(),
            let_go: Vec::new(),
            spares_at: 0,
            held_in_place: 0,
            warnings: WarningLimit::for_closed_connections(),
            last_words: ConnMap::default(),
            now: 0,
            exiting: None,
            exited: false,
            credit,
            grown: grown::Grown::default(),
        }
    }

    /// The group the mux carries.
    pub fn group(&self) -> &Group<C> {
        &self.group
    }

    /// Once the group exited: exits when every trunk's peer has consumed all the DATA the
    /// trunk sent (credited back: a leaver's last frames are delivered, not in a kernel buffer
    /// that the exit would reset), or at the deadline. The trunks are closed then.
    fn exit_when_delivered(&mut self, now: Nanos) {
        let Some((code, deadline)) = self.exiting.filter(|_| !self.exited) else {
            return;
        };
        let waiting = self
            .trunks
            .values()
            .filter(|t| {
                matches!(t.stage, Stage::Up)
                    && (t.outstanding > 0 || !t.queued.is_empty() || !t.wanting.is_empty())
            })
            .count();
        if waiting > 0 && now < deadline {
            return;
        }
        tracing::debug!("exiting: {waiting} trunks with bytes not consumed by their peers");
        self.exited = true;
        for &conn in self.trunks.keys() {
            self.effects.push(Effect::Close(conn));
        }
        self.effects.push(Effect::Exit(code));
    }

    /// Trunks up, and links carried in memory and on trunks: for diagnostics and tests.
    pub fn carried(&self) -> (usize, usize, usize) {
        let up = self
            .trunks
            .values()
            .filter(|t| matches!(t.stage, Stage::Up))
            .count();
        let local = self
            .links
            .values()
            .filter(|l| matches!(l, Link::Local { .. }))
            .count();
        let streams = self
            .links
            .values()
            .filter(|l| matches!(l, Link::Stream { .. }))
            .count();
        (up, local, streams)
    }

    fn virtual_conn(&mut self, index: usize) -> ConnId {
        self.next_virtual += 1;
        ConnId::inbound(VIRTUAL_SEQUENCE_BASE + self.next_virtual).in_group(index)
    }

    /// The group's effects, and what they lead to, until none are left.
    fn pump(&mut self, now: Nanos) {
        self.now = self.now.max(now);
        loop {
            let mut batch = std::mem::take(&mut self.scratch);
            self.group.take_effects(&mut batch);
            if batch.is_empty() {
                self.scratch = batch;
                match self.events.pop_front() {
                    Some(event) => self.apply(now, event),
                    None => return,
                }
                continue;
            }
            for effect in batch.drain(..) {
                self.route(now, effect);
            }
            self.scratch = batch;
        }
    }

    fn apply(&mut self, now: Nanos, event: Event) {
        match event {
            Event::Accepted { conn, peer, local } => self.group.on_accepted(now, conn, peer, local),
            Event::Connected(conn) => self.group.on_connected(now, conn),
            Event::Closed(conn, reason) => {
                self.links.remove(&conn);
                self.group.on_closed(now, conn, reason);
            }
            Event::Flushed(conn) => self.group.on_flushed(now, conn),
            Event::Deliver(conn, bytes) => self.deliver(now, conn, &bytes),
        }
    }

    /// One of the group's effects: the links' go to memory or trunks, the rest to the driver.
    fn route(&mut self, now: Nanos, effect: Effect) {
        match effect {
            Effect::Connect {
                conn,
                addr,
                keepalive,
            } if !keepalive && addr != self.registry => self.connect(now, conn, addr),
            Effect::Send(conn) if self.links.contains_key(&conn) => self.wants_send(conn),
            Effect::Close(conn) if self.links.contains_key(&conn) => self.close_link(conn),
            Effect::Close(conn) => {
                self.unclassified.remove(&conn);
                self.effects.push(Effect::Close(conn));
            }
            // The group says it again as its nodes' last connections close: once is enough.
            Effect::Exit(_) if self.exiting.is_some() => {}
            Effect::Exit(code) => {
                // The last node is gone: what its links left in the trunks (a leaver's last
                // frames, told flushed once they were in the trunk's queue) is delivered before
                // the process exits, as a node alone waits for its links' flush.
                self.exiting = Some((code, now + LEAVE_FLUSH_TIMEOUT_NS));
                self.exit_when_delivered(now);
            }
            other => self.effects.push(other),
        }
    }

    /// A node connects to `addr`: in memory, on a trunk, or on a connection of its own.
    fn connect(&mut self, now: Nanos, conn: ConnId, addr: SocketAddr) {
        if let Some(&index) = self.own.get(&addr) {
            let accepted = self.virtual_conn(index);
            let from = self.own_list[conn.group()];
            self.links.insert(
                conn,
                Link::Local {
                    peer: accepted,
                    kept: Vec::new(),
                    ready: false,
                },
            );
            self.links.insert(
                accepted,
                Link::Local {
                    peer: conn,
                    kept: Vec::new(),
                    ready: false,
                },
            );
            self.events.push_back(Event::Accepted {
                conn: accepted,
                peer: from,
                local: addr,
            });
            self.events.push_back(Event::Connected(conn));
            return;
        }
        if let Some(&trunk) = self.by_addr.get(&addr) {
            self.open_stream(trunk, conn, addr);
            return;
        }
        if self.plain.contains(&addr) {
            return self.connect_plain(conn, addr);
        }
        let trunk = match self.dialing.get(&addr.ip()) {
            Some(&trunk) => trunk,
            None if self.dialing.len() < TRUNK_STRANGERS_MAX => {
                let trunk = self.ids.next_outbound().in_group(TRUNK_GROUP);
                let mut dialed = Trunk::new(Stage::Dialing, Some(addr), addr);
                dialed.deadline = Some(now + NODE_HANDSHAKE_TIMEOUT_NS);
                self.trunks.insert(trunk, dialed);
                self.dialing.insert(addr.ip(), trunk);
                self.effects.push(Effect::Connect {
                    conn: trunk,
                    addr,
                    keepalive: false,
                });
                trunk
            }
            None => return self.connect_plain(conn, addr),
        };
        if let Some(dialed) = self.trunks.get_mut(&trunk) {
            dialed.waiting.push(conn);
        }
        self.links.insert(conn, Link::Waiting { trunk, addr });
    }

    fn connect_plain(&mut self, conn: ConnId, addr: SocketAddr) {
        self.effects.push(Effect::Connect {
            conn,
            addr,
            keepalive: false,
        });
    }

    /// Opens `conn` to `addr` as a stream of `trunk` (up): it is connected at once (what the
    /// node says first is its hello; a listener that is gone closes the stream).
    fn open_stream(&mut self, trunk_conn: ConnId, conn: ConnId, addr: SocketAddr) {
        let Some(trunk) = self.trunks.get_mut(&trunk_conn) else {
            return self.connect_plain(conn, addr);
        };
        let stream = trunk.next_stream;
        let Some(next) = stream.checked_add(2) else {
            return self.connect_plain(conn, addr);
        };
        trunk.next_stream = next;
        segment::put_open(&mut trunk.queued, stream, addr);
        trunk.streams.insert(stream, conn);
        self.links.insert(
            conn,
            Link::Stream {
                trunk: trunk_conn,
                stream,
                kept: Vec::new(),
                wanting: false,
                held: None,
                held_at: 0,
            },
        );
        self.ask_send(trunk_conn);
        self.events.push_back(Event::Connected(conn));
    }

    fn ask_send(&mut self, trunk_conn: ConnId) {
        if let Some(trunk) = self.trunks.get_mut(&trunk_conn)
            && !trunk.send_asked
        {
            trunk.send_asked = true;
            self.effects.push(Effect::Send(trunk_conn));
        }
    }

    /// A node has bytes pending on a link the mux carries.
    fn wants_send(&mut self, conn: ConnId) {
        match self.links.get_mut(&conn) {
            Some(Link::Local { ready, .. }) if !*ready => {
                *ready = true;
                self.local_ready.push(conn);
            }
            Some(Link::Stream { trunk, wanting, .. }) if !*wanting => {
                *wanting = true;
                let trunk = *trunk;
                if let Some(t) = self.trunks.get_mut(&trunk) {
                    t.wanting.push(conn);
                }
                self.ask_send(trunk);
            }
            _ => {}
        }
    }

    /// A node closes a link the mux carries: what it still has pending goes first, then the
    /// close; the node hears that it is flushed.
    fn close_link(&mut self, conn: ConnId) {
        let mut last = Vec::new();
        match self.links.remove(&conn) {
            Some(Link::Waiting { trunk, .. }) => {
                if let Some(t) = self.trunks.get_mut(&trunk) {
                    t.waiting.retain(|&waiting| waiting != conn);
                }
            }
            Some(Link::Local { peer, .. }) => {
                self.group.swap_outgoing(conn, &mut last);
                if self.links.contains_key(&peer) {
                    if !last.is_empty() {
                        self.events.push_back(Event::Deliver(peer, last));
                    }
                    // Its end is gone: what its node sends now goes nowhere.
                    if let Some(Link::Local { peer: gone, .. }) = self.links.get_mut(&peer) {
                        *gone = conn;
                    }
                    self.events
                        .push_back(Event::Closed(peer, CloseReason::PeerClosed));
                }
            }
            Some(Link::Stream {
                trunk,
                stream,
                held,
                held_at,
                ..
            }) => {
                // Its last bytes go whatever the credit: a close is not held back.
                self.group.swap_outgoing(conn, &mut last);
                let mut held = held.map(Arc::unwrap_or_clone).unwrap_or_default();
                held.drain(..held_at.min(held.len()));
                held.extend_from_slice(&last);
                if let Some(t) = self.trunks.get_mut(&trunk) {
                    if !held.is_empty() {
                        segment::put_data(&mut t.queued, stream, &held);
                        t.sent_data(self.now, held.len());
                    }
                    segment::put_header(&mut t.queued, CLOSE, stream, 0);
                    t.streams.remove(&stream);
                    self.ask_send(trunk);
                }
            }
            None => return,
        }
        self.events.push_back(Event::Flushed(conn));
    }

    /// Bytes for `conn` (an end of a link in memory, or a stream): joined to what its node
    /// left unconsumed, and offered to it in place where they can be.
    fn deliver(&mut self, now: Nanos, conn: ConnId, mut bytes: &[u8]) {
        let mut kept = match self.links.get_mut(&conn) {
            Some(Link::Local { kept, .. } | Link::Stream { kept, .. }) => std::mem::take(kept),
            Some(Link::Waiting { .. }) => return,
            // Its link closed meanwhile (a close's last bytes): offered as they are.
            None => {
                self.group.on_received(now, conn, bytes);
                return self.pump(now);
            }
        };
        if !kept.is_empty() {
            let have = kept.len();
            let take = match C::frame_len(&kept) {
                Ok(Some(frame)) if frame > have => (frame - have).min(bytes.len()),
                _ => bytes.len(),
            };
            kept.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            let consumed = self.group.on_received(now, conn, &kept).min(kept.len());
            kept.drain(..consumed);
            if !kept.is_empty() {
                kept.extend_from_slice(bytes);
                bytes = &[];
            }
        }
        if !bytes.is_empty() {
            let consumed = self.group.on_received(now, conn, bytes).min(bytes.len());
            kept.extend_from_slice(&bytes[consumed..]);
        }
        let too_much = kept.len() > TRUNK_STREAM_KEPT_BYTES_MAX;
        if let Some(Link::Local { kept: slot, .. } | Link::Stream { kept: slot, .. }) =
            self.links.get_mut(&conn)
        {
            *slot = kept;
        }
        if too_much {
            // As a connection whose frame outgrows the receive buffer.
            self.close_link(conn);
            if let Some(Event::Flushed(flushed)) = self.events.pop_back() {
                debug_assert_eq!(flushed, conn);
            }
            self.events
                .push_back(Event::Closed(conn, CloseReason::FrameTooLarge));
        }
        self.pump(now);
    }

    /// Hands the bytes of the links in memory to their other ends.
    fn deliver_local(&mut self, now: Nanos) {
        let ready = std::mem::take(&mut self.local_ready);
        let mut bytes = std::mem::take(&mut self.taken);
        for &conn in &ready {
            let peer = match self.links.get_mut(&conn) {
                Some(Link::Local { peer, ready, .. }) => {
                    *ready = false;
                    *peer
                }
                _ => continue,
            };
            self.group.swap_outgoing(conn, &mut bytes);
            if self.links.contains_key(&peer) && !bytes.is_empty() {
                self.deliver(now, peer, &bytes);
            }
            bytes.clear();
        }
        self.taken = bytes;
        if self.local_ready.is_empty() {
            self.local_ready = ready;
            self.local_ready.clear();
        }
    }
}

impl<C: Codec> Machine for Mux<C> {
    fn on_start(&mut self, now: Nanos) {
        self.now = now;
        self.group.on_start(now);
        self.pump(now);
    }

    fn on_accepted(&mut self, now: Nanos, conn: ConnId, peer: SocketAddr, local: SocketAddr) {
        self.now = now;
        self.unclassified.insert(conn, (peer, local));
        self.group.on_accepted(now, conn, peer, local);
        self.pump(now);
    }

    fn on_connected(&mut self, now: Nanos, conn: ConnId) {
        self.now = now;
        if self.trunks.contains_key(&conn) {
            self.trunk_connected(conn);
        } else {
            self.group.on_connected(now, conn);
        }
        self.pump(now);
    }

    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        self.now = now;
        if self.trunks.contains_key(&conn) {
            // What the trunk's segments led to (a trunk up: its waiting links connected, their
            // hellos to send) goes now, not with the process's next event: the peer gives a
            // stream's hello NODE_HANDSHAKE_TIMEOUT_NS.
            let consumed = self.trunk_bytes(now, conn, bytes);
            self.pump(now);
            return consumed;
        }
        if self.unclassified.contains_key(&conn) {
            return self.classify(now, conn, bytes);
        }
        let consumed = self.group.on_received(now, conn, bytes);
        self.pump(now);
        consumed
    }

    fn on_closed(&mut self, now: Nanos, conn: ConnId, reason: CloseReason) {
        self.now = now;
        if self.trunks.contains_key(&conn) {
            self.trunk_lost(now, conn, reason);
            self.pump(now);
            return self.exit_when_delivered(now);
        }
        self.unclassified.remove(&conn);
        self.group.on_closed(now, conn, reason);
        self.pump(now);
    }

    fn on_unsent(&mut self, now: Nanos, conn: ConnId, taken: &[u8], sent: usize) {
        self.now = now;
        if self.trunks.contains_key(&conn) {
            return self.trunk_unsent(now, conn, taken, sent);
        }
        self.group.on_unsent(now, conn, taken, sent);
        self.pump(now);
    }

    fn on_flushed(&mut self, now: Nanos, conn: ConnId) {
        self.now = now;
        if !self.last_words.is_empty() {
            self.last_words.remove(&conn);
        }
        if conn.group() == TRUNK_GROUP || self.trunks.contains_key(&conn) {
            return;
        }
        self.group.on_flushed(now, conn);
        self.pump(now);
    }

    fn on_command(&mut self, now: Nanos, line: &str) {
        self.now = now;
        self.group.on_command(now, line);
        self.pump(now);
    }

    fn on_tick(&mut self, now: Nanos) {
        self.now = now;
        self.group.on_tick(now);
        self.pump(now);
        self.deliver_local(now);
        self.expire_trunks(now);
        self.sweep_grown(now);
        self.exit_when_delivered(now);
    }

    fn next_tick(&self) -> Option<Nanos> {
        let local = (!self.local_ready.is_empty()).then_some(0);
        let dialed = self
            .dialing
            .values()
            .filter_map(|conn| self.trunks.get(conn).and_then(|t| t.deadline))
            .min();
        let stalled = self.trunks.values().filter_map(Trunk::stall_deadline).min();
        [
            self.group.next_tick(),
            local,
            self.grown.sweep_at(),
            dialed,
            stalled,
            self.strangers.next_deadline(),
            self.exiting
                .filter(|_| !self.exited)
                .map(|(_, deadline)| deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        self.pump(self.now);
        std::mem::swap(&mut self.effects, into);
    }

    fn pending_len(&self, conn: ConnId) -> usize {
        let Some(trunk) = self.trunks.get(&conn) else {
            return self.group.pending_len(conn);
        };
        let mut len = trunk.queued.len();
        if trunk.outstanding >= self.credit.bytes() {
            return len;
        }
        for &stream in &trunk.wanting {
            if len >= SEND_BATCH_BYTES {
                break;
            }
            len += match self.links.get(&stream) {
                Some(Link::Stream {
                    held: Some(held),
                    held_at,
                    ..
                }) => held.len() - held_at,
                _ => self.group.pending_len(stream),
            };
        }
        len
    }

    fn frame_len(&self, bytes: &[u8]) -> Option<usize> {
        self.group.frame_len(bytes)
    }

    fn swap_outgoing_held(&mut self, conn: ConnId, buf: &mut Vec<u8>, holes: &mut Vec<Hole>) {
        self.swap_out(conn, buf, Some(holes));
    }

    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        self.swap_out(conn, buf, None);
    }
}

impl<C: Codec> Mux<C> {
    /// `conn`'s pending bytes for the driver: a trunk's (what streams held named among
    /// `holes` when the driver gathers), a closed link's last words, or a node's own.
    fn swap_out(&mut self, conn: ConnId, buf: &mut Vec<u8>, holes: Option<&mut Vec<Hole>>) {
        if self.trunks.contains_key(&conn) {
            self.take_trunk_bytes(conn, buf, holes);
            self.exit_when_delivered(self.now);
        } else if let Some(last) = (!self.last_words.is_empty())
            .then(|| self.last_words.remove(&conn))
            .flatten()
        {
            *buf = last;
        } else {
            self.group.swap_outgoing(conn, buf);
        }
    }
}
