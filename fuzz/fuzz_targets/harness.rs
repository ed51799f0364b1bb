//! Shared by the stream targets: a minimal driver that feeds a protocol state machine the way
//! the io_uring driver does (unconsumed tails kept per connection, effects collected, pending
//! bytes swapped out), and checks that every byte the machine sends is a sequence of whole
//! frames its own codec accepts.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use overlay::limits::RECV_BUFFER_BYTES;
use overlay::machine::{CloseReason, ConnId, Effect, Machine, Nanos};
use overlay::wire::native::{
    DATA_HEADER_BYTES, DataHeader, Native, PREFIX_BYTES, kind, slot_bytes_of,
};
use overlay::wire::{Codec, Control, Peek};

/// Rewrites the CRC32 field of every whole data frame in `bytes` whose trace slots lie within
/// it, so that the fuzzer's frames get past the CRC check to the trace and counter logic
/// behind it (this replaces a `cfg(fuzzing)` switch in the product).
pub fn fix_crcs(bytes: &mut [u8]) {
    const SLOTS_AT: usize = std::mem::offset_of!(DataHeader, trace_slots);
    const CRC32_AT: usize = std::mem::offset_of!(DataHeader, crc32);
    const FLAGS_AT: usize = std::mem::offset_of!(DataHeader, flags);
    let mut offset = 0;
    while let Ok(Some(len)) = Native::frame_len(&bytes[offset..]) {
        let frame = &mut bytes[offset..offset + len];
        if frame[PREFIX_BYTES] == kind::DATA && frame.len() >= DATA_HEADER_BYTES {
            // The payload is the rest of the frame after the trace (its slots as wide as
            // the flags say; none if they name no width).
            let width = slot_bytes_of(frame[FLAGS_AT]);
            let payload_start = DATA_HEADER_BYTES + width * usize::from(frame[SLOTS_AT]);
            if width != 0 && payload_start <= frame.len() {
                let crc = crc32fast::hash(&frame[payload_start..]);
                frame[CRC32_AT..CRC32_AT + 4].copy_from_slice(&crc.to_le_bytes());
            }
        }
        offset += len;
    }
}

/// Every byte a machine sends must be whole frames that the codec accepts: the product never
/// emits what its own peers would refuse. The one exception is the farewell a registry says
/// in the other wire format to a peer that spoke it (`Codec::farewell_to_the_other_format`),
/// byte for byte.
pub fn check_outgoing(bytes: &[u8], mut seen: impl FnMut(Control)) {
    let farewell = Native::farewell_to_the_other_format();
    let mut offset = 0;
    while offset < bytes.len() {
        if bytes[offset..].starts_with(&farewell) {
            offset += farewell.len();
            continue;
        }
        let len = Native::frame_len(&bytes[offset..])
            .expect("outgoing frame length is valid")
            .expect("outgoing bytes are whole frames");
        let frame = &bytes[offset..offset + len];
        match Native::peek(frame).expect("outgoing frame passes peek") {
            Peek::Control => {
                seen(Native::decode_control(frame).expect("outgoing control message decodes"));
            }
            Peek::Data(_)
            | Peek::Keyed(_)
            | Peek::Lookup(_)
            | Peek::LookupReply(_)
            | Peek::Ack(_) => {}
        }
        offset += len;
    }
}

/// Where the machine under test listens: its end of every connection it accepts.
pub const LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    40_000,
));

/// A machine and what a driver would keep about it.
pub struct Driver<M: Machine> {
    pub machine: M,
    pub now: Nanos,
    /// Connections in the order they appeared; closed ones stay (feeding them is a no-op).
    pub conns: Vec<ConnId>,
    unconsumed: HashMap<ConnId, Vec<u8>>,
    closed: HashMap<ConnId, bool>,
    pub exited: Option<i32>,
    /// Connections the machine asked for, answered with `on_connected` at the next `settle`.
    pub connects: Vec<(ConnId, SocketAddr)>,
    effects: Vec<Effect>,
    next_inbound: u64,
    out: Vec<u8>,
    /// Control messages the machine sent, while `record` is set.
    pub record: bool,
    pub outbox: Vec<(ConnId, Control)>,
    /// Rewrites input before the machine sees it (to step around a known bug).
    pub filter: Option<fn(&mut [u8])>,
}

impl<M: Machine> Driver<M> {
    pub fn new(machine: M) -> Driver<M> {
        let mut driver = Driver {
            machine,
            now: 1,
            conns: Vec::new(),
            unconsumed: HashMap::new(),
            closed: HashMap::new(),
            exited: None,
            connects: Vec::new(),
            effects: Vec::new(),
            next_inbound: 1,
            out: Vec::new(),
            record: false,
            outbox: Vec::new(),
            filter: None,
        };
        driver.machine.on_start(driver.now);
        driver.settle(true);
        driver
    }

