//! The overlay as a Graphviz DOT graph (`export-overlay FILE.dot`): one vertex per node,
//! pinned at its identifier's angle on a circle (clockwise from the top), and one edge per
//! table entry, labelled and coloured by its class (`+1`, `+2`, `+4`, ... positions ahead, or
//! Chord's `2^i`). Each node's first entry (its successor) is drawn bold; after a run, each edge's pen is as
//! wide as the packets its link carried. `neato` (the graph's layout) keeps the pins.

use std::f64::consts::PI;
use std::fmt::Write as _;

use super::{Picture, colour};

/// DOT text of the picture.
pub(super) fn dot(picture: &Picture) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "// overlay: {}", picture.title);
    let _ = writeln!(
        out,
        "// render: dot -Tsvg overlay.dot -o overlay.svg (graphviz); export-overlay FILE.svg \
         draws it without graphviz"
    );
    out.push_str("digraph overlay {\n");
    out.push_str("  layout=neato;\n");
    out.push_str(
        "  node [shape=circle, fixedsize=true, width=1.3, fontname=\"Helvetica\", fontsize=10];\n",
    );
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9, arrowsize=0.7];\n");
    // Room for every node around the circle (inches).
    let radius = (picture.nodes.len() as f64 * 1.6 / (2.0 * PI)).max(2.0);
    for node in &picture.nodes {
        let angle = PI / 2.0 - 2.0 * PI * node.turn;
        let (x, y) = (radius * angle.cos(), radius * angle.sin());
        let id = node.id;
        let label = match node.address {
            Some(addr) => format!("{id}\\n{addr}"),
            None => id.to_string(),
        };
        let _ = writeln!(out, "  n{id} [label=\"{label}\", pos=\"{x:.2},{y:.2}!\"];");
    }
    // At least 1: links that all carried nothing are drawn thinnest.
    let packets_max = picture.packets_max().max(1) as f64;
    for edge in &picture.edges {
        let (from, to) = (picture.nodes[edge.from].id, picture.nodes[edge.to].id);
        let colour = colour(edge.class);
        let mut style = format!(", color=\"{colour}\", fontcolor=\"{colour}\"");
        match edge.packets {
            Some(packets) => {
                let width = 0.5 + 5.0 * packets as f64 / packets_max;
                let _ = write!(
                    style,
                    ", penwidth={width:.2}, tooltip=\"{packets} packets\""
                );
            }
            None if edge.entry == 0 => style.insert_str(0, ", style=bold"),
            None => {}
        }
        let _ = writeln!(
            out,
            "  n{from} -> n{to} [label=\"{}\"{style}];",
            picture.class_label(edge.class)
        );
    }
    out.push_str("}\n");
    out
}
