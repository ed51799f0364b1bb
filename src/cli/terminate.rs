//! SIGTERM at a node: it leaves the overlay gracefully, as `exit-overlay` at its console
//! (docs/ARCHITECTURE.md, "Membership that changes"), and exits once the hand-over is done.

use std::net::SocketAddr;

use overlay::machine::{CloseReason, ConnId, Effect, Hole, Lent, Machine, Nanos};

/// The signal a node leaves on (the driver reads it: `DriverConfig::signals`).
pub(crate) const SIGTERM: i32 = signal_hook::consts::SIGTERM;

/// A node machine (or a group of them) that SIGTERM makes leave: the driver reads the signal
/// through its ring (`DriverConfig::signals`, so it wakes the loop only when it comes), and
/// the signals read at once are typed as one `exit-overlay` at the console (a leave the
/// registry refused, during a run that cannot do without the node, is asked again by the next
/// SIGTERM). Every other call passes through unchanged, the defaulted ones too (a default
/// here would hide the node's own: lent receive buffers and held bytes, section 4 of
/// docs/PERFORMANCE.md).
pub(crate) struct Terminable<M> {
    inner: M,
}

impl<M: Machine> Terminable<M> {
    pub(crate) fn new(inner: M) -> Terminable<M> {
        Terminable { inner }
    }
}

impl<M: Machine> Machine for Terminable<M> {
    fn on_start(&mut self, now: Nanos) {
        self.inner.on_start(now);
    }
    fn on_accepted(&mut self, now: Nanos, conn: ConnId, peer: SocketAddr, local: SocketAddr) {
        self.inner.on_accepted(now, conn, peer, local);
    }
    fn on_connected(&mut self, now: Nanos, conn: ConnId) {
        self.inner.on_connected(now, conn);
    }
    #[inline]
    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        self.inner.on_received(now, conn, bytes)
    }
    #[inline]
    fn on_received_in(&mut self, now: Nanos, conn: ConnId, bytes: &[u8], lent: Lent<'_>) -> usize {
        self.inner.on_received_in(now, conn, bytes, lent)
    }
    fn on_closed(&mut self, now: Nanos, conn: ConnId, reason: CloseReason) {
        self.inner.on_closed(now, conn, reason);
    }
    fn on_unsent(&mut self, now: Nanos, conn: ConnId, taken: &[u8], sent: usize) {
        self.inner.on_unsent(now, conn, taken, sent);
    }
    fn on_flushed(&mut self, now: Nanos, conn: ConnId) {
        self.inner.on_flushed(now, conn);
    }
    fn on_command(&mut self, now: Nanos, line: &str) {
        self.inner.on_command(now, line);
    }
    fn on_signal(&mut self, now: Nanos, signal: i32, count: usize) {
        if signal == SIGTERM {
            self.inner.on_command(now, "exit-overlay");
        } else {
            self.inner.on_signal(now, signal, count);
        }
    }
    #[inline]
    fn awaits_hand_over(&self) -> bool {
        self.inner.awaits_hand_over()
    }
    fn on_handed_over(&mut self, now: Nanos) {
        self.inner.on_handed_over(now);
    }
    fn on_tick(&mut self, now: Nanos) {
        self.inner.on_tick(now);
    }
    fn next_tick(&self) -> Option<Nanos> {
        self.inner.next_tick()
    }
    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        self.inner.take_effects(into);
    }
    #[inline]
    fn pending_len(&self, conn: ConnId) -> usize {
        self.inner.pending_len(conn)
    }
    #[inline]
    fn frame_len(&self, bytes: &[u8]) -> Option<usize> {
        self.inner.frame_len(bytes)
    }
    #[inline]
    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        self.inner.swap_outgoing(conn, buf);
    }
    #[inline]
    fn swap_outgoing_held(&mut self, conn: ConnId, buf: &mut Vec<u8>, holes: &mut Vec<Hole>) {
        self.inner.swap_outgoing_held(conn, buf, holes);
    }
}
