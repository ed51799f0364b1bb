use std::collections::{BTreeMap, BTreeSet};
use std::f64::consts::PI;

use super::*;
use crate::chord::IdSpace;
use crate::routing::{ChordLayout, Fingers, Ring};

fn addrs(ids: &[NodeId]) -> BTreeMap<NodeId, SocketAddr> {
    ids.iter()
        .map(|&id| (id, SocketAddr::from(([127, 0, 0, 1], 4000 + id as u16))))
        .collect()
}

fn positions_overlay(ids: &[NodeId], nr: usize) -> Overlay {
    let ring = Ring::new(ids.to_vec());
    let tables = (0..ring.len()).map(|p| ring.table(p, nr)).collect();
    Overlay {
        fingers: Fingers::Positions { nr },
        nr,
        window_bytes: 0,
        ring,
        tables,
        backups: Vec::new(),
        chord: None,
        waiting: BTreeSet::new(),
        ready: true,
        traffic: None,
        sending: Default::default(),
        trace_slots: 0,
        version: 0,
        epoch: 0,
        changes: Default::default(),
        previous: None,
    }
}

/// The picture as a script sees it: the ring's centre and radius, each node's angle (a
/// fraction of a turn clockwise from the top, from its dot's place), the edges (from, to,
/// class label, packets), and the edge labels' distances from the centre.
struct Parsed {
    radius: f64,
    turns: BTreeMap<NodeId, f64>,
    edges: Vec<(NodeId, NodeId, String, Option<u64>)>,
    edge_label_distances: Vec<f64>,
    legend: String,
}

fn parse(svg: &str) -> Parsed {
    let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
    let root = doc.root_element();
    assert!(root.has_tag_name("svg"));
    let number = |node: roxmltree::Node, name: &str| -> f64 {
        node.attribute(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .parse()
            .unwrap()
    };
    let ring = doc
        .descendants()
        .find(|n| n.has_tag_name("circle") && n.attribute("class") == Some("ring"))
        .expect("the ring");
    let (cx, cy, radius) = (number(ring, "cx"), number(ring, "cy"), number(ring, "r"));
    let mut turns = BTreeMap::new();
    for group in doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("node"))
    {
        let id: NodeId = group.attribute("data-id").unwrap().parse().unwrap();
        let dot = group
            .children()
            .find(|n| n.has_tag_name("circle"))
            .expect("a dot");
        let (x, y) = (number(dot, "cx") - cx, number(dot, "cy") - cy);
        assert!(
            ((x * x + y * y).sqrt() - radius).abs() < 0.02,
            "on the ring"
        );
        // Clockwise from the top, in screen coordinates (y grows downwards).
        let turn = x.atan2(-y).rem_euclid(2.0 * PI) / (2.0 * PI);
        assert!(turns.insert(id, turn).is_none(), "node {id} drawn twice");
    }
    let edges = doc
        .descendants()
        .filter(|n| n.has_tag_name("line") && n.attribute("class") == Some("edge"))
        .map(|n| {
            (
                n.attribute("data-from").unwrap().parse().unwrap(),
                n.attribute("data-to").unwrap().parse().unwrap(),
                n.attribute("data-class").unwrap().to_string(),
                n.attribute("data-packets").map(|p| p.parse().unwrap()),
            )
        })
        .collect();
    let edge_label_distances = doc
        .descendants()
        .filter(|n| n.has_tag_name("text") && n.attribute("class") == Some("edge-label"))
        .map(|n| {
            let (x, y) = (number(n, "x") - cx, number(n, "y") - cy);
            (x * x + y * y).sqrt()
        })
        .collect();
    let legend = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("legend"))
        .expect("a legend")
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n");
    Parsed {
        radius,
        turns,
        edges,
        edge_label_distances,
        legend,
    }
}

