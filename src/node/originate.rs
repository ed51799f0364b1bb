//! Origination: the current run and the packets this node sends as a source.

use rand::RngCore;
use rand::rngs::SmallRng;

use super::Node;
use super::overlay::{Around, Link, Overlay, route_around};
use crate::chord::Step;
use crate::chord::id::ID_BYTES;
use crate::io::prefetch::write_ahead;
use crate::limits::ORIGINATE_BATCH_FRAMES;
use crate::machine::{Effect, Nanos};
use crate::routing::KeyDraw;
use crate::wire::{Codec, DataShape, NodeId, PayloadCrc};

/// Draws of a key for a packet of a run to keys while the key drawn is this node's own
/// (possible only after the tables were repaired around a lost node): the arc a node comes
/// to own is a small part of the key space, so a few draws find another node's key.
const KEY_REDRAWS_MAX: usize = 8;

/// Bytes of the fixed-size buffer a small frame is originated from ([`Template::Small`]).
const SMALL_FRAME_BYTES: usize = 64;

/// A batch's frame, which each packet of the batch is a copy of with its sink, value and CRC
/// set ([`Codec::set_originated`]).
enum Template {
    /// A frame of at most [`SMALL_FRAME_BYTES`] (W1's and W2's), at the start of a buffer of
    /// that size: the buffer is appended whole, each packet's fields are set in the copy, and
    /// the queue is cut back to the frame's end: a copy of known size instead of a call to
    /// `memcpy`, and fields set without bounds checks (issue 16).
    Small([u8; SMALL_FRAME_BYTES], usize),
    /// A larger frame: copied, then its fields set in the copy.
    Large(Vec<u8>),
}

impl Template {
    fn new(frame: Vec<u8>) -> Template {
        let mut small = [0; SMALL_FRAME_BYTES];
        match small.get_mut(..frame.len()) {
            Some(head) => {
                head.copy_from_slice(&frame);
                Template::Small(small, frame.len())
            }
            None => Template::Large(frame),
        }
    }

    /// The frame's bytes (the batch's; each packet's fields are set in its copy).
    fn bytes(&self) -> &[u8] {
        match self {
            Template::Small(small, len) => &small[..*len],
            Template::Large(frame) => frame,
        }
    }

    /// Appends to `out` the packet for `sink` with `value_bytes` and payload CRC `crc`;
    /// returns where it starts.
    #[inline(always)]
    fn append<C: Codec>(
        &mut self,
        out: &mut Vec<u8>,
        shape: DataShape,
        sink: NodeId,
        value_bytes: [u8; 4],
        crc: u32,
    ) -> usize {
        let start = out.len();
        match self {
            Template::Small(small, len) => {
                // The batch's frame is copied as it is and the packet's fields set in the
                // copy: set in the template first, its narrow stores were read back by the
                // copy's wide loads, a store-forwarding stall per packet (half of
                // origination's samples in a W2 node, issue 16).
                out.extend_from_slice(small);
                let copy = out
                    .last_chunk_mut::<SMALL_FRAME_BYTES>()
                    .expect("just appended");
                C::set_originated(copy, shape, sink, value_bytes, crc);
                out.truncate(start + *len);
            }
            Template::Large(frame) => {
                out.extend_from_slice(frame);
                C::set_originated(&mut out[start..], shape, sink, value_bytes, crc);
            }
        }
        start
    }
}

/// The current run, from `TaskInitiate` to the last packet originated.
#[derive(Debug)]
pub(super) struct Run {
    pub(super) number: u32,
    pub(super) remaining: u64,
    /// Packets originated so far in this run.
    pub(super) originated: u64,
    /// At most this many packets per second (0 = as fast as the window allows), counted from
    /// `started_at`.
    pub(super) rate_per_s: u32,
    /// When the rate's count starts: at a rate, up to one interval before the run began here
    /// ([`Run::phased_start`]).
    pub(super) started_at: Nanos,
    /// A value's 4 bytes (each packet's own are set in its copy of the batch's frame) followed
    /// by the run's extra payload bytes.
    pub(super) payload: Vec<u8>,
    /// A run addressed to keys: how this source draws them (`None`: to nodes).
    pub(super) keys: Option<KeyDraw>,
}

