//! The classic encoding: no polls; the settle time after the last task-finished.

use super::*;

#[test]
fn classic_settle_collects_after_the_settle_time() {
    play(
        Some(500),
        &[1, 2],
        &[
            // No polls at all, and nothing to wait for before the first task-finished.
            (0, Tick, Nothing, None),
            (1000, Tick, Nothing, None),
            (1100, Progress(1, DONE_1), Nothing, None),
            (1200, Finished(1), Nothing, Some(11_200)),
            (1300, Finished(2), Nothing, Some(1800)),
            (1799, Tick, Nothing, Some(1800)),
            (1800, Tick, Collect, Some(11_800)),
            (1801, Final(2), Nothing, Some(11_800)),
            (1802, Final(1), Finish(&[1, 2], &[]), None),
        ],
    );
}

#[test]
fn classic_node_that_never_finishes_fails_the_run() {
    play(
        Some(500),
        &[1, 2, 3],
        &[
            (100, Finished(1), Nothing, Some(10_100)),
            (200, Finished(2), Nothing, Some(10_200)),
            (10_199, Tick, Nothing, Some(10_200)),
            // Stopping: no poll, the settle time lets what is in flight arrive.
            (10_200, Tick, Stop, Some(10_700)),
            (10_700, Tick, Collect, Some(20_700)),
            (10_701, Final(1), Nothing, Some(20_700)),
            (10_701, Final(2), Nothing, Some(20_700)),
            (
                20_700,
                Tick,
                Finish(
                    &[1, 2],
                    &[
                        "node 3 did not report task finished within 10 s of the last node that \
                         did",
                        "no final summary from node 3 within 10 s",
                    ],
                ),
                None,
            ),
        ],
    );
}

#[test]
fn classic_node_lost_stops_for_the_settle_time() {
    play(
        Some(500),
        &[1, 2],
        &[
            (100, Finished(1), Nothing, Some(10_100)),
            (150, Leave(2), Nothing, Some(10_100)),
            (150, Fail("node 2 left"), Stop, Some(650)),
            (150, CheckCollected, Nothing, Some(650)),
            (649, Tick, Nothing, Some(650)),
            (650, Tick, Collect, Some(10_650)),
            (651, Final(1), Finish(&[1], &["node 2 left"]), None),
        ],
    );
}
