//! The contract between a protocol state machine (registry or node) and whatever drives it.
//!
//! A machine does no I/O and reads no clock: the driver (the io_uring loop in `crate::io`, or
//! the in-memory simulator in `crate::sim`) calls the `on_*` methods with events and the
//! current time, then collects the machine's [`Effect`]s and carries them out.
//!
//! Outgoing bytes never pass through an effect: the machine appends frames to a pending buffer
//! per connection, says [`Effect::Send`] when that buffer goes from empty to non-empty, and the
//! driver swaps the pending buffer out with [`Machine::swap_outgoing`] whenever it has no send
//! in flight on that connection. No byte is copied between the two.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC: shared by every process on one machine).
pub type Nanos = u64;

/// A connection, named once and never reused.
///
/// The driver names connections it accepts (top bit clear); a machine names the connections it
/// asks for with [`Effect::Connect`] (top bit set, see [`ConnIds`]), so both can pick an
/// identifier without asking the other. Bits 48..63 name a *group*: the listener a connection
/// was accepted on (its index in the driver's list), or for a machine that hosts several
/// nodes (`node::Group`) the node a connection belongs to; a single machine leaves them zero.
/// The low 48 bits are a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    const OUTBOUND: u64 = 1 << 63;
    const GROUP_SHIFT: u32 = 48;
    const SEQUENCE_MASK: u64 = (1 << Self::GROUP_SHIFT) - 1;
    /// Groups a connection identifier can name (15 bits).
    pub const GROUPS_MAX: usize = 1 << (63 - Self::GROUP_SHIFT);

    /// An identifier for a connection the driver accepted.
    pub fn inbound(sequence: u64) -> ConnId {
        assert!(
            sequence & !Self::SEQUENCE_MASK == 0,
            "inbound connection sequence overflow"
        );
        ConnId(sequence)
    }

    /// True for connections a machine opened.
    pub fn is_outbound(self) -> bool {
        self.0 & Self::OUTBOUND != 0
    }

    /// The group this identifier names (0 unless set with [`ConnId::in_group`]).
    pub fn group(self) -> usize {
        ((self.0 & !Self::OUTBOUND) >> Self::GROUP_SHIFT) as usize
    }

    /// The same connection named within `group` (whose bits must be clear).
    pub fn in_group(self, group: usize) -> ConnId {
        assert!(group < Self::GROUPS_MAX, "group {group} out of range");
        assert_eq!(self.group(), 0, "{self:?} already names a group");
        ConnId(self.0 | (group as u64) << Self::GROUP_SHIFT)
    }

    /// The same connection without its group.
    pub fn ungrouped(self) -> ConnId {
        ConnId(self.0 & (Self::OUTBOUND | Self::SEQUENCE_MASK))
    }
}

/// A map keyed by connection. Its keys are identifiers this process hands out itself (a
/// sequence, never a peer's choice), so a fast unkeyed hash (FxHash) is safe where the default
/// SipHash cost 2-5% of the samples of a process of many nodes (docs/PERFORMANCE.md, "Trunks'
/// credit").
pub type ConnMap<V> = rustc_hash::FxHashMap<ConnId, V>;

/// Hands out identifiers for connections a machine opens.
#[derive(Debug, Default)]
pub struct ConnIds {
    next: u64,
}

impl ConnIds {
    pub fn next_outbound(&mut self) -> ConnId {
        self.next += 1;
        assert!(
            self.next & !ConnId::SEQUENCE_MASK == 0,
            "outbound connection sequence overflow"
        );
        ConnId(ConnId::OUTBOUND | self.next)
    }
}

/// Why a connection ended without the machine asking for it: what `on_closed` is told.
///
/// Only peer and network outcomes reach a machine; a failure only a bug of ours can cause
/// stops the driver instead. `Display` is the text for the operator's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its end: a receive found the end of the stream.
    PeerClosed,
    /// The connect asked for with [`Effect::Connect`] failed.
    ConnectFailed { addr: SocketAddr, error: LinkError },
    /// No connect was tried: the driver already holds as many connections as it may.
    ConnectionLimit { addr: SocketAddr, limit: usize },
    /// A receive failed.
    ReceiveFailed(LinkError),
    /// A send failed.
    SendFailed(LinkError),
    /// The receive buffer filled without holding one whole frame.
    FrameTooLarge,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::ConnectFailed { addr, error } => {
                write!(f, "connect to {addr} failed: {error}")
            }
            CloseReason::ConnectionLimit { addr, limit } => {
                write!(
                    f,
                    "connect to {addr} failed: connection limit ({limit}) reached"
                )
            }
            CloseReason::ReceiveFailed(error) => write!(f, "receive failed: {error}"),
            CloseReason::SendFailed(error) => write!(f, "send failed: {error}"),
            CloseReason::FrameTooLarge => f.write_str("frame larger than the receive buffer"),
        }
    }
}

