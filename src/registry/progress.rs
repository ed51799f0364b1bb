//! Progress of a run for the operator: what the registry learned from its last counter poll
//! ([`ProgressSample`], from `Registry::progress`), and the arithmetic a driver needs to show
//! it (current rate, ETA, a plain line, CSV rows). No I/O and no clock: times are the
//! registry's (`Nanos` since the run started).

use crate::machine::Nanos;
use crate::stats::LatencySummary;
use crate::summary::{RunResult, thousands};

/// The totals of one complete round of counter polls during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressSample {
    /// Counts rounds since the registry started, over all runs (a new value is a new round).
    pub round: u64,
    /// The run's number (1, 2, ...).
    pub run: u32,
    /// Since the run started.
    pub elapsed: Nanos,
    /// Packets the run sends in all: nodes x packets per node (0 for a run by time).
    pub expected: u64,
    /// A run by time: how long the nodes send.
    pub duration_goal: Option<Nanos>,
    pub sent: u64,
    pub received: u64,
    pub relayed: u64,
    pub corrupted: u64,
    pub dropped: u64,
    /// End-to-end latency of the packets delivered since the previous round.
    pub latency: LatencySummary,
}

/// A progress point ready to show: a sample (or a run's final counts) and its rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressPoint {
    pub run: u32,
    pub elapsed_s: f64,
    pub expected: u64,
    /// A run by time: how long the nodes send (its progress is by time, not by count).
    pub goal_s: Option<f64>,
    pub sent: u64,
    pub received: u64,
    pub relayed: u64,
    /// Packets received per second since the previous point of the run (since the start for
    /// the first).
    pub rate_pps: f64,
    /// Seconds until every packet is received at the average rate so far; `None` before
    /// anything arrived or once everything did.
    pub eta_s: Option<f64>,
    /// End-to-end latency p50 and p99 (ns) of the packets delivered in the last poll round
    /// (for a run's last point: over the whole run); 0 when unknown.
    pub latency_p50_ns: u64,
    pub latency_p99_ns: u64,
}

/// The CSV header matching [`ProgressPoint::csv_row`].
pub const CSV_HEADER: &str = "run,elapsed_s,packets_sent,packets_received,packets_relayed,rate_pps,latency_p50_us,latency_p99_us";

impl ProgressPoint {
    /// Fraction of the run's packets received (of its time, for a run by time), 0.0 to 1.0.
    pub fn fraction(&self) -> f64 {
        if let Some(goal) = self.goal_s {
            return if goal > 0.0 {
                (self.elapsed_s / goal).min(1.0)
            } else {
                1.0
            };
        }
        if self.expected == 0 {
            1.0
        } else {
            (self.received as f64 / self.expected as f64).min(1.0)
        }
    }

    /// `Run 1: 412,345 of 1,000,000 packets delivered (41.2%), 98,765 packets/s, 4.2 s
    /// elapsed, ETA 6 s`.
    pub fn line(&self) -> String {
        if let Some(goal) = self.goal_s {
            return format!(
                "Run {}: {} packets delivered, {:.1} of {goal} s ({:.0}%), {} packets/s",
                self.run,
                thousands(i128::from(self.received)),
                self.elapsed_s,
                self.fraction() * 100.0,
                thousands(self.rate_pps.round() as i128),
            );
        }
        format!(
            "Run {}: {} of {} packets delivered ({:.1}%), {} packets/s, {:.1} s elapsed, ETA {}",
            self.run,
            thousands(i128::from(self.received)),
            thousands(i128::from(self.expected)),
            self.fraction() * 100.0,
            thousands(self.rate_pps.round() as i128),
            self.elapsed_s,
            eta_text(self.eta_s)
        )
    }

    /// The short text beside a progress bar: rate, elapsed and ETA (for a run by time, whose
    /// bar shows the time, the packets delivered too).
    pub fn bar_message(&self) -> String {
        if let Some(goal) = self.goal_s {
            return format!(
                "{} packets  {} pkt/s  {:.0} of {goal} s",
                thousands(i128::from(self.received)),
                thousands(self.rate_pps.round() as i128),
                self.elapsed_s
            );
        }
        format!(
            "{} pkt/s  {:.0} s  ETA {}",
            thousands(self.rate_pps.round() as i128),
            self.elapsed_s,
            eta_text(self.eta_s)
        )
    }

