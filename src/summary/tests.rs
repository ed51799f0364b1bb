use super::*;
use std::collections::BTreeMap;

use crate::stats::RunStats;
use crate::wire::{Counters, LinkCount, NodeId};

/// A run stopped early is STOPPED when everything it sent arrived intact (not FAIL for
/// its count, not PASS), FAIL when something is wrong, PASS when it had sent everything;
/// a run by time is held to no count; rates over a part of the run say what they leave out.
#[test]
fn stopped_timed_and_measured_runs() {
    let stopped = |after: f64, nodes: Vec<NodeResult>| {
        RunResult::ended(
            Ending {
                stopped_after_s: Some(after),
                ..Ending::default()
            },
            3,
            5,
            0,
            2.0,
            nodes,
            vec![],
        )
    };
    let clean = stopped(1.25, vec![node(1, 3, 3, 7)]);
    assert_eq!(clean.verdict, "STOPPED");
    assert!(!clean.passed());
    assert_eq!(
        clean.verdict_line(),
        "STOPPED after 1.2 s: 3 packets sent of 5, every one received and sums match; 3 \
         packets in 2.000 s (2 packets/s, 1 relays/s), 0 corrupted, 0 dropped"
    );
    let lossy = stopped(1.25, vec![node(1, 3, 2, 7)]);
    assert!(
        lossy
            .verdict_line()
            .starts_with("FAIL (stopped after 1.2 s): 3 packets sent but 2 received"),
        "{}",
        lossy.verdict_line()
    );
    assert!(
        stopped(1.25, vec![node(1, 5, 5, 7)]).passed(),
        "sent it all anyway"
    );

    let timed = RunResult::ended(
        Ending {
            duration_goal_s: Some(2.0),
            measured: Some(Measured {
                seconds: 1.0,
                received: 100,
                relayed: 50,
                excluded: "a 1.0 s warm-up".into(),
            }),
            ..Ending::default()
        },
        3,
        0,
        0,
        2.0,
        vec![node(1, 150, 150, 7)],
        vec![],
    );
    assert!(timed.passed(), "{}", timed.verdict_line());
    assert_eq!(timed.packets_per_s, 100.0);
    assert_eq!(timed.measured_s, 1.0);
    assert!(
        timed
            .verdict_line()
            .contains("(100 packets/s, 50 relays/s over 1.000 s, a 1.0 s warm-up excluded)"),
        "{}",
        timed.verdict_line()
    );
    let json = serde_json::to_value(&timed).unwrap();
    assert_eq!(json["duration_goal_s"], 2.0);
    assert_eq!(json["excluded"], "a 1.0 s warm-up");
    assert!(json.get("stopped_after_s").is_none());

    // A session with a stopped run: the total is STOPPED too, not FAIL for its count.
    let total = ScriptResult::new(vec![
        RunResult::new(3, 5, 0, 1.0, vec![node(1, 5, 5, 7)], vec![])
            .with_stats(RunStats::default()),
        clean.clone(),
    ])
    .unwrap();
    assert_eq!(
        total.total.verdict,
        "STOPPED",
        "{}",
        total.total.verdict_line()
    );
}

#[test]
fn durations_switch_units() {
    assert_eq!(duration(850), "850ns");
    assert_eq!(duration(49_020), "49.02us");
    assert_eq!(duration(12_500_000), "12.50ms");
    assert_eq!(duration(1_250_000_000), "1.25s");
}

#[test]
fn hop_spread() {
    assert_eq!(HopSpread::of(&[]), None);
    assert_eq!(HopSpread::of(&[0, 0]), None);
    // 1 packet direct (1 hop), 98 with one relay (2 hops), 1 with three relays (4 hops).
    let spread = HopSpread::of(&[1, 98, 0, 1]).unwrap();
    assert_eq!(spread.p99, 2);
    assert_eq!(spread.max, 4);
    assert!((spread.mean - (1.0 + 196.0 + 4.0) / 100.0).abs() < 1e-9);
}

