//! What the operator sets or says: a run by time, `stop`, a warm-up.

use super::*;

/// A run by time: at its time the nodes are told to stop; each reports task finished, and the
/// run ends by the usual rule, with every packet accounted for.
#[test]
fn a_run_by_time_stops_the_nodes_at_its_time_then_drains_as_usual() {
    let run = Run::new(1, u64::MAX, 0, 3, vec![1, 2], 0, timing(None)).by_time(1500 * MS);
    assert_eq!(run.goal(), Goal::Duration(1500 * MS));
    let run = play_run(
        run,
        &[
            (0, Tick, Nothing, Some(1000)),
            (1000, Tick, Poll, Some(1500)),
            (1001, Progress(1, [5, 3, 2, 0, 0]), Nothing, Some(1500)),
            (1002, Progress(2, [3, 2, 1, 0, 0]), Nothing, Some(1500)),
            (1500, Tick, StopSending, Some(2002)),
            // Told once only.
            (1500, Tick, Nothing, Some(2002)),
            (1501, Finished(1), Nothing, Some(2002)),
            (1502, Finished(2), Poll, Some(11_502)),
            (1503, Progress(1, DONE_1), Nothing, Some(11_502)),
            (1503, Progress(2, DONE_2), Nothing, Some(1504)),
            (1504, Tick, Poll, Some(11_504)),
            (1504, Progress(1, DONE_1), Nothing, Some(11_504)),
            (1505, Progress(2, DONE_2), Collect, Some(11_505)),
            (1506, Final(1), Nothing, Some(11_505)),
            (1507, Final(2), Finish(&[1, 2], &[]), None),
        ],
    );
    assert_eq!(
        run.stopped_early_at, None,
        "the time was up: not stopped early"
    );
    assert_eq!(run.all_finished_at, Some(1502 * MS));
}

/// `stop` while nodes send: they are told to stop, and the run ends by the usual rule once
/// what was on its way arrived; it is marked stopped early. A second `stop` does not wait.
#[test]
fn stop_while_sending_tells_the_nodes_and_a_second_stop_collects_at_once() {
    let run = play(
        None,
        &[1, 2],
        &[
            (0, Tick, Nothing, Some(1000)),
            (300, StopCommand, StopSending, Some(1000)),
            (301, Finished(1), Nothing, Some(1000)),
            (302, Finished(2), Poll, Some(10_302)),
            (303, Progress(1, DONE_1), Nothing, Some(10_302)),
            (303, Progress(2, DONE_2), Nothing, Some(304)),
            (304, Tick, Poll, Some(10_304)),
            (304, Progress(1, DONE_1), Nothing, Some(10_304)),
            (305, Progress(2, DONE_2), Collect, Some(10_305)),
            (306, Final(1), Nothing, Some(10_305)),
            (307, Final(2), Finish(&[1, 2], &[]), None),
        ],
    );
    assert_eq!(run.stopped_early_at, Some(300 * MS));

    // Packets that never arrive: the operator does not wait for the stall timeout.
    let run = play(
        None,
        &[1],
        &[
            (100, StopCommand, StopSending, Some(1000)),
            (101, Finished(1), Poll, Some(10_101)),
            (102, Progress(1, [6, 4, 1, 0, 0]), Nothing, Some(103)),
            (200, StopCommand, Collect, Some(10_200)),
            (201, Final(1), Finish(&[1], &[]), None),
        ],
    );
    assert_eq!(run.stopped_early_at, Some(100 * MS));
}

/// `stop` after every node finished, while settling (classic) or stopping after a failure:
/// collect at once, keeping the failures; while collecting: end with the summaries that came.
#[test]
fn stop_after_sending_collects_at_once_and_while_collecting_ends_the_run() {
    let run = play(
        Some(1000),
        &[1],
        &[
            (10, Finished(1), Nothing, Some(1010)),
            (20, StopCommand, Collect, Some(10_020)),
            (21, Final(1), Finish(&[1], &[]), None),
        ],
    );
    assert_eq!(run.stopped_early_at, None, "every packet had been sent");
    play(
        None,
        &[1, 2],
        &[
            (0, Fail("node 3 left"), Stop, Some(10_000)),
            (5, StopCommand, Collect, Some(10_005)),
            (6, Final(1), Nothing, Some(10_005)),
            (
                7,
                StopCommand,
                Finish(
                    &[1],
                    &["node 3 left", "stopped before node 2 sent a final summary"],
                ),
                None,
            ),
        ],
    );
}

/// A warm-up: a poll round goes out when it ends; that round's totals mark where the figures
/// start, and the latencies of the rounds up to it are kept to be taken out.
#[test]
fn a_warm_up_is_marked_by_the_first_round_sent_after_it() {
    let run = Run::new(1, 100, 0, 3, vec![1], 0, timing(None)).with_warmup(1500 * MS);
    assert_eq!(run.warmup(), Some(1500 * MS));
    let run = play_run(
        run,
        &[
            (0, Tick, Nothing, Some(1000)),
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, [5, 3, 2, 0, 0]), Nothing, Some(1500)),
            (1500, Tick, Poll, Some(11_500)),
            (1502, Progress(1, [9, 7, 4, 0, 0]), Nothing, Some(2502)),
        ],
    );
    let mark = run.warmup_mark().unwrap();
    assert_eq!(mark.at, 1500 * MS);
    assert_eq!(mark.totals.received, 7);

    // A round in flight when the warm-up ends: the next goes out as soon as it completes.
    let run = Run::new(1, 100, 0, 3, vec![1], 0, timing(None)).with_warmup(1000 * MS);
    let run = play_run(
        run,
        &[
            (999, Tick, Nothing, Some(1000)),
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, [5, 3, 2, 0, 0]), Nothing, Some(2001)),
        ],
    );
    assert_eq!(run.warmup_mark().unwrap().at, 1000 * MS);
    let early = Run::new(1, 100, 0, 3, vec![1], 0, timing(None)).with_warmup(1001 * MS);
    let early = play_run(
        early,
        &[
            (1000, Tick, Poll, Some(11_000)),
            (1002, Progress(1, [5, 3, 2, 0, 0]), Nothing, Some(1002)),
            (1002, Tick, Poll, Some(11_002)),
            (1003, Progress(1, [6, 4, 2, 0, 0]), Nothing, Some(2003)),
        ],
    );
    assert_eq!(early.warmup_mark().unwrap().at, 1002 * MS);
    assert_eq!(early.warmup_mark().unwrap().totals.received, 4);

    // Every node finished before the warm-up ended: no mark, the figures are whole; and
    // without polls (classic) there is no warm-up at all.
    let run = Run::new(1, 100, 0, 3, vec![1], 0, timing(None)).with_warmup(5000 * MS);
    let run = play_run(
        run,
        &[
            (100, Finished(1), Poll, Some(10_100)),
            (101, Progress(1, [4, 4, 0, 0, 0]), Nothing, Some(102)),
        ],
    );
    assert!(run.warmup_mark().is_none());
    let classic = Run::new(1, 100, 0, 3, vec![1], 0, timing(Some(1000))).with_warmup(MS);
    assert_eq!(classic.warmup(), None);
}
