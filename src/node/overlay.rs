//! The overlay a manifest set up, as this node holds it: its own ID, the ring and its table
//! entries with their links, the counters, the window and the run. A new manifest replaces
//! it whole, so a new overlay starts from zero.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use super::flow::Flow;
use super::lookups::Lookups;
use super::originate::Run;
use super::shares::Shares;
use crate::chord::churn::detour;
use crate::limits::{PROBLEM_LINES_MAX, SUMMARY_LINKS_MAX, relay_queued_bytes_max};
use crate::machine::{ConnId, Effect, Hole, Nanos, gathered};
use crate::routing::Router;
use crate::stats::SinkStats;
use crate::wire::{
    ChordIds, Codec, Counters, DataFrame, DataShape, LinkCount, NodeId, Peek, StampReader,
};

/// Who is in the overlay, as this node last heard: what its router is built from, again at
/// each change of membership (`membership.rs`).
#[derive(Debug, Clone)]
pub(super) struct Members {
    /// Every member's ID, in the order of `chord`'s identifiers.
    pub(super) ids: Vec<NodeId>,
    /// Chord fingers: the identifiers' width and every member's identifier.
    pub(super) chord: Option<Arc<ChordIds>>,
    /// The position rule's table size.
    pub(super) nr: usize,
    /// Relay slots of every frame's trace.
    pub(super) trace_slots: usize,
}

/// A table switch waiting for the links to its new entries (make before break).
#[derive(Debug)]
pub(super) struct Switch {
    /// The change's version, acknowledged once switched.
    pub(super) version: u32,
    pub(super) members: Members,
    pub(super) router: Router,
    /// The new table's node IDs, in entry order.
    pub(super) table: Vec<NodeId>,
    /// The new backup entries' node IDs.
    pub(super) backups: Vec<NodeId>,
    /// Switch once the new links are up (a departure); else wait for the registry's
    /// `Commit` (a join: every node must know the newcomer before any routes through it).
    pub(super) commit: bool,
    /// The new links were all up and the registry was told so.
    pub(super) ready_told: bool,
}

/// What a leaving node waits for before it acknowledges (`membership.rs`).
#[derive(Debug, Default)]
pub(super) struct Leaving {
    /// Its own `Change::Leave` came: it originates nothing more.
    pub(super) began: bool,
    /// It gave a final report since `began`: every packet sent to it before had arrived then
    /// (the run's end rule), and none is sent to it after (it is no sink, and no run starts
    /// while a change is under way), so its drain waits for no packet (the counts a
    /// `Change::Drain` names may be from before that report, which cleared this node's).
    pub(super) reported: bool,
    /// `Change::Drain`: the version, and the packets that must have reached it as sink.
    pub(super) drain: Option<(u32, u64)>,
    /// `Change::Close`: the version; acknowledged once no node's link to it is open.
    pub(super) close: Option<u32>,
}

/// The state of a table entry's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    Connecting,
    Up,
    Down,
}

/// One routing-table entry (or backup entry: they follow the table's) and the connection to
/// it.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) id: NodeId,
    pub(super) addr: SocketAddr,
    /// Clockwise distance from this node, in the order routes progress in
    /// (`Router::distance_to`): what routing around a dead link compares.
    pub(super) distance: usize,
    pub(super) conn: ConnId,
    pub(super) link: Link,
    /// Frames queued for this entry, not yet taken by the driver: these bytes with `held`
    /// filled in ([`crate::machine::gathered`]).
    pub(super) pending: Vec<u8>,
    /// The parts of relayed frames that go on from the receive buffer they arrived in
    /// (`Overlay::relay_on`), in `pending`'s order, and their bytes.
    pub(super) held: Vec<Hole>,
    pub(super) held_bytes: usize,
    /// Bytes the driver took with the last swap (being sent).
    pub(super) with_driver: usize,
    /// Data packets handed to this link since the last final report (see [`LinkCount`]).
    pub(super) packets_out: u64,
    /// Bytes the driver took from `pending` (or dropped with it) since the entry was made:
    /// the position of `pending[0]` in everything ever queued for the entry.
    pub(super) taken_bytes: u64,
    /// The runs of `pending` queued on behalf of inbound links, in order; the bytes between
    /// them are this node's own (its packets, its handshake).
    pub(super) spans: VecDeque<Span>,
    /// Whole frames the driver had taken when the link died and never handed to the kernel
    /// (`Machine::on_unsent`), routed on with `pending` when the close arrives.
    pub(super) stranded: Vec<u8>,
}

