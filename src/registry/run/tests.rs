//! The end-of-run rule, table by table: each test plays the events a registry would feed a
//! [`Run`] (task-finished, poll replies, final summaries, nodes leaving, timer ticks) and
//! checks every step the run answers and when it next wants a tick.

use super::*;

const MS: Nanos = 1_000_000;

/// Polls once a second while sending, every millisecond (doubling up to 64) once all
/// finished; the stall timeout is 10 s. `settle_ms`: the classic encoding's settle time (no
/// polls at all).
fn timing(settle_ms: Option<u64>) -> PollTiming {
    PollTiming {
        progress_interval: 1000 * MS,
        drain_interval: MS,
        stall_timeout: 10_000 * MS,
        settle: settle_ms.map(|ms| ms * MS),
    }
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// `task finished` from a node.
    Finished(NodeId),
    /// A progress reply (counters kept): sent, received, relayed, corrupted, dropped.
    Progress(NodeId, [u64; 5]),
    /// A final reply (counters reset); its counters say `sent` = the node's ID.
    Final(NodeId),
    /// The node leaves the registry: from now on it is not among the nodes the registry passes
    /// to the run (no call into the run by itself; the registry then calls `fail` and
    /// `check_collected`).
    Leave(NodeId),
    /// The node crashed: it leaves the registry's nodes and the run hears of it
    /// (`Run::on_crash`).
    Crash(NodeId),
    /// A progress reply with per-link counts: (peer, sent, received) rows.
    ProgressLinks(NodeId, [u64; 5], &'static [(NodeId, u64, u64)]),
    /// `Run::fail` with this reason.
    Fail(&'static str),
    /// `Run::check_collected`, as the registry calls it after a node left.
    CheckCollected,
    /// `Run::on_tick`.
    Tick,
    /// `Run::stop`, the operator's `stop`.
    StopCommand,
}

/// The step a row expects.
#[derive(Debug)]
enum Want {
    Nothing,
    Poll,
    Collect,
    Stop,
    /// Every node is told to stop originating (the run goes on to its usual end).
    StopSending,
    /// The run is over with final counters from these nodes, and these failures.
    Finish(&'static [NodeId], &'static [&'static str]),
}

/// At this time (ms since the run started) this event; the run answers this step, and then
/// wants its next tick at this time (ms; not checked once the run is over).
type Row = (u64, Event, Want, Option<u64>);

use Event::{
    CheckCollected, Crash, Fail, Final, Finished, Leave, Progress, ProgressLinks, StopCommand, Tick,
};
use Want::{Collect, Finish, Nothing, Poll, Stop, StopSending};

fn counters([sent, received, relayed, corrupted, dropped]: [u64; 5]) -> Counters {
    Counters {
        sent,
        received,
        relayed,
        corrupted,
        dropped,
        ..Counters::default()
    }
}

/// Plays `rows` against a run of `nodes` started at 0 and returns it.
fn play(settle_ms: Option<u64>, nodes: &[NodeId], rows: &[Row]) -> Run {
    let run = Run::new(1, 100, 0, 3, nodes.to_vec(), 0, timing(settle_ms));
    play_run(run, rows)
}

/// Plays `rows` against `run` (started at 0, its members in the overlay).
fn play_run(mut run: Run, rows: &[Row]) -> Run {
    let mut members = run.members.clone();
    for (index, (at_ms, event, want, next_ms)) in rows.iter().enumerate() {
        let now = at_ms * MS;
        let context = format!("row {index}: {event:?} at {at_ms} ms");
        let step = match *event {
            Finished(id) => run.on_finished(now, id, members.len()),
            Progress(id, values) => {
                run.on_progress(now, id, counters(values), None, Vec::new(), members.len())
            }
            Final(id) => {
                let values = counters([u64::from(id), 0, 0, 0, 0]);
                run.on_final(id, values, None, Vec::new(), members.len())
            }
            Leave(id) => {
                members.retain(|member| *member != id);
                Step::Nothing
            }
            Crash(id) => {
                members.retain(|member| *member != id);
                run.on_crash(now, id, members.len())
            }
            ProgressLinks(id, values, rows) => {
                let links = rows
                    .iter()
                    .map(|&(peer, sent, received)| LinkCount {
                        peer,
                        sent,
                        received,
                    })
                    .collect();
                run.on_progress(now, id, counters(values), None, links, members.len())
            }
            Fail(why) => run.fail(now, why.to_string()),
            CheckCollected => run.check_collected(members.len()),
            Tick => run.on_tick(now, &members),
            StopCommand => run.stop(now, &members).0,
        };
        match (want, step) {
            (Nothing, Step::Nothing)
            | (Poll, Step::PollAll)
            | (Collect, Step::CollectAll)
            | (Stop, Step::StopAll)
            | (StopSending, Step::StopSending) => {}
            (Finish(ids, wanted), Step::Finish { replies, failures }) => {
                let expected: BTreeMap<NodeId, Counters> = ids
                    .iter()
                    .map(|id| (*id, counters([u64::from(*id), 0, 0, 0, 0])))
                    .collect();
                assert_eq!(replies, expected, "{context}: final replies");
                assert_eq!(failures, *wanted, "{context}: failures");
                continue;
            }
            (want, step) => panic!("{context}: wanted {want:?}, got {step:?}"),
        }
        assert_eq!(
            run.next_tick(),
            next_ms.map(|ms| ms * MS),
            "{context}: next tick"
        );
    }
    run
}

/// Counters that account for every packet: 5 + 3 sent, 4 + 4 received.
const DONE_1: [u64; 5] = [5, 4, 2, 0, 0];
const DONE_2: [u64; 5] = [3, 4, 1, 0, 0];

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

/// Node 1 and 2 sent 5 each and received 4 each: node 1 handed 2 to the crashed node 3 and 3 to
/// node 2; node 2 handed 1 to node 3 and 4 to node 1, and took 1 from node 3. By the totals 2
/// are missing; by the links every packet is accounted for.
/// A progress reply with per-link counts: the node, its counters, its (peer, sent, received)
/// rows.
type LinkReply = (NodeId, [u64; 5], &'static [(NodeId, u64, u64)]);

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
