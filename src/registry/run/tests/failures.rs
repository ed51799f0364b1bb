//! Runs that fail: no progress for the stall timeout, a node lost or silent, a failure while
//! stopping, more counted than sent (foreign traffic).

use super::*;

#[test]
fn totals_unchanged_for_the_stall_timeout_fail_the_run() {
    play(
        None,
        &[1, 2],
        &[
            (0, Finished(1), Nothing, Some(1000)),
            (0, Finished(2), Poll, Some(10_000)),
            (1, Progress(1, [4, 3, 0, 0, 0]), Nothing, Some(10_000)),
            (1, Progress(2, [4, 3, 0, 0, 0]), Nothing, Some(2)),
            (2, Tick, Poll, Some(10_002)),
            // Slow answers: what counts is how long the totals did not change.
            (9000, Progress(1, [4, 3, 0, 0, 0]), Nothing, Some(10_002)),
            (9000, Progress(2, [4, 3, 0, 0, 0]), Nothing, Some(9002)),
            (9002, Tick, Poll, Some(19_002)),
            (10_000, Progress(1, [4, 3, 0, 0, 0]), Nothing, Some(19_002)),
            (10_001, Progress(2, [4, 3, 0, 0, 0]), Stop, Some(20_001)),
            // Stopping: a fresh round went out with the stop; polls until quiet for 100 ms.
            (10_002, Progress(1, [4, 3, 0, 0, 0]), Nothing, Some(20_001)),
            (10_002, Progress(2, [4, 3, 0, 0, 0]), Nothing, Some(10_004)),
            (10_004, Tick, Poll, Some(20_001)),
            (10_005, Progress(1, [4, 3, 0, 0, 0]), Nothing, Some(20_001)),
            (10_005, Progress(2, [4, 3, 0, 0, 0]), Nothing, Some(10_009)),
            (10_009, Tick, Poll, Some(20_001)),
            (10_101, Progress(1, [4, 3, 0, 0, 0]), Nothing, Some(20_001)),
            (10_102, Progress(2, [4, 3, 0, 0, 0]), Collect, Some(20_102)),
            (10_103, Final(1), Nothing, Some(20_102)),
            (
                10_103,
                Final(2),
                Finish(
                    &[1, 2],
                    &["no progress for 10 s with 2 packets unaccounted for"],
                ),
                None,
            ),
        ],
    );
}

#[test]
fn no_progress_while_sending_fails_the_run_too() {
    play(
        None,
        &[1],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, [1, 0, 0, 0, 0]), Nothing, Some(2001)),
            (2001, Tick, Poll, Some(12_001)),
            (11_000, Progress(1, [1, 0, 0, 0, 0]), Nothing, Some(12_000)),
            (12_000, Tick, Poll, Some(22_000)),
            (12_000, Progress(1, [1, 0, 0, 0, 0]), Stop, Some(22_000)),
            (12_001, Progress(1, [1, 0, 0, 0, 0]), Nothing, Some(12_003)),
            (12_003, Tick, Poll, Some(22_000)),
            (12_101, Progress(1, [1, 0, 0, 0, 0]), Collect, Some(22_101)),
            (
                12_102,
                Final(1),
                Finish(
                    &[1],
                    &["no progress for 10 s with 1 packets unaccounted for"],
                ),
                None,
            ),
        ],
    );
}

