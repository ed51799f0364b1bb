//! A node that crashes mid-run (native encoding): not waited for, and the per-link counts
//! account for its packets.

use super::*;

/// A progress reply with per-link counts: the node, its counters, its (peer, sent, received)
/// rows.
type LinkReply = (NodeId, [u64; 5], &'static [(NodeId, u64, u64)]);

/// Node 1 and 2 sent 5 each and received 4 each: node 1 handed 2 to the crashed node 3 and 3 to
/// node 2; node 2 handed 1 to node 3 and 4 to node 1, and took 1 from node 3. By the totals 2
/// are missing; by the links every packet is accounted for.
const AFTER_CRASH_1: LinkReply = (1, [5, 4, 0, 0, 0], &[(2, 3, 4), (3, 2, 0)]);
const AFTER_CRASH_2: LinkReply = (2, [5, 4, 0, 0, 0], &[(1, 4, 3), (3, 1, 1)]);

/// A node that crashes is no longer waited for: the round in flight completes with the others'
/// answers, the run goes on, the polls ask for the per-link counts, and two equal rounds whose
/// link account balances end it, though the totals alone never would.
#[test]
fn a_crash_mid_run_is_not_waited_for_and_the_links_end_the_run() {
    let (one, two) = (AFTER_CRASH_1, AFTER_CRASH_2);
    let run = play(
        None,
        &[1, 2, 3],
        &[
            (0, Finished(1), Nothing, Some(1000)),
            (1000, Tick, Poll, Some(11_000)),
            (1001, Progress(1, [5, 4, 0, 0, 0]), Nothing, Some(11_000)),
            (1001, Progress(2, [5, 4, 0, 0, 0]), Nothing, Some(11_000)),
            // Node 3's answer will never come: the round is complete without it.
            (1002, Crash(3), Nothing, Some(2002)),
            (1500, Finished(2), Poll, Some(11_500)),
            // Counts without links (asked before): not quiet, whatever the totals.
            (1501, Progress(1, [5, 4, 0, 0, 0]), Nothing, Some(11_500)),
            (1501, Progress(2, [5, 4, 0, 0, 0]), Nothing, Some(1502)),
            (1502, Tick, Poll, Some(11_502)),
            (
                1503,
                ProgressLinks(one.0, one.1, one.2),
                Nothing,
                Some(11_502),
            ),
            (
                1503,
                ProgressLinks(two.0, two.1, two.2),
                Collect,
                Some(11_503),
            ),
            (1504, Final(1), Nothing, Some(11_503)),
            (1504, Final(2), Finish(&[1, 2], &[]), None),
        ],
    );
    assert_eq!(run.crashed(), [3]);

    // A link among the others still short (a packet in flight from 1 to 2): not yet.
    play(
        None,
        &[1, 2, 3],
        &[
            (0, Crash(3), Nothing, Some(1000)),
            (0, Finished(1), Nothing, Some(1000)),
            (0, Finished(2), Poll, Some(10_000)),
            (
                1,
                ProgressLinks(1, [5, 4, 0, 0, 0], &[(2, 3, 4), (3, 2, 0)]),
                Nothing,
                Some(10_000),
            ),
            (
                1,
                ProgressLinks(2, [5, 3, 0, 0, 0], &[(1, 4, 2), (3, 1, 1)]),
                Nothing,
                Some(2),
            ),
            (2, Tick, Poll, Some(10_002)),
            (
                2,
                ProgressLinks(1, [5, 4, 0, 0, 0], &[(2, 3, 4), (3, 2, 0)]),
                Nothing,
                Some(10_002),
            ),
            (
                2,
                ProgressLinks(2, [5, 3, 0, 0, 0], &[(1, 4, 2), (3, 1, 1)]),
                Nothing,
                Some(4),
            ),
            (4, Tick, Poll, Some(10_004)),
            (5, ProgressLinks(one.0, one.1, one.2), Nothing, Some(10_004)),
            (5, ProgressLinks(two.0, two.1, two.2), Nothing, Some(6)),
            (6, Tick, Poll, Some(10_006)),
            (6, ProgressLinks(one.0, one.1, one.2), Nothing, Some(10_006)),
            (6, ProgressLinks(two.0, two.1, two.2), Collect, Some(10_006)),
        ],
    );
}

/// Every node crashed: nobody is left to poll, and the run fails at once.
#[test]
fn a_run_whose_every_node_crashed_fails() {
    play(
        None,
        &[1],
        &[
            (1000, Tick, Poll, Some(11_000)),
            (1001, Crash(1), Stop, Some(11_001)),
        ],
    );
}
