//! The io_uring driver against real sockets on 127.0.0.1.

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

#[test]
fn echoes_one_mebibyte_in_uneven_chunks() {
    echo_one_mebibyte(config(overlay::limits::RECV_BUFFER_BYTES));
}

/// The echo holds what it sends back in the receive buffers it was lent (`on_received_in`)
/// instead of copying it: the driver sends it gathered from them, and the bytes come back
/// whole and in order, in a run of uneven writes and in a burst that queues far more than
/// `HELD_RECV_BUFFERS_MAX` buffers hold (the driver then stops lending, and receives go on).
#[test]
fn echoes_bytes_held_in_lent_receive_buffers() {
    let (events_sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (listener, addr) = listener();
    let mut machine = Echo::new(events_sender, stop.clone());
    machine.hold = true;
    let (lent, not_lent) = (machine.lent.clone(), machine.not_lent.clone());
    let driver = start(
        machine,
        Some(listener),
        config(overlay::limits::RECV_BUFFER_BYTES),
    );
    let mut stream = client(addr);
    let data: Vec<u8> = (0..1usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    echo_in_uneven_writes(&mut stream, &data);
    assert!(lent.load(Ordering::SeqCst) > 0, "no receive was lent");
    // A burst written whole before any is read back: the echo holds every receive's buffer
    // until the client reads.
    let burst: Vec<u8> = (0..64usize << 20).map(|i| (i * 7 % 253) as u8).collect();
    let mut writer = stream.try_clone().unwrap();
    let to_write = burst.clone();
    let writer = std::thread::spawn(move || writer.write_all(&to_write).unwrap());
    writer.join().unwrap();
    // The echo had kept the 3 bytes that pushed the first run's tail.
    let mut echoed = vec![0; burst.len()];
    stream.read_exact(&mut echoed).expect("the burst echoed");
    assert!(
        echoed[..3] == *b"end" && echoed[3..] == burst[..burst.len() - 3],
        "the echoed burst differs from the sent one"
    );
    assert!(
        not_lent.load(Ordering::SeqCst) > 0,
        "the burst held no more buffers than the driver lends"
    );
    assert!(matches!(next_event(&events), Event::Accepted(_)));
    assert_eq!(stop_and_join(&stop, driver), 7);
}

/// Writes `data` in uneven pieces and reads its echo back (all of it: 3 more bytes go out
/// after it to push the echo's kept tail).
fn echo_in_uneven_writes(stream: &mut TcpStream, data: &[u8]) {
    let mut writer = stream.try_clone().unwrap();
    let to_write = data.to_vec();
    let writer = std::thread::spawn(move || {
        let sizes = [1, 7, 100, 1500, 4096, 65536, 3, 200_000, 17];
        let mut offset = 0;
        let mut index = 0;
        while offset < to_write.len() {
            let size = sizes[index % sizes.len()].min(to_write.len() - offset);
            writer.write_all(&to_write[offset..offset + size]).unwrap();
            offset += size;
            index += 1;
        }
    });
    let mut echoed = vec![0; data.len()];
    stream
        .read_exact(&mut echoed[..data.len() - 3])
        .expect("echo of all but the kept tail");
    writer.join().unwrap();
    stream.write_all(b"end").unwrap();
    stream.read_exact(&mut echoed[data.len() - 3..]).unwrap();
    assert!(echoed == data, "echoed bytes differ from the sent bytes");
}

/// Receiving into a ring of buffers shared by every connection, each smaller than what arrives
/// at once: the partial tail of each receive is kept and joined with the next, byte for byte.
#[test]
fn echoes_through_shared_receive_buffers() {
    echo_one_mebibyte(shared(4, 1000, overlay::limits::RECV_BUFFER_BYTES));
}

/// Six clients at once through a shared ring of two small buffers: receives that find the
/// ring empty wait for buffers to come back and lose nothing.
#[test]
fn many_connections_share_two_receive_buffers() {
    let (events_sender, _events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (listener, addr) = listener();
    let driver = start(
        Echo::new(events_sender, stop.clone()),
        Some(listener),
        shared(2, 512, 4096),
    );
    let clients: Vec<_> = (0..6u8)
        .map(|index| {
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8 ^ index).collect();
                let stream = client(addr);
                let mut writer = stream.try_clone().unwrap();
                let sent = data.clone();
                let writing = std::thread::spawn(move || {
                    for chunk in sent.chunks(3000) {
                        writer.write_all(chunk).unwrap();
                    }
                    writer
                });
                let mut reader = stream;
                let mut echoed = vec![0; data.len()];
                reader.read_exact(&mut echoed[..data.len() - 3]).unwrap();
                let mut writer = writing.join().unwrap();
                writer.write_all(b"end").unwrap();
                reader.read_exact(&mut echoed[data.len() - 3..]).unwrap();
                echoed == data
            })
        })
        .collect();
    for client in clients {
        assert!(
            client.join().unwrap(),
            "echoed bytes differ from the sent bytes"
        );
    }
    assert_eq!(stop_and_join(&stop, driver), 7);
}

