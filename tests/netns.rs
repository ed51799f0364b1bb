//! A healthy run across "hosts": the registry in one network namespace and six nodes in three
//! others (two per host), joined by veth pairs to a bridge the test creates and removes.
//! Needs root and iproute2 (.ci/run installs it); without them it says loudly that it did not
//! run.

mod common;

use std::collections::BTreeSet;

use common::{Netns, Proc, registered, skip_without_netns, temp_path, wait_file};
use serde_json::Value;

#[test]
fn registry_and_nodes_on_separate_hosts_verify() {
    if skip_without_netns("registry_and_nodes_on_separate_hosts_verify") {
        return;
    }
    let net = Netns::new(4);
    let json = temp_path("netns.json");
    let registry_ip = net.ip(0);
    let mut reg = Proc::spawn_in(
        "registry",
        Some(&net.hosts[0]),
        &[
            "registry",
            "--bind",
            &registry_ip,
            "--nodes",
            "6",
            "--start",
            "20000",
            "--json",
            json.arg(),
        ],
        false,
    );
    let (line, _) = reg.wait_line("Registry listening on ", 0);
    let port = line.rsplit(':').next().unwrap().trim().to_string();
    let mut nodes = Vec::new();
    for host in 1..=3 {
        for k in 0..2 {
            nodes.push(Proc::spawn_in(
                &format!("node{host}.{k}"),
                Some(&net.hosts[host]),
                &["node", &registry_ip, &port],
                false,
            ));
        }
    }
    let addresses: BTreeSet<String> = nodes
        .iter()
        .map(|n| registered(n).addr.ip().to_string())
        .collect();
    let expected: BTreeSet<String> = (1..=3).map(|h| net.ip(h)).collect();
    assert_eq!(
        addresses, expected,
        "each node registers its own host's address"
    );
    let status = reg.wait_exit();
    assert!(status.success(), "registry: {status}\n{}", reg.dump());
    let result: Value = wait_file(&json.0, |t| serde_json::from_str(t).ok());
    assert_eq!(result["verdict"], "PASS", "{result:#}");
    assert_eq!(result["packets_received"], 120_000u64, "{result:#}");
    assert_eq!(result["sum_sent"], result["sum_received"], "{result:#}");
    drop(nodes);
}
