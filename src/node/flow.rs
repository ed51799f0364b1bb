//! Flow control: a window per source, opened by cumulative acknowledgements from the sinks.
//!
//! A source may have at most `window_bytes` of data frames originated and not yet acknowledged.
//! Each sink counts the frame bytes it received from each source and acknowledges cumulatively
//! once `ack_every_bytes` have arrived from that source since its last ack. The ack travels the
//! overlay like data. With `ack_every_bytes <= window_bytes / (2 * nodes)`, a source whose
//! packets have all arrived has at least half its window acknowledged, so it can never wait
//! forever (docs/ARCHITECTURE.md has the whole argument, including why relays never stop
//! reading).

use crate::limits::{FRAME_BYTES_MAX, own_queued_bytes_max};

/// The window state of one node, as source and as sink. Indexed by ring position.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    /// 0 = no window (origination is never held back).
    pub window_bytes: u64,
    /// Acknowledge a source after this many new bytes from it.
    pub ack_every_bytes: u64,
    /// Bytes originated and not yet acknowledged.
    pub in_flight_bytes: u64,
    /// Highest cumulative ack seen from each sink.
    acked_by: Vec<u64>,
    /// Bytes received from each source.
    received_from: Vec<u64>,
    /// The last cumulative value acknowledged to each source.
    acknowledged_to: Vec<u64>,
    /// Number of final reports since the manifest: acks carry it, so a late ack from an earlier
    /// run is recognised and ignored.
    pub epoch: u32,
}

impl Flow {
    /// Fresh state for an overlay of `nodes` nodes.
    pub fn new(nodes: usize, window_bytes: u64) -> Flow {
        let ack_every_bytes = if window_bytes == 0 {
            0
        } else {
            (window_bytes / (2 * nodes as u64)).max(1)
        };
        Flow {
            window_bytes,
            ack_every_bytes,
            in_flight_bytes: 0,
            acked_by: vec![0; nodes],
            received_from: vec![0; nodes],
            acknowledged_to: vec![0; nodes],
            epoch: 0,
        }
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

    #[inline]
    pub fn on_originated(&mut self, frame_bytes: usize) {
        self.in_flight_bytes += frame_bytes as u64;
    }

    /// A data frame from the source at `position` arrived here. Returns the cumulative value
    /// to acknowledge now, if it is time.
    #[inline]
    pub fn on_delivered(&mut self, position: usize, frame_bytes: usize) -> Option<u64> {
        if self.window_bytes == 0 {
            return None;
        }
        let received = &mut self.received_from[position];
        *received += frame_bytes as u64;
        let received = *received;
        if received - self.acknowledged_to[position] >= self.ack_every_bytes {
            self.acknowledged_to[position] = received;
            Some(received)
        } else {
            None
        }
    }

    /// An ack from the sink at `position`. Returns false if it belongs to another epoch or
    /// claims more than was sent (it is then ignored).
    pub fn on_ack(&mut self, position: usize, epoch: u32, acked_bytes: u64) -> bool {
        if epoch != self.epoch {
            return false;
        }
        let previous = self.acked_by[position];
        if acked_bytes <= previous {
            return true;
        }
        let newly = acked_bytes - previous;
        if newly > self.in_flight_bytes {
            return false;
        }
        self.acked_by[position] = acked_bytes;
        self.in_flight_bytes -= newly;
        true
    }

    /// After a final report: everything of the run is delivered; start the next epoch.
    pub fn next_epoch(&mut self) {
        self.in_flight_bytes = 0;
        self.acked_by.fill(0);
        self.received_from.fill(0);
        self.acknowledged_to.fill(0);
        self.epoch = self.epoch.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_opens_with_acks_and_ignores_stale_ones() {
        let mut flow = Flow::new(4, 800);
        assert_eq!(flow.ack_every_bytes, 100);
        for _ in 0..8 {
            assert!(flow.may_send());
            flow.on_originated(100);
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
        flow.next_epoch();
        assert_eq!(flow.in_flight_bytes, 0);
        assert!(!flow.on_ack(1, 0, 400));
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
