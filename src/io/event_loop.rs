//! The event loop: submissions, completions, and the machine's effects.
//!
//! Each iteration submits what is queued and waits (until the machine's next tick at most),
//! copies every completion out of the ring into a local queue, dispatches them one by one
//! (each machine call is followed by carrying out its effects, in order), then runs the tick
//! if it is due. No borrow of the ring is held while the machine runs.
//!
//! This file holds the loop, submissions, slots and the exit drain; `completions.rs` what each
//! completion means, `effects.rs` how each effect is carried out.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use slab::Slab;
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

use super::accept_pause::{self, AcceptPause};
use super::buf_ring::BufRing;
use super::busy_poll::{Governor, Poll};
use super::conn::{Connection, State};
use super::console::ConsoleReader;
use super::core_token::CoreToken;
use super::ops::{GENERATION_MASK, OpKind, Token};
use super::outcome::{self, Operation};
use super::signals::SignalReader;
use super::{DriverConfig, DriverError, clock};
use crate::buffer;
use crate::limits::{
    ACCEPT_RETRY_NS, ACCEPT_WARNING_INTERVAL_NS, EXIT_DRAIN_TIMEOUT_MS, HELD_RECV_BUFFERS_MAX,
    KEEPALIVE_IDLE_SECS, KEEPALIVE_PROBES, LEFTOVER_KEPT_BYTES, LINK_RTO_MAX_MS, LINK_TIMEOUT_SECS,
    MAPPED_INBOUND_RECV_BUFFERS, SEND_BATCH_BYTES, SEND_BUFFER_KEPT_BYTES, SEND_HOLD_NS,
};
use crate::machine::{
    self, CloseReason, ConnId, ConnMap, Effect, EffectSink, Lent, LinkError, Machine, Nanos,
};
use crate::warnings::WarningLimit;

mod arming;
mod completions;
mod connections;
mod effects;

/// What the loop did, for `RUST_LOG=overlay=info` at exit (batching shows here: bytes per
/// send and per receive, completions per wait).
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    /// Times the loop slept in the kernel waiting for a completion or its tick.
    waits: u64,
    /// Busy polls begun (`--busy-poll-us`), adaptive polls not begun because another process
    /// held the core's token (or the loop is not pinned), looks at the ring while polling,
    /// polls ended by a slow yield (the core had other work), and time spent polling.
    polls: u64,
    polls_declined: u64,
    looks: u64,
    polls_yielded: u64,
    poll_ns: u64,
    completions: u64,
    sends: u64,
    bytes_sent: u64,
    recvs: u64,
    bytes_received: u64,
    /// Receives whose buffer the machine kept parts of (so the next went into another), and
    /// receives not lent because `HELD_RECV_BUFFERS_MAX` buffers were held.
    recvs_held: u64,
    recvs_not_lent: u64,
    /// Sends gathered from the send buffer and held bytes.
    gathered_sends: u64,
}

/// The most pieces one gathered send names (Linux's UIO_MAXIOV); the rest goes as a short
/// send's would.
const SEND_IOVECS_MAX: usize = 1024;

/// A receive buffer of `len` bytes, mapped now if `map` (see `buffer`), else at first use.
fn recv_buffer(len: usize, map: bool) -> Arc<[u8]> {
    let zeroed = Arc::<[u8]>::new_zeroed_slice(len);
    // SAFETY: every bit pattern, zero included, is a valid `u8`.
    let mut buffer = unsafe { zeroed.assume_init() };
    if map {
        Arc::get_mut(&mut buffer)
            .expect("a new buffer is unique")
            .fill(0xA5);
    }
    buffer
}

/// A completion copied out of the ring.
#[derive(Clone, Copy, Debug)]
struct Completion {
    user_data: u64,
    result: i32,
    flags: u32,
}

/// The outcome of a negative completion `result` of `operation` (asserted not our bug).
fn failure(operation: Operation, result: i32) -> LinkError {
    outcome::link_error(operation, -result)
}