fn assert_turn(drawn: f64, expected: f64, what: &str) {
    let off = (drawn - expected).rem_euclid(1.0);
    assert!(
        off.min(1.0 - off) < 1e-4,
        "{what}: at {drawn}, expected {expected}"
    );
}

/// Position fingers: every node at its ID's angle (ID / 2^bits of a turn, so the gaps in the
/// ID space show), one arrow per table entry labelled by its distance, and the DOT text of
/// the same overlay.
#[test]
fn nodes_at_their_ids_and_an_arrow_per_entry() {
    let ids = [3, 17, 40, 41, 90, 100, 120, 127];
    let overlay = positions_overlay(&ids, 3);
    let picture = Picture::of(&overlay, 7, &addrs(&ids));
    let parsed = parse(&picture.render(Format::Svg));
    assert_eq!(parsed.turns.len(), ids.len());
    for id in ids {
        assert_turn(
            parsed.turns[&id],
            f64::from(id) / 128.0,
            &format!("node {id}"),
        );
    }
    let mut expected = Vec::new();
    for (position, id) in overlay.ring.ids().iter().enumerate() {
        for (hop, entry) in overlay.ring.table(position, 3).into_iter().enumerate() {
            expected.push((*id, entry, format!("+{}", 1 << hop), None));
        }
    }
    let mut drawn = parsed.edges.clone();
    drawn.sort();
    expected.sort();
    assert_eq!(drawn, expected);
    // 120 is 2 ahead of 90 on the ring (90, 100, 120).
    assert!(drawn.contains(&(90, 120, "+2".to_string(), None)));
    assert!(
        parsed.legend.contains("+4: 4 positions ahead (8 arrows)"),
        "{}",
        parsed.legend
    );
    assert!(parsed.legend.contains("no run on this overlay yet"));

    let dot = picture.render(Format::Dot);
    assert!(dot.starts_with("// overlay: 8 nodes, position fingers, 3 table entries each\n"));
    assert!(dot.ends_with("}\n"));
    for id in ids {
        assert!(dot.contains(&format!(
            "  n{id} [label=\"{id}\\n127.0.0.1:{}\", pos=",
            4000 + id
        )));
        let edges = dot
            .lines()
            .filter(|l| l.starts_with(&format!("  n{id} -> ")))
            .count();
        assert_eq!(edges, 3, "{dot}");
    }
    assert!(dot.contains("n90 -> n120 [label=\"+2\""), "{dot}");
    assert!(
        dot.contains("n127 -> n3 [label=\"+1\", style=bold"),
        "{dot}"
    );
}

/// Chord mode: nodes at their Chord identifiers' angles (not their registry IDs'), one arrow
/// per distinct finger, classed by the power of two it stands for.
#[test]
fn chord_nodes_at_their_identifiers() {
    let ids = [1, 2, 3, 4, 5, 6];
    let ring = Ring::new(ids.to_vec());
    let space = IdSpace::new(16).unwrap();
    let identifiers: Vec<Id> = [40_000u128, 100, 20_000, 65_000, 7_000, 30_000]
        .into_iter()
        .map(Id::from)
        .collect();
    let layout = ChordLayout::new(&ring, space, &identifiers).unwrap();
    let tables: Vec<Vec<NodeId>> = (0..ring.len())
        .map(|p| layout.fingers(p).map(|f| ring.ids()[f]).collect())
        .collect();
    let overlay = Overlay {
        fingers: Fingers::Chord {
            bits: 16,
            hashed: false,
        },
        nr: tables.iter().map(Vec::len).max().unwrap(),
        window_bytes: 0,
        ring: ring.clone(),
        tables: tables.clone(),
        backups: Vec::new(),
        chord: Some(layout.clone()),
        waiting: BTreeSet::new(),
        ready: true,
        traffic: None,
        sending: Default::default(),
        trace_slots: 0,
        version: 0,
        epoch: 0,
        changes: Default::default(),
        previous: None,
    };
    let parsed = parse(&Picture::of(&overlay, 7, &addrs(&ids)).render(Format::Svg));
    for (position, id) in ids.iter().enumerate() {
        let identifier = [40_000, 100, 20_000, 65_000, 7_000, 30_000][position];
        assert_turn(
            parsed.turns[id],
            identifier as f64 / 65_536.0,
            &format!("node {id}"),
        );
    }
    let mut expected = Vec::new();
    for (position, id) in ids.iter().enumerate() {
        for finger in layout.fingers(position) {
            let distance = space.distance(layout.id(position), layout.id(finger));
            let class = distance.ilog2().unwrap();
            expected.push((*id, ring.ids()[finger], format!("2^{class}"), None));
        }
    }
    let mut drawn = parsed.edges;
    drawn.sort();
    expected.sort();
    assert_eq!(drawn, expected);
    assert_eq!(drawn.len(), tables.iter().map(Vec::len).sum::<usize>());
    assert!(
        parsed.legend.contains("identifier / 2^16"),
        "{}",
        parsed.legend
    );
}

