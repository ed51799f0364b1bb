//! `--interval`: one line per interval of a run with the rate, latency and progress of that
//! interval, as iperf3 prints them. The lines come from the counter polls the registry makes
//! anyway (polled at least once per interval), so an interval ends with the first poll round
//! that completes after it is due, and each line gives the times it really covers.

use super::run::{Goal, Totals};
use crate::machine::Nanos;
use crate::stats::RunStats;
use crate::summary::{duration, thousands};

/// The interval lines of the current run.
#[derive(Debug)]
pub struct Intervals {
    /// `None`: no lines.
    every: Option<Nanos>,
    run: u32,
    /// Where the current interval started: elapsed time and packets received by then.
    from: (Nanos, u64),
    /// Latency of the packets delivered in the current interval.
    latency: RunStats,
    /// The last round seen: elapsed time, totals, goal, nodes, warm-up.
    last: Option<(Nanos, Totals, Goal, usize, Option<Nanos>)>,
}

impl Intervals {
    pub fn new(every: Option<Nanos>) -> Intervals {
        Intervals {
            every,
            run: 0,
            from: (0, 0),
            latency: RunStats::default(),
            last: None,
        }
    }

    /// Run `run` starts.
    pub fn start(&mut self, run: u32) {
        self.run = run;
        self.from = (0, 0);
        self.latency.reset();
        self.last = None;
    }

    /// A complete poll round `elapsed` after the start: its totals and the latency of the
    /// packets delivered since the previous round. The line of the interval, when it is over.
    pub fn observe(
        &mut self,
        elapsed: Nanos,
        totals: Totals,
        window: &RunStats,
        goal: Goal,
        nodes: usize,
        warmup: Option<Nanos>,
    ) -> Option<String> {
        let every = self.every?;
        self.latency.add(window);
        self.last = Some((elapsed, totals, goal, nodes, warmup));
        (elapsed.saturating_sub(self.from.0) >= every).then(|| self.line())
    }

    /// The run is over: the line of the part of an interval since the last one, if any.
    pub fn finish(&mut self) -> Option<String> {
        self.every?;
        let (elapsed, ..) = self.last?;
        (elapsed > self.from.0).then(|| self.line())
    }

    /// `Run 1 [ 1.00- 2.00 s]  1,234,567 packets  1,234,000 packets/s  latency p50 1.20ms p99
    /// 3.40ms  sent 12.3% of 10,000,000`; the interval starts anew.
    fn line(&mut self) -> String {
        let Some((elapsed, totals, goal, nodes, warmup)) = self.last else {
            return String::new();
        };
        let (from, received_before) = self.from;
        let received = totals.received.saturating_sub(received_before);
        let span = elapsed.saturating_sub(from) as f64 / 1e9;
        let rate = if span > 0.0 {
            received as f64 / span
        } else {
            0.0
        };
        let summary = self.latency.latency_summary();
        let latency = if summary.count == 0 {
            "latency -".to_string()
        } else {
            format!(
                "latency p50 {} p99 {}",
                duration(summary.p50),
                duration(summary.p99)
            )
        };
        let progress = match goal {
            Goal::Packets(packets) => {
                let expected = packets.saturating_mul(nodes as u64);
                format!(
                    "sent {:.1}% of {}",
                    if expected == 0 {
                        100.0
                    } else {
                        totals.sent as f64 * 100.0 / expected as f64
                    },
                    thousands(expected.into())
                )
            }
            Goal::Duration(goal) => format!(
                "sent {} in {:.1} of {} s",
                thousands(totals.sent.into()),
                (elapsed.min(goal)) as f64 / 1e9,
                goal as f64 / 1e9
            ),
        };
        // An interval begun in the warm-up is (at least partly) left out of the run's figures.
        let warm = if warmup.is_some_and(|warmup| from < warmup) {
            "  (warm-up)"
        } else {
            ""
        };
        let line = format!(
            "Run {} [{:6.2}-{:6.2} s]  {:>11} packets  {:>11} packets/s  {latency}  {progress}{warm}",
            self.run,
            from as f64 / 1e9,
            elapsed as f64 / 1e9,
            thousands(received.into()),
            thousands(rate.round() as i128),
        );
        self.from = (elapsed, totals.received);
        self.latency.reset();
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    fn totals(sent: u64, received: u64) -> Totals {
        Totals {
            sent,
            received,
            ..Totals::default()
        }
    }

    #[test]
    fn one_line_per_interval_and_the_rest_at_the_end() {
        let mut window = RunStats::default();
        window.record(1, Some(40_000));
        let mut intervals = Intervals::new(Some(2 * S));
        intervals.start(3);
        let goal = Goal::Packets(1000);
        assert_eq!(
            intervals.observe(S, totals(200, 100), &window, goal, 2, Some(S)),
            None
        );
        let line = intervals
            .observe(2 * S + S / 100, totals(500, 400), &window, goal, 2, Some(S))
            .unwrap();
        assert_eq!(
            line,
            "Run 3 [  0.00-  2.01 s]          400 packets          199 packets/s  latency p50 \
             40.19us p99 40.19us  sent 25.0% of 2,000  (warm-up)"
        );
        let line = intervals.observe(
            4 * S,
            totals(2000, 1900),
            &RunStats::default(),
            goal,
            2,
            Some(S),
        );
        assert_eq!(line, None, "1.99 s is not an interval of 2 s yet");
        let line = intervals
            .observe(
                4 * S + S / 50,
                totals(2000, 1900),
                &RunStats::default(),
                goal,
                2,
                Some(S),
            )
            .unwrap();
        assert!(line.contains("[  2.01-  4.02 s]"), "{line}");
        assert!(line.contains(" 1,500 packets "), "{line}");
        assert!(line.contains("latency -"), "{line}");
        assert!(line.contains("sent 100.0% of 2,000"), "{line}");
        assert_eq!(intervals.finish(), None, "nothing since the last line");
        intervals.observe(4 * S + S / 2, totals(2000, 2000), &window, goal, 2, None);
        let last = intervals.finish().unwrap();
        assert!(last.contains("[  4.02-  4.50 s]"), "{last}");
        assert!(last.contains("100 packets"), "{last}");
    }

    #[test]
    fn runs_by_time_and_warm_up() {
        let mut intervals = Intervals::new(Some(S));
        intervals.start(1);
        let goal = Goal::Duration(10 * S);
        let line = intervals
            .observe(S, totals(10, 5), &RunStats::default(), goal, 2, Some(2 * S))
            .unwrap();
        assert!(
            line.ends_with("sent 10 in 1.0 of 10 s  (warm-up)"),
            "{line}"
        );
        let line = intervals
            .observe(
                3 * S,
                totals(30, 25),
                &RunStats::default(),
                goal,
                2,
                Some(2 * S),
            )
            .unwrap();
        assert!(
            line.ends_with("sent 30 in 3.0 of 10 s  (warm-up)"),
            "begun in it: {line}"
        );
        let line = intervals
            .observe(
                4 * S,
                totals(40, 35),
                &RunStats::default(),
                goal,
                2,
                Some(2 * S),
            )
            .unwrap();
        assert!(line.ends_with("sent 40 in 4.0 of 10 s"), "{line}");
        assert!(
            Intervals::new(None)
                .observe(S, totals(1, 1), &RunStats::default(), goal, 2, None)
                .is_none()
        );
    }
}