/// Bytes `start..end` (positions in everything ever queued for an entry) were queued on behalf
/// of inbound link `link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) link: ConnId,
    pub(super) start: u64,
    pub(super) end: u64,
}

impl Entry {
    /// `lost` of the data packets handed to this link never left: they no longer count as
    /// sent on it. Saturating: a final report taken while frames were still queued (a forced
    /// collection) reset the count under them.
    pub(super) fn take_back(&mut self, lost: u64) {
        self.packets_out = self.packets_out.saturating_sub(lost);
    }

    /// Bytes queued, not yet taken by the driver (held ones included).
    #[inline]
    pub(super) fn queued_len(&self) -> usize {
        self.pending.len() + self.held_bytes
    }

    /// The queue's bytes in one piece (held ones copied in), and the queue emptied: for the
    /// cold paths that read frames back (a dead link's, a test's).
    pub(super) fn take_queued(&mut self) -> Vec<u8> {
        let bytes = std::mem::take(&mut self.pending);
        if self.held.is_empty() {
            return bytes;
        }
        let whole = gathered(&bytes, &self.held);
        self.held.clear();
        self.held_bytes = 0;
        whole
    }

    /// The position of the queue's end in everything ever queued for the entry.
    #[inline]
    pub(super) fn queued_end(&self) -> u64 {
        self.taken_bytes + self.queued_len() as u64
    }

    /// Appends `frame` to the queue on behalf of inbound link `link`; returns its bytes.
    pub(super) fn queue_for(&mut self, link: ConnId, frame: impl FnOnce(&mut Self)) -> usize {
        let start = self.queued_end();
        frame(self);
        self.queued_for(link, start);
        (self.queued_end() - start) as usize
    }

    /// The bytes from position `start` to the queue's end were queued on behalf of inbound
    /// link `link`: one span, or the last one grown when it is `link`'s and ends at `start`.
    #[inline]
    pub(super) fn queued_for(&mut self, link: ConnId, start: u64) {
        let end = self.queued_end();
        if end == start {
            return;
        }
        match self.spans.back_mut() {
            Some(span) if span.link == link && span.end == start => span.end = end,
            _ => self.spans.push_back(Span { link, start, end }),
        }
    }
}

/// Where the first frame of `bytes` (frames queued for a link) starts that does not lie wholly
/// within its first `sent` bytes: from there on, nothing reached the peer whole (a receiver
/// reads a frame only once all of it has arrived), so those frames provably never arrived.
pub(super) fn unsent_from<C: Codec>(bytes: &[u8], sent: usize) -> usize {
    let mut offset = 0;
    while let Ok(Some(len)) = C::frame_len(&bytes[offset..]) {
        if offset + len > sent {
            break;
        }
        offset += len;
    }
    offset
}

/// Where a frame goes when the link its table's rule picks is not up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Around {
    /// On this entry's link (live, and short of the sink: `chord::churn::detour`).
    Entry(usize),
    /// Nowhere: its sink is this entry's node, whose link is dead, and no live entry lies
    /// short of it. The packet is lost with that node.
    LostWith(usize),
    /// Nowhere yet: no live entry makes progress toward its live (or unknown) sink; a data
    /// packet is held until the table changes ([`Stuck::hold`]).
    Stuck,
}

