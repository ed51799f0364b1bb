//! A trunk's credit (`credit.rs`): what a trunk sends against it, and the batches it holds
//! past it, copied or named for the driver's gathered send.

use super::*;

#[test]
fn a_trunk_sends_no_more_than_its_credit_and_resumes_on_credit() {
    sends_no_more_than_its_credit(TRUNK_CREDIT_BYTES, false);
}

#[test]
fn a_trunk_names_what_streams_held_for_a_gathered_send_and_reuses_it_once_let_go() {
    sends_no_more_than_its_credit(TRUNK_CREDIT_BYTES, true);
}

#[test]
fn a_trunk_sends_no_more_than_the_smaller_credit_where_links_time_out_on_a_closed_window() {
    sends_no_more_than_its_credit(TRUNK_CREDIT_BYTES_USER_TIMEOUT, false);
}

/// A run of node 0's far beyond a trunk's credit `credit_bytes`, credited back slowly. With
/// `gather`, the trunk's bytes are taken as the driver takes them for a gathered send (what
/// streams held named among holes, which the driver keeps until its next take).
fn sends_no_more_than_its_credit(credit_bytes: usize, gather: bool) {
    let (mut mux, registry, trunk) = table_of_peer_nodes(1 << 20, credit_bytes);
    let up = dialed_trunk_up(&mut mux, trunk);
    let hellos: usize = up.iter().filter(|s| s.0 == DATA).map(|s| s.2.len()).sum();
    // Each stream's bytes, in the order the trunk carried them.
    let mut streams: HashMap<u32, Vec<u8>> = HashMap::new();
    for (_, stream, bytes) in up.iter().filter(|s| s.0 == DATA) {
        streams.entry(*stream).or_default().extend_from_slice(bytes);
    }
    // A run: node 0 originates far more than the credit (its window is 1 MiB).
    start_a_long_run(&mut mux, registry);
    let frame_max = 1 << 10;
    let mut in_flight = Vec::new();
    let mut holes_named = 0;
    let mut shared_with_driver = false;
    let mut now = 6;
    let mut data_sent = hellos;
    let mut credited = 0;
    // The peer consumes slowly: 10,000 bytes per round, each round the node originates more.
    for round in 0..40 {
        for _ in 0..4 {
            now += 1_000_000;
            mux.on_tick(now);
        }
        effects(&mut mux);
        loop {
            let segments = if gather {
                let mut buf = Vec::new();
                in_flight.clear();
                mux.swap_outgoing_held(trunk, &mut buf, &mut in_flight);
                holes_named += in_flight.len();
                shared_with_driver |= !mux.let_go.is_empty();
                segments(&crate::machine::gathered(&buf, &in_flight))
            } else {
                sent(&mut mux, trunk)
            };
            let data: usize = segments
                .iter()
                .filter(|s| s.0 == DATA)
                .map(|s| s.2.len())
                .sum();
            for (_, stream, bytes) in segments.iter().filter(|s| s.0 == DATA) {
                streams.entry(*stream).or_default().extend_from_slice(bytes);
            }
            if data == 0 {
                break;
            }
            data_sent += data;
        }
        let outstanding = data_sent - credited;
        assert_eq!(mux.trunks[&trunk].outstanding, outstanding, "round {round}");
        // Each node got its own queue's buffer back: the one the mux swaps in and out stays
        // the empty one it started with.
        assert_eq!(mux.taken.capacity(), 0, "round {round}");
        assert!(
            outstanding < credit_bytes + frame_max,
            "round {round}: {outstanding} bytes outstanding"
        );
        if round >= 2 {
            // The credit is used up; the streams still have bytes (in their node's queues, or
            // held in whole frames), and the driver is told of none.
            assert!(outstanding >= credit_bytes, "round {round}: {outstanding}");
            assert!(!mux.trunks[&trunk].wanting.is_empty(), "round {round}");
            assert_eq!(mux.pending_len(trunk), 0, "round {round}");
        }
        let mut credit = Vec::new();
        segment::put_credit(&mut credit, 10_000);
        credited += 10_000;
        now += 1;
        assert_eq!(mux.on_received(now, trunk, &credit), credit.len());
        // A credit with streams waiting asks the driver for the trunk's bytes at once.
        assert!(
            effects(&mut mux).contains(&Effect::Send(trunk)),
            "round {round}"
        );
    }
    assert!(data_sent > 40 * 10_000, "{data_sent}");
    // What passed the credit was held and went later, as it was: each stream's bytes are its
    // node's frames, whole, each once (a hello, then data frames of a run from node 0, each
    // with a random value and its send time).
    let mut seen = HashSet::new();
    for (stream, bytes) in &streams {
        let mut at = 0;
        while at < bytes.len() {
            let len = Native::frame_len(&bytes[at..]).unwrap().unwrap();
            assert!(
                len > 0 && at + len <= bytes.len(),
                "stream {stream} at {at}"
            );
            let frame = &bytes[at..at + len];
            if frame[4] == crate::wire::native::kind::DATA {
                assert!(seen.insert(frame), "stream {stream}: a data frame twice");
            }
            at += len;
        }
    }
    assert!(seen.len() > 1_000, "{}", seen.len());
    // Batches passed the credit while emptied ones were kept: held as they were, not copied.
    assert!(mux.held_in_place > 0);
    if gather {
        // Held batches went as holes, and a batch all sent waited while the driver still had
        // it; once the driver let go (its next take), its allocation became a spare.
        assert!(holes_named > 0);
        assert!(shared_with_driver);
        in_flight.clear();
        mux.swap_outgoing_held(trunk, &mut Vec::new(), &mut in_flight);
        assert!(mux.let_go.is_empty());
        assert!(!mux.spares.is_empty());
        // Spares no batch used for a while are freed by the mux's sweep.
        mux.on_tick(now + STREAM_BURST_GAP_NS);
        assert!(mux.spares.is_empty() && mux.let_go.is_empty());
    } else {
        // Without a driver holding them, a batch all sent is a spare at once.
        assert!(mux.let_go.is_empty());
    }
}