/// A peer or network outcome that ends a connection: what a failed socket operation meant.
///
/// `Display` is the system's text with its number (`Connection refused (os error 111)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The peer reset the connection (ECONNRESET).
    Reset,
    /// The peer is gone: a send after the connection broke (EPIPE).
    BrokenPipe,
    /// The peer's kernel answered nothing (data unacknowledged, zero-window or keepalive
    /// probes unanswered) for about the link timeout (ETIMEDOUT); a peer that answers but
    /// does not read is never timed out.
    TimedOut,
    /// Nothing listens at the address (ECONNREFUSED).
    Refused,
    /// The connection was aborted locally, e.g. before it was accepted (ECONNABORTED).
    Aborted,
    /// No route to the host (EHOSTUNREACH).
    HostUnreachable,
    /// No route to the network (ENETUNREACH).
    NetworkUnreachable,
    /// The local network is down (ENETDOWN).
    NetworkDown,
    /// The socket is not, or no longer, connected (ENOTCONN).
    NotConnected,
    /// A packet filter refused the operation (EPERM).
    NotPermitted,
    /// The local address cannot be used: not this host's, or no free port (EADDRNOTAVAIL).
    AddressUnavailable,
    /// The local address is taken (EADDRINUSE).
    AddressInUse,
    /// The process has as many descriptors open as it may (EMFILE).
    TooManyFiles,
    /// The system has as many files open as it may (ENFILE).
    SystemTooManyFiles,
    /// The kernel has no buffer space left (ENOBUFS).
    NoBuffers,
    /// The kernel is out of memory (ENOMEM).
    OutOfMemory,
    /// Any other errno: not a known bug of ours, not a known network outcome either.
    Unexpected { errno: i32 },
}

impl LinkError {
    /// The errno this outcome stands for.
    pub fn errno(self) -> i32 {
        match self {
            LinkError::Reset => libc::ECONNRESET,
            LinkError::BrokenPipe => libc::EPIPE,
            LinkError::TimedOut => libc::ETIMEDOUT,
            LinkError::Refused => libc::ECONNREFUSED,
            LinkError::Aborted => libc::ECONNABORTED,
            LinkError::HostUnreachable => libc::EHOSTUNREACH,
            LinkError::NetworkUnreachable => libc::ENETUNREACH,
            LinkError::NetworkDown => libc::ENETDOWN,
            LinkError::NotConnected => libc::ENOTCONN,
            LinkError::NotPermitted => libc::EPERM,
            LinkError::AddressUnavailable => libc::EADDRNOTAVAIL,
            LinkError::AddressInUse => libc::EADDRINUSE,
            LinkError::TooManyFiles => libc::EMFILE,
            LinkError::SystemTooManyFiles => libc::ENFILE,
            LinkError::NoBuffers => libc::ENOBUFS,
            LinkError::OutOfMemory => libc::ENOMEM,
            LinkError::Unexpected { errno } => errno,
        }
    }

    /// The outcome `errno` names (`Unexpected` for one without a name here).
    pub fn from_errno(errno: i32) -> LinkError {
        match errno {
            libc::ECONNRESET => LinkError::Reset,
            libc::EPIPE => LinkError::BrokenPipe,
            libc::ETIMEDOUT => LinkError::TimedOut,
            libc::ECONNREFUSED => LinkError::Refused,
            libc::ECONNABORTED => LinkError::Aborted,
            libc::EHOSTUNREACH => LinkError::HostUnreachable,
            libc::ENETUNREACH => LinkError::NetworkUnreachable,
            libc::ENETDOWN => LinkError::NetworkDown,
            libc::ENOTCONN => LinkError::NotConnected,
            libc::EPERM => LinkError::NotPermitted,
            libc::EADDRNOTAVAIL => LinkError::AddressUnavailable,
            libc::EADDRINUSE => LinkError::AddressInUse,
            libc::EMFILE => LinkError::TooManyFiles,
            libc::ENFILE => LinkError::SystemTooManyFiles,
            libc::ENOBUFS => LinkError::NoBuffers,
            libc::ENOMEM => LinkError::OutOfMemory,
            errno => LinkError::Unexpected { errno },
        }
    }
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::io::Error::from_raw_os_error(self.errno()).fmt(f)
    }
}

