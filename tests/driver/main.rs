//! The io_uring driver against real sockets on 127.0.0.1: an echo machine and its harness
//! here; the tests by topic in `echo.rs` (bytes echoed through own, lent and shared receive
//! buffers, the busy poll), `connections.rs` (connects, closes, flushes, ticks, the
//! hand-over), and `stops.rs` (a machine stopped as SIGSTOP stops a process).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use overlay::io::{DriverConfig, DriverError, SharedRecv};
use overlay::limits::SEND_BUFFER_KEPT_BYTES;
use overlay::machine::{
    CloseReason, ConnId, ConnIds, Effect, Hole, Lent, LinkError, Machine, Nanos,
};

mod connections;
mod echo;
mod stops;

const TIMEOUT: Duration = Duration::from_secs(10);
const TICK_NANOS: Nanos = 2_000_000;

/// What the test machine saw.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Accepted(ConnId),
    Connected(ConnId),
    Closed(ConnId, CloseReason),
    Tick,
    /// `on_handed_over`: everything queued is in the kernel.
    HandedOver,
}

/// A machine for the tests: echoes (optionally), connects (optionally), reports events, and
/// exits when `stop` is set or after `ticks_before_exit` ticks.
struct Echo {
    events: Sender<Event>,
    stop: Arc<AtomicBool>,
    exit_code: i32,
    echo: bool,
    /// Consume nothing that arrives (to fill the receive buffer).
    consume_nothing: bool,
    /// Reply with these bytes and close, on the first bytes received.
    reply_and_close: Option<Vec<u8>>,
    connect_to: Option<SocketAddr>,
    greeting: Vec<u8>,
    /// Queue the greeting on accepted connections too, and wait to hear that it reached the
    /// kernel (`Machine::awaits_hand_over`).
    greet_accepted_and_await: bool,
    awaiting: bool,
    exit_at_start: Option<i32>,
    ticks_before_exit: Option<u32>,
    ticks: u32,
    next_tick: Option<Nanos>,
    tick_nanos: Nanos,
    /// Exit (with `exit_code`) when a connection closes.
    exit_on_close: bool,
    /// Exit (with `exit_code`) when a connection it closed is flushed, and tick no more.
    exit_on_flushed: bool,
    conn_ids: ConnIds,
    pending: HashMap<ConnId, Vec<u8>>,
    /// The capacity of the pending buffers the machine holds, after each swap (largest), and
    /// the largest it handed over.
    pending_capacity: Arc<AtomicUsize>,
    pending_capacity_max: Arc<AtomicUsize>,
    /// Echo by holding parts of lent receive buffers instead of copying them (`hold`), and
    /// count the receives that came lent and not lent.
    hold: bool,
    holes: HashMap<ConnId, Vec<Hole>>,
    lent: Arc<AtomicUsize>,
    not_lent: Arc<AtomicUsize>,
    effects: Vec<Effect>,
}

impl Echo {
    fn new(events: Sender<Event>, stop: Arc<AtomicBool>) -> Echo {
        Echo {
            events,
            stop,
            exit_code: 7,
            echo: true,
            consume_nothing: false,
            reply_and_close: None,
            connect_to: None,
            greeting: Vec::new(),
            greet_accepted_and_await: false,
            awaiting: false,
            exit_at_start: None,
            ticks_before_exit: None,
            ticks: 0,
            next_tick: None,
            tick_nanos: TICK_NANOS,
            exit_on_close: false,
            exit_on_flushed: false,
            conn_ids: ConnIds::default(),
            pending: HashMap::new(),
            pending_capacity: Arc::new(AtomicUsize::new(0)),
            pending_capacity_max: Arc::new(AtomicUsize::new(0)),
            hold: false,
            holes: HashMap::new(),
            lent: Arc::new(AtomicUsize::new(0)),
            not_lent: Arc::new(AtomicUsize::new(0)),
            effects: Vec::new(),
        }
    }

    /// The echo's count of what it consumes of `bytes` (all but the last 3).
    fn echoed(bytes: &[u8]) -> usize {
        if bytes.len() > 3 {
            bytes.len() - 3
        } else {
            bytes.len()
        }
    }