pub(crate) struct Driver<'m, M: Machine> {
    machine: &'m mut M,
    ring: IoUring,
    /// Receive buffers shared by every connection (`DriverConfig::shared_recv`): then a
    /// slot's `partial` holds only the partial frame its last receive ended with. Taken
    /// out while a completion's bytes are read from it.
    shared: Option<BufRing>,
    /// The shared ring's group and buffer size, for the receives that name it.
    shared_recv: Option<(u16, u32)>,
    /// Connections whose receive found the shared ring empty, armed again once buffers are
    /// back.
    starved: Vec<(usize, u32)>,
    connections: Slab<Connection>,
    /// Which slot holds each connection the machine can still name.
    slots: ConnMap<usize>,
    connections_max: usize,
    /// Accepted connections beyond this many slots in use are closed at once
    /// (`DriverConfig::outbound_reserved`), with a warning at most once per interval.
    accepted_max: usize,
    accept_limit_warnings: WarningLimit,
    recv_buffer_bytes: usize,
    send_buffer_bytes: usize,
    /// Receive buffers mapped up front for accepted connections so far (`buffers`).
    inbound_recv_mapped: usize,
    /// Whether and how long to poll the ring once there is no work (`--busy-poll-us`).
    governor: Governor,
    /// The right to an adaptive poll on the core the loop is pinned to (`None`: not pinned,
    /// so no adaptive poll); held from a poll's start until the loop next sleeps.
    core_token: Option<CoreToken>,
    /// Buffers of released slots, reused by the next slots.
    spare_recv_buffers: Vec<Arc<[u8]>>,
    /// Receive buffers of which the machine kept parts, until they are given back (then
    /// reused by the next slot whose buffer is kept): at most `HELD_RECV_BUFFERS_MAX`, beyond
    /// those of closed slots.
    held_recv_buffers: Vec<Arc<[u8]>>,
    spare_send_buffers: Vec<Vec<u8>>,
    /// The listening sockets; a connection accepted on the one at index `i` is named in group
    /// `i` (`ConnId::in_group`).
    listeners: Vec<TcpListener>,
    /// Whether each listener's multishot accept is in flight.
    accepts_armed: Vec<bool>,
    /// An accept, failed for want of a descriptor or memory, waits to be armed again.
    accept_pause: AcceptPause,
    console: Option<ConsoleReader>,
    /// The signals the machine hears of (`DriverConfig::signals`), a receive armed on each.
    signals: Vec<SignalReader>,
    local_ip: Option<IpAddr>,
    inbound_sequence: u64,
    generation: u32,
    effects: Vec<Effect>,
    /// Connections with bytes to send, started once the current batch of completions (and
    /// the tick) has been handled: frames that several receives produce for one link leave in
    /// one send.
    sends_wanted: Vec<(usize, u32)>,
    completions: VecDeque<Completion>,
    /// Cancellations of accepts at exit in flight.
    cancels_in_flight: usize,
    exit_code: Option<i32>,
    now: Nanos,
    /// Every completion of input that had arrived by this time has been reaped: a tick due
    /// later than this is delivered only after the loop asked for completions again
    /// ([`Driver::read_input_before_tick`]).
    input_read_at: Nanos,
    stats: Stats,
}