    /// One CSV row (no line ending), columns as in [`CSV_HEADER`].
    pub fn csv_row(&self) -> String {
        format!(
            "{},{:.3},{},{},{},{:.1},{:.1},{:.1}",
            self.run,
            self.elapsed_s,
            self.sent,
            self.received,
            self.relayed,
            self.rate_pps,
            self.latency_p50_ns as f64 / 1000.0,
            self.latency_p99_ns as f64 / 1000.0
        )
    }
}

fn eta_text(eta_s: Option<f64>) -> String {
    match eta_s {
        None => "-".to_string(),
        Some(s) if s < 10.0 => format!("{s:.1} s"),
        Some(s) => format!("{s:.0} s"),
    }
}

/// Turns samples into points no closer than `min_gap` (progress rounds come once a second
/// while nodes send, and every few milliseconds while the overlay drains), with the rate since
/// the previous point; and says when a plain line is due.
#[derive(Debug, Clone)]
pub struct ProgressTracker {
    min_gap: Nanos,
    line_every: Nanos,
    last_round: Option<u64>,
    /// The run, elapsed time and received count of the last point, and the elapsed time and
    /// received count its rate was measured from.
    last_point: Option<(u32, Nanos, u64, (Nanos, u64))>,
    /// The run and elapsed time of the last plain line.
    last_line: Option<(u32, Nanos)>,
}

impl ProgressTracker {
    /// Points at least `min_gap` apart; plain lines at least `line_every` apart.
    pub fn new(min_gap: Nanos, line_every: Nanos) -> ProgressTracker {
        ProgressTracker {
            min_gap,
            line_every,
            last_round: None,
            last_point: None,
            last_line: None,
        }
    }

    /// A point for `sample` if it is a new round and due; `None` otherwise.
    pub fn observe(&mut self, sample: &ProgressSample) -> Option<ProgressPoint> {
        if self.last_round == Some(sample.round) {
            return None;
        }
        self.last_round = Some(sample.round);
        let since = match self.last_point {
            Some((run, at, received, _)) if run == sample.run => {
                if sample.elapsed.saturating_sub(at) < self.min_gap {
                    return None;
                }
                (at, received)
            }
            _ => (0, 0),
        };
        let mut point = self.point(
            sample.run,
            sample.elapsed,
            sample.expected,
            (sample.sent, sample.received, sample.relayed),
            since,
        );
        point.goal_s = sample.duration_goal.map(|goal| goal as f64 / 1e9);
        if let Some(goal) = point.goal_s {
            point.eta_s = (goal > point.elapsed_s).then_some(goal - point.elapsed_s);
        }
        point.latency_p50_ns = sample.latency.p50;
        point.latency_p99_ns = sample.latency.p99;
        Some(point)
    }

    /// The last point of a run from its result (final counters and duration). Its rate is
    /// measured over at least `min_gap` when the run lasted that long.
    pub fn finish(&mut self, run: u32, result: &RunResult) -> ProgressPoint {
        let mut point = self.finish_with(
            run,
            (result.duration_s * 1e9) as Nanos,
            result.packets_per_node * result.nodes as u64,
            (
                result.packets_sent,
                result.packets_received,
                result.packets_relayed,
            ),
        );
        point.latency_p50_ns = result.stats.latency_ns.p50;
        point.latency_p99_ns = result.stats.latency_ns.p99;
        point.goal_s = result.duration_goal_s;
        if point.goal_s.is_some() {
            point.eta_s = None;
        }
        point
    }

    /// [`ProgressTracker::finish`] from the numbers: the run's duration, the packets it
    /// sends in all, and its final (sent, received, relayed).
    pub fn finish_with(
        &mut self,
        run: u32,
        elapsed: Nanos,
        expected: u64,
        counts: (u64, u64, u64),
    ) -> ProgressPoint {
        let since = match self.last_point {
            Some((last, at, _, anchor))
                if last == run && elapsed.saturating_sub(at) < self.min_gap =>
            {
                anchor
            }
            Some((last, at, received, _)) if last == run => (at, received),
            _ => (0, 0),
        };
        self.point(run, elapsed.max(since.0), expected, counts, since)
    }