    fn queue(&mut self, conn: ConnId, bytes: &[u8]) {
        let pending = self.pending.entry(conn).or_default();
        let was_empty = pending.is_empty();
        pending.extend_from_slice(bytes);
        if was_empty && !pending.is_empty() {
            self.effects.push(Effect::Send(conn));
        }
    }
}

impl Machine for Echo {
    fn on_start(&mut self, now: Nanos) {
        if let Some(code) = self.exit_at_start {
            self.effects.push(Effect::Exit(code));
            return;
        }
        if let Some(addr) = self.connect_to {
            let conn = self.conn_ids.next_outbound();
            self.effects.push(Effect::Connect {
                conn,
                addr,
                keepalive: false,
            });
        }
        self.next_tick = Some(now + self.tick_nanos);
    }

    fn on_accepted(&mut self, _now: Nanos, conn: ConnId, _peer: SocketAddr, _local: SocketAddr) {
        assert!(!conn.is_outbound());
        let _ = self.events.send(Event::Accepted(conn));
        if self.greet_accepted_and_await {
            let greeting = self.greeting.clone();
            self.queue(conn, &greeting);
            self.awaiting = true;
        }
    }

    fn awaits_hand_over(&self) -> bool {
        self.awaiting
    }

    fn on_handed_over(&mut self, _now: Nanos) {
        self.awaiting = false;
        let _ = self.events.send(Event::HandedOver);
    }

    fn on_connected(&mut self, _now: Nanos, conn: ConnId) {
        assert!(conn.is_outbound());
        let _ = self.events.send(Event::Connected(conn));
        let greeting = self.greeting.clone();
        self.queue(conn, &greeting);
    }

    fn on_received(&mut self, _now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        if self.consume_nothing {
            return 0;
        }
        if let Some(reply) = self.reply_and_close.take() {
            self.queue(conn, &reply);
            self.effects.push(Effect::Close(conn));
            return bytes.len();
        }
        if self.echo {
            self.not_lent.fetch_add(1, Ordering::SeqCst);
            // Consume in uneven pieces, to exercise the kept tail.
            let consumed = Echo::echoed(bytes);
            self.queue(conn, &bytes[..consumed]);
            return consumed;
        }
        bytes.len()
    }

    fn on_received_in(&mut self, now: Nanos, conn: ConnId, bytes: &[u8], lent: Lent<'_>) -> usize {
        if !self.hold || self.consume_nothing || self.reply_and_close.is_some() {
            return self.on_received(now, conn, bytes);
        }
        self.lent.fetch_add(1, Ordering::SeqCst);
        // In pieces of 1,000 bytes: every other one held whole, the others copied for their
        // first 7 bytes and held for the rest (holes side by side, at the buffer's start, and
        // between copied bytes).
        let consumed = Echo::echoed(bytes);
        for (index, piece) in bytes[..consumed].chunks(1000).enumerate() {
            let copied = if index % 2 == 0 {
                0
            } else {
                piece.len().min(7)
            };
            self.queue(conn, &piece[..copied]);
            if copied < piece.len() {
                let pending = self.pending.entry(conn).or_default();
                let holes = self.holes.entry(conn).or_default();
                if pending.is_empty() && holes.is_empty() {
                    self.effects.push(Effect::Send(conn));
                }
                let at = pending.len();
                holes.push(Hole {
                    at,
                    held: lent.hold(&piece[copied..]),
                });
            }
        }
        consumed
    }

    fn on_closed(&mut self, _now: Nanos, conn: ConnId, reason: CloseReason) {
        self.pending.remove(&conn);
        self.holes.remove(&conn);
        let _ = self.events.send(Event::Closed(conn, reason));
        if self.exit_on_close {
            self.effects.push(Effect::Exit(self.exit_code));
        }
    }

    fn on_flushed(&mut self, _now: Nanos, _conn: ConnId) {
        if self.exit_on_flushed {
            self.effects.push(Effect::Exit(self.exit_code));
            self.next_tick = None;
        }
    }

