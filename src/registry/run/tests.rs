//! The end-of-run rule, table by table: each test plays the events a registry would feed a
//! [`Run`] (task-finished, poll replies, final summaries, nodes leaving, timer ticks) and
//! checks every step the run answers and when it next wants a tick.

use super::*;

mod classic;
mod crashes;
mod ending;
mod failures;
mod operator;
mod pauses;

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
    /// `Run::on_handed`: the driver says everything the registry sent reached the kernel.
    Handed,
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
    CheckCollected, Crash, Fail, Final, Finished, Handed, Leave, Progress, ProgressLinks,
    StopCommand, Tick,
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
            Handed => {
                run.on_handed(now);
                Step::Nothing
            }
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