/// The route around a dead link for a frame to `sink`: the live entry or backup furthest
/// clockwise without passing the sink, if any (`chord::churn::detour`). Never called on the
/// relay path while every link is up. Without [`Codec::DETOURS`] nothing is routed around.
#[cold]
pub(super) fn route_around<C: Codec>(router: &Router, entries: &[Entry], sink: NodeId) -> Around {
    let Some(position) = router.position(sink).filter(|_| C::DETOURS) else {
        return Around::Stuck;
    };
    let owner = router.distance_to(position);
    let candidates = entries.iter().enumerate().map(|(i, e)| (i, e.distance));
    if let Some(index) = detour(owner, candidates, |i| entries[i].link == Link::Up) {
        return Around::Entry(index);
    }
    match entries
        .iter()
        .position(|e| e.id == sink && e.link == Link::Down)
    {
        Some(index) => Around::LostWith(index),
        None => Around::Stuck,
    }
}

/// What became of the frames of a dead link (data packets only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Rerouted {
    /// Sent on around the dead node.
    pub(super) around: u64,
    /// For the dead node: lost with it.
    pub(super) lost_with: u64,
    /// No live way on yet: held ([`Stuck::hold`]).
    pub(super) held: u64,
    /// No live way on, and the hold full: dropped.
    pub(super) dropped: u64,
}

/// Whole data frames (marked as detoured) with no live entry or backup short of their live
/// (or unknown) sink, held until the table changes ([`Overlay::release_stuck`]), and how
/// many; bounded as what links queue is ([`relay_queued_bytes_max`]): they stay
/// unacknowledged, in flight.
#[derive(Debug, Default)]
pub(super) struct Stuck {
    pub(super) bytes: Vec<u8>,
    pub(super) packets: u64,
}

impl Stuck {
    /// Holds the data frame `append` writes, if `bound` (the overlay's
    /// [`relay_queued_bytes_max`]) lets it and the codec routes around dead links; else
    /// counts it in `dropped`. Whether it was held.
    #[cold]
    pub(super) fn hold<C: Codec>(
        &mut self,
        bound: usize,
        dropped: &mut u64,
        append: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        let start = self.bytes.len();
        if C::DETOURS {
            append(&mut self.bytes);
        }
        if !C::DETOURS || self.bytes.len() > bound {
            self.bytes.truncate(start);
            *dropped += 1;
            return false;
        }
        C::mark_detoured(&mut self.bytes[start..]);
        self.packets += 1;
        true
    }
}