#[test]
fn large_runs_get_a_compact_table() {
    let small: Vec<NodeResult> = (0..4).map(|i| node(i, 5, 5, 7)).collect();
    let large: Vec<NodeResult> = (0..100).map(|i| node(i, 5 + u64::from(i), 5, 7)).collect();
    let table = |nodes: Vec<NodeResult>| RunResult::new(3, 5, 0, 0.5, nodes, vec![]).table();
    let small = table(small);
    assert_eq!(
        small.lines().filter(|l| l.starts_with("Node ")).count(),
        4,
        "{small}"
    );
    let large = table(large);
    let rows: Vec<&str> = large.lines().filter(|l| l.starts_with("Node ")).collect();
    assert_eq!(rows.len(), 3, "{large}");
    assert!(
        rows[0].starts_with("Node min") && rows[0].contains(" 5 "),
        "{large}"
    );
    assert!(
        rows[2].starts_with("Node max") && rows[2].contains(" 104 "),
        "{large}"
    );
    assert!(large.contains("100 nodes"), "{large}");
}

#[test]
fn thousands_separators() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(375_000), "375,000");
    assert_eq!(thousands(-91_138_456_771), "-91,138,456,771");
}

fn node(id: NodeId, sent: u64, received: u64, sum: i64) -> NodeResult {
    NodeResult::new(
        id,
        "127.0.0.1:1".parse().unwrap(),
        &Counters {
            sent,
            received,
            relayed: 1,
            sum_sent: sum,
            sum_received: sum,
            corrupted: 0,
            dropped: 0,
            ..Counters::default()
        },
    )
}

#[test]
fn verdicts() {
    let pass = RunResult::new(
        3,
        5,
        0,
        0.5,
        vec![node(1, 5, 5, -7), node(2, 5, 5, 7)],
        vec![],
    );
    assert!(pass.passed());
    assert_eq!(pass.sum_sent, 0);
    let table = pass.table();
    assert!(table.contains("Sum "), "{table}");
    assert!(table.lines().last().unwrap().starts_with("PASS"), "{table}");
    let fail = RunResult::new(3, 5, 0, 0.5, vec![node(1, 5, 4, 1)], vec![]);
    assert!(!fail.passed());
    assert!(
        fail.verdict_line()
            .contains("5 packets sent but 4 received")
    );
    let lost = RunResult::new(
        3,
        5,
        0,
        0.5,
        vec![node(1, 5, 5, 1)],
        vec!["node 9 left".into()],
    );
    assert!(lost.verdict_line().starts_with("FAIL: node 9 left"));
}

/// (peer, sent, received) rows of one node.
type Rows<'a> = &'a [(NodeId, u64, u64)];

fn links(rows: &[(NodeId, Rows)]) -> BTreeMap<NodeId, Vec<LinkCount>> {
    rows.iter()
        .map(|(node, links)| {
            let links = links
                .iter()
                .map(|&(peer, sent, received)| LinkCount {
                    peer,
                    sent,
                    received,
                })
                .collect();
            (*node, links)
        })
        .collect()
}