/// What a machine asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Open a TCP connection to `addr` (from the driver's configured local address, if any).
    /// The driver answers with `on_connected`, or with `on_closed` if it fails. Every
    /// connection is closed (`TimedOut`) once its peer's kernel has answered nothing for
    /// about the link timeout while data waits for it
    /// ([`LINK_TIMEOUT_SECS`](crate::limits::LINK_TIMEOUT_SECS)), and never while it answers,
    /// however long the peer does not read; with `keepalive`, also once it stays silent and
    /// its keepalive probes go unanswered: a peer that vanished is noticed while nothing is
    /// sent. Only a node's registry connection asks for probes
    /// ([`KEEPALIVE_CONNECTIONS_PER_NODE`](crate::limits::KEEPALIVE_CONNECTIONS_PER_NODE)).
    Connect {
        conn: ConnId,
        addr: SocketAddr,
        keepalive: bool,
    },
    /// `conn` has bytes pending: the driver takes them with `swap_outgoing` as soon as it has
    /// no send in flight on that connection.
    Send(ConnId),
    /// Send whatever is pending on `conn`, then close it. No `on_closed` follows. The flush
    /// ends within the link timeout even if the peer never reads (the driver sets
    /// `TCP_USER_TIMEOUT` on a connection it closes): a peer cut for not reading its answers
    /// cannot hold the connection open by keeping its window closed.
    Close(ConnId),
    /// A line for the operator (standard output).
    Print(String),
    /// Write `contents` to the file at `path` (created or replaced), for the operator (e.g.
    /// `export-overlay`). The driver says `Wrote PATH (N bytes)` or why it could not.
    WriteFile { path: PathBuf, contents: String },
    /// Stop the loop; the process exits with this status.
    Exit(i32),
}

/// What a driver provides to carry out a machine's effects with [`drain_effects`].
pub(crate) trait EffectSink {
    /// Why carrying out an effect failed (the driver's fatal ring errors).
    type Error;
    /// The driver's scratch list of effects, kept empty between drains (so its allocation is
    /// reused).
    fn scratch(&mut self) -> &mut Vec<Effect>;
    /// Moves the machine's effects into `into` ([`Machine::take_effects`]).
    fn take_effects(&mut self, into: &mut Vec<Effect>);
    /// Carries out one effect.
    fn apply(&mut self, effect: Effect) -> Result<(), Self::Error>;
    /// True once the machine exited: no effect is carried out after that.
    fn exited(&self) -> bool;
}

/// The last bytes of connections a machine closed (a [`Control::Refused`](crate::wire::Control)
/// saying why), kept until the driver takes them: a machine forgets a connection when it
/// closes it, but the driver flushes what is pending before it shuts the socket down, and
/// asks for it with [`Machine::swap_outgoing`] after the machine's call returned. Bounded: a
/// connection whose farewell the driver never takes (it failed first) is forgotten once
/// [`FAREWELLS_MAX`](crate::limits::FAREWELLS_MAX) newer ones are kept.
#[derive(Debug, Default)]
pub struct Farewells {
    kept: std::collections::VecDeque<(ConnId, Vec<u8>)>,
}

impl Farewells {
    /// Keeps `bytes` for `conn`, which the machine is closing.
    pub fn keep(&mut self, conn: ConnId, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if self.kept.len() >= crate::limits::FAREWELLS_MAX {
            self.kept.pop_front();
        }
        self.kept.push_back((conn, bytes));
    }

    /// Swaps `conn`'s farewell into `buf` (empty), if one is kept; returns whether it was.
    pub fn swap_out(&mut self, conn: ConnId, buf: &mut Vec<u8>) -> bool {
        let Some(index) = self.kept.iter().position(|(kept, _)| *kept == conn) else {
            return false;
        };
        if let Some((_, bytes)) = self.kept.remove(index) {
            *buf = bytes;
        }
        true
    }

