//! The operator's tools, through the real binary with piped standard input and output:
//! `export-overlay` (an SVG picture, Graphviz DOT), `--csv` progress rows, and the plain progress lines a
//! registry prints when its output is not a terminal.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{
    Proc, Registered, nodes, registered, registry, registry_port_file, temp_path, wait_file,
};

/// `export-overlay FILE` writes every node and its NR table entries as edges labelled with
/// the distance; without an overlay, with wrong arguments or an unwritable path it says why.
#[test]
fn export_overlay_writes_dot() {
    let (mut reg, port) = registry(&[], true);
    let nodes: Vec<Proc> = nodes(12, port, &[]);
    let mut ring: Vec<Registered> = nodes.iter().map(registered).collect();
    ring.sort_by_key(|r| r.id);
    reg.wait_line("(12 nodes)", 0);

    let mark = reg.mark();
    reg.send("help");
    let (line, _) = reg.wait_line("export-overlay FILE", mark);
    assert!(line.contains("DOT"), "{line}");

    let dot = temp_path("overlay.dot");
    let mark = reg.mark();
    reg.send(&format!("export-overlay {}", dot.arg()));
    let (line, _) = reg.wait_line("export-overlay refused", mark);
    assert!(line.contains("setup-overlay"), "{line}");
    assert!(!dot.0.exists());

    let mark = reg.mark();
    reg.send("export-overlay");
    reg.wait_line("wrong arguments for 'export-overlay'", mark);

    let mark = reg.mark();
    reg.send("setup-overlay 3");
    reg.wait_line("Registry now ready to initiate tasks.", mark);

    let mark = reg.mark();
    reg.send("export-overlay /nonexistent-directory/overlay.dot");
    reg.wait_line("Cannot write /nonexistent-directory/overlay.dot", mark);

    let mark = reg.mark();
    reg.send(&format!("export-overlay {}", dot.arg()));
    let (line, _) = reg.wait_line(&format!("Wrote {}", dot.arg()), mark);
    assert!(line.ends_with("bytes)"), "{line}");
    let text = std::fs::read_to_string(&dot.0).unwrap();
    assert!(text.contains("digraph overlay {"), "{text}");
    assert!(text.trim_end().ends_with('}'), "{text}");

    // Vertices: `nID [label="ID\nADDR"];`. Edges: `nA -> nB [label="+D", ...];`.
    let mut vertices = BTreeSet::new();
    let mut edges: BTreeMap<u32, Vec<(u32, usize)>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix('n') else {
            continue;
        };
        if let Some((from, rest)) = rest.split_once(" -> n") {
            let (to, rest) = rest.split_once(' ').unwrap();
            let distance = rest
                .split_once("label=\"+")
                .and_then(|(_, d)| d.split_once('"'))
                .map(|(d, _)| d.parse().unwrap())
                .unwrap_or_else(|| panic!("no distance in {line:?}"));
            edges
                .entry(from.parse().unwrap())
                .or_default()
                .push((to.parse().unwrap(), distance));
        } else if let Some((id, label)) = rest.split_once(" [label=") {
            vertices.insert(id.parse::<u32>().unwrap());
            let me = ring.iter().find(|r| r.id.to_string() == id).unwrap();
            assert!(label.contains(&me.addr.to_string()), "{line}");
        }
    }
    let ids: BTreeSet<u32> = ring.iter().map(|r| r.id).collect();
    assert_eq!(vertices, ids, "{text}");
    for (position, me) in ring.iter().enumerate() {
        let expected: Vec<(u32, usize)> = (0..3)
            .map(|hop| (ring[(position + (1 << hop)) % ring.len()].id, 1 << hop))
            .collect();
        assert_eq!(edges.get(&me.id), Some(&expected), "node {}: {text}", me.id);
    }
}

/// What an exported SVG picture draws: each node's angle on the ring (in turns, clockwise
/// from the top), its arrows, and the packets they carried in all.
struct Drawn {
    turns: BTreeMap<u32, f64>,
    edges: BTreeSet<(u32, u32)>,
    carried: u64,
}