    fn on_command(&mut self, _now: Nanos, _line: &str) {}

    fn on_tick(&mut self, now: Nanos) {
        self.ticks += 1;
        let _ = self.events.send(Event::Tick);
        let ticks_done = self
            .ticks_before_exit
            .is_some_and(|limit| self.ticks >= limit);
        if ticks_done {
            self.effects
                .push(Effect::Exit(i32::try_from(self.ticks).unwrap()));
            self.next_tick = None;
            return;
        }
        if self.stop.load(Ordering::SeqCst) {
            self.effects
                .push(Effect::Print("echo machine stopping".into()));
            self.effects.push(Effect::Exit(self.exit_code));
            self.next_tick = None;
            return;
        }
        // A tick in the past when counting ticks: it must run at once.
        self.next_tick = if self.ticks_before_exit.is_some() {
            Some(0)
        } else {
            Some(now + self.tick_nanos)
        };
    }

    fn next_tick(&self) -> Option<Nanos> {
        self.next_tick
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        assert!(into.is_empty());
        into.append(&mut self.effects);
    }

    fn swap_outgoing_held(&mut self, conn: ConnId, buf: &mut Vec<u8>, holes: &mut Vec<Hole>) {
        assert!(holes.is_empty());
        if let Some(held) = self.holes.get_mut(&conn) {
            std::mem::swap(held, holes);
        }
        self.swap_outgoing(conn, buf);
    }

    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        assert!(buf.is_empty());
        if let Some(pending) = self.pending.get_mut(&conn) {
            self.pending_capacity_max
                .fetch_max(pending.capacity(), Ordering::SeqCst);
            std::mem::swap(pending, buf);
        }
        let held = self.pending.values().map(Vec::capacity).max().unwrap_or(0);
        self.pending_capacity.store(held, Ordering::SeqCst);
    }
}

fn config(recv_buffer_bytes: usize) -> DriverConfig {
    DriverConfig {
        core: None,
        local_ip: Some("127.0.0.1".parse().unwrap()),
        max_connections: 16,
        outbound_reserved: 0,
        recv_buffer_bytes,
        send_buffer_bytes: 0,
        shared_recv: None,
        busy_poll: overlay::io::BusyPoll::Off,
        console: false,
        signals: Vec::new(),
    }
}

fn start(
    machine: Echo,
    listener: Option<TcpListener>,
    config: DriverConfig,
) -> JoinHandle<Result<i32, DriverError>> {
    std::thread::spawn(move || {
        let mut machine = machine;
        overlay::io::run(&mut machine, listener.into_iter().collect(), &config)
    })
}

fn listener() -> (TcpListener, SocketAddr) {
    overlay::io::listen("127.0.0.1:0".parse().unwrap()).expect("listen on 127.0.0.1")
}

fn next_event(events: &Receiver<Event>) -> Event {
    loop {
        match events
            .recv_timeout(TIMEOUT)
            .expect("an event within the timeout")
        {
            Event::Tick => continue,
            event => return event,
        }
    }
}

fn stop_and_join(stop: &AtomicBool, driver: JoinHandle<Result<i32, DriverError>>) -> i32 {
    stop.store(true, Ordering::SeqCst);
    driver
        .join()
        .expect("driver thread")
        .expect("driver result")
}

/// An echo driver running with one client connected, and what the machine saw of it.
struct Accepted {
    events: Receiver<Event>,
    stop: Arc<AtomicBool>,
    driver: JoinHandle<Result<i32, DriverError>>,
    stream: TcpStream,
    accepted: ConnId,
}

fn echo_with_one_client() -> Accepted {
    let (events_sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (listener, addr) = listener();
    let driver = start(
        Echo::new(events_sender, stop.clone()),
        Some(listener),
        config(4096),
    );
    let stream = client(addr);
    let Event::Accepted(accepted) = next_event(&events) else {
        panic!("expected Accepted");
    };
    Accepted {
        events,
        stop,
        driver,
        stream,
        accepted,
    }
}

fn client(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the driver");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}
