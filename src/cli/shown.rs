//! The registry with its progress shown: the bar, progress lines, CSV rows, JSON and metrics.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use overlay::io;
use overlay::limits::{PROGRESS_LINE_GAP_NS_MIN, PROGRESS_SHOWN_GAP_NS_MIN};
use overlay::machine::{CloseReason, ConnId, Effect, Machine, Nanos};
use overlay::metrics::{Published, Snapshot};
use overlay::registry::Registry;
use overlay::registry::progress::{ProgressPoint, ProgressTracker};
use overlay::summary::{RunReport, Settings};
use overlay::wire::Codec;

use super::output::{Out, ResultFile};

/// The registry with its progress shown: a bar when the status stream is a terminal, a plain
/// line at most every 5 s when it is not, CSV rows and the result file if asked, and with
/// `--format json` every line moved to standard error and JSON alone on standard output. It
/// passes every event to the registry and reads `Registry::progress` and `Registry::results`
/// after each; the registry itself does no I/O.
pub(crate) struct Shown<C: Codec> {
    pub(crate) registry: Registry<C>,
    tracker: ProgressTracker,
    out: Out,
    /// The status stream is a terminal: draw a bar.
    terminal: bool,
    bar: Option<ProgressBar>,
    csv: Option<(std::fs::File, PathBuf)>,
    result_file: Option<ResultFile>,
    /// The registry's settings, with those of the last overlay seen.
    settings: Settings,
    /// Scripted: `--format json` prints the whole result at exit, not a line per run.
    pub(crate) scripted: bool,
    results_seen: u32,
    /// `--metrics`: what the endpoint shows, and where it is published for its thread.
    pub(crate) metrics: Option<(Snapshot, Published)>,
    /// The poll round and the node count the metrics last saw.
    metrics_seen: (u64, usize),
    /// The receive rate of the last progress point.
    rate_pps: f64,
}

impl<C: Codec> Shown<C> {
    /// With `intervals`, the registry prints `--interval` lines: no plain progress lines.
    pub(crate) fn new(
        registry: Registry<C>,
        out: Out,
        settings: Settings,
        csv: Option<(std::fs::File, PathBuf)>,
        result_file: Option<ResultFile>,
        intervals: bool,
    ) -> Shown<C> {
        Shown {
            registry,
            tracker: ProgressTracker::new(
                PROGRESS_SHOWN_GAP_NS_MIN,
                if intervals {
                    Nanos::MAX
                } else {
                    PROGRESS_LINE_GAP_NS_MIN
                },
            ),
            out,
            terminal: out.terminal(),
            bar: None,
            csv,
            result_file,
            settings,
            scripted: false,
            results_seen: 0,
            metrics: None,
            metrics_seen: (0, 0),
            rate_pps: 0.0,
        }
    }

    fn csv_row(&mut self, point: &ProgressPoint) {
        if let Some((file, path)) = &mut self.csv
            && let Err(error) = writeln!(file, "{}", point.csv_row())
        {
            tracing::warn!(path = %path.display(), %error, "cannot write the CSV; no more rows");
            self.csv = None;
        }
    }

    /// The result file's text: the settings, the total and the kept runs (a FAIL object
    /// with the settings when no run completed).
    pub(crate) fn result_text(&self) -> String {
        let text = match self.registry.results().file() {
            Some(mut result) => {
                result.settings = Some(self.settings.clone());
                serde_json::to_string_pretty(&result)
            }
            None => serde_json::to_string_pretty(&serde_json::json!({
                "settings": self.settings,
                "verdict": "FAIL",
                "failures": ["no run completed"],
            })),
        };
        text.unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    }

    /// Rewrites `--json PATH` (at exit also when it is not a regular file).
    fn write_result_file(&mut self, at_exit: bool) {
        if !self
            .result_file
            .as_ref()
            .is_some_and(|file| file.regular || at_exit)
        {
            return;
        }
        let text = self.result_text();
        if let Some(file) = &mut self.result_file
            && let Err(error) = file.write(&text)
        {
            tracing::warn!(path = %file.path.display(), %error, "cannot write the JSON result");
            self.result_file = None;
        }
    }

