//! Output for programs, through the real binary: `--format json` scripted (one JSON object on
//! standard output and nothing else) and at the console (one line of JSON per run), `--json PATH` rewritten as each console
//! run ends, and the Prometheus endpoint (`--metrics`) scraped during a run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{DEADLINE, Proc, nodes, poll, registry, registry_port_file, temp_path, wait_file};
use serde_json::Value;

/// At the console, `--format json` prints each run as one line of JSON as it ends (with its
/// number and settings), every other line on standard error; `--json PATH` is honoured there
/// too: rewritten after each run with every run so far.
#[test]
fn console_json_lines_and_result_file() {
    let json = temp_path("console.json");
    let (mut reg, port) = registry_port_file(&["--format", "json", "--json", json.arg()], true);
    let _nodes: Vec<Proc> = nodes(4, port, &[]);
    reg.wait_err_line("(4 nodes)");
    reg.send("setup-overlay 2");
    reg.wait_err_line("Registry now ready to initiate tasks.");
    let mut lines = Vec::new();
    for (run, packets) in [(1u64, 1000u64), (2, 500)] {
        reg.send(&format!("start {packets}"));
        let line = reg.wait_until(&format!("run {run} as JSON"), 0, |text| {
            let complete: Vec<&str> = text.lines().collect();
            (complete.len() as u64 >= run && text.ends_with('\n'))
                .then(|| complete[run as usize - 1].to_string())
        });
        let report: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one line of JSON ({e}): {line}\n{}", reg.dump()));
        assert_eq!(report["run"], run, "{report}");
        assert_eq!(report["verdict"], "PASS", "{report}");
        assert_eq!(report["packets_received"], 4 * packets, "{report}");
        assert_eq!(report["settings"]["nr"], 2, "{report}");
        assert_eq!(report["settings"]["finger_rule"], "positions", "{report}");
        lines.push(report);
        let file: Value = wait_file(&json.0, |text| {
            serde_json::from_str::<Value>(text)
                .ok()
                .filter(|file| file["runs_completed"] == run)
        });
        assert_eq!(file["runs"].as_array().unwrap().len() as u64, run, "{file}");
        assert_eq!(
            file["runs"][run as usize - 1]["packets_received"],
            4 * packets
        );
        assert_eq!(file["settings"]["id_bits"], 7, "{file}");
    }
    // Standard output holds those two lines and nothing else; the table went to stderr.
    let out = reg.out.text();
    assert_eq!(out.lines().count(), 2, "{out}");
    for (line, report) in out.lines().zip(&lines) {
        assert_eq!(&serde_json::from_str::<Value>(line).unwrap(), report);
    }
    // (Read on another thread than standard output: waited for, not looked up.)
    reg.wait_err_line("Run 2 summary:");
}

/// Scripted by time with the short flags (`-n`, `-t`, `-i`, `-r`, `-f`): standard output is
/// one JSON object with both runs and nothing else; the interval lines go to standard error
/// with the rest. (A run by count: `tests/operator.rs` `json_summary_carries_hops_and_latency`.)
#[test]
fn scripted_runs_by_time_print_json_alone() {
    let (mut reg, port) = registry_port_file(
        &[
            "-n", "3", "-t", "1", "-i", "0.5", "-r", "2", "-f", "json", "--rate", "20000",
        ],
        false,
    );
    let _nodes: Vec<Proc> = nodes(3, port, &[]);
    let status = reg.wait_exit();
    assert!(status.success(), "{status}\n{}", reg.dump());
    let out = reg.out.text();
    let result: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("standard output is not one JSON object ({e}):\n{out}"));
    assert_eq!(result["verdict"], "PASS", "{result}");
    assert_eq!(result["runs_completed"], 2, "{result}");
    for run in result["runs"].as_array().unwrap() {
        assert_eq!(run["duration_goal_s"], 1.0, "{run}");
    }
    assert_eq!(result["settings"]["rate_per_s"], 20000, "{result}");
    let err = reg.err.text();
    for line in ["Run 1 [", "Run 2 [", "Run 2 summary:", "PASS: "] {
        assert!(err.contains(line), "{line:?} not on standard error:\n{err}");
    }
}

/// Sends `request` to the metrics endpoint and returns the whole answer.
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// A scrape, parsed: every sample line's `name{labels}` and value (the exposition's own
/// syntax checked on the way: `# HELP`/`# TYPE` comments, then `name value` lines).
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let answer = http(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let mut samples = BTreeMap::new();
    let mut typed = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (name, value) = line.rsplit_once(' ').expect("name value");
        let family = name.split('{').next().unwrap();
        assert!(
            typed.iter().any(|t| family.starts_with(t.as_str())),
            "{family} has no # TYPE before it"
        );
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("a number in {line}"));
        samples.insert(name.to_string(), value);
    }
    samples
}

