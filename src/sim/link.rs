//! The link model: the two ends of each simulated TCP connection, connection attempts, bytes in
//! transit (bounded by `SimConfig::capacity_bytes`), short sends, random-sized receives into a
//! `RECV_BUFFER_BYTES` buffer, and closes seen after what is in transit.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rand::Rng;

use super::Sim;
use crate::limits::RECV_BUFFER_BYTES;
use crate::machine::{CloseReason, ConnId, LinkError};
use crate::wire::Codec;

/// First ephemeral port given to the connecting side of a connection.
pub(super) const EPHEMERAL_PORT_FIRST: u16 = 40_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    Machine(usize),
    Raw(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EndState {
    Open,
    /// The owner asked to close: send what is pending, then close. Nothing more is read.
    Flushing,
    Closed,
}

/// One end of a simulated TCP connection.
#[derive(Debug)]
pub(super) struct End {
    pub(super) owner: Owner,
    /// The owner's name for the connection.
    pub(super) conn: ConnId,
    /// The other end (index into `Sim::ends`).
    pub(super) peer: usize,
    pub(super) state: EndState,
    /// The owner said `Send`, or a send completed: swap its pending bytes out next.
    pub(super) need_swap: bool,
    /// The send in flight: bytes taken from the owner, `send_offset` of them moved already.
    pub(super) send_buffer: Vec<u8>,
    pub(super) send_offset: usize,
    /// Bytes in transit towards this end (sent by the peer, not yet received here).
    pub(super) inbound: VecDeque<u8>,
    /// Bytes received but not consumed by the owner (the driver's receive buffer).
    pub(super) unconsumed: Vec<u8>,
    /// The peer closed: once `inbound` is empty the owner learns it.
    pub(super) eof: bool,
    /// Held by the test ([`Sim::hold`]): nothing in transit is received here until released,
    /// as if the bytes were delayed on the network.
    pub(super) held: bool,
}

#[derive(Debug)]
pub(super) struct PendingConnect {
    pub(super) machine: usize,
    pub(super) conn: ConnId,
    pub(super) addr: SocketAddr,
}

impl<C: Codec> Sim<C> {
    pub(super) fn ephemeral_port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port == u16::MAX {
            EPHEMERAL_PORT_FIRST
        } else {
            port + 1
        };
        port
    }

    /// Creates the two ends of a connection; returns their indices.
    pub(super) fn link(
        &mut self,
        a: Owner,
        a_conn: ConnId,
        b: Owner,
        b_conn: ConnId,
    ) -> (usize, usize) {
        let first = self.ends.len();
        for (owner, conn, peer) in [(a, a_conn, first + 1), (b, b_conn, first)] {
            if let Owner::Machine(m) = owner {
                self.slots[m].conns.insert(conn, self.ends.len());
            }
            self.busy.push(self.ends.len());
            self.marked.push(true);
            self.ends.push(End {
                owner,
                conn,
                peer,
                state: EndState::Open,
                // One swap at the start picks up anything queued before the connection was up.
                need_swap: true,
                send_buffer: Vec::new(),
                send_offset: 0,
                inbound: VecDeque::new(),
                unconsumed: Vec::new(),
                eof: false,
                held: false,
            });
        }
        (first, first + 1)
    }

    /// Closes end `e` for good; its peer sees the close once it has received what is in
    /// transit.
    pub(super) fn close_end(&mut self, e: usize) {
        let end = &mut self.ends[e];
        if end.state == EndState::Closed {
            return;
        }
        end.state = EndState::Closed;
        end.inbound.clear();
        end.unconsumed.clear();
        end.send_buffer.clear();
        end.send_offset = 0;
        let (owner, conn, peer) = (end.owner, end.conn, end.peer);
        if let Owner::Machine(m) = owner {
            self.slots[m].conns.remove(&conn);
        }
        if self.ends[peer].state != EndState::Closed {
            self.ends[peer].eof = true;
            self.mark(peer);
        }
    }

    /// Notes that end `e` may have something to do.
    pub(super) fn mark(&mut self, e: usize) {
        if !self.marked[e] {
            self.marked[e] = true;
            self.busy.push(e);
        }
    }

    /// True while end `e` has work, whether or not it can do it now.
    pub(super) fn has_work(&self, e: usize) -> bool {
        let end = &self.ends[e];
        end.state != EndState::Closed
            && (!end.inbound.is_empty()
                || end.eof
                || end.need_swap
                || end.send_offset < end.send_buffer.len()
                || end.state == EndState::Flushing)
    }

    /// Machine `m` is gone: close all its connections and forget its connection attempts.
    pub(super) fn disconnect(&mut self, m: usize) {
        let ends: Vec<usize> = self.slots[m].conns.values().copied().collect();
        for e in ends {
            self.close_end(e);
        }
        self.connects.retain(|c| c.machine != m);
    }

    /// Free room on the link into end `into`.
    pub(super) fn room(&self, into: usize) -> usize {
        let end = &self.ends[into];
        if end.state == EndState::Closed {
            return usize::MAX;
        }
        self.capacity_bytes
            .map_or(usize::MAX, |c| c.saturating_sub(end.inbound.len()))
    }

    pub(super) fn pump_ready(&self, e: usize) -> bool {
        let end = &self.ends[e];
        if end.state == EndState::Closed {
            return false;
        }
        let room = self.room(end.peer);
        if end.send_offset < end.send_buffer.len() || end.need_swap {
            room > 0
        } else {
            end.state == EndState::Flushing
        }
    }

    pub(super) fn do_connect(&mut self, index: usize) {
        let PendingConnect {
            machine: m,
            conn,
            addr,
        } = self.connects.remove(index);
        let now = self.now;
        let target = self
            .listeners
            .get(&addr)
            .copied()
            .filter(|&t| self.slots[t].exit.is_none());
        let Some(t) = target else {
            let reason = CloseReason::ConnectFailed {
                addr,
                error: LinkError::Refused,
            };
            self.machine(m).on_closed(now, conn, reason);
            self.apply_effects(m);
            return;
        };
        let port = self.ephemeral_port();
        let peer_addr = SocketAddr::new(self.slots[m].listen.ip(), port);
        let inbound = self.slots[t].inbound_id();
        let (connector_end, _) = self.link(Owner::Machine(m), conn, Owner::Machine(t), inbound);
        let local = self.slots[t].listen;
        self.machine(t).on_accepted(now, inbound, peer_addr, local);
        self.apply_effects(t);
        if self.slots[m].exit.is_none() && self.ends[connector_end].state != EndState::Closed {
            self.machine(m).on_connected(now, conn);
            self.apply_effects(m);
        }
    }

    pub(super) fn do_deliver(&mut self, e: usize) {
        let now = self.now;
        let (owner, conn) = (self.ends[e].owner, self.ends[e].conn);
        if self.ends[e].inbound.is_empty() {
            debug_assert!(self.ends[e].eof);
            self.close_end(e);
            match owner {
                Owner::Machine(m) => {
                    self.machine(m)
                        .on_closed(now, conn, CloseReason::PeerClosed);
                    self.apply_effects(m);
                }
                Owner::Raw(r) => self.raws[r].closed = true,
            }
            return;
        }
        let m = match owner {
            Owner::Machine(m) => m,
            Owner::Raw(r) => {
                let bytes: Vec<u8> = self.ends[e].inbound.drain(..).collect();
                self.raws[r].received.extend(bytes);
                return;
            }
        };
        let end = &mut self.ends[e];
        let space = RECV_BUFFER_BYTES - end.unconsumed.len();
        let most = end.inbound.len().min(space);
        let count = self.rng.random_range(1..=most);
        let mut buffer = std::mem::take(&mut end.unconsumed);
        buffer.extend(end.inbound.drain(..count));
        let consumed = self
            .machine(m)
            .on_received(now, conn, &buffer)
            .min(buffer.len());
        if m > 0 {
            self.tap(m - 1, &buffer[..consumed]);
        }
        self.apply_effects(m);
        if self.ends[e].state != EndState::Open {
            return;
        }
        buffer.drain(..consumed);
        if buffer.len() == RECV_BUFFER_BYTES {
            // The driver's rule: a frame that cannot fit the receive buffer fails the link.
            self.close_end(e);
            self.machine(m)
                .on_closed(now, conn, CloseReason::FrameTooLarge);
            self.apply_effects(m);
            return;
        }
        self.ends[e].unconsumed = buffer;
    }

    pub(super) fn do_pump(&mut self, e: usize) {
        let peer = self.ends[e].peer;
        let room = self.room(peer);
        let end = &mut self.ends[e];
        if end.send_offset == end.send_buffer.len() {
            if end.need_swap {
                end.need_swap = false;
                let mut buffer = std::mem::take(&mut end.send_buffer);
                buffer.clear();
                end.send_offset = 0;
                let (owner, conn) = (end.owner, end.conn);
                let Owner::Machine(m) = owner else {
                    unreachable!("raw ends send directly");
                };
                self.machine(m).swap_outgoing(conn, &mut buffer);
                self.ends[e].send_buffer = buffer;
            }
            if self.ends[e].send_buffer.is_empty() {
                if self.ends[e].state == EndState::Flushing {
                    self.close_end(e);
                    if let Owner::Machine(m) = self.ends[e].owner
                        && self.slots[m].exit.is_none()
                    {
                        let (now, conn) = (self.now, self.ends[e].conn);
                        self.machine(m).on_flushed(now, conn);
                        self.apply_effects(m);
                    }
                }
                return;
            }
        }
        let end = &mut self.ends[e];
        let count = (end.send_buffer.len() - end.send_offset).min(room);
        end.send_offset += count;
        if end.send_offset == end.send_buffer.len() {
            // The send completed: the driver takes whatever is pending next.
            end.need_swap = true;
        }
        if self.ends[peer].state != EndState::Closed {
            let (sender, receiver) = pair_mut(&mut self.ends, e, peer);
            let start = sender.send_offset - count;
            receiver
                .inbound
                .extend(&sender.send_buffer[start..sender.send_offset]);
            self.in_transit_max = self.in_transit_max.max(receiver.inbound.len());
            self.mark(peer);
        }
    }
}

/// Two distinct elements of `ends`, mutably.
fn pair_mut(ends: &mut [End], a: usize, b: usize) -> (&mut End, &mut End) {
    assert_ne!(a, b);
    if a < b {
        let (low, high) = ends.split_at_mut(b);
        (&mut low[a], &mut high[0])
    } else {
        let (low, high) = ends.split_at_mut(a);
        (&mut high[0], &mut low[b])
    }
}