impl Run {
    /// When a run that begins at `now` at `rate_per_s` counts its rate from: `draw` (a random
    /// number) picks a point up to one interval before `now`. The first packet goes at once
    /// and the next within one interval, as from `now`, but the sources of a run, which the
    /// registry starts in the same instant, do not send in step: in step, ten sources at 500
    /// packets/s sent ten packets every 2 ms at once, and each packet waited behind the others
    /// on the two cores (docs/PERFORMANCE.md, W4: per-hop p50 at light load 1.2-2.7 x lower
    /// out of step). A run as fast as the window allows starts at `now`.
    pub(super) fn phased_start(now: Nanos, rate_per_s: u32, draw: u64) -> Nanos {
        if rate_per_s == 0 {
            return now;
        }
        let interval = (1_000_000_000 / u64::from(rate_per_s)).max(1);
        now.saturating_sub(draw % interval)
    }

    /// Packets the rate allows to have originated by `now` (one at the start).
    fn due(&self, now: Nanos) -> u64 {
        let elapsed = u128::from(now.saturating_sub(self.started_at));
        (elapsed * u128::from(self.rate_per_s) / 1_000_000_000) as u64 + 1
    }

    /// When the next packet may be originated (0 = now).
    pub(super) fn next_send(&self) -> Nanos {
        if self.rate_per_s == 0 {
            return 0;
        }
        let at = u128::from(self.originated) * 1_000_000_000 / u128::from(self.rate_per_s);
        self.started_at + at as Nanos
    }
}

impl<C: Codec> Node<C> {
    /// Originates up to one batch of packets, as far as the window allows; tells the registry
    /// when the run has sent its last.
    pub(super) fn originate(&mut self, now: Nanos) {
        let (Some(overlay), Some(payload_crc)) = (self.overlay.as_mut(), self.payload_crc.as_ref())
        else {
            return;
        };
        if overlay.originate(now, &mut self.rng, payload_crc, &mut self.effects) {
            self.finish_run();
        }
    }
}

impl<C: Codec> Overlay<C> {
    /// Originates up to one batch of packets of the run, as far as the window allows.
    /// Returns whether the run has originated all its packets.
    fn originate(
        &mut self,
        now: Nanos,
        rng: &mut SmallRng,
        payload_crc: &PayloadCrc,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        if let Some(keys) = run.keys {
            return self.originate_keyed(now, rng, payload_crc, effects, keys);
        }
        let (id, shape) = (self.id, self.shape);
        if self.sinks.is_empty() {
            // Every other member is leaving or not yet reachable by all: nothing to send to.
            run.remaining = 0;
            return true;
        }
        let sinks = self.sinks.len() as u64;
        let mut batch = (ORIGINATE_BATCH_FRAMES as u64).min(run.remaining);
        if run.rate_per_s > 0 {
            batch = batch.min(run.due(now).saturating_sub(run.originated));
        }
        // One frame per batch: the packets of a tick share source, shape, send time and extra
        // payload, so each is a copy of this one with its sink, value and CRC set.
        let mut frame = Vec::new();
        if batch > 0 {
            let crc = payload_crc.of(*run.payload.first_chunk().expect("the value's 4 bytes"));
            C::append_data_with_crc(&mut frame, id, id, shape, now, &run.payload, crc);
        }
        // As many as the window and the bound on this node's own queued bytes allow, asked
        // once for the batch (each packet adds the frame's length to both); a packet lost
        // around a dead link adds nothing, so this never allows more than asking per packet.
        batch = batch.min(self.flow.originations_allowed(self.own_queued, frame.len()));
        let mut frame = Template::new(frame);
        // Counted here and added to the run and the counters once the batch ends (counters
        // in registers instead of in memory per packet).
        let mut originated = 0;
        let mut sum_sent = self.counters.sum_sent;
        let sink_of = |draw: u64| (((draw >> 32) * sinks) >> 32) as usize;
        let look_ahead = self.flow.prefetches();
        while originated < batch {
            originated += 1;
            // One 64-bit draw per packet: the low half is the value, the high half picks one
            // of the sinks, the positions other than our own (multiply-shift: each gets floor
            // or ceil of 2^32 / sinks of the draws, a bias below sinks / 2^32).
            let draw = rng.next_u64();
            if look_ahead {
                // The next packet's sink (the generator's next draw, read from a copy of its
                // state): its counts are asked for while this packet is queued, since in a
                // large overlay they are cold (docs/SCALE.md).
                let next_position = self.sinks[sink_of(rng.clone().next_u64())] as usize;
                self.flow.prefetch(next_position);
            }
            let value = draw as u32 as i32;
            let position = self.sinks[sink_of(draw)] as usize;
            let sink = self.router.ring().ids()[position];
            let value_bytes = value.to_le_bytes();
            sum_sent = sum_sent.wrapping_add(i64::from(value));
            let index = self
                .router
                .next_hop(sink)
                .expect("a ring position other than our own has a next hop");
            let crc = payload_crc.of(value_bytes);
            if self.entries[index].link == Link::Up {
                let to = (position, sink);
                self.queue_originated::<false>(effects, index, &mut frame, to, value_bytes, crc);
            } else {
                self.originate_around(effects, &mut frame, (position, sink), value_bytes, crc);
            }
        }
        self.counters.sent += originated;
        self.counters.sum_sent = sum_sent;
        let run = self.run.as_mut().expect("the run originating");
        run.remaining -= originated;
        run.originated += originated;
        run.remaining == 0
    }