    /// Bytes kept for `conn`.
    pub fn len(&self, conn: ConnId) -> usize {
        self.kept
            .iter()
            .find(|(kept, _)| *kept == conn)
            .map_or(0, |(_, bytes)| bytes.len())
    }
}

/// Carries out a machine's effects in order until it has none left, as every driver does (the
/// io_uring loop and the simulator): effects that carrying out others produced (a close that
/// reaches the machine, ...) are taken next, nothing after an [`Effect::Exit`] is carried out,
/// and the first error stops the drain.
pub(crate) fn drain_effects<S: EffectSink>(sink: &mut S) -> Result<(), S::Error> {
    loop {
        if sink.exited() {
            return Ok(());
        }
        let mut batch = std::mem::take(sink.scratch());
        sink.take_effects(&mut batch);
        if batch.is_empty() {
            *sink.scratch() = batch;
            return Ok(());
        }
        let mut result = Ok(());
        for effect in batch.drain(..) {
            if sink.exited() || result.is_err() {
                break;
            }
            result = sink.apply(effect);
        }
        batch.clear();
        *sink.scratch() = batch;
        result?;
    }
}

/// A receive buffer the driver lends with [`Machine::on_received_in`]: the machine may keep
/// parts of the bytes it was handed ([`Lent::hold`]) after the call returns, instead of
/// copying them, and queue them for sending ([`Hole`]). The driver never writes into a buffer
/// any part of which is still held (it receives into another one), so held bytes never change.
pub struct Lent<'a>(&'a Arc<[u8]>);

impl<'a> Lent<'a> {
    /// For the driver: lends `buffer`.
    pub fn new(buffer: &'a Arc<[u8]>) -> Self {
        Lent(buffer)
    }

    /// Keeps `part` (a part of the bytes this buffer's `on_received_in` handed over).
    ///
    /// # Panics
    /// If `part` does not lie within the lent buffer.
    pub fn hold(&self, part: &[u8]) -> Held {
        let start = (part.as_ptr() as usize).wrapping_sub(self.0.as_ptr() as usize);
        assert!(
            start <= self.0.len() && part.len() <= self.0.len() - start,
            "held bytes lie in the lent buffer"
        );
        Held {
            buffer: Backing::Lent(Arc::clone(self.0)),
            start,
            end: start + part.len(),
        }
    }
}

/// Bytes a machine queues for sending without copying them: a part of a lent receive buffer
/// ([`Lent::hold`]) or of a buffer of its own it will not change ([`Held::shared`]); the buffer
/// lives as long as any part of it is held.
#[derive(Clone)]
pub struct Held {
    buffer: Backing,
    start: usize,
    end: usize,
}

#[derive(Clone)]
enum Backing {
    Lent(Arc<[u8]>),
    Own(Arc<Vec<u8>>),
}