impl<'m, M: Machine> Driver<'m, M> {
    // What `io::run` set up, each piece once: a struct to carry them would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        machine: &'m mut M,
        ring: IoUring,
        shared: Option<BufRing>,
        listeners: Vec<TcpListener>,
        console: Option<ConsoleReader>,
        signals: Vec<SignalReader>,
        core_token: Option<CoreToken>,
        config: &DriverConfig,
    ) -> Self {
        let connections_max = config.max_connections;
        let shared_recv = shared.as_ref().map(|shared| {
            let bytes = u32::try_from(shared.buffer_bytes()).expect("buffer size fits in u32");
            (shared.group(), bytes)
        });
        Driver {
            machine,
            ring,
            shared,
            shared_recv,
            starved: Vec::new(),
            connections: Slab::with_capacity(connections_max),
            slots: ConnMap::with_capacity_and_hasher(connections_max, Default::default()),
            connections_max,
            accepted_max: connections_max - config.outbound_reserved,
            accept_limit_warnings: WarningLimit::for_strangers(),
            recv_buffer_bytes: config.recv_buffer_bytes,
            send_buffer_bytes: config.send_buffer_bytes,
            inbound_recv_mapped: 0,
            governor: Governor::new(config.busy_poll),
            core_token,
            spare_recv_buffers: Vec::with_capacity(connections_max),
            held_recv_buffers: Vec::new(),
            spare_send_buffers: Vec::with_capacity(connections_max),
            accepts_armed: vec![false; listeners.len()],
            listeners,
            accept_pause: AcceptPause::default(),
            console,
            signals,
            local_ip: config.local_ip,
            inbound_sequence: 0,
            generation: 0,
            effects: Vec::new(),
            sends_wanted: Vec::with_capacity(connections_max),
            completions: VecDeque::with_capacity(1024),
            cancels_in_flight: 0,
            exit_code: None,
            now: clock::now(),
            input_read_at: 0,
            stats: Stats::default(),
        }
    }

    /// Runs until the machine exits; then waits for the kernel to release every buffer.
    pub(crate) fn run(mut self) -> Result<i32, DriverError> {
        let result = self.run_until_exit();
        let stats = self.stats;
        tracing::info!(
            waits = stats.waits,
            polls = stats.polls,
            polls_declined = stats.polls_declined,
            looks = stats.looks,
            polls_yielded = stats.polls_yielded,
            poll_ms = stats.poll_ns / 1_000_000,
            completions = stats.completions,
            sends = stats.sends,
            bytes_per_send = stats.bytes_sent / stats.sends.max(1),
            recvs = stats.recvs,
            bytes_per_recv = stats.bytes_received / stats.recvs.max(1),
            recvs_held = stats.recvs_held,
            recvs_not_lent = stats.recvs_not_lent,
            gathered_sends = stats.gathered_sends,
            "event loop totals"
        );
        self.drain_for_exit();
        if self.ops_in_flight() == 0
            && let Some(shared) = self.shared.take()
        {
            shared.release(&self.ring);
        }
        result
    }

    fn run_until_exit(&mut self) -> Result<i32, DriverError> {
        self.arm_accepts()?;
        self.arm_console()?;
        for index in 0..self.signals.len() {
            self.arm_signal(index)?;
        }
        self.now = clock::now();
        self.machine.on_start(self.now);
        self.apply_effects()?;
        loop {
            if let Some(code) = self.exit_code {
                return Ok(code);
            }
            self.now = clock::now();
            if self.accept_pause.take_due(self.now) {
                self.arm_accepts()?;
            }
            self.rearm_starved()?;
            // A machine waiting for its sends to reach the kernel has none held back.
            let hand_over = self.machine.awaits_hand_over();
            self.start_wanted_sends(hand_over)?;
            if self.exit_code.is_some() {
                continue;
            }
            // Take whatever has completed without waiting; only when there is nothing to do
            // are the held-back sends started and the loop waits.
            let asked = self.now;
            self.submit()?;
            if hand_over && self.all_sent() {
                self.machine.on_handed_over(clock::now());
                self.apply_effects()?;
            }
            self.reap();
            self.input_read(asked);
            // The loop wakes for the machine's tick and for a paused accept.
            let wake = match (self.machine.next_tick(), self.accept_pause.resume_at()) {
                (Some(tick), Some(resume)) => Some(tick.min(resume)),
                (tick, resume) => tick.or(resume),
            };
            if self.completions.is_empty() && wake.is_none_or(|wake| wake > self.now) {
                self.start_wanted_sends(true)?;
                if self.exit_code.is_some() {
                    continue;
                }
                if let Some(poll) = self.governor.on_idle(self.now) {
                    self.busy_poll(poll, wake)?;
                }
            }
            if self.completions.is_empty() && wake.is_none_or(|wake| wake > self.now) {
                // A sleeping loop keeps no core awake: another process there may poll.
                if let Some(token) = &mut self.core_token {
                    token.release();
                }
                let asked = self.now;
                match wake {
                    Some(wake) => {
                        self.submit_and_wait(Some(Duration::from_nanos(wake - self.now)))?
                    }
                    None => self.submit_and_wait(None)?,
                }
                self.reap();
                self.input_read(asked);
            }
            if self.completions.is_empty() {
                // Otherwise the reap that brought them read the clock.
                self.now = clock::now();
            }
            if !self.completions.is_empty() || wake.is_some_and(|wake| wake <= self.now) {
                self.governor.on_work(self.now, self.completions.len());
            }
            while let Some(completion) = self.completions.pop_front() {
                self.dispatch(completion)?;
            }
            if self.exit_code.is_some() {
                continue;
            }
            self.now = clock::now();
            if let Some(tick) = self.machine.next_tick().filter(|tick| *tick <= self.now) {
                if tick > self.input_read_at {
                    self.read_input_before_tick()?;
                    if self.exit_code.is_some() {
                        continue;
                    }
                    self.now = clock::now();
                }
                if self
                    .machine
                    .next_tick()
                    .is_some_and(|tick| tick <= self.now)
                {
                    self.machine.on_tick(self.now);
                    self.apply_effects()?;
                }
            }
        }
    }

    /// A tick judges deadlines (a handshake not finished, a poll not answered), so it comes
    /// only after what arrived before it has been read: the machine must not blame a peer
    /// whose answer waits in the ring. The loop last asked for completions before the tick
    /// came due when a wait ended early (a signal: SIGSTOP and SIGCONT end it with EINTR) or
    /// the process did not run for a while (stopped, or its core given to others) between an
    /// ask and the tick. What may wait then, and how this reads it (issue 12: a stopped node
    /// closed a table link whose hello had come in time):
    /// - receives pushed since the last submit (the first receive of a connection accepted in
    ///   the completions just handled): submitted here, always; bytes that came meanwhile
    ///   complete such a receive within the submit;
    /// - completions whose task work is deferred (DEFER_TASKRUN): posted only when the loop
    ///   asks, and one ask runs a bounded batch of them (20 per pass on Linux 6.x, at most
    ///   two passes per enter), so asks again as long as the kernel flags work waiting
    ///   (TASKRUN_FLAG, set again when a batch leaves some), handling each batch before the
    ///   next ask (a handled receive is armed again and read in the same way).
    ///
    /// Bounded: each ask while work waits runs at least one waiting completion, oldest first,
    /// and what had arrived when this began is at most one completion per operation in flight
    /// (a receive and a send per connection, an accept per listener, the console, each
    /// signal, the cancels at exit); further rounds read only what arrives meanwhile, and the tick comes
    /// after `reads_max` asks at the latest.
    fn read_input_before_tick(&mut self) -> Result<(), DriverError> {
        let asked = clock::now();
        let reads_max = 2 * self.connections_max + self.listeners.len() + self.signals.len() + 2;
        for _ in 0..reads_max {
            self.submit()?;
            self.reap();
            let waiting = self.input_waiting();
            if !waiting {
                self.input_read_at = asked;
            }
            while let Some(completion) = self.completions.pop_front() {
                self.dispatch(completion)?;
            }
            if !waiting || self.exit_code.is_some() {
                break;
            }
        }
        Ok(())
    }

    /// Whether completions may wait that the last ask did not reap: submissions the kernel
    /// has not taken, task work the kernel flags waiting (it runs a bounded batch per ask
    /// and sets TASKRUN again when it leaves some), or an overflowed completion queue.
    fn input_waiting(&mut self) -> bool {
        let submission = self.ring.submission();
        !submission.is_empty() || submission.taskrun() || submission.cq_overflow()
    }

    /// Notes an ask for completions begun at `asked` and reaped: every completion of input
    /// that had arrived by then is reaped, unless the kernel still has some waiting.
    fn input_read(&mut self, asked: Nanos) {
        if !self.input_waiting() {
            self.input_read_at = asked;
        }
    }

    // ----- Ring plumbing -----

    /// Pushes one submission, submitting a full queue first; never drops an entry.
    ///
    /// # Safety
    /// Every buffer `entry` points to stays valid and unmoved until its completion is reaped
    /// (the invariant in `conn`).
    unsafe fn push(&mut self, entry: &squeue::Entry) -> Result<(), DriverError> {
        loop {
            // SAFETY: the caller guarantees the buffers `entry` points to outlive the
            // operation.
            let pushed = unsafe { self.ring.submission().push(entry) };
            if pushed.is_ok() {
                return Ok(());
            }
            self.submit()?;
            // A busy kernel (completion queue overflow) frees room once completions are
            // reaped; they are dispatched by the loop in order.
            self.reap();
        }
    }

    /// Everything the machine asked to send has been taken by the kernel: nothing waits to
    /// be submitted and no send is in flight (each send's completion has been handled; one
    /// that leaves bytes behind starts the next at once, and a completed one with more bytes
    /// behind it is started by the caller first, as none are held back).
    fn all_sent(&mut self) -> bool {
        self.ring.submission().is_empty()
            && self.sends_wanted.is_empty()
            && !self.connections.iter().any(|(_, slot)| slot.send_in_flight)
    }

    /// Submits queued entries without waiting.
    fn submit(&mut self) -> Result<(), DriverError> {
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(error) if is_transient(&error) => Ok(()),
            Err(error) => Err(DriverError::Ring(error)),
        }
    }

    /// Submits queued entries and waits for one completion, or until `timeout`.
    fn submit_and_wait(&mut self, timeout: Option<Duration>) -> Result<(), DriverError> {
        self.stats.waits += 1;
        let waited = match timeout {
            Some(timeout) => {
                let timespec = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&timespec);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        match waited {
            Ok(_) => Ok(()),
            Err(error) if is_transient(&error) => Ok(()),
            Err(error) => Err(DriverError::Ring(error)),
        }
    }

    /// Submits and looks for completions until one arrives, the poll's time has passed, the
    /// tick is due, or (adaptive poll) a yield shows the core has other work; yields the core
    /// between looks, so other runnable processes on it still run, while the core never
    /// idles (waking an idle core is the largest part of a hop's latency at light load on
    /// some machines; `busy_poll`).
    fn busy_poll(&mut self, poll: Poll, tick: Option<Nanos>) -> Result<(), DriverError> {
        if poll.adaptive && !self.core_token.as_mut().is_some_and(CoreToken::acquire) {
            self.stats.polls_declined += 1;
            return Ok(());
        }
        let until = poll.until.min(tick.unwrap_or(Nanos::MAX));
        let started = self.now;
        self.stats.polls += 1;
        loop {
            self.stats.looks += 1;
            // With DEFER_TASKRUN, completions are posted only when the loop asks for them; a
            // submit does when the kernel flags work waiting (TASKRUN_FLAG).
            let asked = self.now;
            self.submit()?;
            self.reap();
            self.input_read(asked);
            self.now = clock::now();
            if !self.completions.is_empty() || self.now >= until {
                break;
            }
            std::thread::yield_now();
            let yielded = clock::now();
            let took = yielded.saturating_sub(self.now);
            if self.governor.yield_was_slow(poll, yielded, took) {
                self.stats.polls_yielded += 1;
                self.now = yielded;
                break;
            }
        }
        self.stats.poll_ns += self.now.saturating_sub(started);
        Ok(())
    }

    /// Copies every completion out of the ring into the local queue, and reads the clock
    /// after them when there were any: every completion is handed to the machine with a time
    /// no earlier than its arrival, wherever it was reaped (before a tick, while pushing a
    /// submission, after a wait). A time read before the ask and handed with what came after
    /// it made a sink on the same machine read a send time later than "now": its age wrapped,
    /// and it recorded no latency ("latency not recorded for a packet whose send time lies
    /// before this run began here", four nodes on one core) or, sent just before, one too
    /// short (test `bytes_come_with_a_time_no_earlier_than_their_arrival`, tests/driver/stops.rs).
    fn reap(&mut self) {
        let before = self.completions.len();
        for entry in self.ring.completion() {
            self.stats.completions += 1;
            self.completions.push_back(Completion {
                user_data: entry.user_data(),
                result: entry.result(),
                flags: entry.flags(),
            });
        }
        if self.completions.len() > before {
            self.now = clock::now();
        }
    }

    // ----- Exit -----

    /// Shuts every socket down, cancels the accept, and waits (bounded) for every operation to
    /// complete, so no buffer is freed while the kernel may still use it. Whatever is still in
    /// flight after the wait is leaked.
    fn drain_for_exit(&mut self) {
        if self.exit_code.is_none() {
            // A fatal error: no machine calls from here on.
            self.exit_code = Some(1);
        }
        for (_, slot) in self.connections.iter() {
            let _ = slot.socket.shutdown(Shutdown::Both);
        }
        if let Some(console) = &self.console {
            let _ = console.stream.shutdown(Shutdown::Both);
        }
        for signal in &self.signals {
            let _ = signal.stream.shutdown(Shutdown::Both);
        }
        for index in 0..self.listeners.len() {
            if !self.accepts_armed[index] {
                continue;
            }
            let entry = opcode::AsyncCancel::new(accept_token(index))
                .build()
                .user_data(Token::unslotted(OpKind::Cancel).encode());
            // SAFETY: a cancellation reads and writes no memory of ours.
            match unsafe { self.push(&entry) } {
                Ok(()) => self.cancels_in_flight += 1,
                Err(_) => tracing::warn!("could not cancel an accept at exit"),
            }
        }
        let deadline = clock::now() + EXIT_DRAIN_TIMEOUT_MS * 1_000_000;
        while self.ops_in_flight() > 0 {
            let now = clock::now();
            if now >= deadline {
                break;
            }
            if self
                .submit_and_wait(Some(Duration::from_nanos(deadline - now)))
                .is_err()
            {
                break;
            }
            self.reap();
            while let Some(completion) = self.completions.pop_front() {
                // In exit mode dispatch only counts and closes; it calls no machine method.
                let _ = self.dispatch(completion);
            }
        }
        let operations = self.ops_in_flight();
        if operations > 0 {
            // `Drop` leaks the buffers.
            tracing::warn!(
                operations,
                "operations still in flight at exit; their buffers are leaked"
            );
        }
    }
}