/// A partial frame kept from shared receives that reaches `recv_buffer_bytes` is never whole:
/// the connection is closed as with a buffer of its own.
#[test]
fn a_partial_frame_as_large_as_the_bound_closes_the_connection() {
    let (events_sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (listener, addr) = listener();
    let mut machine = Echo::new(events_sender, stop.clone());
    machine.consume_nothing = true;
    let driver = start(machine, Some(listener), shared(4, 16, 64));
    let mut stream = client(addr);
    let Event::Accepted(accepted) = next_event(&events) else {
        panic!("expected Accepted");
    };
    stream.write_all(&[0; 100]).unwrap();
    assert_eq!(
        next_event(&events),
        Event::Closed(accepted, CloseReason::FrameTooLarge)
    );
    assert_eq!(stop_and_join(&stop, driver), 7);
}

fn shared(buffers: u16, buffer_bytes: usize, recv_buffer_bytes: usize) -> DriverConfig {
    let mut config = config(recv_buffer_bytes);
    config.shared_recv = Some(SharedRecv {
        buffers,
        buffer_bytes,
    });
    config
}

/// Bulk data through the busy-poll loop (`--busy-poll-us`): the same echo works.
/// In a process whose send buffers grow on demand (`send_buffer_bytes` 0: a group, the
/// registry), a burst grows them, and once it is over the machine is left no buffer larger
/// than `SEND_BUFFER_KEPT_BYTES` (the driver gives back what the burst grew).
#[test]
fn send_buffers_shrink_back_after_a_burst() {
    let (events_sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (listener, addr) = listener();
    let machine = Echo::new(events_sender, stop.clone());
    let capacity = machine.pending_capacity.clone();
    let largest = machine.pending_capacity_max.clone();
    let driver = start(machine, Some(listener), config(64 * 1024));
    let mut stream = client(addr);
    // 64 MiB: the echo queues what the sockets' buffers (a few MiB on loopback) cannot take.
    let burst = vec![7u8; 64 << 20];
    let mut writer = stream.try_clone().unwrap();
    let to_write = burst.clone();
    let writer = std::thread::spawn(move || writer.write_all(&to_write).unwrap());
    // All of it written before any is read back (the echo takes it all and queues what the
    // client's receive buffer cannot hold), so the queue surely grows past the kept bound.
    writer.join().unwrap();
    let mut echoed = vec![0; burst.len() - 3];
    stream.read_exact(&mut echoed).expect("the burst echoed");
    stream.write_all(b"end").unwrap();
    let mut tail = [0u8; 3];
    stream.read_exact(&mut tail).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while capacity.load(Ordering::SeqCst) > SEND_BUFFER_KEPT_BYTES && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let grown = largest.load(Ordering::SeqCst);
    assert!(
        grown > SEND_BUFFER_KEPT_BYTES,
        "the burst grew no buffer ({grown} bytes)"
    );
    let kept = capacity.load(Ordering::SeqCst);
    assert!(
        kept <= SEND_BUFFER_KEPT_BYTES,
        "{kept} bytes kept after the burst"
    );
    assert!(matches!(next_event(&events), Event::Accepted(_)));
    assert_eq!(stop_and_join(&stop, driver), 7);
}

#[test]
fn echoes_with_busy_poll() {
    let mut config = config(overlay::limits::RECV_BUFFER_BYTES);
    config.busy_poll = overlay::io::BusyPoll::For(Duration::from_millis(1));
    echo_one_mebibyte(config);
}

/// While busy-polling, completions are taken by the poll itself: with the poll and the next
/// tick a minute away, an echo still comes back at once (a poll that missed completions would
/// leave them to the wait after the poll, a minute later), and so does the peer's close.
#[test]
fn busy_poll_takes_completions_while_polling() {
    let (events_sender, events) = channel();
    let mut machine = Echo::new(events_sender, Arc::new(AtomicBool::new(false)));
    machine.tick_nanos = 60_000_000_000;
    machine.exit_on_close = true;
    let mut config = config(4096);
    config.busy_poll = overlay::io::BusyPoll::For(Duration::from_secs(60));
    let (listener, addr) = listener();
    let driver = start(machine, Some(listener), config);
    let mut stream = client(addr);
    // The echo keeps the last 3 bytes of what it has until more arrive.
    for (send, expect) in [(&b"ping!"[..], &b"pi"[..]), (b"pong!", b"ng!po")] {
        stream.write_all(send).unwrap();
        let mut echoed = vec![0; expect.len()];
        stream
            .read_exact(&mut echoed)
            .expect("the echo comes back while the driver busy-polls");
        assert_eq!(echoed, expect);
    }
    assert!(matches!(next_event(&events), Event::Accepted(_)));
    stream.shutdown(Shutdown::Both).unwrap();
    assert!(matches!(next_event(&events), Event::Closed(..)));
    assert_eq!(driver.join().unwrap().unwrap(), 7);
}

/// A busy poll ends when the machine's tick is due: with ticks every 2 ms and a poll of a
/// minute, the machine still sees its ticks and stops on one at once.
#[test]
fn busy_poll_runs_ticks_on_time() {
    let (events_sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let mut config = config(4096);
    config.busy_poll = overlay::io::BusyPoll::For(Duration::from_secs(60));
    let started = std::time::Instant::now();
    let driver = start(Echo::new(events_sender, stop.clone()), None, config);
    // A first tick runs while the loop polls; then the machine stops on the next one.
    assert_eq!(
        events
            .recv_timeout(TIMEOUT)
            .expect("a tick within the timeout"),
        Event::Tick
    );
    assert_eq!(stop_and_join(&stop, driver), 7);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(30),
        "stopping took {elapsed:?}: the poll held the tick back"
    );
}

fn echo_one_mebibyte(config: DriverConfig) {
    let (events_sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (listener, addr) = listener();
    let driver = start(
        Echo::new(events_sender, stop.clone()),
        Some(listener),
        config,
    );
    let stream = client(addr);
    let total_bytes = 1 << 20;
    let data: Vec<u8> = (0..total_bytes)
        .map(|index| (index * 31 % 251) as u8)
        .collect();
    let mut writer = stream.try_clone().unwrap();
    let to_write = data.clone();
    let writer = std::thread::spawn(move || {
        let sizes = [1, 7, 100, 1500, 4096, 65536, 3, 200_000, 17];
        let mut offset = 0;
        let mut index = 0;
        while offset < to_write.len() {
            let size = sizes[index % sizes.len()].min(to_write.len() - offset);
            writer.write_all(&to_write[offset..offset + size]).unwrap();
            offset += size;
            index += 1;
        }
    });
    let mut echoed = vec![0; total_bytes];
    let mut reader = stream;
    // The echo keeps the last 3 bytes of each read until more arrive; the final 3 come back
    // only with more input.
    reader
        .read_exact(&mut echoed[..total_bytes - 3])
        .expect("echo of all but the kept tail");
    writer.join().unwrap();
    reader.write_all(b"end").unwrap();
    reader.read_exact(&mut echoed[total_bytes - 3..]).unwrap();
    assert!(echoed == data, "echoed bytes differ from the sent bytes");
    assert!(matches!(next_event(&events), Event::Accepted(conn) if !conn.is_outbound()));
    assert_eq!(stop_and_join(&stop, driver), 7);
}

#[test]
fn connect_reports_connected_and_sends() {
    let (events_sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut machine = Echo::new(events_sender, stop.clone());
    machine.connect_to = Some(target.local_addr().unwrap());
    machine.greeting = b"hello from overlay".to_vec();
    let driver = start(machine, None, config(4096));
    let (mut stream, peer) = target.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut greeting = [0; 18];
    stream.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"hello from overlay");
    assert!(matches!(next_event(&events), Event::Connected(conn) if conn.is_outbound()));
    // Echo works on an outbound connection too.
    stream.write_all(b"ping!").unwrap();
    let mut echoed = [0; 2];
    stream.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"pi");
    assert_eq!(stop_and_join(&stop, driver), 7);
}

#[test]
fn connect_to_closed_port_reports_closed_with_reason() {
    let (events_sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut machine = Echo::new(events_sender, stop.clone());
    machine.connect_to = Some(addr);
    let driver = start(machine, None, config(4096));
    match next_event(&events) {
        Event::Closed(conn, reason) => {
            assert!(conn.is_outbound());
            assert_eq!(
                reason,
                CloseReason::ConnectFailed {
                    addr,
                    error: LinkError::Refused
                }
            );
            assert!(
                reason
                    .to_string()
                    .contains(&format!("connect to {addr} failed")),
                "{reason}"
            );
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(stop_and_join(&stop, driver), 7);
}

#[test]
fn peer_close_reports_closed_by_peer() {
    let Accepted {
        events,
        stop,
        driver,
        stream,
        accepted,
    } = echo_with_one_client();
    stream.shutdown(Shutdown::Both).unwrap();
    drop(stream);
    assert_eq!(
        next_event(&events),
        Event::Closed(accepted, CloseReason::PeerClosed)
    );
    assert_eq!(stop_and_join(&stop, driver), 7);
}

#[test]
fn peer_reset_reports_the_reset_reason() {
    let Accepted {
        events,
        stop,
        driver,
        stream,
        accepted,
    } = echo_with_one_client();
    // A zero linger time makes the close a reset (RST) instead of an end of stream.
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
    let Event::Closed(conn, reason) = next_event(&events) else {
        panic!("expected Closed");
    };
    assert_eq!(conn, accepted);
    assert_eq!(reason, CloseReason::ReceiveFailed(LinkError::Reset));
    assert!(
        reason.to_string().contains("Connection reset by peer"),
        "{reason}"
    );
    assert_eq!(stop_and_join(&stop, driver), 7);
}

#[test]
fn machine_close_flushes_then_closes_without_on_closed() {
    let (events_sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (listener, addr) = listener();
    let mut machine = Echo::new(events_sender, stop.clone());
    machine.reply_and_close = Some(b"bye".repeat(100_000));
    let driver = start(machine, Some(listener), config(4096));
    let mut stream = client(addr);
    stream.write_all(b"hi").unwrap();
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .expect("reply, then end of stream");
    assert_eq!(reply, b"bye".repeat(100_000));
    assert!(matches!(next_event(&events), Event::Accepted(_)));
    assert_eq!(stop_and_join(&stop, driver), 7);
    // No on_closed for a connection the machine closed.
    while let Ok(event) = events.try_recv() {
        assert!(!matches!(event, Event::Closed(..)), "{event:?}");
    }
}

/// A close whose flush ends after its send completes (not while the close is carried out):
/// the exit the machine asks for then is carried out at once, though nothing else happens
/// (no tick, no more input). A process of several nodes with trunks hung there after its
/// last node left (tests/group.rs).
#[test]
fn an_exit_asked_for_when_a_close_is_flushed_ends_the_run() {
    let (events_sender, events) = channel();
    let (listener, addr) = listener();
    let mut machine = Echo::new(events_sender, Arc::new(AtomicBool::new(false)));
    machine.reply_and_close = Some(b"bye".repeat(100_000));
    machine.exit_on_flushed = true;
    let driver = start(machine, Some(listener), config(4096));
    let mut stream = client(addr);
    stream.write_all(b"hi").unwrap();
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .expect("reply, then end of stream");
    assert_eq!(reply, b"bye".repeat(100_000));
    assert!(matches!(next_event(&events), Event::Accepted(_)));
    let start = Instant::now();
    while !driver.is_finished() {
        assert!(
            start.elapsed() < TIMEOUT,
            "the driver did not exit after the flush"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(driver.join().unwrap().unwrap(), 7);
}

#[test]
fn full_receive_buffer_closes_the_connection() {
    let (events_sender, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (listener, addr) = listener();
    let mut machine = Echo::new(events_sender, stop.clone());
    machine.consume_nothing = true;
    let driver = start(machine, Some(listener), config(64));
    let mut stream = client(addr);
    let Event::Accepted(accepted) = next_event(&events) else {
        panic!("expected Accepted");
    };
    stream.write_all(&[0; 100]).unwrap();
    assert_eq!(
        next_event(&events),
        Event::Closed(accepted, CloseReason::FrameTooLarge)
    );
    let mut rest = Vec::new();
    // The driver shut the connection down: end of stream (or a reset).
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert_eq!(stop_and_join(&stop, driver), 7);
}

#[test]
fn exit_effect_ends_run_with_its_code() {
    let (events_sender, _events) = channel();
    let mut machine = Echo::new(events_sender, Arc::new(AtomicBool::new(false)));
    machine.exit_at_start = Some(42);
    let (listener, _) = listener();
    let driver = start(machine, Some(listener), config(4096));
    assert_eq!(driver.join().unwrap().unwrap(), 42);
}

#[test]
fn past_ticks_run_at_once() {
    let (events_sender, events) = channel();
    let mut machine = Echo::new(events_sender, Arc::new(AtomicBool::new(false)));
    machine.ticks_before_exit = Some(5);
    machine.next_tick = Some(0);
    let driver = start(machine, None, config(4096));
    assert_eq!(driver.join().unwrap().unwrap(), 5);
    let ticks = events
        .try_iter()
        .filter(|event| *event == Event::Tick)
        .count();
    assert_eq!(ticks, 5);
}

#[test]
fn the_hand_over_comes_once_the_kernel_took_every_byte() {
    // The machine queues 64 MiB for a client that does not read, far more than the two
    // sockets' buffers hold, and asks to hear when all of it is in the kernel (the registry
    // counts a poll's deadline from then). Nothing is said while the client reads nothing;
    // once it has read everything, the driver says so.
    const BYTES: usize = 64 << 20;
    let (tx, events) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let mut machine = Echo::new(tx, stop.clone());
    machine.echo = false;
    machine.greeting = vec![7; BYTES];
    machine.greet_accepted_and_await = true;
    let (listener, addr) = listener();
    let driver = start(machine, Some(listener), config(64 * 1024));
    let mut stream = client(addr);
    assert!(matches!(next_event(&events), Event::Accepted(_)));
    let quiet_until = Instant::now() + Duration::from_millis(500);
    while let Some(left) = quiet_until.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(Event::Tick) | Err(_) => {}
            Ok(event) => panic!("{event:?} while the client had read nothing"),
        }
    }
    let mut buffer = vec![0; 1 << 20];
    let mut read = 0;
    while read < BYTES {
        let n = stream
            .read(&mut buffer)
            .expect("read what the machine sends");
        assert!(n > 0, "the driver closed after {read} bytes");
        read += n;
    }
    assert_eq!(next_event(&events), Event::HandedOver);
    stop_and_join(&stop, driver);
}

/// What a [`Stoppable`] machine tells the test.
#[derive(Debug, PartialEq)]
enum Stop {
    Accepted,
    /// The machine's thread is stopped, as SIGSTOP would stop the process, until the test
    /// says go; a deadline is due when it resumes.
    Stopped,
    /// The deadline's tick came, and the machine had received bytes from this many
    /// connections.
    Judged(usize),
}

/// A machine that stops its thread at a chosen point (the accept of a connection, or the
/// first bytes received) until the test says go, as a node stopped by SIGSTOP and continued
/// past a deadline; at the deadline's tick it reports from how many connections it had
/// received bytes, then exits.
struct Stoppable {
    events: Sender<Stop>,
    go: Receiver<()>,
    stop_at_accept: bool,
    stopped: bool,
    received: std::collections::HashSet<ConnId>,
    deadline: Option<Nanos>,
    effects: Vec<Effect>,
}

impl Stoppable {
    fn new(stop_at_accept: bool) -> (Stoppable, Receiver<Stop>, Sender<()>) {
        let (events, seen) = channel();
        let (go_sender, go) = channel();
        let machine = Stoppable {
            events,
            go,
            stop_at_accept,
            stopped: false,
            received: std::collections::HashSet::new(),
            deadline: None,
            effects: Vec::new(),
        };
        (machine, seen, go_sender)
    }

    fn stop(&mut self, now: Nanos) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.deadline = Some(now);
        let _ = self.events.send(Stop::Stopped);
        self.go.recv_timeout(TIMEOUT).expect("the test says go");
    }
}

impl Machine for Stoppable {
    fn on_start(&mut self, _now: Nanos) {}

    fn on_accepted(&mut self, now: Nanos, _conn: ConnId, _peer: SocketAddr, _local: SocketAddr) {
        let _ = self.events.send(Stop::Accepted);
        if self.stop_at_accept {
            self.stop(now);
        }
    }

    fn on_connected(&mut self, _now: Nanos, _conn: ConnId) {}

    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        self.received.insert(conn);
        self.stop(now);
        bytes.len()
    }

    fn on_closed(&mut self, _now: Nanos, _conn: ConnId, _reason: CloseReason) {}

    fn on_command(&mut self, _now: Nanos, _line: &str) {}

    fn on_tick(&mut self, _now: Nanos) {
        self.deadline = None;
        let _ = self.events.send(Stop::Judged(self.received.len()));
        self.effects.push(Effect::Exit(0));
    }

    fn next_tick(&self) -> Option<Nanos> {
        self.deadline
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        into.append(&mut self.effects);
    }

    fn swap_outgoing(&mut self, _conn: ConnId, _buf: &mut Vec<u8>) {}
}

fn run_stoppable(
    machine: Stoppable,
    listener: TcpListener,
    max_connections: usize,
) -> JoinHandle<Result<i32, DriverError>> {
    let config = DriverConfig {
        max_connections,
        ..config(4096)
    };
    std::thread::spawn(move || {
        let mut machine = machine;
        overlay::io::run(&mut machine, vec![listener], &config)
    })
}

/// The flake of tests/faults.rs `a_node_stopped_past_a_handshake_deadline_reads_the_hello_that_came_first`
/// (issue 12): the node was stopped right after it accepted a connection, before the
/// connection's first receive was submitted; the hello came while it was stopped, and when it
/// resumed past the handshake deadline, the tick judged before that receive was ever
/// submitted. A tick comes only after the bytes that arrived before it have been read.
#[test]
fn a_tick_after_a_stop_reads_what_came_on_a_connection_accepted_just_before() {
    let (listener, addr) = listener();
    let (machine, seen, go) = Stoppable::new(true);
    let driver = run_stoppable(machine, listener, 16);
    let mut peer = client(addr);
    assert_eq!(seen.recv_timeout(TIMEOUT).unwrap(), Stop::Accepted);
    assert_eq!(seen.recv_timeout(TIMEOUT).unwrap(), Stop::Stopped);
    peer.write_all(b"hello").unwrap();
    go.send(()).unwrap();
    assert_eq!(
        seen.recv_timeout(TIMEOUT).unwrap(),
        Stop::Judged(1),
        "the deadline was judged before the bytes that came before it were read"
    );
    assert_eq!(driver.join().unwrap().unwrap(), 0);
}

/// Stopped with many receives in flight, whose bytes all arrive while it is stopped: the
/// kernel runs a bounded batch of deferred completions per ask (20 on Linux 6.x), so the tick
/// comes only after the loop asked until the kernel flags no more waiting.
#[test]
fn a_tick_after_a_stop_reads_what_came_on_every_connection() {
    const PEERS: usize = 64;
    let (listener, addr) = listener();
    let (machine, seen, go) = Stoppable::new(false);
    let driver = run_stoppable(machine, listener, PEERS + 8);
    let mut peers: Vec<TcpStream> = (0..PEERS).map(|_| client(addr)).collect();
    for _ in 0..PEERS {
        assert_eq!(seen.recv_timeout(TIMEOUT).unwrap(), Stop::Accepted);
    }
    // Let the loop submit every connection's first receive.
    std::thread::sleep(Duration::from_millis(200));
    peers[0].write_all(b"first").unwrap();
    assert_eq!(seen.recv_timeout(TIMEOUT).unwrap(), Stop::Stopped);
    for peer in &mut peers[1..] {
        peer.write_all(b"while stopped").unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    go.send(()).unwrap();
    assert_eq!(
        seen.recv_timeout(TIMEOUT).unwrap(),
        Stop::Judged(PEERS),
        "the deadline was judged before the bytes that came before it were read"
    );
    assert_eq!(driver.join().unwrap().unwrap(), 0);
}

/// What a [`Stamped`] machine tells the test.
#[derive(Debug, PartialEq)]
enum Stamp {
    /// Its thread is stopped in `next_tick`, between the driver's reading of the clock and
    /// its next ask for completions, until the test says go.
    Stopped,
    /// At the deadline's tick: the send times read and, of them, those later than the time
    /// the driver gave with their bytes.
    Judged { read: usize, later_than_now: usize },
}

/// A machine that reads 8-byte send times (CLOCK_MONOTONIC, big-endian) and compares each with
/// the time the driver gives with its bytes; on the first bytes it sets a deadline due at once
/// and stops its thread in the driver's next look at it (`next_tick`), as the scheduler may
/// stop a process between the driver's reading of the clock and its next ask (four nodes on
/// one core): bytes sent meanwhile are read before the tick.
struct Stamped {
    events: Sender<Stamp>,
    go: Receiver<()>,
    stop_armed: std::cell::Cell<bool>,
    partial: Vec<u8>,
    read: usize,
    later_than_now: usize,
    deadline: Option<Nanos>,
    effects: Vec<Effect>,
}

impl Machine for Stamped {
    fn on_start(&mut self, _now: Nanos) {}

    fn on_accepted(&mut self, _now: Nanos, _conn: ConnId, _peer: SocketAddr, _local: SocketAddr) {}

    fn on_connected(&mut self, _now: Nanos, _conn: ConnId) {}

    fn on_received(&mut self, now: Nanos, _conn: ConnId, bytes: &[u8]) -> usize {
        self.partial.extend_from_slice(bytes);
        while self.partial.len() >= 8 {
            let sent = u64::from_be_bytes(self.partial[..8].try_into().unwrap());
            self.partial.drain(..8);
            self.read += 1;
            if sent > now {
                self.later_than_now += 1;
            }
        }
        if self.deadline.is_none() {
            self.deadline = Some(now);
            self.stop_armed.set(true);
        }
        bytes.len()
    }

    fn on_closed(&mut self, _now: Nanos, _conn: ConnId, _reason: CloseReason) {}

    fn on_command(&mut self, _now: Nanos, _line: &str) {}

    fn on_tick(&mut self, _now: Nanos) {
        let _ = self.events.send(Stamp::Judged {
            read: self.read,
            later_than_now: self.later_than_now,
        });
        self.deadline = None;
        self.effects.push(Effect::Exit(0));
    }

    fn next_tick(&self) -> Option<Nanos> {
        if self.stop_armed.replace(false) {
            let _ = self.events.send(Stamp::Stopped);
            self.go.recv_timeout(TIMEOUT).expect("the test says go");
        }
        self.deadline
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        into.append(&mut self.effects);
    }

    fn swap_outgoing(&mut self, _conn: ConnId, _buf: &mut Vec<u8>) {}
}

/// The misfire of "latency not recorded for a packet whose send time lies before this run
/// began here" on one machine (tests/busy_poll.rs at 2a3d04a, four nodes on one core): the
/// driver read the clock, the process did not run for a while, and the bytes that came
/// meanwhile were read before the tick and handed over with the time read before them, so a
/// send time could lie after "now" (its age wrapped: no latency) or, sent just before, look
/// younger than it was. Every byte comes with a time read after it arrived.
#[test]
fn bytes_come_with_a_time_no_earlier_than_their_arrival() {
    let (listener, addr) = listener();
    let (events, seen) = channel();
    let (go_sender, go) = channel();
    let machine = Stamped {
        events,
        go,
        stop_armed: std::cell::Cell::new(false),
        partial: Vec::new(),
        read: 0,
        later_than_now: 0,
        deadline: None,
        effects: Vec::new(),
    };
    let driver = std::thread::spawn(move || {
        let mut machine = machine;
        overlay::io::run(&mut machine, vec![listener], &config(4096))
    });
    let mut peer = client(addr);
    peer.write_all(&overlay::io::clock::now().to_be_bytes())
        .unwrap();
    assert_eq!(seen.recv_timeout(TIMEOUT).unwrap(), Stamp::Stopped);
    peer.write_all(&overlay::io::clock::now().to_be_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    go_sender.send(()).unwrap();
    assert_eq!(
        seen.recv_timeout(TIMEOUT).unwrap(),
        Stamp::Judged {
            read: 2,
            later_than_now: 0
        },
        "bytes sent while the driver did not run came with a time read before they were sent"
    );
    assert_eq!(driver.join().unwrap().unwrap(), 0);
}