impl Held {
    /// Bytes `range` of `buffer`, which the machine shares and no longer changes (it gets the
    /// allocation back with `Arc::try_unwrap` once the driver has let go of every part).
    ///
    /// # Panics
    /// If `range` does not lie within `buffer`.
    pub fn shared(buffer: &Arc<Vec<u8>>, range: std::ops::Range<usize>) -> Held {
        assert!(
            range.start <= range.end && range.end <= buffer.len(),
            "held bytes lie in the buffer"
        );
        Held {
            buffer: Backing::Own(Arc::clone(buffer)),
            start: range.start,
            end: range.end,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.buffer {
            Backing::Lent(buffer) => &buffer[self.start..self.end],
            Backing::Own(buffer) => &buffer[self.start..self.end],
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({} bytes)", self.len())
    }
}

/// Held bytes queued for sending: they go out right before byte `at` of the connection's
/// pending bytes (holes in order of `at`; several may share one `at`).
#[derive(Clone, Debug)]
pub struct Hole {
    pub at: usize,
    pub held: Held,
}

/// `bytes` with `holes` filled in: the byte stream they stand for.
pub fn gathered(bytes: &[u8], holes: &[Hole]) -> Vec<u8> {
    let held: usize = holes.iter().map(|hole| hole.held.len()).sum();
    let mut out = Vec::with_capacity(bytes.len() + held);
    let mut from = 0;
    for hole in holes {
        out.extend_from_slice(&bytes[from..hole.at]);
        out.extend_from_slice(hole.held.bytes());
        from = hole.at;
    }
    out.extend_from_slice(&bytes[from..]);
    out
}

/// A protocol state machine: the registry or a messaging node.
pub trait Machine {
    /// The loop is about to run; the listener (if any) is open.
    fn on_start(&mut self, now: Nanos);
    /// A peer at `peer` connected to our listener; `local` is our end of the connection (the
    /// address the peer dialed, which a listener on 0.0.0.0 does not know otherwise).
    fn on_accepted(&mut self, now: Nanos, conn: ConnId, peer: SocketAddr, local: SocketAddr);
    /// A connection asked for with [`Effect::Connect`] is established.
    fn on_connected(&mut self, now: Nanos, conn: ConnId);
    /// Bytes arrived on `conn`, after any bytes that were not consumed last time. Returns how
    /// many bytes were consumed (whole frames); the rest are offered again with more behind
    /// them. A machine that finds garbage emits [`Effect::Close`] and may return any count.
    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize;
    /// As [`Machine::on_received`], with `bytes` in a buffer the driver lends: the machine may
    /// hold parts of them ([`Lent::hold`]) to send them without a copy. The default reads
    /// them as `on_received` does.
    fn on_received_in(&mut self, now: Nanos, conn: ConnId, bytes: &[u8], lent: Lent<'_>) -> usize {
        let _ = lent;
        self.on_received(now, conn, bytes)
    }
    /// `conn` is gone: the peer closed it, it failed, or the connect failed. `reason` says why.
    fn on_closed(&mut self, now: Nanos, conn: ConnId, reason: CloseReason);
    /// `conn` failed while the driver held `taken` (bytes it took with `swap_outgoing`) of
    /// which only the first `sent` reached the kernel: whatever ends after `sent` never left.
    /// Called just before `on_closed`. The default ignores it.
    fn on_unsent(&mut self, _now: Nanos, _conn: ConnId, _taken: &[u8], _sent: usize) {}
    /// A connection the machine closed ([`Effect::Close`]) is done: everything pending was
    /// handed to the kernel before it was shut down (or it failed first). The default ignores
    /// it.
    fn on_flushed(&mut self, _now: Nanos, _conn: ConnId) {}
    /// Whether the machine waits to hear that what it asked to send has reached the kernel
    /// ([`Machine::on_handed_over`]). The default: no.
    fn awaits_hand_over(&self) -> bool {
        false
    }
    /// Every byte the machine asked to send has been taken by the kernel: the driver started
    /// every send it was asked for (none held back), submitted them, and has the completion
    /// of each; `now` is read after that. Called on each turn of the loop while
    /// [`Machine::awaits_hand_over`] says so and nothing is left to send (a connection whose
    /// peer does not read holds it back). The default ignores it.
    fn on_handed_over(&mut self, _now: Nanos) {}
    /// One line from the operator's console, without its line ending.
    fn on_command(&mut self, now: Nanos, line: &str);
    /// `signal` (one the driver was asked to read, `DriverConfig::signals`) came `count`
    /// times (at least once) since the last call. The default ignores it.
    fn on_signal(&mut self, _now: Nanos, _signal: i32, _count: usize) {}
    /// Called when the time returned by [`Machine::next_tick`] has come.
    fn on_tick(&mut self, now: Nanos);
    /// When `on_tick` should run next: `None` for "only when something happens", a time at or
    /// before now for "as soon as the loop has looked at its completions".
    fn next_tick(&self) -> Option<Nanos>;
    /// Moves the effects produced so far into `into` (which the driver keeps empty).
    fn take_effects(&mut self, into: &mut Vec<Effect>);
    /// Bytes pending on `conn` (the driver holds small sends back while input keeps arriving,
    /// and starts them once they are big enough). The default says "big": send at once.
    fn pending_len(&self, _conn: ConnId) -> usize {
        usize::MAX
    }
    /// The length of the frame `bytes` starts with, once its prefix is there (`None`: not yet
    /// known, or the machine does not say). A driver that receives into shared buffers joins
    /// a partial frame with the next bytes: with the length it copies only the rest of that
    /// frame, without it everything that arrived.
    fn frame_len(&self, _bytes: &[u8]) -> Option<usize> {
        None
    }
    /// Exchanges `conn`'s pending outgoing bytes with `buf` (which the driver passes empty).
    /// After the call the machine's pending buffer is `buf`'s old, empty allocation.
    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>);
    /// As [`Machine::swap_outgoing`], and the held bytes queued among them with `holes`
    /// (which the driver passes empty): the bytes to send are `buf` with `holes` filled in
    /// ([`gathered`]). The default holds nothing.
    fn swap_outgoing_held(&mut self, conn: ConnId, buf: &mut Vec<u8>, holes: &mut Vec<Hole>) {
        let _ = holes;
        self.swap_outgoing(conn, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine's effects as a script: `take_effects` hands out one batch per call, and
    /// carrying out `Send(conn)` makes the machine produce `Print(conn)`.
    struct Script {
        batches: Vec<Vec<Effect>>,
        produced: Vec<Effect>,
        applied: Vec<Effect>,
        scratch: Vec<Effect>,
        fail_on_print: bool,
    }

    impl EffectSink for Script {
        type Error = String;
        fn scratch(&mut self) -> &mut Vec<Effect> {
            &mut self.scratch
        }
        fn take_effects(&mut self, into: &mut Vec<Effect>) {
            into.append(&mut self.produced);
            if !self.batches.is_empty() {
                into.append(&mut self.batches.remove(0));
            }
        }
        fn apply(&mut self, effect: Effect) -> Result<(), String> {
            if let Effect::Send(conn) = effect {
                self.produced.push(Effect::Print(format!("{}", conn.0)));
            }
            if self.fail_on_print && matches!(effect, Effect::Print(_)) {
                return Err("print failed".into());
            }
            self.applied.push(effect);
            Ok(())
        }
        fn exited(&self) -> bool {
            self.applied.iter().any(|e| matches!(e, Effect::Exit(_)))
        }
    }

    fn script(batches: Vec<Vec<Effect>>) -> Script {
        Script {
            batches,
            produced: Vec::new(),
            applied: Vec::new(),
            scratch: Vec::new(),
            fail_on_print: false,
        }
    }

    #[test]
    fn a_group_is_carried_and_removed_without_touching_the_rest() {
        let mut ids = ConnIds::default();
        let outbound = ids.next_outbound();
        let inbound = ConnId::inbound(7);
        for conn in [outbound, inbound] {
            let grouped = conn.in_group(ConnId::GROUPS_MAX - 1);
            assert_eq!(grouped.group(), ConnId::GROUPS_MAX - 1);
            assert_eq!(grouped.is_outbound(), conn.is_outbound());
            assert_eq!(grouped.ungrouped(), conn);
            assert_eq!(conn.group(), 0);
        }
        assert_ne!(inbound.in_group(1), inbound.in_group(2));
    }

    #[test]
    fn effects_run_in_order_with_those_they_produce_until_none_are_left() {
        let mut sink = script(vec![vec![Effect::Send(ConnId(1)), Effect::Send(ConnId(2))]]);
        assert_eq!(drain_effects(&mut sink), Ok(()));
        assert_eq!(
            sink.applied,
            vec![
                Effect::Send(ConnId(1)),
                Effect::Send(ConnId(2)),
                Effect::Print("1".into()),
                Effect::Print("2".into()),
            ]
        );
        assert!(sink.scratch.is_empty());
    }

    #[test]
    fn nothing_after_exit_is_carried_out() {
        let mut sink = script(vec![
            vec![Effect::Exit(3), Effect::Send(ConnId(1))],
            vec![Effect::Print("later".into())],
        ]);
        assert_eq!(drain_effects(&mut sink), Ok(()));
        assert_eq!(sink.applied, vec![Effect::Exit(3)]);
    }

    #[test]
    fn the_first_error_stops_the_drain() {
        let mut sink = script(vec![vec![
            Effect::Print("a".into()),
            Effect::Send(ConnId(1)),
        ]]);
        sink.fail_on_print = true;
        assert_eq!(drain_effects(&mut sink), Err("print failed".into()));
        assert!(sink.applied.is_empty());
        assert!(sink.scratch.is_empty());
    }
}