/// `export-overlay SVG` at the console, and what the picture draws.
fn export_svg(reg: &mut Proc, svg: &common::TempFile) -> (String, Drawn) {
    let mark = reg.mark();
    reg.send(&format!("export-overlay {}", svg.arg()));
    reg.wait_line(&format!("Wrote {}", svg.arg()), mark);
    let text = std::fs::read_to_string(&svg.0).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert!(doc.root_element().has_tag_name("svg"));
    let number =
        |n: roxmltree::Node, name: &str| -> f64 { n.attribute(name).unwrap().parse().unwrap() };
    let circle = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("ring"))
        .expect("the ring");
    let (cx, cy) = (number(circle, "cx"), number(circle, "cy"));
    let mut drawn = Drawn {
        turns: BTreeMap::new(),
        edges: BTreeSet::new(),
        carried: 0,
    };
    for group in doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("node"))
    {
        let id: u32 = group.attribute("data-id").unwrap().parse().unwrap();
        let dot = group.children().find(|n| n.has_tag_name("circle")).unwrap();
        let (x, y) = (number(dot, "cx") - cx, number(dot, "cy") - cy);
        let turn = x.atan2(-y).rem_euclid(std::f64::consts::TAU) / std::f64::consts::TAU;
        assert!(drawn.turns.insert(id, turn).is_none(), "node {id} twice");
    }
    for line in doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("edge"))
    {
        let from: u32 = line.attribute("data-from").unwrap().parse().unwrap();
        let to: u32 = line.attribute("data-to").unwrap().parse().unwrap();
        drawn.carried += line
            .attribute("data-packets")
            .unwrap()
            .parse::<u64>()
            .unwrap();
        assert!(drawn.edges.insert((from, to)), "edge {from} -> {to} twice");
    }
    (text, drawn)
}

/// `turn` is `expected` (both in turns of the ring).
fn assert_turn(turn: f64, expected: f64, what: &str) {
    let off = (turn - expected).rem_euclid(1.0);
    assert!(
        off.min(1.0 - off) < 1e-4,
        "{what} at {turn}, expected {expected}"
    );
}

/// `export-overlay FILE.svg` after a run: a well-formed SVG with every node at its ID's angle
/// (ID / 2^bits of a turn, clockwise from the top), one arrow per table entry, and the
/// packets each link carried, which add up to every transmission the summary counts (each
/// packet sent once by its source and once by every relay). A name that is neither .svg nor
/// .dot is refused with the reason.
#[test]
fn export_overlay_draws_svg_with_the_runs_traffic() {
    let (mut reg, port) = registry(&["--id-bits", "10"], true);
    let nodes: Vec<Proc> = nodes(10, port, &[]);
    let mut ring: Vec<Registered> = nodes.iter().map(registered).collect();
    ring.sort_by_key(|r| r.id);
    reg.wait_line("(10 nodes)", 0);
    let mark = reg.mark();
    reg.send("setup-overlay 3");
    reg.wait_line("Registry now ready to initiate tasks.", mark);

    let mark = reg.mark();
    reg.send("export-overlay /tmp/overlay.png");
    let (line, _) = reg.wait_line("export-overlay refused", mark);
    assert!(line.contains(".svg") && line.contains(".dot"), "{line}");

    let mark = reg.mark();
    reg.send("start 2000");
    let (sum, _) = reg.wait_line_starting("Sum ", mark);
    reg.wait_line("PASS", mark);
    let counts: Vec<u64> = sum
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|v| v.replace(',', "").parse().unwrap())
        .collect();
    let transmissions = counts[0] + counts[2];
    assert_eq!(counts[0], 20_000, "{sum}");

    let svg = temp_path("overlay.svg");
    let (text, drawn) = export_svg(&mut reg, &svg);
    for (id, turn) in &drawn.turns {
        assert_turn(*turn, f64::from(*id) / 1024.0, &format!("node {id}"));
    }
    let ids: BTreeSet<u32> = ring.iter().map(|r| r.id).collect();
    assert_eq!(drawn.turns.keys().copied().collect::<BTreeSet<_>>(), ids);
    let expected: BTreeSet<(u32, u32)> = (0..ring.len())
        .flat_map(|p| (0..3).map(move |hop| (p, (p + (1 << hop)) % 10)))
        .map(|(p, q)| (ring[p].id, ring[q].id))
        .collect();
    assert_eq!(drawn.edges, expected);
    assert_eq!(drawn.carried, transmissions, "{sum}");
    assert!(text.contains("packets the link carried in run 1"));
}

