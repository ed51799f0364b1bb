//! The data-plane tap: watches every whole frame a node consumes, counts data and ack
//! transmissions, and records each packet's arrival at its sink with the relays its header
//! says it passed, independently of the nodes' own counters.

use super::Sim;
use crate::wire::{Codec, NodeId, Peek};

/// One data packet's arrival at its sink, as the frame's header showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub source: NodeId,
    pub sink: NodeId,
    /// Relays the frame's header says it passed (its hop count).
    pub relays: u8,
}

impl<C: Codec> Sim<C> {
    /// Data frames received by any node so far (every hop of every packet).
    pub fn data_transmissions(&self) -> u64 {
        self.data_transmissions
    }

    /// Ack frames received by any node so far.
    pub fn ack_transmissions(&self) -> u64 {
        self.ack_transmissions
    }

    /// Every data packet's arrival at its sink so far.
    pub fn arrivals(&self) -> &[Arrival] {
        &self.arrivals
    }

    /// Forgets the tap's records (between runs).
    pub fn clear_tap(&mut self) {
        self.data_transmissions = 0;
        self.ack_transmissions = 0;
        self.arrivals.clear();
    }

    /// Watches the whole frames node `i` consumed.
    pub(super) fn tap(&mut self, i: usize, bytes: &[u8]) {
        let Some(me) = self.nodes[i].id() else {
            return;
        };
        let mut offset = 0;
        while let Ok(Some(len)) = C::frame_len(&bytes[offset..]) {
            let frame = &bytes[offset..offset + len];
            offset += len;
            match C::peek(frame) {
                Ok(Peek::Data(data)) => {
                    self.data_transmissions += 1;
                    if data.sink() == me {
                        self.arrivals.push(Arrival {
                            source: data.source(),
                            sink: me,
                            relays: u8::try_from(data.relays()).unwrap_or(u8::MAX),
                        });
                    }
                }
                Ok(Peek::Keyed(_)) => self.data_transmissions += 1,
                Ok(Peek::Lookup(_) | Peek::LookupReply(_)) => {}
                Ok(Peek::Ack(_)) => self.ack_transmissions += 1,
                _ => {}
            }
        }
    }
}
