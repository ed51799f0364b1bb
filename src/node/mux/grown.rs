//! Streams' queue buffers (in their nodes) that bursts grew past
//! [`STREAM_QUEUE_KEPT_BYTES`]: kept while the bursts recur, given back once they stop.
//!
//! A trunk's take looks at a stream's queue buffer each time it takes the stream's bytes
//! (`take_trunk_bytes`). A take that finds more than a quarter of a grown buffer marks the
//! stream's burst as going on; one that finds a quarter at most frees the buffer only if the
//! last such mark is [`STREAM_BURST_GAP_NS`] old. A stream that gets no take after its burst
//! is swept: every [`STREAM_BURST_GAP_NS`] while any grown buffer is kept, the mux frees those
//! whose bursts stopped that long ago (`Mux::sweep_grown`). Nothing is kept, and no sweep is
//! due, once every burst is over: an idle process is not woken for it.

use crate::limits::{STREAM_BURST_GAP_NS, STREAM_QUEUE_KEPT_BYTES};
use crate::machine::{ConnId, ConnMap, Nanos};

/// The streams whose grown queue buffers are kept, with their last heavy take.
#[derive(Debug, Default)]
pub(super) struct Grown {
    last_heavy: ConnMap<Nanos>,
    sweep_at: Option<Nanos>,
}

impl Grown {
    /// A take at `now` found `queued` bytes in `stream`'s queue buffer of `capacity`: whether
    /// to free the buffer.
    pub(super) fn after_take(
        &mut self,
        stream: ConnId,
        queued: usize,
        capacity: usize,
        now: Nanos,
    ) -> bool {
        if capacity <= STREAM_QUEUE_KEPT_BYTES {
            self.last_heavy.remove(&stream);
            return false;
        }
        if queued > capacity / 4 {
            self.last_heavy.insert(stream, now);
            self.sweep_at.get_or_insert(now + STREAM_BURST_GAP_NS);
            return false;
        }
        match self.last_heavy.get(&stream) {
            Some(&at) if now.saturating_sub(at) < STREAM_BURST_GAP_NS => false,
            _ => {
                self.last_heavy.remove(&stream);
                true
            }
        }
    }

    /// When the next sweep is due (`None`: no grown buffer is kept).
    pub(super) fn sweep_at(&self) -> Option<Nanos> {
        self.sweep_at
    }

    /// At a sweep due by `now`: the streams whose bursts stopped [`STREAM_BURST_GAP_NS`] ago,
    /// no longer kept (their buffers are to be freed if still grown).
    pub(super) fn due(&mut self, now: Nanos) -> Vec<ConnId> {
        if self.sweep_at.is_none_or(|at| at > now) {
            return Vec::new();
        }
        let due: Vec<ConnId> = self
            .last_heavy
            .iter()
            .filter(|&(_, &at)| now.saturating_sub(at) >= STREAM_BURST_GAP_NS)
            .map(|(&stream, _)| stream)
            .collect();
        for stream in &due {
            self.last_heavy.remove(stream);
        }
        self.sweep_at = (!self.last_heavy.is_empty()).then_some(now + STREAM_BURST_GAP_NS);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: usize = 16 * STREAM_QUEUE_KEPT_BYTES;

    #[test]
    fn a_grown_buffer_is_kept_while_bursts_recur_and_freed_once_they_stop() {
        let stream = ConnId::inbound(1);
        let mut grown = Grown::default();
        assert_eq!(grown.sweep_at(), None);
        // A heavy take keeps it and arms the sweep.
        assert!(!grown.after_take(stream, BIG / 2, BIG, 10));
        assert_eq!(grown.sweep_at(), Some(10 + STREAM_BURST_GAP_NS));
        // Light takes within the gap keep it; one heavy take starts the gap again.
        assert!(!grown.after_take(stream, 0, BIG, 20));
        assert!(!grown.after_take(stream, BIG / 2, BIG, STREAM_BURST_GAP_NS));
        assert!(!grown.after_take(stream, 0, BIG, 2 * STREAM_BURST_GAP_NS - 1));
        // The first light take a gap after the last heavy one frees it.
        assert!(grown.after_take(stream, 0, BIG, 2 * STREAM_BURST_GAP_NS));
        // A small buffer is never freed, and a grown one never seen heavy is freed at once.
        assert!(!grown.after_take(stream, 0, STREAM_QUEUE_KEPT_BYTES, 0));
        assert!(grown.after_take(ConnId::inbound(2), 0, BIG, 0));
    }

    #[test]
    fn the_sweep_gives_back_the_buffers_of_streams_that_got_no_take_and_then_stops() {
        let (a, b) = (ConnId::inbound(1), ConnId::inbound(2));
        let mut grown = Grown::default();
        assert!(!grown.after_take(a, BIG, BIG, 0));
        assert!(!grown.after_take(b, BIG, BIG, STREAM_BURST_GAP_NS / 2));
        assert!(grown.due(STREAM_BURST_GAP_NS - 1).is_empty(), "not due yet");
        // At the first sweep only `a`'s burst is a gap old; the sweep after takes `b`.
        assert_eq!(grown.due(STREAM_BURST_GAP_NS), vec![a]);
        assert_eq!(grown.sweep_at(), Some(2 * STREAM_BURST_GAP_NS));
        assert_eq!(grown.due(2 * STREAM_BURST_GAP_NS), vec![b]);
        // Nothing kept: no sweep is due, so an idle process sleeps.
        assert_eq!(grown.sweep_at(), None);
        // `b`, swept, is no longer kept: its next light take frees a grown buffer.
        assert!(grown.after_take(b, 0, BIG, 2 * STREAM_BURST_GAP_NS + 1));
    }
}
