//! Connections: connects, closes (by either side, with their reasons), flushes, ticks, and the
//! hand-over once the kernel took every byte.

use super::*;

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
