//! Flow control: a window per source, opened by cumulative acknowledgements from the sinks.
//!
//! A source may have at most `window_bytes` of data frames originated and not yet acknowledged.
//! Each sink counts the frame bytes it received from each source and acknowledges cumulatively
//! once `ack_every_bytes` have arrived from that source since its last ack. The ack travels the
//! overlay like data. With `ack_every_bytes <= window_bytes / (2 * nodes)`, a source whose
//! packets have all arrived has at least half its window acknowledged, so it can never wait
//! forever (docs/ARCHITECTURE.md has the whole argument, including why relays never stop
//! reading).

use super::per_node::PerNode;
use crate::limits::{FRAME_BYTES_MAX, own_queued_bytes_max};
use crate::machine::Nanos;

/// The window state of one node, as source and as sink.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    /// 0 = no window (origination is never held back).
    pub window_bytes: u64,
    /// Acknowledge a source after this many new bytes from it.
    pub ack_every_bytes: u64,
    /// Bytes originated and not yet acknowledged.
    pub in_flight_bytes: u64,
    /// What this node exchanged in this epoch with each other node, by ring position (a
    /// slot per node up to `FLOW_DENSE_NODES_MAX` nodes, beyond only for the nodes this one
    /// took packets or acks from, or originated packets toward, in this epoch: a few hundred
    /// KiB per node saved at 10,000 nodes).
    peers: PerNode<Peer>,
    /// Number of final reports since the manifest: acks carry it, so a late ack from an earlier
    /// run is recognised and ignored.
    pub epoch: u32,
    /// When this node's epoch began (the manifest, or its last final report): every packet
    /// of the epoch's run was sent after it, which is how a sink reads a send time that
    /// wraps (`wire::SendStamp::latency_ns`).
    pub epoch_began_at: Nanos,
    /// Times this epoch's bytes in flight were given back because nodes were lost
    /// ([`Flow::forgive`]), and the same for the epoch before: each lets every source have up
    /// to one more window of bytes on their way ([`Flow::bound_window_bytes`]).
    forgiven: u32,
    forgiven_before: u32,
}

/// The window's counts with one other node, as its sink and as its source, and the packets
/// exchanged with it: one record, 64 bytes, so that a delivery or an origination touches one
/// cache line of it (in a large overlay these records are cold: docs/SCALE.md).
#[derive(Debug, Clone, Copy, Default)]
struct Peer {
    /// Highest cumulative ack seen from it (as sink of this node's packets).
    acked_by: u64,
    /// Bytes received from it (as source).
    received_from: u64,
    /// The last cumulative value acknowledged to it.
    acknowledged_to: u64,
    /// Bytes originated toward it (what its cumulative acks can cover).
    sent_to: u64,
    /// Bytes toward it given back when nodes were lost ([`Flow::forgive`]): its cumulative
    /// acks count on from there (an ack of `n` bytes covers `n + ack_offset` of `sent_to`).
    ack_offset: u64,
    /// Node-addressed packets originated toward it in this epoch (what a leave's hand-over
    /// says is on its way to it).
    originated: u64,
    /// Node-addressed packets from it that ended here in this epoch (received, stale or
    /// corrupted: what a leaving node's drain waits for).
    sunk: u64,
    /// It is leaving: every frame from it is acknowledged at once ([`Flow::ack_at_once`]).
    at_once: bool,
}

// One cache line: the slots are aligned to lines (`per_node.rs`).
const _: () = assert!(std::mem::size_of::<Peer>() == 64);

impl Flow {
    /// Fresh state for an overlay of `nodes` nodes.
    pub fn new(nodes: usize, window_bytes: u64) -> Flow {
        Flow {
            window_bytes,
            ack_every_bytes: Flow::ack_every(window_bytes, nodes),
            in_flight_bytes: 0,
            peers: PerNode::new(nodes),
            epoch: 0,
            epoch_began_at: 0,
            forgiven: 0,
            forgiven_before: 0,
        }
    }

    /// The window's acks threshold for an overlay of `nodes` nodes (at least one byte).
    fn ack_every(window_bytes: u64, nodes: usize) -> u64 {
        if window_bytes == 0 {
            0
        } else {
            (window_bytes / (2 * nodes.max(1) as u64)).max(1)
        }
    }