/// The overlay of the last manifest: everything the data plane reads and changes.
pub(super) struct Overlay<C: Codec> {
    /// This node's ID (the one it registered as; the manifest's ring holds it).
    pub(super) id: NodeId,
    pub(super) router: Router,
    pub(super) shape: DataShape,
    pub(super) entries: Vec<Entry>,
    /// Entries whose link came up.
    pub(super) connected: usize,
    /// The setup status went to the registry (success, or the first failure).
    pub(super) setup_reported: bool,
    /// The flow-control window (as source) and the acks owed (as sink).
    pub(super) flow: Flow,
    /// What the entries' queues hold on behalf of each inbound link, and its bound.
    pub(super) shares: Shares,
    /// Bytes of the data frames this node originated that its entries' queues still hold
    /// (not yet taken by the driver): origination holds while they reach the window
    /// ([`crate::limits::own_queued_bytes_max`]).
    pub(super) own_queued: usize,
    pub(super) counters: Counters,
    /// Hop counts and latencies of the packets received since the last final report, up to
    /// the last progress report (`stats_since_poll` holds those since).
    pub(super) stats: SinkStats,
    /// The same since the last progress report (latency over time at the registry).
    pub(super) stats_since_poll: SinkStats,
    /// Data packets taken from each node's links since the last final report, by the node
    /// the link's first packet named (one row per inbound link at most; a row for a node that
    /// never held this one is reported as unnamed: [`Overlay::link_counts`]).
    pub(super) received_from: HashMap<NodeId, u64>,
    /// Data packets taken from links that are no node's since the last final report
    /// (`links::LinkPeer::Unnamed`): reported in the row for this node's own ID.
    pub(super) received_unnamed: u64,
    /// The current run, from its task to its last packet originated.
    pub(super) run: Option<Run>,
    /// The address this node listens on (a lookup's owner tells its asker).
    pub(super) listen: SocketAddr,
    /// Lookups asked here and waiting for replies (`lookups.rs`).
    pub(super) lookups: Lookups,
    /// The membership the router was built from, and its version (0 at setup).
    pub(super) members: Members,
    pub(super) version: u32,
    /// Members not to pick as sinks: joined but not yet known to every node, or leaving.
    pub(super) closed: BTreeSet<NodeId>,
    /// The ring positions this node picks sinks from: every member but itself and `closed`.
    pub(super) sinks: Vec<u32>,
    /// A change of table waiting for its new links.
    pub(super) switch: Option<Switch>,
    /// Data packets handed to table links retired since the last final report, by peer.
    pub(super) retired_out: HashMap<NodeId, u64>,
    /// Every node whose table held this node in some membership since setup: only their
    /// links may bring data named after them (a link opened under a newer membership may
    /// bring data before this node hears of it, so links are named when counts are reported).
    pub(super) holders_seen: BTreeSet<NodeId>,
    /// This node is leaving: what it waits for.
    pub(super) leaving: Leaving,
    /// Nodes a trace may name besides the members (they left since the last final report,
    /// or they are joining), with their keys: what the router's check knows of them.
    pub(super) others: HashMap<NodeId, crate::chord::Id>,
    /// Reads the send times of the batch being routed (`route_frames` sets it for each batch
    /// from its arrival time and the epoch's start: computed once, not per delivery).
    pub(super) stamps: StampReader,
    /// Where each entry's queue ended when the batch of a link's bytes being routed began
    /// ([`Overlay::open_batch`]): everything queued past it during the batch is that link's.
    batch_starts: Vec<u64>,
    /// Data frames with no live way on toward their sink, held until the table changes.
    pub(super) stuck: Stuck,
    /// Problems reported since the last final report (corrupted packets, unknown sinks), to
    /// keep logs short.
    problems_logged: u64,
    /// A delivered packet's latency was not recorded in this epoch: its send time could not
    /// be read as one time since the epoch began (`wire::SendStamp::latency_ns`).
    pub(super) latency_unknown_said: bool,
    codec: PhantomData<C>,
}

impl<C: Codec> Overlay<C> {
    pub(super) fn new(
        id: NodeId,
        (members, router): (Members, Router),
        (trace_slots, slot_bytes): (usize, usize),
        entries: Vec<Entry>,
        flow: Flow,
        listen: SocketAddr,
    ) -> Overlay<C> {
        let nodes = router.ring().len();
        let shares = Shares::new(relay_queued_bytes_max(nodes, flow.window_bytes));
        let holders_seen = router.holders().iter().copied().collect();
        let mut overlay = Overlay {
            id,
            router,
            shape: DataShape {
                trace_slots,
                slot_bytes,
                extra_payload_bytes: 0,
                // A node that joins a running overlay starts in the others' epoch.
                run_tag: DataShape::run_tag_of(flow.epoch),
            },
            entries,
            connected: 0,
            setup_reported: false,
            shares,
            own_queued: 0,
            flow,
            counters: Counters::default(),
            stats: SinkStats::default(),
            stats_since_poll: SinkStats::default(),
            received_from: HashMap::new(),
            received_unnamed: 0,
            run: None,
            listen,
            lookups: Lookups::default(),
            members,
            version: 0,
            closed: BTreeSet::new(),
            sinks: Vec::new(),
            switch: None,
            retired_out: HashMap::new(),
            holders_seen,
            leaving: Leaving::default(),
            others: HashMap::new(),
            batch_starts: Vec::new(),
            stamps: StampReader::new(0, 0),
            stuck: Stuck::default(),
            problems_logged: 0,
            latency_unknown_said: false,
            codec: PhantomData,
        };
        overlay.pick_sinks();
        overlay
    }