    fn point(
        &mut self,
        run: u32,
        elapsed: Nanos,
        expected: u64,
        (sent, received, relayed): (u64, u64, u64),
        (since_at, since_received): (Nanos, u64),
    ) -> ProgressPoint {
        self.last_point = Some((run, elapsed, received, (since_at, since_received)));
        let seconds = |n: Nanos| n as f64 / 1e9;
        let gap = seconds(elapsed.saturating_sub(since_at));
        let rate_pps = if gap > 0.0 {
            received.saturating_sub(since_received) as f64 / gap
        } else {
            0.0
        };
        let average = if elapsed > 0 {
            received as f64 / seconds(elapsed)
        } else {
            0.0
        };
        let eta_s =
            (received < expected && average > 0.0).then(|| (expected - received) as f64 / average);
        ProgressPoint {
            run,
            elapsed_s: seconds(elapsed),
            expected,
            sent,
            received,
            relayed,
            rate_pps,
            eta_s,
            goal_s: None,
            latency_p50_ns: 0,
            latency_p99_ns: 0,
        }
    }

    /// True (and remembered) when a plain line for `point` is due: `line_every` after the
    /// run started, then `line_every` after the previous line.
    pub fn line_due(&mut self, point: &ProgressPoint) -> bool {
        let at = (point.elapsed_s * 1e9) as Nanos;
        let previous = match self.last_line {
            Some((run, previous)) if run == point.run => previous,
            _ => 0,
        };
        if at.saturating_sub(previous) < self.line_every {
            return false;
        }
        self.last_line = Some((point.run, at));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    fn sample(round: u64, run: u32, elapsed: Nanos, received: u64) -> ProgressSample {
        ProgressSample {
            round,
            run,
            elapsed,
            expected: 1000,
            duration_goal: None,
            sent: received + 10,
            received,
            relayed: received * 2,
            corrupted: 0,
            dropped: 0,
            latency: LatencySummary {
                count: received,
                p50: 40_000,
                p99: 90_000,
                ..LatencySummary::default()
            },
        }
    }

    #[test]
    fn rates_gaps_and_lines() {
        let mut tracker = ProgressTracker::new(S / 2, 5 * S);
        let first = tracker.observe(&sample(1, 1, S, 100)).unwrap();
        assert_eq!(first.rate_pps, 100.0);
        assert_eq!(first.eta_s, Some(9.0));
        assert!(!tracker.line_due(&first));
        // The same round again, and a round too soon after: nothing.
        assert_eq!(tracker.observe(&sample(1, 1, S, 100)), None);
        assert_eq!(tracker.observe(&sample(2, 1, S + S / 10, 110)), None);
        let second = tracker.observe(&sample(3, 1, 3 * S, 500)).unwrap();
        assert_eq!(second.rate_pps, 200.0);
        assert_eq!(
            second.csv_row(),
            "1,3.000,510,500,1000,200.0,40.0,90.0",
            "{CSV_HEADER}"
        );
        assert_eq!(
            second.line(),
            "Run 1: 500 of 1,000 packets delivered (50.0%), 200 packets/s, 3.0 s elapsed, ETA 3.0 s"
        );
        let late = tracker.observe(&sample(4, 1, 5 * S, 900)).unwrap();
        assert!(tracker.line_due(&late));
        let later = tracker.observe(&sample(5, 1, 7 * S, 950)).unwrap();
        assert!(!tracker.line_due(&later));
        // A new run starts from zero.
        let next = tracker.observe(&sample(6, 2, S, 50)).unwrap();
        assert_eq!(next.rate_pps, 50.0);
        assert!(!tracker.line_due(&next));
        // The end of a run right after a point: the rate spans that point's interval too.
        let last = tracker.finish_with(2, S + S / 4, 1000, (1000, 1000, 0));
        assert_eq!(last.rate_pps, 800.0);
        assert_eq!(last.eta_s, None);
        assert_eq!(last.fraction(), 1.0);
    }

    /// A run by time shows its progress by time: fraction, ETA, line and bar text.
    #[test]
    fn runs_by_time_progress_by_time() {
        let mut tracker = ProgressTracker::new(S / 2, 5 * S);
        let timed = ProgressSample {
            expected: 0,
            duration_goal: Some(10 * S),
            ..sample(1, 1, 4 * S, 4000)
        };
        let point = tracker.observe(&timed).unwrap();
        assert_eq!(point.fraction(), 0.4);
        assert_eq!(point.eta_s, Some(6.0));
        assert_eq!(
            point.line(),
            "Run 1: 4,000 packets delivered, 4.0 of 10 s (40%), 1,000 packets/s"
        );
        assert_eq!(point.bar_message(), "4,000 packets  1,000 pkt/s  4 of 10 s");
    }
}
