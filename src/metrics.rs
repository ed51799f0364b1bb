//! The registry's Prometheus endpoint (`overlay registry --metrics ADDR`): what the registry
//! learned from its counter polls, in the Prometheus text exposition format (version 0.0.4,
//! encoded by `prometheus-client`).
//!
//! Off the data path: the registry's event loop only folds each poll round and each finished
//! run into a [`Snapshot`] (plain numbers) and publishes it behind a mutex; a thread of its own
//! ([`serve`]) answers scrapes from the last snapshot. That thread faces the network, so it
//! serves one connection at a time (the listen backlog holds the next ones), reads at most
//! [`METRICS_REQUEST_BYTES_MAX`] of a request and gives a peer [`METRICS_IO_TIMEOUT_MS`] to
//! send it and to take the answer.
//!
//! Label values are bounded: `node` takes the IDs of the nodes of the last finished run and
//! of the run in progress (the registry registers at most `NODES_MAX` nodes, so at most
//! 2 x `NODES_MAX` values, and nodes gone before the last run are dropped from the latency);
//! `hops` at most `TRACE_SLOTS_MAX` + 1 values; `verdict` four ([`VERDICTS`]). Each node has 5 counters and
//! a latency-per-hop histogram of [`HOP_LATENCY_BUCKETS_NS`] + 1 = 11 buckets, a sum and a
//! count: 18 series, so at most 2 x 16,000 x 18 = 576,000, and 288 for 16 nodes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::limits::{METRICS_IO_TIMEOUT_MS, METRICS_REQUEST_BYTES_MAX};
use crate::stats::{HOP_LATENCY_BUCKETS_NS, HopLatencyBuckets, RunStats};
use crate::summary::{PASS_WITH_CRASHES, RunResult};
use crate::wire::{Counters, NodeId};

/// Upper bounds (seconds) of the end-to-end latency histogram's buckets: 10 us to 10 s.
pub const LATENCY_BUCKETS_S: [f64; 19] = [
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A node's data-packet counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub received: u64,
    pub relayed: u64,
    pub corrupted: u64,
    pub dropped: u64,
}

impl Counts {
    fn of(counters: &Counters) -> Counts {
        Counts {
            sent: counters.sent,
            received: counters.received,
            relayed: counters.relayed,
            corrupted: counters.corrupted,
            dropped: counters.dropped,
        }
    }

    fn add(&mut self, other: &Counts) {
        self.sent = self.sent.saturating_add(other.sent);
        self.received = self.received.saturating_add(other.received);
        self.relayed = self.relayed.saturating_add(other.relayed);
        self.corrupted = self.corrupted.saturating_add(other.corrupted);
        self.dropped = self.dropped.saturating_add(other.dropped);
    }

    fn fields(&self) -> [(&'static str, &'static str, u64); 5] {
        [
            ("packets_sent", "Data packets originated", self.sent),
            (
                "packets_received",
                "Data packets delivered at their sink",
                self.received,
            ),
            (
                "packets_relayed",
                "Data packets forwarded by a relay",
                self.relayed,
            ),
            (
                "packets_corrupted",
                "Data packets that failed the CRC",
                self.corrupted,
            ),
            (
                "packets_dropped",
                "Data packets dropped with a lost link",
                self.dropped,
            ),
        ]
    }
}