#[test]
fn link_counts_account_for_every_packet() {
    // Healthy: 1 sends 5 to 2 over one link, 2 sends 5 to 1 over another.
    let healthy = RunResult::new(
        3,
        5,
        0,
        0.5,
        vec![node(1, 5, 5, 0), node(2, 5, 5, 0)],
        vec![],
    )
    .with_links(&[1, 2], &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 5)])]));
    assert!(healthy.passed(), "{}", healthy.verdict_line());
    assert_eq!(healthy.accounting.as_ref().unwrap().unaccounted, 0);

    // Rows are (peer, sent to it, received from it). A link between live nodes that lost 2
    // packets in the kernel: named, and accounted.
    let cut = RunResult::new(
        3,
        5,
        0,
        0.5,
        vec![node(1, 5, 5, 0), node(2, 5, 3, 0)],
        vec![],
    )
    .with_links(&[1, 2], &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 3)])]));
    let account = cut.accounting.clone().unwrap();
    assert_eq!((account.lost_on_links, account.unaccounted), (2, 0));
    assert!(
        cut.verdict_line()
            .contains("link node 1 -> node 2: 5 packets handed over, 3 arrived"),
        "{}",
        cut.verdict_line()
    );

    // Node 3 lost: 1 handed it 4 packets and took 2 from it (relayed or its own); of the 5
    // + 2 that reached or started at 1 and 2, 3 were received.
    let lost = RunResult::new(3, 5, 0, 0.5, vec![node(1, 5, 3, 0)], vec![])
        .with_links(&[1, 3], &links(&[(1, &[(3, 4, 2)])]));
    let account = lost.accounting.clone().unwrap();
    assert_eq!(account.lost_nodes, vec![3]);
    assert_eq!(
        (
            account.handed_to_lost_nodes,
            account.received_from_lost_nodes
        ),
        (4, 2)
    );
    assert_eq!(account.unaccounted, 0);
    assert!(
        lost.verdict_line()
            .contains("so every packet is accounted for"),
        "{}",
        lost.verdict_line()
    );

    // A node that miscounted: the difference is reported, not hidden.
    let wrong = RunResult::new(3, 5, 0, 0.5, vec![node(1, 5, 3, 0)], vec![])
        .with_links(&[1, 3], &links(&[(1, &[(3, 1, 0)])]));
    assert_eq!(wrong.accounting.as_ref().unwrap().unaccounted, 1);
    assert!(!wrong.passed());

    // One forged packet that node 2 took on a link of its own and delivered: foreign
    // traffic at node 2, every packet accounted for, no link blamed.
    let forged = RunResult::new(
        3,
        5,
        0,
        0.5,
        vec![node(1, 5, 5, 0), node(2, 5, 6, 0)],
        vec![],
    )
    .with_links(
        &[1, 2],
        &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 5), (2, 0, 1)])]),
    );
    let account = forged.accounting.clone().unwrap();
    assert_eq!((account.foreign, account.unaccounted), (1, 0));
    let verdict = forged.verdict_line();
    assert!(
        verdict.contains("foreign traffic: node 2 took 1 packets on links that are no node's")
            && !verdict.contains("link node"),
        "{verdict}"
    );

    // Forged packets whose trace names node 1 (an outsider's link to node 2, named by its
    // first packet, or node 1's own link relaying them): more arrived than node 1 handed
    // over. Foreign traffic at node 2; node 1's link is not blamed.
    let named = RunResult::new(
        3,
        5,
        0,
        0.5,
        vec![node(1, 5, 5, 0), node(2, 5, 7, 0)],
        vec![],
    )
    .with_links(&[1, 2], &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 7)])]));
    let account = named.accounting.clone().unwrap();
    assert_eq!(
        (account.foreign, account.lost_on_links, account.unaccounted),
        (2, 0, 0)
    );
    assert!(
        named.verdict_line().contains(
            "foreign traffic: node 2 took 7 packets on links named node 1, which handed it 5"
        ),
        "{}",
        named.verdict_line()
    );

    // Node 2 lost 2 packets of node 1's link and took 2 on links it could not name (say
    // node 1's link, whose first packet was an outsider's with a full trace): the loss
    // is not blamed on the link.
    let unsure = RunResult::new(
        3,
        5,
        0,
        0.5,
        vec![node(1, 5, 5, 0), node(2, 5, 5, 0)],
        vec![],
    )
    .with_links(
        &[1, 2],
        &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 3), (2, 0, 2)])]),
    );
    let account = unsure.accounting.clone().unwrap();
    assert_eq!(
        (account.foreign, account.lost_on_links, account.unaccounted),
        (2, 2, 0)
    );
    assert!(
        unsure
            .verdict_line()
            .contains("so the loss cannot be blamed on this link"),
        "{}",
        unsure.verdict_line()
    );

    // The classic format reports no links: nothing changes.
    let classic = RunResult::new(3, 5, 0, 0.5, vec![node(1, 5, 5, 0)], vec![])
        .with_links(&[1], &links(&[(1, &[])]));
    assert!(classic.accounting.is_none() && classic.passed());
}

