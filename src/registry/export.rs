//! The overlay as a Graphviz DOT graph (`export-overlay FILE`): one vertex per node, in ring
//! order, and one edge per routing-table entry, labelled with its distance on the ring (`+1`,
//! `+2`, `+4`, ...). The `+1` edges are the ring itself and are drawn bold; each distance has
//! its own colour. The nodes are pinned on a circle in ring order (clockwise from the top), so
//! `neato` (the graph's layout) draws the ring as a ring. Pure text: the driver writes the
//! file.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::routing::Ring;
use crate::wire::NodeId;

/// DOT text of the overlay with tables of `nr` entries; `addrs` labels each node with its
/// address (nodes missing from it are labelled with their ID only).
pub fn dot(
    ring: &Ring,
    tables: &[Vec<NodeId>],
    nr: usize,
    addrs: &BTreeMap<NodeId, SocketAddr>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// overlay: {} nodes, {nr} table entries each",
        ring.len()
    );
    let _ = writeln!(
        out,
        "// render: dot -Tsvg overlay.dot -o overlay.svg (graphviz)"
    );
    out.push_str("digraph overlay {\n");
    out.push_str("  layout=neato;\n");
    out.push_str(
        "  node [shape=circle, fixedsize=true, width=1.3, fontname=\"Helvetica\", fontsize=10];\n",
    );
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9, arrowsize=0.7];\n");
    // Room for every node around the circle (inches).
    let radius = (ring.len() as f64 * 1.6 / (2.0 * PI)).max(2.0);
    for (position, id) in ring.ids().iter().enumerate() {
        let angle = PI / 2.0 - 2.0 * PI * position as f64 / ring.len() as f64;
        let (x, y) = (radius * angle.cos(), radius * angle.sin());
        let label = match addrs.get(id) {
            Some(addr) => format!("{id}\\n{addr}"),
            None => id.to_string(),
        };
        let _ = writeln!(out, "  n{id} [label=\"{label}\", pos=\"{x:.2},{y:.2}!\"];");
    }
    for (position, id) in ring.ids().iter().enumerate() {
        for (hop, entry) in tables[position].iter().enumerate() {
            let distance = 1u64 << hop;
            let colour = COLOURS[hop % COLOURS.len()];
            let style = if hop == 0 {
                format!(", style=bold, color=\"{colour}\", fontcolor=\"{colour}\"")
            } else {
                format!(", color=\"{colour}\", fontcolor=\"{colour}\"")
            };
            let _ = writeln!(out, "  n{id} -> n{entry} [label=\"+{distance}\"{style}];");
        }
    }
    out.push_str("}\n");
    out
}

/// Edge colours by table entry (+1, +2, +4, ...).
const COLOURS: [&str; 8] = [
    "#000000", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_and_nr_edges_each() {
        let ids = vec![3, 17, 40, 41, 90, 100, 120, 127];
        let ring = Ring::new(ids.clone());
        let addrs: BTreeMap<NodeId, SocketAddr> = ids
            .iter()
            .map(|&id| (id, SocketAddr::from(([127, 0, 0, 1], 4000 + id as u16))))
            .collect();
        let tables: Vec<Vec<NodeId>> = (0..ring.len()).map(|p| ring.table(p, 3)).collect();
        let text = dot(&ring, &tables, 3, &addrs);
        assert!(text.starts_with("// overlay: 8 nodes, 3 table entries each\n"));
        assert!(text.ends_with("}\n"));
        for id in &ids {
            assert!(text.contains(&format!(
                "  n{id} [label=\"{id}\\n127.0.0.1:{}\", pos=",
                4000 + id
            )));
            let edges = text
                .lines()
                .filter(|l| l.starts_with(&format!("  n{id} -> ")))
                .count();
            assert_eq!(edges, 3, "{text}");
        }
        // 120 is 2 ahead of 90 on the ring (90, 100, 120).
        assert!(text.contains("n90 -> n120 [label=\"+2\""), "{text}");
        assert!(
            text.contains("n127 -> n3 [label=\"+1\", style=bold"),
            "{text}"
        );
        // The first node at the top of the circle.
        assert!(
            text.contains("n3 [label=\"3\\n127.0.0.1:4003\", pos=\"0.00,2.04!\"]"),
            "{text}"
        );
    }
}