/// After a run, each arrow carries its link's packets and is as wide as they are; links
/// that carried nothing are drawn thinnest.
#[test]
fn arrows_weighted_by_the_last_run() {
    let ids = [0, 10, 20, 30, 40, 50, 60, 70];
    let mut overlay = positions_overlay(&ids, 3);
    let mut packets = BTreeMap::new();
    packets.insert((0, 10), 1_000);
    packets.insert((0, 20), 250);
    // Not a table entry: not drawn.
    packets.insert((0, 50), 99);
    overlay.traffic = Some(Traffic { run: 4, packets });
    let svg = Picture::of(&overlay, 7, &addrs(&ids)).render(Format::Svg);
    let parsed = parse(&svg);
    let carried = |from, to| {
        parsed
            .edges
            .iter()
            .find(|e| (e.0, e.1) == (from, to))
            .and_then(|e| e.3)
    };
    assert_eq!(carried(0, 10), Some(1_000));
    assert_eq!(carried(0, 20), Some(250));
    assert_eq!(carried(0, 40), Some(0));
    assert_eq!(parsed.edges.len(), ids.len() * 3);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let width = |from: &str, to: &str| -> f64 {
        doc.descendants()
            .find(|n| n.attribute("data-from") == Some(from) && n.attribute("data-to") == Some(to))
            .and_then(|n| n.attribute("stroke-width"))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(width("0", "10") > width("0", "20"));
    assert!(width("0", "20") > width("0", "40"));
    assert!(
        parsed
            .legend
            .contains("packets the link carried in run 4 (widest 1,000)"),
        "{}",
        parsed.legend
    );
}

/// Edge labels sit near their source, so the longest fingers' labels do not meet at the
/// centre: every label lies in the outer half of the ring.
#[test]
fn edge_labels_stay_away_from_the_centre() {
    let ids: Vec<NodeId> = (0..32).map(|i| i * 4).collect();
    let overlay = positions_overlay(&ids, 5);
    let parsed = parse(&Picture::of(&overlay, 7, &addrs(&ids)).render(Format::Svg));
    assert_eq!(parsed.edge_label_distances.len(), 32 * 5);
    for distance in parsed.edge_label_distances {
        assert!(
            distance > parsed.radius / 2.0,
            "a label {distance} from the centre"
        );
    }
}

#[test]
fn the_extension_chooses_the_format() {
    assert_eq!(Format::of("o.svg"), Ok(Format::Svg));
    assert_eq!(Format::of("/tmp/O.SVG"), Ok(Format::Svg));
    assert_eq!(Format::of("o.dot"), Ok(Format::Dot));
    assert_eq!(Format::of("o.gv"), Ok(Format::Dot));
    for path in ["o.png", "overlay", "svg"] {
        let why = Format::of(path).unwrap_err();
        assert!(why.contains(".svg") && why.contains(".dot"), "{why}");
    }
}