/// Latency bucket counts (cumulative, as Prometheus wants them), their count and sum.
#[derive(Debug, Clone, Default, PartialEq)]
struct Buckets {
    /// Packets at or below each bound of [`LATENCY_BUCKETS_S`].
    le: [u64; LATENCY_BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

impl Buckets {
    fn of(stats: &RunStats) -> Buckets {
        let mut buckets = Buckets::default();
        for histogram in &stats.latency_ns {
            if histogram.is_empty() {
                continue;
            }
            for (le, bound) in buckets.le.iter_mut().zip(LATENCY_BUCKETS_S) {
                *le += histogram.count_between(0, (bound * 1e9) as u64);
            }
            buckets.count += histogram.len();
            buckets.sum_s += histogram.mean() * histogram.len() as f64 / 1e9;
        }
        buckets
    }

    fn add(&mut self, other: &Buckets) {
        for (mine, theirs) in self.le.iter_mut().zip(other.le) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_s += other.sum_s;
    }
}

/// The verdicts a run ends with (`RunResult::verdict`), the values of `overlay_runs_total`'s
/// label: a stopped run or one that passed with crashes is neither PASS nor FAIL.
pub const VERDICTS: [&str; 4] = ["PASS", PASS_WITH_CRASHES, "STOPPED", "FAIL"];

/// Everything a scrape shows, folded from the registry's polls and results. Counters add
/// every run of the session: the finished runs' final counts plus the run in progress as of
/// its last poll round (nodes count from zero at each run; a run's final count is at least
/// its last polled one, so no counter ever goes down).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Registered nodes now.
    pub nodes: u64,
    /// Runs finished, by verdict ([`VERDICTS`], in that order).
    runs: [u64; VERDICTS.len()],
    /// The run in progress, 0 when none.
    run: u64,
    /// Packets received per second over the last progress interval (0 between runs).
    receive_rate_pps: f64,
    /// Per node: the finished runs' counts, and its address.
    finished: BTreeMap<NodeId, (String, Counts)>,
    /// Per node: the run in progress, as of its last poll round.
    current: BTreeMap<NodeId, Counts>,
    /// Packets delivered by hops (transmissions, index 0 = 1 hop): finished runs, current run.
    hops_finished: Vec<u64>,
    hops_current: Vec<u64>,
    latency_finished: Buckets,
    latency_current: Buckets,
    /// Per node: latency per hop over the finished runs (the nodes of the last one), and
    /// over the run in progress as of its last poll round.
    node_latency_finished: BTreeMap<NodeId, HopLatencyBuckets>,
    node_latency_current: BTreeMap<NodeId, HopLatencyBuckets>,
}

impl Snapshot {
    /// A complete poll round of run `run`: each node's counters so far (with its address),
    /// the hop counts and latencies of the packets delivered since the previous round, and
    /// the overlay's receive rate.
    pub fn round<'a>(
        &mut self,
        run: u32,
        nodes: impl Iterator<Item = (NodeId, SocketAddr, &'a Counters)>,
        window: &RunStats,
        receive_rate_pps: f64,
    ) {
        self.run = u64::from(run);
        self.receive_rate_pps = receive_rate_pps;
        for (id, addr, counters) in nodes {
            self.finished
                .entry(id)
                .or_insert_with(|| (addr.to_string(), Counts::default()));
            self.current.insert(id, Counts::of(counters));
        }
        add_hops(&mut self.hops_current, &window.hops);
        self.latency_current.add(&Buckets::of(window));
    }

    /// Each node's latency per hop over the run in progress, as of its last poll round (the
    /// registry folds each progress reply's histograms into it: `RegistryConfig::node_latency`).
    pub fn node_hop_latency(&mut self, latency: &BTreeMap<NodeId, HopLatencyBuckets>) {
        self.node_latency_current.clone_from(latency);
    }

    /// A run finished with `result`; `all` holds the hop counts and latencies of every
    /// finished run.
    pub fn finished(&mut self, result: &RunResult, all: &RunStats) {
        // Latency per hop: the run's polls added to the session's, for the run's nodes only
        // (a node gone before it drops out: the label values stay within the registry's
        // bound on nodes).
        let current = std::mem::take(&mut self.node_latency_current);
        self.node_latency_finished
            .retain(|id, _| result.node.iter().any(|node| node.id == *id));
        for (id, latency) in current {
            if result.node.iter().any(|node| node.id == id) {
                self.node_latency_finished
                    .entry(id)
                    .or_default()
                    .add(&latency);
            }
        }
        for node in &result.node {
            let counts = Counts {
                sent: node.packets_sent,
                received: node.packets_received,
                relayed: node.packets_relayed,
                corrupted: node.corrupted,
                dropped: node.dropped,
            };
            self.finished
                .entry(node.id)
                .or_insert_with(|| (node.address.clone(), Counts::default()))
                .1
                .add(&counts);
            self.current.remove(&node.id);
        }
        // A node lost during the run keeps what its last poll showed.
        for (id, counts) in std::mem::take(&mut self.current) {
            if let Some((_, finished)) = self.finished.get_mut(&id) {
                finished.add(&counts);
            }
        }
        // A verdict not in the list (none today) counts as a failure.
        let verdict = VERDICTS
            .iter()
            .position(|&v| v == result.verdict)
            .unwrap_or(VERDICTS.len() - 1);
        self.runs[verdict] += 1;
        self.run = 0;
        self.receive_rate_pps = 0.0;
        self.hops_finished = all.hops.clone();
        self.hops_current.clear();
        self.latency_finished = Buckets::of(all);
        self.latency_current = Buckets::default();
    }