    /// A new packet (`frame`, for the node `sink` at ring position `position`) whose first
    /// hop's link is not up: it goes around it as [`route_around`] says, marked as detoured:
    /// handed to a dead sink's link (lost with it; never acked, so it takes nothing of the
    /// window), or held with no live way on yet ([`super::overlay::Stuck::hold`]; in flight).
    /// Out of line: never taken while every link is up, and kept off the origination loop's
    /// registers.
    #[cold]
    #[inline(never)]
    fn originate_around(
        &mut self,
        effects: &mut Vec<Effect>,
        frame: &mut Template,
        (position, sink): (usize, NodeId),
        value_bytes: [u8; 4],
        crc: u32,
    ) {
        match route_around::<C>(&self.router, &self.entries, sink) {
            Around::Entry(index) => {
                let to = (position, sink);
                self.queue_originated::<true>(effects, index, frame, to, value_bytes, crc);
            }
            Around::LostWith(dead) => self.entries[dead].packets_out += 1,
            Around::Stuck => {
                let shape = self.shape;
                let bound = self.shares.bound;
                let held = self
                    .stuck
                    .hold::<C>(bound, &mut self.counters.dropped, |stuck| {
                        frame.append::<C>(stuck, shape, sink, value_bytes, crc);
                    });
                if held {
                    self.flow.on_originated(position, frame.bytes().len());
                }
            }
        }
    }

    /// Queues for entry `index` a copy of the batch's `frame` as the packet for the node
    /// `sink` at ring position `position` (both known to the caller: the ID is not looked up
    /// again) with the value `value_bytes` and payload CRC `crc` (`DETOURED`: marked as routed
    /// around a dead link), and counts it as handed to that entry and in flight.
    #[inline(always)]
    fn queue_originated<const DETOURED: bool>(
        &mut self,
        effects: &mut Vec<Effect>,
        index: usize,
        frame: &mut Template,
        (position, sink): (usize, NodeId),
        value_bytes: [u8; 4],
        crc: u32,
    ) {
        let entry = &mut self.entries[index];
        if entry.pending.is_empty() {
            effects.push(Effect::Send(entry.conn));
        }
        write_ahead(&entry.pending);
        let start = frame.append::<C>(&mut entry.pending, self.shape, sink, value_bytes, crc);
        if DETOURED {
            C::mark_detoured(&mut entry.pending[start..]);
        }
        let len = entry.pending.len() - start;
        entry.packets_out += 1;
        self.own_queued += len;
        self.flow.on_originated(position, len);
    }