    /// The sinks this node may pick: every member of its ring but itself and the closed ones.
    pub(super) fn pick_sinks(&mut self) {
        let self_position = self.router.self_position();
        let ring = self.router.ring().ids();
        self.sinks = (0..ring.len())
            .filter(|&p| p != self_position && !self.closed.contains(&ring[p]))
            .map(|p| p as u32)
            .collect();
    }

    /// A batch of a link's bytes is about to be routed: where each entry's queue ends now.
    /// Routing a batch queues nothing but on behalf of its link (relayed frames and the acks
    /// its packets earn), so one span per entry and batch ([`Overlay::close_batch`]) records
    /// what the link has queued, instead of one bookkeeping step per frame (issue 16).
    #[inline]
    pub(super) fn open_batch(&mut self) {
        self.batch_starts.clear();
        self.batch_starts
            .extend(self.entries.iter().map(Entry::queued_end));
    }

    /// The batch [`Overlay::open_batch`] began is routed: what each entry's queue gained is
    /// `link`'s.
    #[inline]
    pub(super) fn close_batch(&mut self, link: ConnId) {
        debug_assert_eq!(self.batch_starts.len(), self.entries.len());
        for (entry, &start) in self.entries.iter_mut().zip(&self.batch_starts) {
            entry.queued_for(link, start);
        }
    }

    /// The driver took `bytes` from the front of entry `index`'s queue, or they were dropped
    /// with it: what of them was queued on behalf of inbound links is theirs no longer.
    pub(super) fn dequeued(&mut self, index: usize, bytes: usize) {
        let entry = &mut self.entries[index];
        entry.taken_bytes += bytes as u64;
        let mut theirs = 0;
        while let Some(span) = entry.spans.front_mut() {
            if span.start >= entry.taken_bytes {
                break;
            }
            let end = span.end.min(entry.taken_bytes);
            theirs += (end - span.start) as usize;
            self.shares.release(span.link, (end - span.start) as usize);
            if span.end > end {
                span.start = end;
                break;
            }
            entry.spans.pop_front();
        }
        // The rest was this node's own: its packets, and (not counted in `own_queued`, hence
        // saturating) the few bytes of a handshake ahead of them.
        self.own_queued = self.own_queued.saturating_sub(bytes - theirs);
    }