/// The samples of one family (`name{...}`), by their labels.
fn family<'a>(samples: &'a BTreeMap<String, f64>, name: &str) -> BTreeMap<&'a str, f64> {
    let prefix = format!("{name}{{");
    samples
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix(prefix.as_str())?, *value)))
        .collect()
}

/// `--metrics ADDR`: scraped with plain GETs during a real run, the exposition parses, has the
/// overlay-wide and per-node counters (a `node` label per node), the latency histogram, each
/// node's latency-per-hop histogram and the rate, and its counters grow between two scrapes; a request that never ends gets 431, a
/// silent connection holds the endpoint for at most its timeout.
#[test]
fn metrics_endpoint_scraped_during_a_run() {
    let (reg, port) = registry(
        &[
            "--metrics",
            "127.0.0.1:0",
            "--nodes",
            "4",
            "--start",
            "8000",
            "--rate",
            "2000",
        ],
        false,
    );
    let (line, _) = reg.wait_line("Metrics at http://", 0);
    let addr: SocketAddr = line["Metrics at http://".len()..]
        .trim_end_matches("/metrics")
        .parse()
        .unwrap_or_else(|_| panic!("no address in {line:?}"));
    let _nodes: Vec<Proc> = nodes(4, port, &[]);
    let received = |m: &BTreeMap<String, f64>| m.get("overlay_packets_received_total").copied();
    let first = poll(DEADLINE, || {
        let metrics = scrape(addr);
        (received(&metrics)? > 0.0).then_some(metrics)
    })
    .unwrap_or_else(|| panic!("no packets in any scrape\n{}", reg.dump()));
    assert_eq!(first["overlay_nodes"], 4.0, "{first:?}");
    assert_eq!(first["overlay_run"], 1.0, "{first:?}");
    let by_node = family(&first, "overlay_node_packets_sent_total");
    let nodes: BTreeSet<&str> = by_node
        .keys()
        .map(|labels| labels.split(',').next().unwrap())
        .collect();
    assert_eq!(nodes.len(), 4, "a node label per node: {by_node:?}");
    assert!(nodes.iter().all(|n| n.starts_with("node=\"")), "{nodes:?}");
    let sum: f64 = by_node.values().sum();
    assert_eq!(sum, first["overlay_packets_sent_total"], "{first:?}");

    // A request with no end is cut at the bound; a silent one only delays the next scrape.
    let answer = http(addr, &[b'A'; 16 * 1024]);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let _silent = TcpStream::connect(addr).unwrap();
    let asked = Instant::now();
    let second = poll(DEADLINE, || {
        let metrics = scrape(addr);
        (received(&metrics)? > received(&first)?).then_some(metrics)
    })
    .unwrap_or_else(|| panic!("the counters never grew\n{}", reg.dump()));
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "{:?}",
        asked.elapsed()
    );
    for (name, value) in &first {
        if name.ends_with("_total") || name.contains("_total{") || name.contains("_bucket{") {
            assert!(
                second[name] >= *value,
                "{name} went down: {value} -> {}",
                second[name]
            );
        }
    }
    assert!(
        second["overlay_packets_sent_total"] > first["overlay_packets_sent_total"],
        "{second:?}"
    );
    let count = second["overlay_latency_seconds_count"];
    assert!(count > 0.0, "{second:?}");
    assert_eq!(
        second[r#"overlay_latency_seconds_bucket{le="+Inf"}"#],
        count
    );
    assert!(
        second["overlay_receive_rate_packets_per_second"] > 0.0,
        "{second:?}"
    );
    // Each node's latency per hop: a histogram per node, from the same polls as the overlay's
    // latency, so their counts add up to its count; buckets grow to the count at +Inf.
    let per_node = family(&second, "overlay_node_hop_latency_seconds_count");
    assert_eq!(per_node.len(), 4, "a histogram per node: {per_node:?}");
    assert_eq!(per_node.values().sum::<f64>(), count, "{second:?}");
    for (labels, node_count) in &per_node {
        let node = labels.trim_end_matches('}');
        let buckets: Vec<f64> = family(&second, "overlay_node_hop_latency_seconds_bucket")
            .into_iter()
            .filter(|(l, _)| l.starts_with(&format!("{node},")))
            .map(|(_, value)| value)
            .collect();
        assert_eq!(buckets.len(), 11, "{node}: {buckets:?}");
        let inf = second[&format!("overlay_node_hop_latency_seconds_bucket{{{node},le=\"+Inf\"}}")];
        assert_eq!(inf, *node_count, "{node}");
        assert!(buckets.iter().all(|b| *b <= inf), "{node}: {buckets:?}");
        assert!(second[&format!("overlay_node_hop_latency_seconds_sum{{{node}}}")] > 0.0);
    }
    let answer = http(addr, b"GET /other HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}