#[test]
fn script_results_add_runs() {
    let one = RunResult::new(
        3,
        5,
        0,
        1.0,
        vec![node(1, 5, 5, 3), node(2, 5, 5, 4)],
        vec![],
    );
    let total = ScriptResult::new(vec![one.clone(), one]).unwrap();
    assert!(total.total.passed());
    assert_eq!(total.total.packets_sent, 20);
    assert_eq!(total.total.node[0].packets_sent, 10);
    let json = serde_json::to_value(&total).unwrap();
    for key in [
        "nodes",
        "nr",
        "packets_sent",
        "packets_received",
        "packets_relayed",
        "sum_sent",
        "sum_received",
        "corrupted",
        "duration_s",
        "verdict",
        "node",
        "runs",
    ] {
        assert!(json.get(key).is_some(), "{key} missing");
    }
    assert_eq!(json["verdict"], "PASS");
}

/// Packets of an earlier run (issue 12): a link's excess is put down to the stale packets
/// first, so one that crossed the link when the earlier run was collected, or one queued at a
/// node then, is neither foreign nor unaccounted; only an excess beyond them is foreign.
#[test]
fn stale_packets_explain_a_links_excess_and_are_never_foreign() {
    let stale_node = |id, sent, received, stale| {
        let mut row = node(id, sent, received, 0);
        row.stale = stale;
        row
    };
    // Node 2 took 6 on 1's link, which handed it 5 in this run: the sixth was handed over in
    // the earlier run, and 2 dropped it as stale.
    let crossed = RunResult::new(
        3,
        5,
        0,
        0.5,
        vec![node(1, 5, 5, 0), stale_node(2, 5, 5, 1)],
        vec![],
    )
    .with_links(&[1, 2], &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 6)])]));
    let account = crossed.accounting.clone().unwrap();
    assert_eq!(
        (account.foreign, account.stale, account.unaccounted),
        (0, 1, 0)
    );
    let verdict = crossed.verdict_line();
    assert!(crossed.passed(), "{verdict}");
    assert!(
        verdict.contains("1 stale packets of an earlier run arrived and were dropped"),
        "{verdict}"
    );
    // Queued at node 1 when the earlier run was collected: handed on in this one without
    // being taken in it.
    let queued = RunResult::new(
        3,
        5,
        0,
        0.5,
        vec![node(1, 5, 5, 0), stale_node(2, 5, 5, 1)],
        vec![],
    )
    .with_links(&[1, 2], &links(&[(1, &[(2, 6, 5)]), (2, &[(1, 5, 6)])]));
    let account = queued.accounting.clone().unwrap();
    assert_eq!((account.foreign, account.unaccounted), (0, 0));
    assert!(queued.passed(), "{}", queued.verdict_line());
    // Two more on the link than handed over and one stale: one is foreign.
    let both = RunResult::new(
        3,
        5,
        0,
        0.5,
        vec![node(1, 5, 5, 0), stale_node(2, 5, 6, 1)],
        vec![],
    )
    .with_links(&[1, 2], &links(&[(1, &[(2, 5, 5)]), (2, &[(1, 5, 7)])]));
    let account = both.accounting.clone().unwrap();
    assert_eq!((account.foreign, account.unaccounted), (1, 0));
    assert!(!both.passed());
}

/// The relay bound in the verdict (issue 12): frames dropped for it fail the run naming the
/// node; links cut for it are named in a note; both are in the JSON.
#[test]
fn the_relay_bound_is_named_in_the_verdict() {
    let mut flooded = node(2, 5, 5, 0);
    flooded.relay_bound_drops = 3;
    flooded.links_cut = 1;
    let run = RunResult::new(3, 5, 0, 0.5, vec![node(1, 5, 5, 0), flooded], vec![]);
    let verdict = run.verdict_line();
    assert!(!run.passed(), "{verdict}");
    assert!(
        verdict.contains("node 2 dropped 3 frames to relay: its inbound links together had"),
        "{verdict}"
    );
    assert!(
        verdict.contains("node 2 cut 1 inbound links that asked it alone to queue more"),
        "{verdict}"
    );
    let json = serde_json::to_value(&run).unwrap();
    assert_eq!(json["relay_bound_drops"], 3);
    assert_eq!(json["links_cut"], 1);
    assert_eq!(json["node"][1]["relay_bound_drops"], 3);
    assert_eq!(json["notes"].as_array().map(Vec::len), Some(1));
}