    /// The membership changed: the state of each node moves to its new ring position
    /// (`moved(p)`: where the node at old position `p` is now, `None` if it left), for an
    /// overlay of `nodes` nodes, whose ack threshold follows. What this node originated toward
    /// a node that left and was not acknowledged is no longer in flight: every packet toward
    /// a node that leaves has reached it before the registry says it is gone
    /// (docs/ARCHITECTURE.md, "Membership that changes"), and it acknowledges nothing more.
    pub fn remap(&mut self, nodes: usize, moved: impl Fn(usize) -> Option<usize>) {
        for peer in self.peers.remap(nodes, moved) {
            let unacked = peer.sent_to.saturating_sub(peer.acked_by);
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(unacked);
        }
        self.ack_every_bytes = Flow::ack_every(self.window_bytes, nodes);
    }

    /// True while the window lets this node originate another frame.
    #[inline]
    pub fn may_send(&self) -> bool {
        self.window_bytes == 0 || self.in_flight_bytes < self.window_bytes
    }

    /// True while the window lets this node originate another frame and its own frames still
    /// queued for its entries (`own_queued` bytes) leave room for one more below
    /// [`own_queued_bytes_max`]: an honest source never has more queued than unacknowledged,
    /// so only forged acks make the second condition matter.
    #[inline]
    pub fn may_originate(&self, own_queued: usize) -> bool {
        self.may_send()
            && (self.window_bytes == 0
                || own_queued + FRAME_BYTES_MAX <= own_queued_bytes_max(self.window_bytes))
    }

    /// How many frames of `frame_bytes` each this node may originate now, one after another:
    /// as many as [`Flow::may_originate`] allows if asked before each, each frame adding
    /// `frame_bytes` to the bytes in flight and to `own_queued` (`u64::MAX` without a
    /// window). Asked once per batch instead of once per packet.
    #[inline]
    pub fn originations_allowed(&self, own_queued: usize, frame_bytes: usize) -> u64 {
        if self.window_bytes == 0 {
            return u64::MAX;
        }
        let frame = frame_bytes.max(1) as u64;
        // Frame k (from 0) is allowed while in_flight + k * frame < window and
        // own_queued + k * frame + FRAME_BYTES_MAX <= the own-queue bound.
        let window_room = self.window_bytes.saturating_sub(self.in_flight_bytes);
        let Some(queue_room) = own_queued_bytes_max(self.window_bytes)
            .checked_sub(own_queued.saturating_add(FRAME_BYTES_MAX))
        else {
            return 0;
        };
        window_room
            .div_ceil(frame)
            .min(queue_room as u64 / frame + 1)
    }

    /// Whether asking for a node's counts ahead of their use is worth it ([`Flow::prefetch`]).
    #[inline]
    pub fn prefetches(&self) -> bool {
        self.peers.prefetches()
    }

    /// Asks for the counts of the node at `position` to be brought into the cache: a frame
    /// to or from it comes next.
    #[inline]
    pub fn prefetch(&self, position: usize) {
        self.peers.prefetch(position);
    }

    /// A node-addressed packet's frame of `frame_bytes` was originated toward the sink at
    /// `position`: in flight, and counted toward it ([`Flow::originated_toward`]).
    #[inline]
    pub fn on_originated(&mut self, position: usize, frame_bytes: usize) {
        self.sent(position, frame_bytes).originated += 1;
    }

    /// A keyed packet's frame of `frame_bytes` was originated toward the key's owner at
    /// `position`: in flight only (a leave's hand-over counts node-addressed packets).
    #[inline]
    pub fn on_originated_keyed(&mut self, position: usize, frame_bytes: usize) {
        self.sent(position, frame_bytes);
    }

    /// `frame_bytes` more in flight toward the node at `position`; its record, looked up once.
    #[inline]
    fn sent(&mut self, position: usize, frame_bytes: usize) -> &mut Peer {
        self.in_flight_bytes += frame_bytes as u64;
        let peer = self.peers.get_mut(position);
        peer.sent_to += frame_bytes as u64;
        peer
    }

    /// A node-addressed packet from the source at `position` ended here (received, stale or
    /// corrupted).
    #[inline]
    pub fn on_sunk(&mut self, position: usize) {
        self.peers.get_mut(position).sunk += 1;
    }

    /// Node-addressed packets originated toward the node at `position` in this epoch.
    pub fn originated_toward(&self, position: usize) -> u64 {
        self.peers.get(position).originated
    }

    /// Node-addressed packets that ended here in this epoch, from every source.
    pub fn sunk_total(&self) -> u64 {
        self.peers.values().map(|peer| peer.sunk).sum()
    }

