//! Connection slots and the buffers the kernel reads from and writes into.
//!
//! # Buffer-lifetime invariant
//!
//! Every operation the driver submits points into memory owned by one [`Connection`] (or by the
//! console reader, under the same rules): a `Recv` into the unused tail of `recv_buffer`, a
//! `Send` from `send_buffer[send_offset..]`, a `SendMsg` from `send_buffer` and the held bytes
//! of `send_held` through `send_iovecs` and `send_message`, a `Connect` from
//! `connect_address`. That memory is on the heap (a `Vec`'s buffer, an `Arc`, a `Box`), so it
//! does not move when the slab moves the `Connection` value. While an operation is in flight:
//! - its buffer is not resized, reallocated, swapped out or dropped: `recv_buffer` keeps its
//!   length from allocation to release, is the driver's alone while a receive writes into it
//!   (the machine can keep parts of it only during `on_received_in`, after the receive
//!   completed, and a buffer it kept parts of is replaced before the next receive), and is
//!   only read by the driver after the receive completed; `send_buffer`, `send_held`,
//!   `send_iovecs` and `send_message` are swapped with the machine, rebuilt or cleared only
//!   while `send_in_flight` is false (a held part stays alive as long as its `Hole`);
//!   `connect_address` is dropped only by the connect completion;
//! - the slot is not removed from the slab: removal happens only in the driver's
//!   `release_if_idle`, which requires [`Connection::ops_in_flight`] to be zero (so a late
//!   completion never lands on a reused slot, and the descriptor is closed only after the
//!   kernel is done with it).
//!
//! Each operation has one flag (`recv_in_flight`, `send_in_flight`, `connect_in_flight`), set
//! when it is submitted (asserted clear) and cleared by [`Connection::completed`] when its
//! completion arrives (asserted set); the count in flight is derived from the flags, so there
//! is no second count to keep in step. At exit the driver shuts every socket down and waits
//! for the count to reach zero; buffers still in use after that wait are leaked, never freed.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{SockAddr, Socket};

use super::ops::OpKind;
use crate::machine::{ConnId, Hole};

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// An outbound connect is in flight.
    Connecting,
    /// Established; receiving and sending.
    Open,
    /// The machine closed it: pending bytes are being sent, then it is shut down.
    Flushing,
    /// Shut down; the slot is released when its last operation completes.
    Closed,
}

/// One connection slot in the driver's slab.
pub(crate) struct Connection {
    pub socket: Socket,
    pub conn: ConnId,
    /// Matches completions to this use of the slot (see `ops`).
    pub generation: u32,
    /// The peer, for log lines.
    pub peer: SocketAddr,
    pub state: State,
    /// True once the TCP connection is established (accepted, or connect completed).
    pub connected: bool,
    /// Fixed-length receive window; `recv_filled` bytes at its front are data. Lent to the
    /// machine with each receive's bytes (`Machine::on_received_in`). Empty when receives go to
    /// the shared ring.
    pub recv_buffer: Arc<[u8]>,
    pub recv_filled: usize,
    /// With the shared ring: the partial frame the last receive ended with.
    pub partial: Vec<u8>,
    /// The bytes being sent (taken from the machine with `swap_outgoing_held`), with the held
    /// bytes of `send_held` among them (`send_held_bytes` in all); sent up to `send_offset`
    /// (counted over both).
    pub send_buffer: Vec<u8>,
    pub send_held: Vec<Hole>,
    pub send_held_bytes: usize,
    pub send_offset: usize,
    /// The pieces of a gathered send in flight, and its message (pointing to them).
    pub send_iovecs: Vec<libc::iovec>,
    pub send_message: Box<libc::msghdr>,
    /// The address a connect in flight reads.
    pub connect_address: Option<Box<SockAddr>>,
    pub recv_in_flight: bool,
    pub send_in_flight: bool,
    /// Queued in the driver's `sends_wanted`, since `send_wanted_at`.
    pub send_wanted: bool,
    pub send_wanted_at: crate::machine::Nanos,
    pub connect_in_flight: bool,
}

impl Connection {
    /// Bytes taken from the machine for sending, held ones included.
    pub fn send_len(&self) -> usize {
        self.send_buffer.len() + self.send_held_bytes
    }

    /// Operations submitted on this slot whose completion has not arrived.
    pub fn ops_in_flight(&self) -> usize {
        usize::from(self.recv_in_flight)
            + usize::from(self.send_in_flight)
            + usize::from(self.connect_in_flight)
    }

    /// The completion of this slot's operation of `kind` arrived.
    pub fn completed(&mut self, kind: OpKind) {
        let in_flight = match kind {
            OpKind::Recv => &mut self.recv_in_flight,
            OpKind::Send => &mut self.send_in_flight,
            OpKind::Connect => &mut self.connect_in_flight,
            OpKind::Accept | OpKind::Console | OpKind::Signal | OpKind::Cancel => {
                unreachable!("{kind:?} belongs to no connection slot")
            }
        };
        assert!(
            std::mem::replace(in_flight, false),
            "a {kind:?} completion arrived with no {kind:?} in flight"
        );
    }
}