impl<M: Machine> Drop for Driver<'_, M> {
    /// Leaks, rather than frees, whatever the kernel may still use (reached with operations in
    /// flight only when the machine panicked, or the exit drain timed out).
    fn drop(&mut self) {
        if self.ops_in_flight() > 0 {
            std::mem::forget(std::mem::take(&mut self.connections));
            std::mem::forget(self.console.take());
            std::mem::forget(std::mem::take(&mut self.signals));
            std::mem::forget(std::mem::take(&mut self.listeners));
        }
    }
}

/// Linux's `TCP_RTO_MAX_MS` (include/uapi/linux/tcp.h, Linux 6.15; not in `libc` yet): the
/// longest the socket's retransmission timeout may grow, in milliseconds (1,000 to 120,000).
const TCP_RTO_MAX_MS: libc::c_int = 44;

/// The liveness rule of every connection (docs/RELIABILITY.md, "Link liveness"): a connection
/// is closed as timed out (`Connection timed out`) when its peer's kernel stops answering, and
/// never while it answers, however long the peer's process does not read.
///
/// The rule is the kernel's own (RFC 1122 4.2.2.17: a sender keeps a connection open as long
/// as the receiver answers its zero-window probes) with a short ceiling on the retransmission
/// timeout, [`LINK_RTO_MAX_MS`]: data unacknowledged, or zero-window probes unanswered, for
/// `net.ipv4.tcp_retries2` (15 by default) tries at most a second apart end the connection,
/// within about [`LINK_TIMEOUT_SECS`] of the peer's last answer; every answer starts the count
/// again. Without the ceiling the tries back off to 120 s apart and a dead peer takes about 15
/// minutes. No timer of ours and no syscall per frame: the kernel's retransmission and probe
/// timers run only while data waits, so an idle link costs nothing.
///
/// Not `TCP_USER_TIMEOUT`, which links had until issue 16's trunks died of it: Linux counts it
/// also against a peer that answers every probe but whose receive window stays closed (a
/// process stopped, descheduled or reading slowly), and closed such links after 10 s, losing
/// the bytes in their buffers. It is the fallback on a kernel without `TCP_RTO_MAX_MS` (before
/// 6.15), with a warning once per process, since a dead peer would otherwise go unnoticed for
/// minutes.
///
/// With `keepalive` (`KEEPALIVE_CONNECTIONS_PER_NODE` says why only a few connections have
/// it), an idle connection also probes its peer after [`KEEPALIVE_IDLE_SECS`] of silence, a
/// probe a second, and is closed after 5 unanswered ones.
fn set_link_timeouts(socket: &Socket, keepalive: bool) -> std::io::Result<()> {
    if keepalive {
        socket.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(KEEPALIVE_IDLE_SECS))
                .with_interval(Duration::from_secs(1))
                .with_retries(KEEPALIVE_PROBES),
        )?;
    }
    match set_rto_ceiling(socket) {
        Ok(()) => return Ok(()),
        Err(error) if lacks_rto_ceiling(&error) => {}
        Err(error) => return Err(error),
    }
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            kernel = %super::setup::kernel_release(),
            "this kernel has no TCP_RTO_MAX_MS (Linux 6.15): links time out with \
             TCP_USER_TIMEOUT ({LINK_TIMEOUT_SECS} s) instead, which also closes a link to a \
             live peer that reads nothing for that long (docs/RELIABILITY.md, \"Link liveness\")"
        );
    });
    socket.set_tcp_user_timeout(Some(Duration::from_secs(LINK_TIMEOUT_SECS)))
}