    /// A data frame from the source at `position` arrived here. Returns the cumulative value
    /// to acknowledge now, if it is time.
    #[inline]
    pub fn on_delivered(&mut self, position: usize, frame_bytes: usize) -> Option<u64> {
        if self.window_bytes == 0 {
            return None;
        }
        let peer = self.peers.get_mut(position);
        peer.received_from += frame_bytes as u64;
        if peer.received_from - peer.acknowledged_to >= self.ack_every_bytes || peer.at_once {
            peer.acknowledged_to = peer.received_from;
            Some(peer.received_from)
        } else {
            None
        }
    }

    /// The source at `position` is leaving: from now on every frame from it is acknowledged as
    /// it arrives, so that it learns when everything it sent has arrived (its drain waits for
    /// that: docs/ARCHITECTURE.md, "Membership that changes"). Returns the cumulative value to
    /// acknowledge now, if some of its bytes are not yet.
    pub fn ack_at_once(&mut self, position: usize) -> Option<u64> {
        if self.window_bytes == 0 {
            return None;
        }
        let peer = self.peers.get_mut(position);
        peer.at_once = true;
        (peer.received_from > peer.acknowledged_to).then(|| {
            peer.acknowledged_to = peer.received_from;
            peer.received_from
        })
    }

    /// An ack from the sink at `position`. Returns false if it belongs to another epoch or
    /// claims more than was sent (it is then ignored).
    pub fn on_ack(&mut self, position: usize, epoch: u32, acked_bytes: u64) -> bool {
        if epoch != self.epoch {
            return false;
        }
        // One lookup (in a large overlay's map, a hash and a probe): a sink with no record
        // here was sent nothing it could acknowledge, and is read as the record's default.
        let mut absent = Peer::default();
        let existing = self.peers.get_existing_mut(position);
        let found = existing.is_some();
        let peer = existing.unwrap_or(&mut absent);
        let previous = peer.acked_by;
        // After a loss the sink's count lags what was sent by what was given back; what was
        // given back and arrived after all is not counted twice.
        let acked_bytes = if peer.ack_offset == 0 {
            acked_bytes
        } else {
            acked_bytes
                .saturating_add(peer.ack_offset)
                .min(peer.sent_to)
        };
        if acked_bytes <= previous {
            return true;
        }
        let newly = acked_bytes - previous;
        if newly > self.in_flight_bytes {
            return false;
        }
        if found {
            peer.acked_by = acked_bytes;
        } else {
            self.peers.get_mut(position).acked_by = acked_bytes;
        }
        self.in_flight_bytes -= newly;
        true
    }

    /// Nodes were lost (crashed): the packets of this node's they held, or that were on
    /// their way to them, are gone and will never be acknowledged, and which of the bytes in
    /// flight those are nobody can tell. Everything unacknowledged is given back to the
    /// window, each sink's acks counting on from what was sent to it; what was given back
    /// and arrives after all is then on its way beside up to a window of new bytes, so each
    /// time lets every source have one more window in flight for the rest of the epoch
    /// ([`Flow::bound_window_bytes`]). Without it a source whose window the lost packets
    /// filled would wait for acks that never come (docs/ARCHITECTURE.md, "Flow control").
    pub fn forgive(&mut self) {
        if self.window_bytes == 0 {
            return;
        }
        self.peers.for_each_mut(|peer| {
            let unacked = peer.sent_to.saturating_sub(peer.acked_by);
            peer.ack_offset += unacked;
            peer.acked_by += unacked;
        });
        self.in_flight_bytes = 0;
        self.forgiven = self.forgiven.saturating_add(1);
    }

    /// The most bytes one source may have on their way, counting what was given back when
    /// nodes were lost in this epoch or the one before ([`Flow::forgive`]): the window once
    /// for each such time, and once more. What bounds the relays' queues
    /// (`limits::relay_queued_bytes_max`) is computed from it.
    pub fn bound_window_bytes(&self) -> u64 {
        let times = self.forgiven.max(self.forgiven_before);
        self.window_bytes.saturating_mul(1 + u64::from(times))
    }