    /// After each event: new progress, finished runs, and lines printed around the bar.
    fn show(&mut self, effects: &mut Vec<Effect>) {
        if let Some(overlay) = self.registry.overlay_settings() {
            self.settings.nr = Some(overlay.nr);
            self.settings.finger_rule = Some(overlay.rule.name());
            self.settings.window_bytes = Some(overlay.window_bytes);
        }
        if let Some(point) = self
            .registry
            .progress()
            .and_then(|s| self.tracker.observe(s))
        {
            self.csv_row(&point);
            self.rate_pps = point.rate_pps;
            if self.terminal {
                let bar = self.bar.get_or_insert_with(|| {
                    new_bar(point.expected, self.out, point.goal_s.is_some())
                });
                if point.goal_s.is_some() {
                    // A run by time: the bar shows the time, in thousandths.
                    bar.set_position((point.fraction() * 1000.0) as u64);
                } else {
                    bar.set_length(point.expected);
                    bar.set_position(point.received.min(point.expected));
                }
                bar.set_message(point.bar_message());
            } else if self.tracker.line_due(&point) {
                effects.push(Effect::Print(point.line()));
            }
        }
        let results = self.registry.results();
        // Runs completed since the last look, of which the registry still keeps the last.
        let new = (results.completed() - self.results_seen) as usize;
        let first = results.recent().len().saturating_sub(new);
        let mut points = Vec::new();
        let mut reports = Vec::new();
        for result in results.recent().range(first..) {
            self.results_seen += 1;
            points.push(self.tracker.finish(self.results_seen, result));
            self.settings.extra_payload_bytes = Some(result.extra_payload_bytes);
            self.settings.targets = Some(result.targets);
            if self.out.json_stdout && !self.scripted {
                let report = RunReport {
                    run: self.results_seen,
                    settings: &self.settings,
                    result,
                };
                reports.push(serde_json::to_string(&report).unwrap_or_default());
            }
        }
        if let Some((snapshot, _)) = &mut self.metrics {
            for result in results.recent().range(first..) {
                snapshot.finished(result, results.stats());
            }
        }
        self.results_seen = results.completed();
        self.update_metrics(!points.is_empty());
        if !points.is_empty() {
            self.write_result_file(false);
        }
        for point in points {
            self.csv_row(&point);
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
        }
        if self.out.json_stdout {
            // Standard output carries JSON alone: every line for a person goes to standard
            // error (above the bar, if one is drawn), and files written are said there too.
            for effect in effects.iter_mut() {
                if let Effect::WriteFile { path, contents } = effect {
                    let line = io::write_file(path, contents);
                    *effect = Effect::Print(line);
                }
            }
            effects.retain(|effect| match effect {
                Effect::Print(line) => {
                    match &self.bar {
                        Some(bar) => bar.println(line),
                        None => self.out.status(format_args!("{line}")),
                    }
                    false
                }
                _ => true,
            });
            if !reports.is_empty() {
                let mut stdout = std::io::stdout().lock();
                for report in reports {
                    let _ = writeln!(stdout, "{report}");
                }
                let _ = stdout.flush();
            }
        } else if let Some(bar) = &self.bar {
            // Lines printed while the bar is drawn go above it.
            effects.retain(|effect| match effect {
                Effect::Print(line) => {
                    bar.println(line);
                    false
                }
                _ => true,
            });
        }
    }

    /// Folds a new poll round into the metrics and publishes them when anything changed
    /// (`changed`: a run finished).
    fn update_metrics(&mut self, mut changed: bool) {
        let Some((snapshot, published)) = &mut self.metrics else {
            return;
        };
        let round = self.registry.progress().map_or(0, |sample| sample.round);
        if round != self.metrics_seen.0 {
            self.metrics_seen.0 = round;
            if let Some(last) = self.registry.last_round() {
                snapshot.round(last.run, last.nodes.into_iter(), last.stats, self.rate_pps);
                if let Some(latency) = last.node_hop_latency {
                    snapshot.node_hop_latency(latency);
                }
                changed = true;
            }
        }
        let nodes = self.registry.node_count();
        if nodes != self.metrics_seen.1 {
            self.metrics_seen.1 = nodes;
            snapshot.nodes = nodes as u64;
            changed = true;
        }
        if changed {
            published.publish(snapshot);
        }
    }

    /// The loop is over: clear the bar, flush the CSV, write the result file.
    pub(crate) fn close(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some((file, path)) = &mut self.csv
            && let Err(error) = file.flush()
        {
            tracing::warn!(path = %path.display(), %error, "cannot write the CSV");
        }
        self.write_result_file(true);
    }
}

/// A bar of `length` packets, or of a run's time (`timed`: the message says the packets).
pub(crate) fn new_bar(length: u64, out: Out, timed: bool) -> ProgressBar {
    let target = if out.json_stdout {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::stdout()
    };
    let (length, template) = if timed {
        (1000, "{bar:40.cyan/blue} {msg}")
    } else {
        (
            length,
            "{bar:40.cyan/blue} {human_pos}/{human_len} packets  {msg}",
        )
    };
    let bar = ProgressBar::with_draw_target(Some(length), target);
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

impl<C: Codec> Machine for Shown<C> {
    fn on_start(&mut self, now: Nanos) {
        self.registry.on_start(now)
    }
    fn on_accepted(&mut self, now: Nanos, conn: ConnId, peer: SocketAddr, local: SocketAddr) {
        self.registry.on_accepted(now, conn, peer, local)
    }
    fn on_connected(&mut self, now: Nanos, conn: ConnId) {
        self.registry.on_connected(now, conn)
    }
    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        self.registry.on_received(now, conn, bytes)
    }
    fn on_closed(&mut self, now: Nanos, conn: ConnId, reason: CloseReason) {
        self.registry.on_closed(now, conn, reason)
    }
    fn on_command(&mut self, now: Nanos, line: &str) {
        self.registry.on_command(now, line)
    }
    fn awaits_hand_over(&self) -> bool {
        self.registry.awaits_hand_over()
    }
    fn on_handed_over(&mut self, now: Nanos) {
        self.registry.on_handed_over(now)
    }
    /// Ctrl-C in scripted mode (the only signal the registry asks the driver for).
    fn on_signal(&mut self, now: Nanos, _signal: i32, count: usize) {
        for _ in 0..count {
            self.registry.interrupt(now);
        }
    }
    fn on_tick(&mut self, now: Nanos) {
        self.registry.on_tick(now)
    }
    fn next_tick(&self) -> Option<Nanos> {
        self.registry.next_tick()
    }
    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        self.registry.take_effects(into);
        self.show(into);
    }
    fn frame_len(&self, bytes: &[u8]) -> Option<usize> {
        self.registry.frame_len(bytes)
    }
    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        self.registry.swap_outgoing(conn, buf)
    }
}
