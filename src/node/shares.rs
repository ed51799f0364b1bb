//! What a node holds queued for its table entries on behalf of each inbound link (the frames
//! it relays for the link, and the acks it answers the link's packets with), and the bound on
//! it that no honest traffic reaches ([`crate::limits::relay_queued_bytes_max`];
//! docs/ARCHITECTURE.md, "Flow control").
//!
//! A link that alone would have more than the bound queued is not an honest node's: it is cut.
//! Links that together would have more than the bound queued include some that are not, but
//! which cannot be told: the frame that would pass the bound is dropped (and counted), so that
//! the node's memory stays bounded whoever sends.

use crate::machine::{ConnId, ConnMap};

/// What may happen to a frame a link asks this node to queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    Queue,
    /// The links together have the bound queued: the frame is dropped.
    Drop,
    /// The link alone would pass the bound: it is cut.
    Cut,
}

/// One batch of a link's bytes being routed: everything it queues is on the link's behalf,
/// and admitted against the bound once per batch rather than once per frame (issue 16): no
/// frame that fits in `room` can pass the bound, since `total` and the link's share grow by
/// exactly what the batch queues.
#[derive(Debug)]
pub(super) struct Batch {
    /// Bytes queued on behalf of the link when the batch began.
    pub(super) share: usize,
    /// Bytes the batch has queued since (not yet in `Shares::total`).
    pub(super) queued: usize,
    /// What the batch may queue without asking [`Shares::admit`]: the bound less the larger
    /// of the link's share and the total when it began (0 after a drop: then every frame is
    /// asked about).
    pub(super) room: usize,
}

impl Batch {
    /// Whether `bytes` more fit in the batch's room (then no link can pass the bound).
    #[inline(always)]
    pub(super) fn fits(&self, bytes: usize) -> bool {
        self.queued + bytes <= self.room
    }
}

/// Bytes queued on behalf of inbound links, per link and in all.
#[derive(Debug)]
pub(super) struct Shares {
    /// No honest traffic queues more than this (per link, or all links together).
    pub(super) bound: usize,
    /// Bytes queued on behalf of each link that has any (a link cut keeps its share until its
    /// bytes are sent or dropped).
    per_link: ConnMap<usize>,
    /// Their sum.
    pub(super) total: usize,
    /// Links cut for passing the bound alone, since the overlay was set up.
    pub(super) links_cut: u64,
    /// Frames dropped because the links together had the bound queued, since the overlay was
    /// set up.
    pub(super) frames_dropped: u64,
    /// The last frame offered was dropped (a line is printed when dropping starts).
    pub(super) dropping: bool,
}

impl Shares {
    pub(super) fn new(bound: usize) -> Shares {
        Shares {
            bound,
            per_link: ConnMap::default(),
            total: 0,
            links_cut: 0,
            frames_dropped: 0,
            dropping: false,
        }
    }

    /// Bytes queued on behalf of `link`.
    #[inline]
    pub(super) fn of(&self, link: ConnId) -> usize {
        self.per_link.get(&link).copied().unwrap_or(0)
    }

    /// Stores `link`'s share, as the data plane kept it while it read the link's bytes.
    #[inline]
    pub(super) fn set(&mut self, link: ConnId, share: usize) {
        if share == 0 {
            self.per_link.remove(&link);
        } else {
            self.per_link.insert(link, share);
        }
    }

    /// Whether `bytes` more may be queued for a link whose share is `share`, while a batch
    /// being routed has queued `unrecorded` bytes that `total` does not count yet
    /// ([`Batch`]).
    #[inline]
    pub(super) fn admit(&self, share: usize, unrecorded: usize, bytes: usize) -> Admit {
        if share + bytes > self.bound {
            Admit::Cut
        } else if self.total + unrecorded + bytes > self.bound {
            Admit::Drop
        } else {
            Admit::Queue
        }
    }

    /// A batch of `link`'s bytes is about to be routed (the link has `share` queued): what it
    /// may queue without asking [`Shares::admit`] frame by frame.
    #[inline]
    pub(super) fn open_batch(&self, share: usize) -> Batch {
        // After a drop, every frame is asked about until one is queued (the line about
        // dropping is printed once per episode).
        let room = if self.dropping {
            0
        } else {
            self.bound.saturating_sub(share.max(self.total))
        };
        Batch {
            share,
            queued: 0,
            room,
        }
    }

    /// The batch is routed: what it queued is its link's (`link_share`, the share kept
    /// while the data plane read the link's bytes) and counts in `total`.
    #[inline]
    pub(super) fn close_batch(&mut self, batch: Batch, link_share: &mut usize) {
        *link_share = batch.share + batch.queued;
        self.total += batch.queued;
    }

    /// `bytes` queued on behalf of `link` left the queue (taken by the driver, or dropped).
    pub(super) fn release(&mut self, link: ConnId, bytes: usize) {
        self.total -= bytes;
        if let Some(share) = self.per_link.get_mut(&link) {
            *share -= bytes;
            if *share == 0 {
                self.per_link.remove(&link);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_alone_past_the_bound_is_cut_links_together_are_dropped() {
        let (a, b) = (ConnId::inbound(1), ConnId::inbound(2));
        let mut shares = Shares::new(100);
        assert_eq!(shares.admit(0, 0, 100), Admit::Queue);
        assert_eq!(shares.admit(60, 0, 41), Admit::Cut);
        shares.set(a, 60);
        shares.total = 60;
        assert_eq!(shares.admit(0, 0, 40), Admit::Queue);
        assert_eq!(shares.admit(0, 0, 41), Admit::Drop);
        // What a batch queued and has not recorded yet counts toward the total.
        assert_eq!(shares.admit(0, 30, 11), Admit::Drop);
        assert_eq!(shares.admit(0, 30, 10), Admit::Queue);
        shares.release(a, 60);
        assert_eq!((shares.of(a), shares.total), (0, 0));
        // A link no longer open still has its bytes counted until they leave.
        shares.set(b, 10);
        shares.total = 10;
        assert_eq!(shares.admit(0, 0, 91), Admit::Drop);
        shares.release(b, 10);
        assert_eq!(shares.total, 0);
    }

    #[test]
    fn a_batch_fits_only_what_no_frame_by_frame_admission_would_refuse() {
        let mut shares = Shares::new(100);
        shares.total = 30;
        // Room: the bound less the larger of the link's share and the total.
        let mut batch = shares.open_batch(50);
        assert_eq!(batch.room, 50);
        assert!(batch.fits(50) && !batch.fits(51));
        batch.queued = 20;
        assert!(batch.fits(30) && !batch.fits(31));
        // What fits, every frame-by-frame admission queues; the first that does not fit is
        // refused by it.
        for bytes in 0..=40 {
            let queued = shares.admit(batch.share + batch.queued, batch.queued, bytes);
            assert_eq!(batch.fits(bytes), queued == Admit::Queue, "{bytes} bytes");
        }
        let mut share = 0;
        shares.close_batch(batch, &mut share);
        assert_eq!((share, shares.total), (70, 50));
        // After a drop, every frame of the next batch is asked about.
        shares.dropping = true;
        assert_eq!(shares.open_batch(0).room, 0);
        shares.dropping = false;
        shares.total = 120;
        assert_eq!(shares.open_batch(0).room, 0);
    }
}
