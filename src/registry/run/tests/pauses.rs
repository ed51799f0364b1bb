//! A registry that did not run (SIGSTOP, starved): time it did not run blames no one.

use super::*;

#[test]
fn a_registry_stopped_past_the_stall_timeout_blames_no_one() {
    // The registry polls at 1 s and is stopped (SIGSTOP) until 31 s: the replies wait in its
    // sockets. Woken 20 s past the round's deadline, it counts none of the 30 s: the round
    // gets its 10 s again, the replies are read, and the run goes on to PASS.
    play(
        None,
        &[1, 2],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (31_000, Tick, Nothing, Some(41_000)),
            (31_001, Progress(1, [5, 3, 0, 0, 0]), Nothing, Some(41_000)),
            (31_001, Progress(2, [3, 3, 0, 0, 0]), Nothing, Some(32_001)),
            (31_002, Finished(1), Nothing, Some(32_001)),
            (31_002, Finished(2), Poll, Some(41_002)),
            (31_003, Progress(1, DONE_1), Nothing, Some(41_002)),
            (31_003, Progress(2, DONE_2), Nothing, Some(31_004)),
            (31_004, Tick, Poll, Some(41_004)),
            (31_005, Progress(1, DONE_1), Nothing, Some(41_004)),
            (31_005, Progress(2, DONE_2), Collect, Some(41_005)),
            (31_006, Final(1), Nothing, Some(41_005)),
            (31_006, Final(2), Finish(&[1, 2], &[]), None),
        ],
    );
}

#[test]
fn a_reply_read_after_a_pause_does_not_count_the_pause_as_no_progress() {
    // Draining: two rounds with equal totals, not all accounted for; the registry is stopped
    // for 15 s before it reads the second round's replies. Unchanged totals over time the
    // registry did not run are no stall.
    play(
        None,
        &[1, 2],
        &[
            (0, Finished(1), Nothing, Some(1000)),
            (0, Finished(2), Poll, Some(10_000)),
            (1, Progress(1, [5, 3, 0, 0, 0]), Nothing, Some(10_000)),
            (1, Progress(2, [3, 3, 0, 0, 0]), Nothing, Some(2)),
            (2, Tick, Poll, Some(10_002)),
            (15_003, Progress(1, [5, 3, 0, 0, 0]), Nothing, Some(25_003)),
            (15_003, Progress(2, [3, 3, 0, 0, 0]), Nothing, Some(15_005)),
        ],
    );
}

#[test]
fn after_a_pause_a_silent_node_is_still_named_once_the_registry_ran_its_stall_timeout() {
    // As `a_node_that_does_not_answer_fails_the_run_and_is_named`, with the registry stopped
    // from just after node 1's reply until 31 s: node 2 is named 10 s after the round was
    // sent in time the registry ran, that is at 40.999 s.
    play(
        None,
        &[1, 2],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, [1, 0, 0, 0, 0]), Nothing, Some(11_000)),
            (31_000, Tick, Nothing, Some(40_999)),
            (40_998, Tick, Nothing, Some(40_999)),
            (40_999, Tick, Stop, Some(50_999)),
            (41_000, Progress(1, [1, 1, 0, 0, 0]), Nothing, Some(50_999)),
            (50_999, Tick, Collect, Some(60_999)),
            (51_000, Final(1), Nothing, Some(60_999)),
            (
                60_999,
                Tick,
                Finish(
                    &[1],
                    &[
                        "node 2 did not answer a counter poll within 10 s",
                        "no final summary from node 2 within 10 s",
                    ],
                ),
                None,
            ),
        ],
    );
}

#[test]
fn a_pause_while_collecting_or_settling_blames_no_one() {
    // Classic wire: node 2's task-finished waits in the socket while the registry is stopped
    // for 20 s; then the final summaries wait while it is stopped again.
    play(
        Some(500),
        &[1, 2],
        &[
            (100, Finished(1), Nothing, Some(10_100)),
            (20_100, Tick, Nothing, Some(30_100)),
            (20_101, Finished(2), Nothing, Some(20_601)),
            (20_601, Tick, Collect, Some(30_601)),
            (20_602, Final(1), Nothing, Some(30_601)),
            (45_000, Tick, Nothing, Some(55_000)),
            (45_001, Final(2), Finish(&[1, 2], &[]), None),
        ],
    );
}