    /// [`Overlay::originate`] for a run addressed to keys: each packet to a key `keys` draws,
    /// on the entry the key's route starts with, in a keyed frame.
    #[inline(never)]
    fn originate_keyed(
        &mut self,
        now: Nanos,
        rng: &mut SmallRng,
        payload_crc: &PayloadCrc,
        effects: &mut Vec<Effect>,
        keys: KeyDraw,
    ) -> bool {
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        let (id, shape, space) = (self.id, self.shape, self.router.key_space());
        let mut batch = (ORIGINATE_BATCH_FRAMES as u64).min(run.remaining);
        if run.rate_per_s > 0 {
            batch = batch.min(run.due(now).saturating_sub(run.originated));
        }
        let mut originated = 0;
        let mut key_bytes = [0; ID_BYTES];
        while originated < batch && self.flow.may_originate(self.own_queued) {
            originated += 1;
            let value = rng.next_u32() as i32;
            let mut key = keys.next(rng);
            // The keys drawn were other nodes' when the run began; one this node came to own
            // since (the tables repaired after a lost node) is drawn again, a bounded number
            // of times (it owns a small arc of the keys).
            let mut step = self.router.key_step(key);
            for _ in 0..KEY_REDRAWS_MAX {
                if step != Step::Owner {
                    break;
                }
                key = keys.next(rng);
                step = self.router.key_step(key);
            }
            let value_bytes = value.to_le_bytes();
            run.payload[..4].copy_from_slice(&value_bytes);
            self.counters.sent += 1;
            self.counters.sum_sent = self.counters.sum_sent.wrapping_add(i64::from(value));
            let mut index = match step {
                Step::Deliver(index) | Step::Forward(index) => index,
                Step::Owner => {
                    self.counters.dropped += 1;
                    continue;
                }
            };
            let owner = self.router.key_owner(key);
            let position = self.router.position(owner).unwrap_or_default();
            let crc = payload_crc.of(value_bytes);
            // The packet's frame appended to a link's queue or to the hold; returns its bytes.
            let mut append = |out: &mut Vec<u8>| {
                C::append_keyed_with_crc(
                    out,
                    id,
                    space.write_key(key, &mut key_bytes),
                    shape,
                    now,
                    &run.payload,
                    crc,
                )
            };
            // Around a dead link as a node-addressed packet goes, toward the key's owner.
            let detoured = self.entries[index].link != Link::Up;
            if detoured {
                match route_around::<C>(&self.router, &self.entries, owner) {
                    Around::Entry(other) => index = other,
                    Around::LostWith(dead) => {
                        self.entries[dead].packets_out += 1;
                        continue;
                    }
                    Around::Stuck => {
                        let mut bytes = 0;
                        let bound = self.shares.bound;
                        let held =
                            self.stuck
                                .hold::<C>(bound, &mut self.counters.dropped, |stuck| {
                                    bytes = append(stuck);
                                });
                        if held {
                            self.flow.on_originated_keyed(position, bytes);
                        }
                        continue;
                    }
                }
            }
            let entry = &mut self.entries[index];
            if entry.pending.is_empty() {
                effects.push(Effect::Send(entry.conn));
            }
            let start = entry.pending.len();
            let bytes = append(&mut entry.pending);
            if detoured {
                C::mark_detoured(&mut entry.pending[start..]);
            }
            entry.packets_out += 1;
            self.own_queued += bytes;
            self.flow.on_originated_keyed(position, bytes);
        }
        run.remaining -= originated;
        run.originated += originated;
        run.remaining == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Run;

    fn run(rate_per_s: u32, started_at: u64) -> Run {
        Run {
            number: 1,
            remaining: 100,
            originated: 0,
            rate_per_s,
            started_at,
            payload: vec![0; 4],
            keys: None,
        }
    }

    /// Sources started in the same instant send their first packet at once and then out of
    /// step, each still at its rate: the second packet of each within one interval, the
    /// tenth within ten.
    #[test]
    fn sources_started_together_send_out_of_step_at_their_rate() {
        let now = 5_000_000_000;
        let interval = 2_000_000;
        let mut seconds = Vec::new();
        for draw in [
            0,
            1,
            777_777,
            1_999_999,
            2_000_000,
            123_456_789_012,
            u64::MAX,
        ] {
            let mut source = run(500, Run::phased_start(now, 500, draw));
            assert_eq!(
                source.due(now),
                1,
                "draw {draw}: the first packet goes at once"
            );
            source.originated = 1;
            let second = source.next_send();
            assert!(
                second > now && second <= now + interval,
                "draw {draw}: second packet at {second}"
            );
            source.originated = 10;
            assert!(source.next_send() <= now + 10 * interval);
            assert_eq!(source.due(second + 9 * interval), 11, "draw {draw}");
            seconds.push(second);
        }
        seconds.sort();
        seconds.dedup();
        assert!(seconds.len() >= 5, "in step: {seconds:?}");
        // As fast as the window allows: no phase.
        assert_eq!(Run::phased_start(now, 0, 777_777), now);
    }
}
