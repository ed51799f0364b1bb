//! `overlay simulate` end to end: the binary's JSON against the Chord paper's mean path
//! length and the positions rule's exact hop formula.

use std::process::Command;

use overlay::routing::transmissions;
use serde_json::Value;

fn simulate(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_overlay"))
        .arg("simulate")
        .args(args)
        .arg("--json")
        .output()
        .expect("run overlay simulate");
    assert!(
        output.status.success(),
        "overlay simulate {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("simulate prints JSON")
}

fn f64_of(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {value}"))
}

fn counts(value: &Value) -> Vec<u64> {
    value["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect()
}

/// Chord fingers, 1,024 nodes, random keys: the mean path length (forwards to the key's
/// predecessor) is within 4% of (1/2) log2 N = 5, and every lookup whose source does not own
/// its key takes exactly one transmission more.
#[test]
fn chord_mean_path_length_is_half_log2_n() {
    let report = simulate(&["--nodes", "1024", "--lookups", "200000", "--seed", "5"]);
    assert_eq!(report["rule"], "chord");
    assert_eq!(report["targets"], "keys");
    assert_eq!(f64_of(&report, "half_log2_nodes"), 5.0);
    let path = &report["path_length"];
    let mean = f64_of(path, "mean");
    assert!((mean - 5.0).abs() / 5.0 < 0.04, "mean path length {mean}");
    let hops = &report["hops"];
    let owned = counts(hops)[0] as f64 / 200_000.0;
    let extra = f64_of(hops, "mean") - mean;
    assert!(
        (extra - (1.0 - owned)).abs() < 1e-9,
        "hops - path length = {extra}"
    );
    assert!(path["p1"].as_u64().unwrap() <= path["p50"].as_u64().unwrap());
    assert!(path["p99"].as_u64().unwrap() <= 10, "{path}");
    assert!(path["max"].as_u64().unwrap() <= 160, "{path}");
}

/// Position fingers, every node to every other: the distribution is exactly
/// N x {transmissions(d, NR) : d = 1..N-1}, for 1,024 nodes with the default NR (10) and for
/// 256 nodes with NR 3.
#[test]
fn positions_hops_follow_the_formula_exactly() {
    for (nodes, nr, args) in [(1024u64, 10, vec![]), (256, 3, vec!["--nr", "3"])] {
        let nodes_text = nodes.to_string();
        let mut all = vec!["--nodes", &nodes_text, "--rule", "positions", "--all-pairs"];
        all.extend(args);
        let report = simulate(&all);
        assert_eq!(report["nr"].as_u64(), Some(nr));
        let mut expected = Vec::new();
        for d in 1..nodes {
            let h = transmissions(d, nr as usize) as usize;
            if h >= expected.len() {
                expected.resize(h + 1, 0);
            }
            expected[h] += nodes;
        }
        assert_eq!(counts(&report["hops"]), expected, "NR {nr}");
        let mean = f64_of(&report["hops"], "mean");
        assert!((mean - f64_of(&report, "exact_mean_hops")).abs() < 1e-9);
    }
}

/// The paper's Fig. 8 setting: 10^4 nodes, 10^6 keys, mean 100 per node; node shares of the
/// ring are close to exponential, so the 99th percentile is near ln(100) = 4.6 times the mean.
#[test]
fn keys_per_node() {
    let report = simulate(&["--nodes", "10000", "--lookups", "0", "--keys", "1000000"]);
    let load = &report["load"];
    assert_eq!(f64_of(load, "mean"), 100.0);
    let p99 = load["p99"].as_u64().unwrap();
    assert!((400..=520).contains(&p99), "{load}");
    assert!(load["max"].as_u64().unwrap() >= p99);
}

#[test]
fn refuses_a_ring_of_one() {
    let output = Command::new(env!("CARGO_BIN_EXE_overlay"))
        .args(["simulate", "--nodes", "1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--nodes must be between 2"), "{stderr}");
}

/// `--churn`: a join or a leave changes the tables of O(log N) nodes under Chord and of
/// 2^(NR-1) nodes under positions (every node with the newcomer within its widest entry), each
/// position table by one entry per finger that spans the change.
#[test]
fn churn_costs_both_rules() {
    let chord = simulate(&["--nodes", "1024", "--lookups", "0", "--churn", "10"]);
    let join = &chord["churn"]["join"];
    let nodes = f64_of(join, "nodes_changed_mean");
    assert!((2.0..=40.0).contains(&nodes), "{join}");
    assert_eq!(f64_of(&chord["churn"], "chord_join_messages"), 100.0);
    let positions = simulate(&[
        "--nodes",
        "1024",
        "--rule",
        "positions",
        "--lookups",
        "0",
        "--churn",
        "5",
    ]);
    for change in ["join", "leave"] {
        let cost = &positions["churn"][change];
        assert_eq!(f64_of(cost, "nodes_changed_mean"), 512.0, "{cost}");
        assert_eq!(cost["nodes_changed_max"].as_u64(), Some(512), "{cost}");
    }
}

/// `--fail`: with half the nodes killed at once, about half the lookups have a dead owner; of
/// the others, backups leave fewer stuck than stale tables alone, and Chord's log2 N backups
/// almost none; with none killed nothing is stuck or lost.
#[test]
fn massive_failure_before_repair() {
    let report = simulate(&[
        "--nodes",
        "2048",
        "--lookups",
        "20000",
        "--fail",
        "0,0.5",
        "--seed",
        "3",
    ]);
    let rows = report["failures"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(f64_of(&rows[0], "owner_failed"), 0.0);
    assert_eq!(f64_of(&rows[0], "stuck_without_backups"), 0.0);
    let half = &rows[1];
    assert_eq!(half["killed"].as_u64(), Some(1024));
    assert!((f64_of(half, "owner_failed") - 0.5).abs() < 0.03, "{half}");
    assert!(
        f64_of(half, "stuck") < f64_of(half, "stuck_without_backups"),
        "{half}"
    );
    assert!(f64_of(half, "stuck_log2_backups") < 0.005, "{half}");
    let output = Command::new(env!("CARGO_BIN_EXE_overlay"))
        .args(["simulate", "--nodes", "64", "--fail", "1.5"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must lie in [0, 1)"), "{stderr}");
}
