//! Raw peers: connections owned by the test, to write crafted bytes to any machine and read
//! what arrives.

use std::net::{IpAddr, SocketAddr};

use super::link::{EndState, Owner};
use super::{Sim, Who};
use crate::machine::ConnId;
use crate::wire::{Codec, Control};

/// A connection end owned by the test (see [`Sim::raw_connect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawId(pub(super) usize);

#[derive(Debug)]
pub(super) struct Raw {
    pub(super) end: usize,
    pub(super) received: Vec<u8>,
    pub(super) closed: bool,
}

impl<C: Codec> Sim<C> {
    /// Opens a connection owned by the test, from `from` (a fresh port) to `to`, which must
    /// be running. `to` gets `on_accepted` at once.
    pub fn raw_connect(&mut self, from: IpAddr, to: Who) -> RawId {
        let target = to.index();
        assert!(
            self.slots[target].exit.is_none(),
            "raw_connect to a machine that exited"
        );
        let raw = self.raws.len();
        let port = self.ephemeral_port();
        let inbound = self.slots[target].inbound_id();
        let (raw_end, _) = self.link(
            Owner::Raw(raw),
            ConnId::inbound(raw as u64),
            Owner::Machine(target),
            inbound,
        );
        self.raws.push(Raw {
            end: raw_end,
            received: Vec::new(),
            closed: false,
        });
        let (now, local) = (self.now, self.slots[target].listen);
        self.machine(target)
            .on_accepted(now, inbound, SocketAddr::new(from, port), local);
        self.apply_effects(target);
        RawId(raw)
    }

    /// Writes `bytes` on a raw connection (they arrive in random-sized reads; the capacity
    /// does not apply). Ignored once the connection is closed.
    pub fn raw_send(&mut self, raw: RawId, bytes: &[u8]) {
        let end = self.raws[raw.0].end;
        let peer = self.ends[end].peer;
        if self.ends[end].state == EndState::Open && self.ends[peer].state != EndState::Closed {
            self.ends[peer].inbound.extend(bytes);
            self.mark(peer);
        }
    }

    /// Encodes `message` with the native codec and writes it on a raw connection.
    pub fn raw_send_control(&mut self, raw: RawId, message: &Control) {
        let mut frame = Vec::new();
        C::encode_control(message, &mut frame);
        self.raw_send(raw, &frame);
    }

    /// Bytes that arrived on a raw connection and were not taken yet.
    pub fn raw_received(&self, raw: RawId) -> &[u8] {
        &self.raws[raw.0].received
    }

    /// Decodes and removes every whole control frame that arrived on a raw connection.
    pub fn raw_take_controls(&mut self, raw: RawId) -> Vec<Control> {
        let received = &mut self.raws[raw.0].received;
        let mut out = Vec::new();
        let mut offset = 0;
        while let Ok(Some(len)) = C::frame_len(&received[offset..]) {
            let frame = &received[offset..offset + len];
            out.push(C::decode_control(frame).expect("a control frame on a raw link"));
            offset += len;
        }
        received.drain(..offset);
        out
    }

    /// True once the machine closed the raw connection (and everything it sent arrived).
    pub fn raw_closed(&self, raw: RawId) -> bool {
        self.raws[raw.0].closed
    }

    /// Closes a raw connection: the machine sees the close after what is in transit.
    pub fn raw_close(&mut self, raw: RawId) {
        let end = self.raws[raw.0].end;
        self.raws[raw.0].closed = true;
        self.close_end(end);
    }
}