    /// The link to entry `dead` died (it is down) with the whole frames of `bytes` not yet
    /// handed to the kernel (so none of them reached its peer), or (`dead` `None`) they were
    /// held with no live way on and the table changed: each goes on as [`route_around`] says,
    /// marked as detoured, or is held again. `spans` (positions from `first`) name the
    /// inbound link each was queued for, whose share it stays in; frames in no span are this
    /// node's own. Data packets that go on are taken back from the dead link's count and
    /// handed to their new one; those for the dead node stay handed to it.
    pub(super) fn reroute(
        &mut self,
        effects: &mut Vec<Effect>,
        dead: Option<usize>,
        bytes: &[u8],
        first: u64,
        spans: &[Span],
    ) -> Rerouted {
        let mut done = Rerouted::default();
        let bound = self.shares.bound;
        let mut offset = 0;
        while let Ok(Some(len)) = C::frame_len(&bytes[offset..]) {
            let frame = &bytes[offset..offset + len];
            let at = first + offset as u64;
            offset += len;
            // A keyed packet or a lookup goes toward its key's owner as a node-addressed one
            // does toward its sink (this node checked the key when it queued it).
            let owner = |keyed: &DataFrame<'_, C>| {
                let key = self.router.key_space().read_key(C::key(keyed))?;
                Some(self.router.key_owner(key))
            };
            let (target, data) = match C::peek(frame) {
                Ok(Peek::Data(data)) => (Some(data.sink()), true),
                Ok(Peek::Keyed(keyed)) => (owner(&keyed), true),
                Ok(Peek::Lookup(lookup)) => (owner(&lookup), false),
                Ok(Peek::LookupReply(reply)) => (Some(reply.sink()), false),
                Ok(Peek::Ack(ack)) => (Some(ack.sink()), false),
                // The handshake's frames: for that link alone.
                _ => continue,
            };
            let around = match target {
                Some(sink) => route_around::<C>(&self.router, &self.entries, sink),
                None => Around::Stuck,
            };
            match around {
                Around::Entry(index) => {
                    let link = spans
                        .iter()
                        .find(|span| span.start <= at && at < span.end)
                        .map(|span| span.link);
                    let entry = &mut self.entries[index];
                    if entry.pending.is_empty() {
                        effects.push(Effect::Send(entry.conn));
                    }
                    let copy = |entry: &mut Entry| {
                        let start = entry.pending.len();
                        entry.pending.extend_from_slice(frame);
                        C::mark_detoured(&mut entry.pending[start..]);
                    };
                    match link {
                        Some(link) => {
                            let queued = entry.queue_for(link, copy);
                            let share = self.shares.of(link) + queued;
                            self.shares.set(link, share);
                            self.shares.total += queued;
                        }
                        None => copy(entry),
                    }
                    if data {
                        entry.packets_out += 1;
                        self.take_back(dead);
                        done.around += 1;
                    }
                }
                Around::LostWith(index) if data => {
                    if Some(index) != dead {
                        self.entries[index].packets_out += 1;
                        self.take_back(dead);
                    }
                    done.lost_with += 1;
                }
                Around::Stuck if data => {
                    self.take_back(dead);
                    match target.filter(|sink| self.others.contains_key(sink)) {
                        Some(sink) => {
                            self.departed_sink(sink);
                            done.lost_with += 1;
                        }
                        None if self.stuck.hold::<C>(
                            bound,
                            &mut self.counters.dropped,
                            |stuck| stuck.extend_from_slice(frame),
                        ) =>
                        {
                            done.held += 1;
                        }
                        None => done.dropped += 1,
                    }
                }
                Around::LostWith(_) | Around::Stuck => {}
            }
        }
        done
    }

    /// A data packet rerouted from dead entry `dead` (if any) is no longer handed to it.
    fn take_back(&mut self, dead: Option<usize>) {
        if let Some(dead) = dead {
            self.entries[dead].take_back(1);
        }
    }

    /// The table changed: the held frames go on as [`Overlay::reroute`] says (held again if
    /// there is still no live way on).
    pub(super) fn release_stuck(&mut self, effects: &mut Vec<Effect>) {
        if self.stuck.packets == 0 {
            return;
        }
        let stuck = std::mem::take(&mut self.stuck);
        self.reroute(effects, None, &stuck.bytes, 0, &[]);
    }

    /// A final report: what is still held will never go on; counted dropped.
    pub(super) fn drop_stuck(&mut self) {
        self.counters.dropped += std::mem::take(&mut self.stuck).packets;
    }

    /// Bytes queued for the table entries (pending plus being sent).
    pub(super) fn queued_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|entry| entry.queued_len() + entry.with_driver)
            .sum()
    }

    /// When the run may originate its next packet, if it has packets left and the window
    /// is open ([`Flow::may_originate`]; a held origination is woken when the driver takes
    /// the bytes, as the loop asks again after every event).
    pub(super) fn next_send(&self) -> Option<Nanos> {
        match &self.run {
            Some(run) if run.remaining > 0 && self.flow.may_originate(self.own_queued) => {
                Some(run.next_send())
            }
            _ => None,
        }
    }

    /// A line for the operator about a problem; after [`PROBLEM_LINES_MAX`] of them until the
    /// next final report, only the counters keep counting.
    pub(super) fn problem(&mut self, effects: &mut Vec<Effect>, line: String) {
        self.problems_logged += 1;
        if self.problems_logged <= PROBLEM_LINES_MAX {
            effects.push(Effect::Print(line));
        }
    }

    /// After a final report (at `now`): counting starts again from zero, in the window's next
    /// epoch.
    pub(super) fn reset_counts(&mut self, now: Nanos) {
        self.counters = Counters::default();
        self.received_from.clear();
        self.received_unnamed = 0;
        self.retired_out.clear();
        // A leave's hand-over counts what was sent toward it since the last final report
        // (`Flow::originated_toward`, `Flow::sunk_total`: cleared with the window's epoch
        // below): nothing of that run is on its way any more, and what was lost with crashed
        // nodes is not waited for in the runs after it (docs/ARCHITECTURE.md, "Membership
        // that changes").
        self.leaving.reported = self.leaving.began;
        // Every packet of the run has arrived: the nodes that left are in no trace any more.
        if self.router.changed() {
            let joining = self.switch.as_ref().map(|s| &s.members.ids);
            self.others
                .retain(|id, _| joining.is_some_and(|ids| ids.contains(id)));
            let slots = self.members.trace_slots;
            self.router.after_change(slots, self.others.clone());
        }
        self.entries
            .iter_mut()
            .for_each(|entry| entry.packets_out = 0);
        self.stats = SinkStats::default();
        self.stats_since_poll = SinkStats::default();
        self.flow.next_epoch(now);
        // Bytes given back when nodes were lost two epochs ago are on their way no more.
        self.shares.bound =
            relay_queued_bytes_max(self.router.ring().len(), self.flow.bound_window_bytes());
        self.shape.run_tag = DataShape::run_tag_of(self.flow.epoch);
        self.problems_logged = 0;
        self.latency_unknown_said = false;
    }

    /// A data packet for `sink`, which left the overlay since the packet was sent (its
    /// table repaired around a lost node): counted as handed to it, as a packet for a node
    /// whose link died is (lost with it; the per-link account says so).
    #[cold]
    pub(super) fn departed_sink(&mut self, sink: NodeId) {
        *self.retired_out.entry(sink).or_default() += 1;
    }

    /// Data packets per link since the last final report, one row per peer node.
    pub(super) fn link_counts(&self) -> Vec<LinkCount> {
        let mut links = BTreeMap::<NodeId, LinkCount>::new();
        for entry in &self.entries {
            let link = links.entry(entry.id).or_insert(LinkCount {
                peer: entry.id,
                ..LinkCount::default()
            });
            link.sent += entry.packets_out;
        }
        for (&peer, &sent) in &self.retired_out {
            let link = links.entry(peer).or_insert(LinkCount {
                peer,
                ..LinkCount::default()
            });
            link.sent += sent;
        }
        let mut unnamed = self.received_unnamed;
        for (&peer, &received) in &self.received_from {
            // Named after a node only if that node's table held this one at some time.
            if peer == self.id || !self.holders_seen.contains(&peer) {
                unnamed += received;
                continue;
            }
            let link = links.entry(peer).or_insert(LinkCount {
                peer,
                ..LinkCount::default()
            });
            link.received += received;
        }
        if unnamed > 0 {
            links.insert(
                self.id,
                LinkCount {
                    peer: self.id,
                    sent: 0,
                    received: unnamed,
                },
            );
        }
        // Table entries (present and retired since the last report: table links are
        // connections), the nodes whose links brought data (inbound links), and this node
        // itself: at most as many rows as a node has connections.
        debug_assert!(links.len() <= SUMMARY_LINKS_MAX);
        links.into_values().collect()
    }
}