#[test]
fn a_node_lost_mid_run_fails_it_and_the_others_are_collected() {
    play(
        None,
        &[1, 2, 3],
        &[
            (0, Finished(1), Nothing, Some(1000)),
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, [5, 2, 3, 0, 0]), Nothing, Some(11_000)),
            (1001, Progress(2, [5, 3, 2, 0, 0]), Nothing, Some(11_000)),
            (1002, Leave(3), Nothing, Some(11_000)),
            (1002, Fail("node 3 left"), Stop, Some(11_002)),
            (1002, CheckCollected, Nothing, Some(11_002)),
            // The round sent with the stop asks the two that are left.
            (1003, Progress(1, [5, 2, 3, 0, 0]), Nothing, Some(11_002)),
            (1003, Progress(2, [5, 3, 2, 0, 0]), Nothing, Some(1005)),
            (1005, Tick, Poll, Some(11_002)),
            // Equal totals, but not yet for 100 ms: nothing of the run may still be moving.
            (1060, Progress(1, [5, 2, 3, 0, 0]), Nothing, Some(11_002)),
            (1060, Progress(2, [5, 3, 2, 0, 0]), Nothing, Some(1064)),
            (1064, Tick, Poll, Some(11_002)),
            (1102, Progress(1, [5, 2, 3, 0, 0]), Nothing, Some(11_002)),
            (1102, Progress(2, [5, 3, 2, 0, 0]), Nothing, Some(1110)),
            (1110, Tick, Poll, Some(11_002)),
            (1110, Progress(1, [5, 2, 3, 0, 0]), Nothing, Some(11_002)),
            (1110, Progress(2, [5, 3, 2, 0, 0]), Collect, Some(11_110)),
            (1111, Final(2), Nothing, Some(11_110)),
            (1111, Final(1), Finish(&[1, 2], &["node 3 left"]), None),
        ],
    );
}

#[test]
fn a_node_lost_while_collecting_ends_the_run_with_what_the_others_sent() {
    play(
        None,
        &[1, 2, 3],
        &[
            (0, Finished(1), Nothing, Some(1000)),
            (0, Finished(2), Nothing, Some(1000)),
            (0, Finished(3), Poll, Some(10_000)),
            (1, Progress(1, [1, 1, 0, 0, 0]), Nothing, Some(10_000)),
            (1, Progress(2, [1, 1, 0, 0, 0]), Nothing, Some(10_000)),
            (1, Progress(3, [1, 1, 0, 0, 0]), Nothing, Some(2)),
            (2, Tick, Poll, Some(10_002)),
            (2, Progress(1, [1, 1, 0, 0, 0]), Nothing, Some(10_002)),
            (2, Progress(2, [1, 1, 0, 0, 0]), Nothing, Some(10_002)),
            (2, Progress(3, [1, 1, 0, 0, 0]), Collect, Some(10_002)),
            (3, Final(1), Nothing, Some(10_002)),
            (3, Final(2), Nothing, Some(10_002)),
            (4, Leave(3), Nothing, Some(10_002)),
            (4, Fail("node 3 left"), Nothing, Some(10_002)),
            (4, CheckCollected, Finish(&[1, 2], &["node 3 left"]), None),
        ],
    );
}

#[test]
fn a_failure_while_stopping_is_added_and_the_stop_ends_by_its_deadline() {
    play(
        None,
        &[1, 2],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (1000, Fail("first"), Stop, Some(11_000)),
            (1000, Fail("second"), Nothing, Some(11_000)),
            // Totals keep changing: never quiet, so the stop ends 10 s after it began.
            (1001, Progress(1, [1, 0, 0, 0, 0]), Nothing, Some(11_000)),
            (1001, Progress(2, [1, 0, 0, 0, 0]), Nothing, Some(1003)),
            (1003, Tick, Poll, Some(11_000)),
            (10_999, Progress(1, [2, 0, 0, 0, 0]), Nothing, Some(11_000)),
            (10_999, Progress(2, [2, 0, 0, 0, 0]), Nothing, Some(11_000)),
            (11_000, Tick, Collect, Some(21_000)),
            (11_001, Final(1), Nothing, Some(21_000)),
            (
                11_001,
                Final(2),
                Finish(&[1, 2], &["first", "second"]),
                None,
            ),
        ],
    );
}

