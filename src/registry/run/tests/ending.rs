//! The usual end: two equal rounds after the last task-finished that account for every
//! packet, then the final summaries; which replies count toward a round.

use super::*;

#[test]
fn ends_when_two_rounds_agree_and_every_packet_is_accounted_for() {
    play(
        None,
        &[1, 2],
        &[
            (0, Tick, Nothing, Some(1000)),
            (400, Finished(1), Nothing, Some(1000)),
            (999, Tick, Nothing, Some(1000)),
            // A progress round while node 2 still sends; the next one a second later.
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, [5, 3, 2, 0, 0]), Nothing, Some(11_000)),
            (1002, Progress(2, [3, 2, 1, 0, 0]), Nothing, Some(2002)),
            // The last task-finished: a round at once, then every millisecond.
            (1500, Finished(2), Poll, Some(11_500)),
            (1501, Progress(1, DONE_1), Nothing, Some(11_500)),
            // Every packet accounted for, but seen in one round only.
            (1502, Progress(2, DONE_2), Nothing, Some(1503)),
            (1503, Tick, Poll, Some(11_503)),
            (1504, Progress(1, DONE_1), Nothing, Some(11_503)),
            (1505, Progress(2, DONE_2), Collect, Some(11_505)),
            (1506, Final(1), Nothing, Some(11_505)),
            (1507, Final(2), Finish(&[1, 2], &[]), None),
        ],
    );
}

#[test]
fn equal_rounds_end_the_run_only_when_every_packet_is_accounted_for() {
    let run = play(
        None,
        &[1],
        &[
            (0, Finished(1), Poll, Some(10_000)),
            // Accounted for, but the next round differs: not quiet, back to 1 ms.
            (1, Progress(1, [4, 4, 0, 0, 0]), Nothing, Some(2)),
            (2, Tick, Poll, Some(10_002)),
            (3, Progress(1, [4, 4, 1, 0, 0]), Nothing, Some(4)),
            // Two equal rounds that account for every packet: quiet.
            (4, Tick, Poll, Some(10_004)),
            (4, Progress(1, [4, 4, 1, 0, 0]), Collect, Some(10_004)),
        ],
    );
    assert_eq!(run.rounds, 3);

    let unaccounted = [6, 4, 1, 0, 0];
    play(
        None,
        &[1],
        &[
            (0, Finished(1), Poll, Some(10_000)),
            (0, Progress(1, unaccounted), Nothing, Some(1)),
            // Equal rounds with packets missing: the pause doubles, up to 64 ms.
            (1, Tick, Poll, Some(10_001)),
            (1, Progress(1, unaccounted), Nothing, Some(3)),
            (3, Tick, Poll, Some(10_003)),
            (3, Progress(1, unaccounted), Nothing, Some(7)),
            (7, Tick, Poll, Some(10_007)),
            (7, Progress(1, unaccounted), Nothing, Some(15)),
            (15, Tick, Poll, Some(10_015)),
            (15, Progress(1, unaccounted), Nothing, Some(31)),
            (31, Tick, Poll, Some(10_031)),
            (31, Progress(1, unaccounted), Nothing, Some(63)),
            (63, Tick, Poll, Some(10_063)),
            (63, Progress(1, unaccounted), Nothing, Some(127)),
            (127, Tick, Poll, Some(10_127)),
            (127, Progress(1, unaccounted), Nothing, Some(191)),
            // A corrupted and a dropped packet account for the rest, and totals changed:
            // back to 1 ms, then two equal rounds end the run.
            (191, Tick, Poll, Some(10_191)),
            (191, Progress(1, [6, 4, 1, 1, 1]), Nothing, Some(192)),
            (192, Tick, Poll, Some(10_192)),
            (192, Progress(1, [6, 4, 1, 1, 1]), Collect, Some(10_192)),
            (193, Final(1), Finish(&[1], &[]), None),
        ],
    );
}