/// `export-overlay FILE.svg` in Chord mode, after a run: every node at its Chord identifier's
/// angle (identifier / 2^m of a turn; here the first 16 bits of SHA-256 of its address, so
/// the registry's IDs would put them elsewhere), one arrow per distinct finger, and the
/// packets the arrows carried add up to every transmission of the run.
#[test]
fn export_overlay_in_chord_mode_draws_nodes_at_their_identifiers() {
    use overlay::chord::{FingerRule, FingerTable, IdSpace, Membership};
    let (mut reg, port) = registry(&[], true);
    let nodes: Vec<Proc> = nodes(8, port, &[]);
    let mut ring: Vec<Registered> = nodes.iter().map(registered).collect();
    ring.sort_by_key(|r| r.id);
    reg.wait_line("(8 nodes)", 0);
    let mark = reg.mark();
    reg.send("setup-overlay chord 16 hash");
    reg.wait_line("Registry now ready to initiate tasks.", mark);

    let mark = reg.mark();
    reg.send("start 2000");
    let (sum, _) = reg.wait_line_starting("Sum ", mark);
    reg.wait_line("PASS", mark);
    let counts: Vec<u64> = sum
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|v| v.replace(',', "").parse().unwrap())
        .collect();
    assert_eq!(counts[0], 16_000, "{sum}");

    let svg = temp_path("overlay-chord.svg");
    let (text, drawn) = export_svg(&mut reg, &svg);
    // Where each node must be, and its fingers, by the same code the registry's tables use.
    let addresses: Vec<String> = ring.iter().map(|r| r.addr.to_string()).collect();
    let (membership, identifiers) =
        Membership::hashed(IdSpace::new(16).unwrap(), &addresses).unwrap();
    let tables = FingerTable::all(FingerRule::Chord, &membership).unwrap();
    let node_at = |identifier| ring[identifiers.iter().position(|&i| i == identifier).unwrap()].id;
    let mut expected = BTreeSet::new();
    for (me, identifier) in ring.iter().zip(&identifiers) {
        let value = u64::from_str_radix(&format!("{identifier:x}"), 16).unwrap();
        let turn = drawn.turns[&me.id];
        assert_turn(
            turn,
            value as f64 / 65536.0,
            &format!("node {} ({identifier:x})", me.id),
        );
        let member = membership.position(*identifier).unwrap();
        for &finger in tables[member].entries() {
            expected.insert((me.id, node_at(membership.id(finger as usize))));
        }
    }
    assert_eq!(drawn.turns.len(), ring.len());
    assert_eq!(drawn.edges, expected);
    assert_eq!(drawn.carried, counts[0] + counts[2], "{sum}");
    assert!(text.contains("Chord"), "the title names the finger rule");
}

/// A scripted run at a limited rate (6 s): one CSV row per progress round, a last row with
/// every packet, and plain progress lines on standard output (not a terminal) every 5 s.
#[test]
fn csv_and_plain_progress_of_a_scripted_run() {
    let csv = temp_path("progress.csv");
    let json = temp_path("progress.json");
    let (mut reg, port) = registry(
        &[
            "--nodes",
            "3",
            "--nr",
            "2",
            "--start",
            "3000",
            "--rate",
            "500",
            "--csv",
            csv.arg(),
            "--json",
            json.arg(),
        ],
        false,
    );
    let _nodes: Vec<Proc> = nodes(3, port, &[]);
    let status = reg.wait_exit();
    assert!(status.success(), "registry: {status}\n{}", reg.dump());
    wait_file(&json.0, |text| text.contains("verdict").then_some(()));

    let text = std::fs::read_to_string(&csv.0).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "run,elapsed_s,packets_sent,packets_received,packets_relayed,rate_pps,\
             latency_p50_us,latency_p99_us"
        )
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() >= 4, "{text}");
    for pair in rows.windows(2) {
        assert!(pair[1][1] > pair[0][1], "elapsed must grow: {text}");
        assert!(pair[1][3] >= pair[0][3], "received must grow: {text}");
    }
    let last = rows.last().unwrap();
    assert_eq!((last[0], last[2], last[3]), (1.0, 9000.0, 9000.0), "{text}");
    // About 1,500 packets/s in all while sending, and a latency for what was delivered.
    let middle = &rows[rows.len() / 2];
    assert!(
        (500.0..3000.0).contains(&middle[5]),
        "rate {} in {text}",
        middle[5]
    );
    assert!(
        middle[6] > 0.0 && middle[7] >= middle[6],
        "latency p50 {} p99 {} in {text}",
        middle[6],
        middle[7]
    );
    assert!(last[6] > 0.0 && last[7] >= last[6], "{text}");

    let out = reg.out.text();
    let progress: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("packets delivered"))
        .collect();
    assert!(!progress.is_empty(), "{out}");
    for line in &progress {
        assert!(
            line.starts_with("Run 1: ") && line.contains(" of 9,000 packets delivered ("),
            "{line}"
        );
        assert!(line.contains("packets/s") && line.contains("ETA"), "{line}");
    }
    assert!(progress.len() <= 2, "at most one line per 5 s: {out}");
}