    /// After a final report (at `now`): everything of the run is delivered; start the next
    /// epoch.
    pub fn next_epoch(&mut self, now: Nanos) {
        self.in_flight_bytes = 0;
        self.peers.clear();
        self.forgiven_before = std::mem::take(&mut self.forgiven);
        self.epoch = self.epoch.wrapping_add(1);
        self.epoch_began_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::FLOW_DENSE_NODES_MAX;

    #[test]
    fn window_opens_with_acks_and_ignores_stale_ones() {
        let mut flow = Flow::new(4, 800);
        assert_eq!(flow.ack_every_bytes, 100);
        for _ in 0..8 {
            assert!(flow.may_send());
            flow.on_originated(1, 100);
        }
        assert!(!flow.may_send());
        assert!(!flow.on_ack(1, 7, 100), "wrong epoch");
        assert!(flow.on_ack(1, 0, 300));
        assert_eq!(flow.in_flight_bytes, 500);
        assert!(
            flow.on_ack(1, 0, 200),
            "an older cumulative value changes nothing"
        );
        assert_eq!(flow.in_flight_bytes, 500);
        assert!(!flow.on_ack(2, 0, 10_000), "more than was sent");
        flow.next_epoch(0);
        assert_eq!(flow.in_flight_bytes, 0);
        assert!(!flow.on_ack(1, 0, 400));
    }

    /// The packets a leave's hand-over counts live in the same record as the window's counts:
    /// node-addressed packets originated toward a sink (keyed ones not), packets sunk from each
    /// source; they move with the ring, go with a node that left, and start again from zero
    /// in the next epoch. In slots and in a large overlay's map alike.
    #[test]
    fn the_hand_overs_counts_follow_the_ring_and_the_epoch() {
        for nodes in [4, FLOW_DENSE_NODES_MAX + 4] {
            let mut flow = Flow::new(nodes, 1 << 20);
            flow.on_originated(1, 100);
            flow.on_originated(1, 100);
            flow.on_originated_keyed(1, 100);
            flow.on_originated(2, 100);
            flow.on_sunk(2);
            flow.on_sunk(3);
            flow.on_sunk(3);
            assert_eq!(flow.in_flight_bytes, 400);
            assert_eq!(
                (0..4)
                    .map(|p| flow.originated_toward(p))
                    .collect::<Vec<_>>(),
                [0, 2, 1, 0],
                "{nodes} nodes"
            );
            assert_eq!(flow.sunk_total(), 3);
            // The node at position 2 leaves: 3 moves to 2.
            flow.remap(nodes - 1, |p| match p {
                2 => None,
                3 => Some(2),
                p => Some(p),
            });
            assert_eq!(
                (0..3)
                    .map(|p| flow.originated_toward(p))
                    .collect::<Vec<_>>(),
                [0, 2, 0]
            );
            assert_eq!(flow.sunk_total(), 2);
            assert_eq!(flow.in_flight_bytes, 300, "what went to the leaver is not");
            flow.next_epoch(0);
            assert_eq!((flow.originated_toward(1), flow.sunk_total()), (0, 0));
        }
    }

    /// Beyond the dense bound, counts exist only for the nodes a node heard from, and act as
    /// the dense ones do.
    #[test]
    fn a_large_overlay_keeps_counts_only_for_the_nodes_heard_from() {
        let nodes = FLOW_DENSE_NODES_MAX + 1;
        let mut flow = Flow::new(nodes, 2 * nodes as u64 * 100);
        assert_eq!(flow.ack_every_bytes, 100);
        assert_eq!(flow.on_delivered(nodes - 1, 60), None);
        assert_eq!(flow.on_delivered(nodes - 1, 60), Some(120));
        assert_eq!(flow.on_delivered(7, 100), Some(100));
        flow.on_originated(3, 500);
        assert!(flow.on_ack(3, 0, 200));
        assert!(
            flow.on_ack(3, 0, 100),
            "an older cumulative value changes nothing"
        );
        assert_eq!(flow.in_flight_bytes, 300);
        assert!(!flow.on_ack(5, 0, 10_000), "more than was sent");
        assert_eq!(
            flow.peers.sparse_positions(),
            Some(vec![3, 7, nodes as u32 - 1]),
            "dense beyond the bound"
        );
        flow.next_epoch(0);
        assert_eq!(flow.peers.sparse_positions(), Some(vec![]));
        assert_eq!(
            flow.on_delivered(7, 100),
            Some(100),
            "counting starts again"
        );
        assert!(Flow::new(FLOW_DENSE_NODES_MAX, 0).peers.is_dense());
    }

    #[test]
    fn a_sink_that_leaves_takes_its_unacknowledged_bytes_with_it() {
        let mut flow = Flow::new(4, 800);
        flow.on_originated(1, 300);
        flow.on_originated(2, 200);
        assert!(flow.on_ack(1, 0, 100));
        assert_eq!(flow.in_flight_bytes, 400);
        // The node at position 1 leaves; 2 and 3 move down one place.
        flow.remap(3, |old| match old {
            0 => Some(0),
            1 => None,
            other => Some(other - 1),
        });
        assert_eq!(flow.in_flight_bytes, 200);
        assert_eq!(flow.ack_every_bytes, 800 / 6);
        assert!(flow.on_ack(1, 0, 200), "position 2's sink is at 1 now");
        assert_eq!(flow.in_flight_bytes, 0);
    }

    /// Nodes were lost: everything unacknowledged is given back; each sink's acks count on
    /// from what was sent to it, what was given back and arrives after all is not counted
    /// twice, and the relays' bound makes room for one more window per loss in this epoch
    /// or the one before.
    #[test]
    fn a_loss_gives_the_window_back_and_acks_count_on_from_it() {
        let mut flow = Flow::new(4, 800);
        assert_eq!(flow.bound_window_bytes(), 800);
        flow.on_originated(1, 300);
        flow.on_originated(2, 500);
        assert!(flow.on_ack(1, 0, 100));
        assert_eq!(flow.in_flight_bytes, 700);
        // Of sink 1's 200 unacknowledged bytes 100 were lost with a relay; of sink 2's 500,
        // all were lost.
        flow.forgive();
        assert_eq!(flow.in_flight_bytes, 0);
        assert_eq!(flow.bound_window_bytes(), 1600);
        flow.on_originated(1, 100);
        flow.on_originated(2, 100);
        assert_eq!(flow.in_flight_bytes, 200);
        // Sink 2 received none of the old bytes and the 100 new ones: 100 bytes acked.
        assert!(flow.on_ack(2, 0, 100));
        assert_eq!(flow.in_flight_bytes, 100);
        // Sink 1 got 100 of the old unacknowledged bytes after all: nobody can tell them from
        // the new ones, so they open the window for the 100 new ones still on their way (the
        // one more window the bound allows for); then no count covers more than was sent.
        assert!(flow.on_ack(1, 0, 200), "the old bytes that arrived");
        assert_eq!(flow.in_flight_bytes, 0);
        assert!(flow.on_ack(1, 0, 300));
        assert_eq!(flow.in_flight_bytes, 0);
        flow.on_originated(1, 100);
        assert_eq!(
            flow.in_flight_bytes, 100,
            "the count above covered no more than was sent then"
        );
        // The 100 old bytes that arrived keep standing in for as many new ones: at most what
        // was given back, for the rest of the epoch.
        assert!(flow.on_ack(1, 0, 300));
        assert_eq!(flow.in_flight_bytes, 0);
        // A forged ack claiming more than was sent is still ignored.
        flow.on_originated(3, 100);
        assert!(!flow.on_ack(3, 0, 10_000));
        assert_eq!(flow.in_flight_bytes, 100);
        // The bound stays raised through the next epoch, then falls back.
        flow.next_epoch(0);
        assert_eq!(flow.bound_window_bytes(), 1600);
        flow.next_epoch(0);
        assert_eq!(flow.bound_window_bytes(), 800);
        let mut open = Flow::new(4, 0);
        open.forgive();
        assert_eq!(open.bound_window_bytes(), 0);
    }

    #[test]
    fn originations_allowed_are_those_may_originate_allows_one_by_one() {
        for window in [0, 1, 100, 800, 4096] {
            for in_flight in [0, 1, 99, 100, 799, 800, 801, 5000] {
                for own_queued in [0, 50, 800, 4000, 4096 + FRAME_BYTES_MAX] {
                    for frame in [1, 56, 100, 333] {
                        let mut flow = Flow::new(4, window);
                        flow.in_flight_bytes = in_flight;
                        let allowed = flow.originations_allowed(own_queued, frame);
                        let (mut count, mut own) = (0, own_queued);
                        while count < 100_000 && flow.may_originate(own) {
                            flow.on_originated(1, frame);
                            own += frame;
                            count += 1;
                        }
                        let expected = if window == 0 { u64::MAX } else { count };
                        assert_eq!(
                            allowed, expected,
                            "window {window}, in flight {in_flight}, own {own_queued}, frame {frame}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn sinks_ack_every_threshold() {
        let mut flow = Flow::new(4, 800);
        assert_eq!(flow.on_delivered(3, 60), None);
        assert_eq!(flow.on_delivered(3, 60), Some(120));
        assert_eq!(flow.on_delivered(3, 60), None);
        assert_eq!(flow.on_delivered(3, 40), Some(220));
        let mut open = Flow::new(4, 0);
        assert!(open.may_send());
        assert_eq!(open.on_delivered(0, 1000), None);
    }
}