/// Sets [`LINK_RTO_MAX_MS`] as `socket`'s ceiling on the retransmission timeout
/// (`TCP_RTO_MAX_MS`).
fn set_rto_ceiling(socket: &Socket) -> std::io::Result<()> {
    let ceiling = LINK_RTO_MAX_MS as libc::c_int;
    // SAFETY: the descriptor is open (owned by `socket`), and the option value is a live
    // c_int whose size is passed with it; the kernel only reads it.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_RTO_MAX_MS,
            (&raw const ceiling).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether `error`, from [`set_rto_ceiling`], says this kernel has no `TCP_RTO_MAX_MS`.
fn lacks_rto_ceiling(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOPROTOOPT | libc::EINVAL))
}

/// Whether this kernel's links keep the liveness rule of [`set_link_timeouts`] without
/// `TCP_USER_TIMEOUT` (it has `TCP_RTO_MAX_MS`, Linux 6.15): a link whose peer answers but
/// does not read then stays open however long its window is closed. Tried on a socket of
/// its own; a socket that cannot be made says no.
pub(crate) fn links_outlast_closed_windows() -> bool {
    Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .and_then(|socket| set_rto_ceiling(&socket))
        .is_ok()
}

/// Errors from submit or wait that are part of normal operation.
fn is_transient(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINTR | libc::ETIME | libc::EAGAIN | libc::EBUSY)
    )
}

/// The `user_data` of the accept on the listener at `index`.
fn accept_token(index: usize) -> u64 {
    Token {
        kind: OpKind::Accept,
        slot: index,
        generation: 0,
    }
    .encode()
}

fn token(kind: OpKind, key: usize, generation: u32) -> u64 {
    Token {
        kind,
        slot: key,
        generation,
    }
    .encode()
}