#[test]
fn the_last_task_finished_during_a_round_polls_again_once_it_completes() {
    play(
        None,
        &[1, 2],
        &[
            (0, Finished(1), Nothing, Some(1000)),
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, DONE_1), Nothing, Some(11_000)),
            // Node 2 finishes before it answers: its reply completes the round in flight,
            // which counts as the first of the drain (it may predate the finish).
            (1002, Finished(2), Nothing, Some(11_000)),
            (1003, Progress(2, DONE_2), Nothing, Some(1002)),
            (1003, Tick, Poll, Some(11_003)),
            (1004, Progress(1, DONE_1), Nothing, Some(11_003)),
            (1004, Progress(2, DONE_2), Collect, Some(11_004)),
            (1005, Final(2), Nothing, Some(11_004)),
            (1005, Final(1), Finish(&[1, 2], &[]), None),
        ],
    );
}

#[test]
fn rounds_before_the_last_task_finished_do_not_count_toward_quiet() {
    play(
        None,
        &[1],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, [4, 4, 0, 0, 0]), Nothing, Some(2001)),
            // The same totals after the task-finished are a first round, not a second.
            (1500, Finished(1), Poll, Some(11_500)),
            (1501, Progress(1, [4, 4, 0, 0, 0]), Nothing, Some(1502)),
            (1502, Tick, Poll, Some(11_502)),
            (1502, Progress(1, [4, 4, 0, 0, 0]), Collect, Some(11_502)),
        ],
    );
}

#[test]
fn replies_count_once_and_only_when_asked_for() {
    play(
        None,
        &[1, 2],
        &[
            // Nobody asked: ignored.
            (10, Progress(1, DONE_1), Nothing, Some(1000)),
            (20, Final(1), Nothing, Some(1000)),
            (1000, Tick, Poll, Some(11_000)),
            // A second reply from node 1 does not stand in for node 2's.
            (1001, Progress(1, DONE_1), Nothing, Some(11_000)),
            (1002, Progress(1, DONE_1), Nothing, Some(11_000)),
            (1003, Finished(1), Nothing, Some(11_000)),
            (1003, Finished(1), Nothing, Some(11_000)),
            (1004, Finished(2), Nothing, Some(11_000)),
            (1005, Progress(2, DONE_2), Nothing, Some(1004)),
            (1005, Tick, Poll, Some(11_005)),
            (1006, Progress(1, DONE_1), Nothing, Some(11_005)),
            (1006, Progress(2, DONE_2), Collect, Some(11_006)),
            // Collecting: progress replies and task-finished change nothing.
            (1007, Progress(1, [9, 9, 9, 9, 9]), Nothing, Some(11_006)),
            (1007, Finished(2), Nothing, Some(11_006)),
            (1008, Final(1), Nothing, Some(11_006)),
            (1008, Final(1), Nothing, Some(11_006)),
            (1009, Final(2), Finish(&[1, 2], &[]), None),
        ],
    );
}

#[test]
fn progress_rounds_carry_their_totals() {
    let mut run = Run::new(1, 100, 0, 3, vec![1, 2], 0, timing(None));
    // A reply nobody asked for is no round, even when every node sent one.
    run.on_progress(10 * MS, 1, counters([1, 0, 0, 0, 0]), None, Vec::new(), 2);
    run.on_progress(10 * MS, 2, counters([1, 0, 0, 0, 0]), None, Vec::new(), 2);
    assert_eq!((run.rounds, run.last_totals), (0, None));
    assert_eq!(run.on_tick(1000 * MS, &[1, 2]), Step::PollAll);
    run.on_progress(1001 * MS, 1, counters([5, 3, 2, 1, 0]), None, Vec::new(), 2);
    assert_eq!((run.rounds, run.last_totals), (0, None));
    run.on_progress(1002 * MS, 2, counters([3, 2, 1, 0, 1]), None, Vec::new(), 2);
    let totals = Totals {
        sent: 8,
        received: 5,
        relayed: 3,
        corrupted: 1,
        dropped: 1,
    };
    assert_eq!((run.rounds, run.last_totals), (1, Some(totals)));
    assert!(!totals.accounted());
}