#[test]
fn a_node_that_does_not_answer_fails_the_run_and_is_named() {
    play(
        None,
        &[1, 2],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, [1, 0, 0, 0, 0]), Nothing, Some(11_000)),
            (10_999, Tick, Nothing, Some(11_000)),
            (11_000, Tick, Stop, Some(21_000)),
            // Node 2 stays silent while stopping: the round is lost, collect regardless.
            (11_001, Progress(1, [1, 1, 0, 0, 0]), Nothing, Some(21_000)),
            (20_999, Tick, Nothing, Some(21_000)),
            (21_000, Tick, Collect, Some(31_000)),
            (21_001, Final(1), Nothing, Some(31_000)),
            (30_999, Tick, Nothing, Some(31_000)),
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
fn more_counted_than_sent_once_every_node_finished_fails_at_once_as_foreign_traffic() {
    // Node 1 took a packet nobody sent (an outsider's, or one left from before the run):
    // the first round after the last task-finished shows it, and the run fails at once
    // rather than waiting out the stall timeout for packets that can never be accounted for.
    const FOREIGN: &str = "foreign traffic: every node has sent all its packets and 1 more \
                           were counted (received, corrupted or dropped) than were sent";
    play(
        None,
        &[1, 2],
        &[
            (0, Finished(1), Nothing, Some(1000)),
            (0, Finished(2), Poll, Some(10_000)),
            (1, Progress(1, [4, 5, 0, 0, 0]), Nothing, Some(10_000)),
            (1, Progress(2, [4, 4, 0, 0, 0]), Stop, Some(10_001)),
            // Stopping: quiet for 100 ms, then the final summaries.
            (2, Progress(1, [4, 5, 0, 0, 0]), Nothing, Some(10_001)),
            (2, Progress(2, [4, 4, 0, 0, 0]), Nothing, Some(4)),
            (4, Tick, Poll, Some(10_001)),
            (104, Progress(1, [4, 5, 0, 0, 0]), Nothing, Some(10_001)),
            (104, Progress(2, [4, 4, 0, 0, 0]), Collect, Some(10_104)),
            (105, Final(1), Nothing, Some(10_104)),
            (105, Final(2), Finish(&[1, 2], &[FOREIGN]), None),
        ],
    );
}

#[test]
fn a_round_sent_before_the_last_task_finished_may_count_more_than_sent() {
    // Node 2 answers a progress round with 3 sent, then sends 2 more and finishes; node 1
    // answers the same round after those 2 arrived. The round completes after the last
    // task-finished with 5 counted for 3 sent: no foreign traffic, its `sent` was not final.
    play(
        None,
        &[1, 2],
        &[
            (0, Finished(1), Nothing, Some(1000)),
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(2, [3, 0, 0, 0, 0]), Nothing, Some(11_000)),
            (1002, Finished(2), Nothing, Some(11_000)),
            (1003, Progress(1, [0, 5, 0, 0, 0]), Nothing, Some(1002)),
            (1003, Tick, Poll, Some(11_003)),
            (1004, Progress(1, [0, 5, 0, 0, 0]), Nothing, Some(11_003)),
            (1004, Progress(2, [5, 0, 0, 0, 0]), Nothing, Some(1005)),
            (1005, Tick, Poll, Some(11_005)),
            (1006, Progress(1, [0, 5, 0, 0, 0]), Nothing, Some(11_005)),
            (1006, Progress(2, [5, 0, 0, 0, 0]), Collect, Some(11_006)),
        ],
    );
}

#[test]
fn a_stall_with_more_counted_than_sent_says_so() {
    // Still sending (node 1 never finishes), so `sent` is not final and no foreign traffic is
    // declared early; at the stall the message says which way the count is off, never a
    // negative or a clamped zero.
    play(
        None,
        &[1],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, [1, 2, 0, 0, 0]), Nothing, Some(2001)),
            (2001, Tick, Poll, Some(12_001)),
            (11_000, Progress(1, [1, 2, 0, 0, 0]), Nothing, Some(12_000)),
            (12_000, Tick, Poll, Some(22_000)),
            (12_000, Progress(1, [1, 2, 0, 0, 0]), Stop, Some(22_000)),
            (12_001, Progress(1, [1, 2, 0, 0, 0]), Nothing, Some(12_003)),
            (12_003, Tick, Poll, Some(22_000)),
            (12_101, Progress(1, [1, 2, 0, 0, 0]), Collect, Some(22_101)),
            (
                12_102,
                Final(1),
                Finish(
                    &[1],
                    &[
                        "no progress for 10 s with 1 packets more counted than sent (foreign \
                       traffic)",
                    ],
                ),
                None,
            ),
        ],
    );
}
