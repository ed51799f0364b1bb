//! Bytes echoed back whole: through a buffer of its own, receive buffers lent to the machine,
//! a ring of shared buffers, and the busy-poll loop.

use super::*;

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