/// The summary's results: hop counts and latency percentiles merged across nodes, relays/s,
/// in the result file and (`--format json`) on standard output, which then carries that JSON
/// and nothing else (status lines and the table go to standard error), with the settings.
#[test]
fn json_summary_carries_hops_and_latency() {
    let json = temp_path("stats.json");
    let (mut reg, port) = registry_port_file(
        &[
            "--nodes",
            "8",
            "--nr",
            "3",
            "--start",
            "2000",
            "--format",
            "json",
            "--json",
            json.arg(),
        ],
        false,
    );
    let _nodes: Vec<Proc> = nodes(8, port, &[]);
    let status = reg.wait_exit();
    assert!(status.success(), "registry: {status}\n{}", reg.dump());
    let out = reg.out.text();
    // The whole of standard output is one JSON document: nothing before or after it.
    let printed: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("standard output is not JSON alone ({e}): {out}"));
    let err = reg.err.text();
    for line in [
        "Registry listening on 127.0.0.1:",
        "Run 1 summary:",
        "Packets Received",
        // The hops, compactly, and one of them in the singular.
        "Hops per packet: mean ",
        "Packets by relays passed: 0: ",
        "Latency per hop: 1 hop p50 ",
    ] {
        assert!(err.contains(line), "{line:?} on standard error: {err}");
    }
    let summary = &printed["runs"][0];
    let file: serde_json::Value = serde_json::from_str(&wait_file(&json.0, |t| {
        t.contains("verdict").then(|| t.to_string())
    }))
    .unwrap();
    assert_eq!(
        printed, file,
        "the same result on standard output and in the file"
    );
    let settings = &printed["settings"];
    assert_eq!(settings["wire"], "native", "{settings}");
    assert_eq!(settings["finger_rule"], "positions", "{settings}");
    assert_eq!(settings["nr"], 3, "{settings}");
    assert_eq!(settings["id_bits"], 7, "{settings}");
    // The default window for 8 nodes: 8 x 128 KiB.
    assert_eq!(settings["window_bytes"], 1 << 20, "{settings}");
    assert_eq!(settings["rate_per_s"], 0, "{settings}");
    assert_eq!(settings["extra_payload_bytes"], 0, "{settings}");
    assert!(settings["seed"].is_u64(), "{settings}");
    assert_eq!(settings["version"], env!("CARGO_PKG_VERSION"), "{settings}");
    assert!(!settings["host"].as_str().unwrap().is_empty(), "{settings}");
    // RFC 3339 in UTC to the second: 2026-12-01T17:20:31Z.
    let at = settings["started_at"].as_str().unwrap().as_bytes();
    assert!(
        at.len() == 20 && at[4] == b'-' && at[10] == b'T' && at[13] == b':' && at[19] == b'Z',
        "{settings}"
    );
    for result in [summary, &file["runs"][0], &file, &printed] {
        assert_eq!(result["verdict"], "PASS", "{result}");
        assert_eq!(result["packets_received"], 16_000, "{result}");
        let by_relays: Vec<u64> = result["stats"]["packets_by_relays"]
            .as_array()
            .expect("hop counts")
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        // 8 nodes, NR 3: distances 1..7 take 0 (1, 2, 4), 1 (3, 5, 6) or 2 (7) relays.
        assert_eq!(by_relays.len(), 3, "{result}");
        assert_eq!(by_relays.iter().sum::<u64>(), 16_000, "{result}");
        let relays: u64 = by_relays
            .iter()
            .enumerate()
            .map(|(r, n)| r as u64 * n)
            .sum();
        assert_eq!(result["packets_relayed"], relays, "{result}");
        let latency = &result["stats"]["latency_ns"];
        assert_eq!(latency["count"], 16_000, "{result}");
        let p50 = latency["p50"].as_u64().unwrap();
        assert!(
            p50 > 0 && p50 <= latency["p99"].as_u64().unwrap(),
            "{result}"
        );
        assert!(
            latency["p99"].as_u64() <= latency["max"].as_u64(),
            "{result}"
        );
        assert_eq!(
            result["stats"]["latency_per_hop_ns"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert!(result["relays_per_s"].as_f64().unwrap() > 0.0, "{result}");
    }
}