    /// Each node's counts over the session.
    fn per_node(&self) -> impl Iterator<Item = (NodeId, &str, Counts)> {
        self.finished.iter().map(|(id, (addr, finished))| {
            let mut counts = *finished;
            if let Some(current) = self.current.get(id) {
                counts.add(current);
            }
            (*id, addr.as_str(), counts)
        })
    }

    /// Each node's latency per hop over the session.
    fn node_latency(&self) -> BTreeMap<NodeId, HopLatencyBuckets> {
        let mut all = self.node_latency_finished.clone();
        for (id, latency) in &self.node_latency_current {
            all.entry(*id).or_default().add(latency);
        }
        all
    }

    /// The text exposition of this snapshot.
    pub fn encode(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Published(Arc::new(Mutex::new(self.clone())))));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
        text
    }
}

fn add_hops(into: &mut Vec<u64>, by_relays: &[u64]) {
    if into.len() < by_relays.len() {
        into.resize(by_relays.len(), 0);
    }
    for (mine, theirs) in into.iter_mut().zip(by_relays) {
        *mine += theirs;
    }
}

/// The snapshot the registry publishes and the server encodes at each scrape.
#[derive(Debug, Clone, Default)]
pub struct Published(pub Arc<Mutex<Snapshot>>);

impl Published {
    /// Replaces the published snapshot.
    pub fn publish(&self, snapshot: &Snapshot) {
        if let Ok(mut published) = self.0.lock() {
            published.clone_from(snapshot);
        }
    }
}

impl Collector for Published {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(snapshot) = self.0.lock() else {
            return Ok(());
        };
        let gauge = |encoder: &mut DescriptorEncoder, name: &str, help: &str, value: f64| {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
        };
        gauge(
            &mut encoder,
            "overlay_nodes",
            "Registered messaging nodes",
            snapshot.nodes as f64,
        )?;
        gauge(
            &mut encoder,
            "overlay_run",
            "Number of the run in progress (0: none)",
            snapshot.run as f64,
        )?;
        gauge(
            &mut encoder,
            "overlay_receive_rate_packets_per_second",
            "Packets delivered per second over the last progress interval (0 between runs)",
            snapshot.receive_rate_pps,
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "overlay_runs",
                "Runs finished, by verdict",
                None,
                MetricType::Counter,
            )?;
            for (&verdict, &count) in VERDICTS.iter().zip(&snapshot.runs) {
                let labels = [("verdict", verdict)];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut total = Counts::default();
        for (_, _, counts) in snapshot.per_node() {
            total.add(&counts);
        }
        for (index, (name, help, value)) in total.fields().into_iter().enumerate() {
            let name_overlay = format!("overlay_{name}");
            let help_overlay = format!("{help}, all nodes, all runs");
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                &name_overlay,
                &help_overlay,
                None,
                MetricType::Counter,
            )?)?;
            let name_node = format!("overlay_node_{name}");
            let help_node = format!("{help}, by node, all runs");
            let mut family =
                encoder.encode_descriptor(&name_node, &help_node, None, MetricType::Counter)?;
            for (id, address, counts) in snapshot.per_node() {
                let id = id.to_string();
                let labels = [("node", id.as_str()), ("address", address)];
                let value = counts.fields()[index].2;
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut hops = snapshot.hops_finished.clone();
            add_hops(&mut hops, &snapshot.hops_current);
            let mut family = encoder.encode_descriptor(
                "overlay_packets_by_hops",
                "Data packets delivered, by hops from source to sink (1: straight to a table \
                 entry)",
                None,
                MetricType::Counter,
            )?;
            for (relays, count) in hops.iter().enumerate() {
                let hops = (relays + 1).to_string();
                let labels = [("hops", hops.as_str())];
                ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "overlay_node_hop_latency_seconds",
                "Latency per hop (end to end over the hops taken) of the data packets \
                 delivered at each node, from the progress polls (to about 1%)",
                None,
                MetricType::Histogram,
            )?;
            for (id, latency) in snapshot.node_latency() {
                let id = id.to_string();
                let labels = [("node", id.as_str())];
                let buckets: Vec<(f64, u64)> = HOP_LATENCY_BUCKETS_NS
                    .iter()
                    .map(|&bound| bound as f64 / 1e9)
                    .chain([f64::INFINITY])
                    .zip(latency.buckets)
                    .collect();
                family
                    .encode_family(&labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        latency.sum_ns / 1e9,
                        latency.count,
                        &buckets,
                        None,
                    )?;
            }
        }
        let mut latency = snapshot.latency_finished.clone();
        latency.add(&snapshot.latency_current);
        // The encoder takes each bucket's own count and writes the running totals.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_S
            .iter()
            .copied()
            .zip(latency.le)
            .chain([(f64::INFINITY, latency.count)])
            .map(|(bound, at_or_below)| {
                let own = at_or_below.saturating_sub(below);
                below = below.max(at_or_below);
                (bound, own)
            })
            .collect();
        encoder
            .encode_descriptor(
                "overlay_latency_seconds",
                "End-to-end latency of the data packets delivered (the sinks' histograms; \
                 bucket counts and the sum to about 1%)",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                latency.sum_s,
                latency.count,
                &buckets,
                None,
            )
    }
}

