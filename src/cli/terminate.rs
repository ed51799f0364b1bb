//! SIGTERM at a node: it leaves the overlay gracefully, as `exit-overlay` at its console
//! (docs/ARCHITECTURE.md, "Membership that changes"), and exits once the hand-over is done.

use std::net::SocketAddr;

use overlay::limits::TERMINATE_CHECK_NS;
use overlay::machine::{CloseReason, ConnId, Effect, Machine, Nanos};

use super::interrupts::Interrupts;

/// A node machine (or a group of them) that SIGTERM makes leave: the signal is read every
/// [`TERMINATE_CHECK_NS`] (a signal goes to any thread of the process, so it is counted in a
/// socket, as Ctrl-C is at the registry), and each is typed as `exit-overlay` at the console
/// (a leave the registry refused, during a run that cannot do without the node, is asked
/// again by the next SIGTERM). Every other call passes through unchanged.
pub(crate) struct Terminable<M> {
    inner: M,
    signals: Interrupts,
    checked: Nanos,
}

impl<M: Machine> Terminable<M> {
    pub(crate) fn new(inner: M) -> std::io::Result<Terminable<M>> {
        Ok(Terminable {
            inner,
            signals: Interrupts::install(signal_hook::consts::SIGTERM)?,
            checked: 0,
        })
    }
}

impl<M: Machine> Machine for Terminable<M> {
    fn on_start(&mut self, now: Nanos) {
        self.checked = now;
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
    #[inline]
    fn awaits_hand_over(&self) -> bool {
        self.inner.awaits_hand_over()
    }
    fn on_handed_over(&mut self, now: Nanos) {
        self.inner.on_handed_over(now);
    }
    fn on_tick(&mut self, now: Nanos) {
        if now >= self.checked.saturating_add(TERMINATE_CHECK_NS) {
            self.checked = now;
            if self.signals.take() > 0 {
                self.inner.on_command(now, "exit-overlay");
            }
        }
        if self.inner.next_tick().is_some_and(|at| at <= now) {
            self.inner.on_tick(now);
        }
    }
    fn next_tick(&self) -> Option<Nanos> {
        let check = self.checked.saturating_add(TERMINATE_CHECK_NS);
        Some(self.inner.next_tick().map_or(check, |at| at.min(check)))
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
}