    /// Carries out the machine's effects; new outbound connections succeed if `connect`.
    /// Outgoing bytes are checked and discarded (a peer that reads everything at once).
    pub fn settle(&mut self, connect: bool) {
        for _ in 0..64 {
            self.machine.take_effects(&mut self.effects);
            if self.effects.is_empty() {
                return;
            }
            let effects = std::mem::take(&mut self.effects);
            for effect in effects {
                match effect {
                    Effect::Connect { conn, addr, .. } => {
                        self.conns.push(conn);
                        self.connects.push((conn, addr));
                    }
                    Effect::Send(conn) | Effect::Close(conn) => {
                        let closing = matches!(effect, Effect::Close(_));
                        self.out.clear();
                        self.machine.swap_outgoing(conn, &mut self.out);
                        let (record, outbox) = (self.record, &mut self.outbox);
                        check_outgoing(&self.out, |message| {
                            if record {
                                outbox.push((conn, message));
                            }
                        });
                        self.out.clear();
                        if closing {
                            self.closed.insert(conn, true);
                        }
                    }
                    Effect::Exit(code) => self.exited = Some(code),
                    // Printing and whatever else a machine may ask for touch no connection.
                    _ => {}
                }
            }
            if connect {
                for (conn, _) in std::mem::take(&mut self.connects) {
                    if !self.is_closed(conn) {
                        self.machine.on_connected(self.now, conn);
                    }
                }
            }
        }
    }

    pub fn is_closed(&self, conn: ConnId) -> bool {
        self.closed.contains_key(&conn)
    }

    /// A peer connects to the machine's listener (at [`LISTEN`]).
    pub fn accept(&mut self, peer: SocketAddr) -> ConnId {
        let conn = ConnId::inbound(self.next_inbound);
        self.next_inbound += 1;
        self.conns.push(conn);
        self.machine.on_accepted(self.now, conn, peer, LISTEN);
        self.settle(true);
        conn
    }

    /// Bytes arrive on `conn`, behind whatever it did not consume last time.
    pub fn feed(&mut self, conn: ConnId, bytes: &[u8]) {
        if self.is_closed(conn) || self.exited.is_some() {
            return;
        }
        self.now = self.now.saturating_add(1_000);
        let mut buffer = self.unconsumed.remove(&conn).unwrap_or_default();
        let room = RECV_BUFFER_BYTES.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if let Some(filter) = self.filter {
            filter(&mut buffer);
        }
        let consumed = self
            .machine
            .on_received(self.now, conn, &buffer)
            .min(buffer.len());
        buffer.drain(..consumed);
        if buffer.len() >= RECV_BUFFER_BYTES {
            // The driver closes a connection whose buffer fills without a whole frame.
            self.close(conn, CloseReason::FrameTooLarge);
            return;
        }
        self.unconsumed.insert(conn, buffer);
        self.settle(true);
    }

    /// The peer closes `conn` (or it fails).
    pub fn close(&mut self, conn: ConnId, reason: CloseReason) {
        if self.is_closed(conn) || self.exited.is_some() {
            return;
        }
        self.closed.insert(conn, true);
        self.machine.on_closed(self.now, conn, reason);
        self.settle(true);
    }

    pub fn command(&mut self, line: &str) {
        if self.exited.is_some() {
            return;
        }
        self.machine.on_command(self.now, line);
        self.settle(true);
    }

    /// Advances time by `nanos` and runs the ticks that are due (at most `max` of them). A
    /// machine waiting to hear that what it sent is in the kernel hears it first, as from the
    /// driver's next turn: `settle` took every byte, and the advance is a pause of any length
    /// between its decision and that turn.
    pub fn tick(&mut self, nanos: u64, max: usize) {
        self.now = self.now.saturating_add(nanos);
        if self.machine.awaits_hand_over() {
            self.machine.on_handed_over(self.now);
            self.settle(true);
        }
        for _ in 0..max {
            if self.exited.is_some() {
                return;
            }
            match self.machine.next_tick() {
                Some(at) if at <= self.now => {
                    self.machine.on_tick(self.now);
                    self.settle(true);
                }
                _ => return,
            }
        }
    }
}

/// Plays `data` as a script of operations against `driver`: each operation is an op byte, a
/// length byte and that many bytes. `extra_conn` lets the target open a new connection.
pub fn play<M: Machine>(
    driver: &mut Driver<M>,
    data: &[u8],
    mut accept: impl FnMut(&mut Driver<M>, u8),
) {
    let mut rest = data;
    let mut scratch = Vec::new();
    while let [op, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        let pick = |d: &Driver<M>| {
            d.conns
                .get(usize::from(*op >> 3) % d.conns.len().max(1))
                .copied()
        };
        match op & 7 {
            0..=2 => {
                if let Some(conn) = pick(driver) {
                    driver.feed(conn, chunk);
                }
            }
            3 => {
                if let Some(conn) = pick(driver) {
                    driver.close(conn, CloseReason::PeerClosed);
                }
            }
            4 => {
                let nanos = chunk.iter().fold(0u64, |acc, b| {
                    acc.wrapping_mul(256).wrapping_add(u64::from(*b))
                });
                // At most ~4.6 s per operation: a real monotonic clock never nears u64::MAX
                // (an unbounded advance made `now + stall_timeout` overflow in the registry,
                // which no real clock can reach).
                driver.tick(nanos & ((1 << 32) - 1), 16);
            }
            5 => driver.command(&String::from_utf8_lossy(chunk)),
            6 => {
                if let Some(conn) = pick(driver) {
                    scratch.clear();
                    scratch.extend_from_slice(chunk);
                    fix_crcs(&mut scratch);
                    driver.feed(conn, &scratch);
                }
            }
            _ => accept(driver, *op >> 3),
        }
        if driver.exited.is_some() {
            return;
        }
    }
}