/// Binds the metrics endpoint (before the registry listens, so a mistake is refused at once).
pub fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Answers scrapes on `listener` from `published`, one connection at a time, on a thread of
/// its own, until the process exits.
pub fn serve(listener: TcpListener, published: Published) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let mut registry = prometheus_client::registry::Registry::default();
            registry.register_collector(Box::new(published));
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => answer(stream, &registry),
                    Err(error) => {
                        tracing::debug!(%error, "metrics: accept failed");
                        // Out of descriptors, say: give the registry room before trying again.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
    Ok(())
}

/// One request: `GET /metrics` (or `/`) gets the exposition; anything else a short error.
fn answer(mut stream: TcpStream, registry: &prometheus_client::registry::Registry) {
    let timeout = Some(Duration::from_millis(METRICS_IO_TIMEOUT_MS));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return;
    }
    let mut request = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_complete = loop {
        if request.windows(4).any(|w| w == b"\r\n\r\n") {
            break true;
        }
        if request.len() >= METRICS_REQUEST_BYTES_MAX {
            break false;
        }
        let room = (METRICS_REQUEST_BYTES_MAX - request.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&chunk[..read]),
        }
    };
    let (status, content_type, body) = if !head_complete {
        (
            "431 Request Header Fields Too Large",
            "text/plain",
            "request too large\n".to_string(),
        )
    } else {
        let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
        let mut words = line.split(|&b| b == b' ');
        match (words.next(), words.next()) {
            (Some(b"GET"), Some(b"/metrics" | b"/")) => {
                let mut text = String::new();
                let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, registry);
                (
                    "200 OK",
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    text,
                )
            }
            (Some(b"GET"), _) => (
                "404 Not Found",
                "text/plain",
                "the metrics are at /metrics\n".to_string(),
            ),
            _ => (
                "405 Method Not Allowed",
                "text/plain",
                "only GET\n".to_string(),
            ),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::NodeResult;

    fn counters(sent: u64, received: u64) -> Counters {
        Counters {
            sent,
            received,
            relayed: sent / 2,
            ..Counters::default()
        }
    }

    /// Counter values in an exposition, by the line's name and labels.
    fn values(text: &str) -> BTreeMap<String, f64> {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').unwrap();
                (name.to_string(), value.parse().unwrap())
            })
            .collect()
    }

    /// The `node` label values of the latency stay within the nodes of the last run and of
    /// the run in progress: a node gone before a run ends drops out.
    #[test]
    fn node_latency_keeps_the_last_runs_nodes() {
        let a: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let mut snapshot = Snapshot::default();
        let mut stats = RunStats::default();
        stats.record(0, Some(20_000));
        let mut one = HopLatencyBuckets::default();
        one.add_stats(&stats);
        for (run, id) in [(1u32, 5u32), (2, 6)] {
            snapshot.node_hop_latency(&BTreeMap::from([(id, one)]));
            let rows = vec![NodeResult::new(id, a, &counters(1, 1))];
            let result = RunResult::new(3, 1, 0, 1.0, rows, vec![]).with_stats(stats.clone());
            snapshot.finished(&result, &stats);
            assert_eq!(
                snapshot.node_latency().keys().copied().collect::<Vec<_>>(),
                [id],
                "run {run}"
            );
        }
    }

    #[test]
    fn counters_add_runs_and_never_go_down() {
        let a: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:4002".parse().unwrap();
        let mut snapshot = Snapshot {
            nodes: 2,
            ..Snapshot::default()
        };
        let mut window = RunStats::default();
        window.record(0, Some(40_000));
        window.record(1, Some(3_000_000));
        let (ca, cb) = (counters(10, 8), counters(10, 9));
        snapshot.round(1, [(5, a, &ca), (9, b, &cb)].into_iter(), &window, 123.0);
        // Node 9 took both packets: 40 us in 1 hop, and 3 ms in 2 hops (1.5 ms per hop).
        let mut latency = BTreeMap::new();
        latency
            .entry(9)
            .or_insert_with(HopLatencyBuckets::default)
            .add_stats(&window);
        snapshot.node_hop_latency(&latency);
        let first = values(&snapshot.encode());
        let node = |name: &str, le: &str| {
            format!(r#"overlay_node_hop_latency_seconds_{name}{{node="9"{le}}}"#)
        };
        assert_eq!(first[&node("bucket", r#",le="5e-05""#)], 1.0, "{first:?}");
        assert_eq!(first[&node("bucket", r#",le="0.001""#)], 1.0);
        assert_eq!(first[&node("bucket", r#",le="0.01""#)], 2.0);
        assert_eq!(first[&node("bucket", r#",le="+Inf""#)], 2.0);
        assert_eq!(first[&node("count", "")], 2.0);
        let sum = first[&node("sum", "")];
        assert!((sum - 1.54e-3).abs() < 0.03e-3, "{sum}");
        assert_eq!(first["overlay_packets_sent_total"], 20.0, "{first:?}");
        assert_eq!(
            first[r#"overlay_node_packets_received_total{node="9",address="127.0.0.1:4002"}"#],
            9.0
        );
        assert_eq!(first["overlay_run"], 1.0);
        assert_eq!(first["overlay_receive_rate_packets_per_second"], 123.0);
        assert_eq!(first[r#"overlay_packets_by_hops_total{hops="2"}"#], 1.0);
        assert_eq!(first[r#"overlay_latency_seconds_bucket{le="5e-05"}"#], 1.0);
        assert_eq!(first[r#"overlay_latency_seconds_bucket{le="0.005"}"#], 2.0);
        assert_eq!(first["overlay_latency_seconds_count"], 2.0);

        let rows = vec![
            NodeResult::new(5, a, &counters(20, 21)),
            NodeResult::new(9, b, &counters(20, 19)),
        ];
        let mut all = window.clone();
        all.record(0, Some(40_000));
        let result = RunResult::new(3, 20, 0, 1.0, rows, vec![]).with_stats(all.clone());
        snapshot.finished(&result, &all);
        let second = values(&snapshot.encode());
        assert_eq!(second[&node("count", "")], 2.0, "the run's polls kept");
        assert_eq!(second["overlay_packets_sent_total"], 40.0);
        assert_eq!(second["overlay_packets_received_total"], 40.0);
        assert_eq!(second[r#"overlay_runs_total{verdict="PASS"}"#], 1.0);
        assert_eq!(second["overlay_run"], 0.0);
        assert_eq!(second["overlay_latency_seconds_count"], 3.0);
        // A second run starts from zero at the nodes; the counters go on from the first.
        snapshot.round(
            2,
            [(5, a, &counters(3, 1))].into_iter(),
            &RunStats::default(),
            1.0,
        );
        let third = values(&snapshot.encode());
        assert_eq!(third[&node("count", "")], 2.0, "{third:?}");
        assert_eq!(
            third[r#"overlay_node_packets_sent_total{node="5",address="127.0.0.1:4001"}"#],
            23.0
        );
        for (name, value) in &second {
            if name.contains("_total") || name.contains("_bucket") || name.contains("_count") {
                assert!(third[name] >= *value, "{name} went down");
            }
        }
    }

    /// A run stopped early is counted as STOPPED, not as a failure; every verdict has its
    /// series from the start.
    #[test]
    fn runs_are_counted_by_their_verdict() {
        let a: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let mut snapshot = Snapshot::default();
        let runs = |snapshot: &Snapshot| {
            let values = values(&snapshot.encode());
            VERDICTS.map(|v| values[&format!(r#"overlay_runs_total{{verdict="{v}"}}"#)])
        };
        assert_eq!(runs(&snapshot), [0.0; 4]);
        let stopped = RunResult::ended(
            crate::summary::Ending {
                stopped_after_s: Some(1.0),
                ..Default::default()
            },
            3,
            20,
            0,
            1.0,
            vec![NodeResult::new(5, a, &counters(7, 7))],
            vec![],
        );
        assert_eq!(stopped.verdict, "STOPPED");
        snapshot.finished(&stopped, &RunStats::default());
        assert_eq!(runs(&snapshot), [0.0, 0.0, 1.0, 0.0]);
        let failed = RunResult::new(
            3,
            20,
            0,
            1.0,
            vec![NodeResult::new(5, a, &counters(20, 19))],
            vec![],
        );
        assert_eq!(failed.verdict, "FAIL");
        snapshot.finished(&failed, &RunStats::default());
        assert_eq!(runs(&snapshot), [0.0, 0.0, 1.0, 1.0]);
    }
}