#[test]
fn a_pause_between_deciding_a_poll_and_sending_it_blames_no_one() {
    // The registry decides a round at 1 s and is stopped before the request leaves it; it runs
    // again at 11.1 s, 100 ms past the round's deadline (too little lateness to tell from
    // scheduling noise). The request reaches the kernel only then: the round's deadline counts
    // from there, the replies come, and nobody is named. Counted from the decision, the tick
    // at 11.1 s named both nodes before they could answer.
    play(
        None,
        &[1, 2],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (11_100, Handed, Nothing, Some(21_100)),
            (11_100, Tick, Nothing, Some(21_100)),
            (11_101, Progress(1, [5, 3, 0, 0, 0]), Nothing, Some(21_100)),
            (11_101, Progress(2, [3, 3, 0, 0, 0]), Nothing, Some(12_101)),
        ],
    );
}

#[test]
fn a_short_pause_between_deciding_a_poll_and_sending_it_moves_only_that_round() {
    // Stopped for 200 ms between the decision and the hand-over (not told from noise): the
    // round's deadline counts from the hand-over; nothing else moves. A node silent for the
    // stall timeout after that is named.
    play(
        None,
        &[1, 2],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (1200, Handed, Nothing, Some(11_200)),
            (1201, Progress(1, [1, 0, 0, 0, 0]), Nothing, Some(11_200)),
            (11_199, Tick, Nothing, Some(11_200)),
            (11_200, Tick, Stop, Some(21_200)),
        ],
    );
}

#[test]
fn a_silent_node_is_named_a_stall_timeout_after_its_poll_was_handed_over() {
    // No pause: the hand-over follows the decision at once, and changes nothing.
    play(
        None,
        &[1, 2],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (1000, Handed, Nothing, Some(11_000)),
            (1001, Progress(1, [1, 0, 0, 0, 0]), Nothing, Some(11_000)),
            (11_000, Tick, Stop, Some(21_000)),
            (11_000, Handed, Nothing, Some(21_000)),
            (11_001, Progress(1, [1, 1, 0, 0, 0]), Nothing, Some(21_000)),
            (21_000, Tick, Collect, Some(31_000)),
            (21_000, Handed, Nothing, Some(31_000)),
            (21_001, Final(1), Nothing, Some(31_000)),
            (
                31_000,
                Tick,
                Finish(
                    &[1],
                    &[
                        "node 2 did not answer a counter poll within 10 s",
                        "no final summary from node 2 within 10 s",
                    ],
                ),
                None,
            ),
        ],
    );
}

#[test]
fn a_pause_between_asking_for_the_final_summaries_and_sending_the_request_blames_no_one() {
    // The overlay is quiet at 1.505 s and the final summaries are asked for; the registry is
    // stopped before the request leaves and runs again 100 ms past the collection's deadline.
    play(
        None,
        &[1, 2],
        &[
            (0, Finished(1), Nothing, Some(1000)),
            (0, Finished(2), Poll, Some(10_000)),
            (1, Progress(1, DONE_1), Nothing, Some(10_000)),
            (1, Progress(2, DONE_2), Nothing, Some(2)),
            (2, Tick, Poll, Some(10_002)),
            (3, Progress(1, DONE_1), Nothing, Some(10_002)),
            (3, Progress(2, DONE_2), Collect, Some(10_003)),
            (10_103, Handed, Nothing, Some(20_103)),
            (10_103, Tick, Nothing, Some(20_103)),
            (10_104, Final(1), Nothing, Some(20_103)),
            (10_104, Final(2), Finish(&[1, 2], &[]), None),
        ],
    );
}
