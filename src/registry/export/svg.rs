//! The overlay as an SVG picture (`export-overlay FILE.svg`), drawn here with no tool
//! needed: the ring as a circle with its quarters marked, every node a dot at its
//! identifier's angle (clockwise from 0 at the top), one arrow per table entry coloured by its
//! class and, after a run, as wide as the packets its link carried, and a legend beside it.
//!
//! Edge labels sit near their source node, not half-way along the edge: half-way, every
//! node's longest finger would put its label at the centre, on top of all the others.
//! Labels are drawn for small overlays only (node labels up to [`NODE_LABELS_MAX`] nodes,
//! addresses and edge labels up to [`EDGE_LABELS_MAX`]); every node and edge carries its full
//! description as a tooltip (`<title>`) and as `data-` attributes for scripts.

use std::f64::consts::PI;
use std::fmt::Write as _;

use super::{Picture, colour};

/// Nodes up to which each node's ID is written beside it.
const NODE_LABELS_MAX: usize = 128;
/// Nodes up to which addresses and edge labels are written.
const EDGE_LABELS_MAX: usize = 32;
/// Room around the ring for the node labels (px).
const MARGIN: f64 = 120.0;
/// Width of one character of the legend, about (px).
const LEGEND_CHAR_WIDTH: f64 = 6.8;
/// Ring length a node's address needs free on either side to be written (px).
const ADDRESS_ROOM: f64 = 40.0;
/// Ring length below which a node's ID label is moved outwards, away from its neighbour's.
const LABEL_ROOM: f64 = 24.0;
/// A label's distance from its edge's source (px), at most half the edge.
const EDGE_LABEL_DISTANCE: f64 = 46.0;

/// SVG text of the picture.
pub(super) fn svg(picture: &Picture) -> String {
    let count = picture.nodes.len();
    // About 18 px of ring per node, and never a ring too small to read.
    let radius = (count as f64 * 18.0 / (2.0 * PI)).max(200.0);
    let centre = MARGIN + radius;
    let dot_radius: f64 = if count > 256 { 2.5 } else { 5.0 };
    let mut classes: Vec<u32> = picture.edges.iter().map(|edge| edge.class).collect();
    classes.sort_unstable();
    classes.dedup();
    let legend_rows = classes.len() + 6;
    let legend_chars = picture.title.len().max(64);
    let width = 2.0 * centre + 20.0 + LEGEND_CHAR_WIDTH * legend_chars as f64;
    let height = (2.0 * centre).max(40.0 + 20.0 * legend_rows as f64);
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, "<title>overlay: {}</title>", escape(&picture.title));
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    out.push_str("<defs>\n");
    for &class in &classes {
        let _ = writeln!(
            out,
            r#"<marker id="arrow-{class}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{}"/></marker>"#,
            colour(class)
        );
    }
    out.push_str("</defs>\n");

    // The ring, with its quarters.
    let _ = writeln!(
        out,
        r##"<circle class="ring" cx="{centre:.2}" cy="{centre:.2}" r="{radius:.2}" fill="none" stroke="#c8c8c8" stroke-width="1.5"/>"##
    );
    for quarter in 0..4u32 {
        let (x, y) = at(centre, radius - 8.0, f64::from(quarter) / 4.0);
        let (x0, y0) = at(centre, radius + 4.0, f64::from(quarter) / 4.0);
        let (tx, ty) = at(centre, radius - 22.0, f64::from(quarter) / 4.0);
        let _ = writeln!(
            out,
            r##"<line x1="{x0:.2}" y1="{y0:.2}" x2="{x:.2}" y2="{y:.2}" stroke="#999999"/><text x="{tx:.2}" y="{ty:.2}" text-anchor="middle" dominant-baseline="middle" fill="#777777" font-size="11">{}</text>"##,
            quarter_label(quarter, picture.bits)
        );
    }

    // The edges, under the nodes.
    // At least 1: links that all carried nothing are drawn thinnest.
    let packets_max = picture.packets_max().max(1) as f64;
    let edge_labels = count <= EDGE_LABELS_MAX;
    out.push_str("<g class=\"edges\" stroke-opacity=\"0.75\">\n");
    for edge in &picture.edges {
        let (from, to) = (&picture.nodes[edge.from], &picture.nodes[edge.to]);
        let (x1, y1) = at(centre, radius, from.turn);
        let (x2, y2) = at(centre, radius, to.turn);
        let (dx, dy) = (x2 - x1, y2 - y1);
        let length = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (ux, uy) = (dx / length, dy / length);
        // From the source dot's edge to the target dot's edge.
        let gap = (dot_radius + 1.5).min(length / 3.0);
        let (sx, sy) = (x1 + ux * gap, y1 + uy * gap);
        let (ex, ey) = (x2 - ux * gap, y2 - uy * gap);
        let width = match edge.packets {
            Some(packets) => 0.6 + 4.0 * packets as f64 / packets_max,
            None if edge.entry == 0 => 2.2,
            None => 1.2,
        };
        let label = picture.class_label(edge.class);
        let packets = match edge.packets {
            Some(packets) => format!(r#" data-packets="{packets}""#),
            None => String::new(),
        };
        let _ = write!(
            out,
            r#"<line class="edge" data-from="{}" data-to="{}" data-entry="{}" data-class="{label}"{packets} x1="{sx:.2}" y1="{sy:.2}" x2="{ex:.2}" y2="{ey:.2}" stroke="{}" stroke-width="{width:.2}" marker-end="url(#arrow-{})"><title>node {} to node {}: {label}"#,
            from.id,
            to.id,
            edge.entry,
            colour(edge.class),
            edge.class,
            from.id,
            to.id,
        );
        if let Some(packets) = edge.packets {
            let _ = write!(out, ", {packets} packets");
        }
        out.push_str("</title></line>\n");
        if edge_labels {
            // Near the source, a little to the left of the edge's direction.
            let distance = EDGE_LABEL_DISTANCE.min(length / 2.0);
            let (lx, ly) = (x1 + ux * distance + uy * 7.0, y1 + uy * distance - ux * 7.0);
            let _ = writeln!(
                out,
                r##"<text class="edge-label" x="{lx:.2}" y="{ly:.2}" text-anchor="middle" dominant-baseline="middle" font-size="10" fill="{}" stroke="#ffffff" stroke-width="3" paint-order="stroke">{label}</text>"##,
                colour(edge.class)
            );
        }
    }
    out.push_str("</g>\n");

    // The nodes, with their labels outside the ring. Nodes whose identifiers lie close
    // together have their IDs staggered outwards and their addresses only in the tooltip.
    let mut by_turn: Vec<usize> = (0..count).collect();
    by_turn.sort_by(|&a, &b| picture.nodes[a].turn.total_cmp(&picture.nodes[b].turn));
    let arc = |a: usize, b: usize| {
        let turns = (picture.nodes[b].turn - picture.nodes[a].turn).rem_euclid(1.0);
        2.0 * PI * radius * if count == 1 { 1.0 } else { turns }
    };
    let mut outward = vec![0.0; count];
    let mut roomy = vec![true; count];
    for (rank, &index) in by_turn.iter().enumerate() {
        let before = by_turn[(rank + count - 1) % count];
        let after = by_turn[(rank + 1) % count];
        roomy[index] = arc(before, index).min(arc(index, after)) >= ADDRESS_ROOM;
        if rank > 0 && arc(before, index) < LABEL_ROOM && outward[before] == 0.0 {
            outward[index] = 16.0;
        }
    }
    for (index, node) in picture.nodes.iter().enumerate() {
        let (x, y) = at(centre, radius, node.turn);
        let mut title = format!("node {}", node.id);
        if let Some(address) = node.address {
            let _ = write!(title, " at {address}");
        }
        if let Some(identifier) = &node.identifier {
            let _ = write!(title, ", identifier {identifier}");
        }
        let _ = write!(
            out,
            r##"<g class="node" data-id="{}"><title>{}</title><circle cx="{x:.2}" cy="{y:.2}" r="{dot_radius}" fill="#ffffff" stroke="#222222" stroke-width="1.5"/>"##,
            node.id,
            escape(&title)
        );
        if count <= NODE_LABELS_MAX {
            let (lx, ly) = at(centre, radius + 12.0 + outward[index], node.turn);
            let sine = (2.0 * PI * node.turn).sin();
            let anchor = if sine > 0.3 {
                "start"
            } else if sine < -0.3 {
                "end"
            } else {
                "middle"
            };
            // Below the ring's middle, the label's lines go downwards from the node.
            let cosine = (2.0 * PI * node.turn).cos();
            let first_dy = if cosine < -0.3 {
                "0.8em"
            } else if cosine > 0.3 && count <= EDGE_LABELS_MAX && roomy[index] {
                "-0.9em"
            } else {
                "0.3em"
            };
            let _ = write!(
                out,
                r#"<text x="{lx:.2}" y="{ly:.2}" text-anchor="{anchor}"><tspan dy="{first_dy}" font-weight="bold">{}</tspan>"#,
                node.id
            );
            if count <= EDGE_LABELS_MAX
                && roomy[index]
                && let Some(address) = node.address
            {
                let _ = write!(
                    out,
                    r##"<tspan x="{lx:.2}" dy="1.2em" font-size="10" fill="#555555">{address}</tspan>"##
                );
            }
            out.push_str("</text>");
        }
        out.push_str("</g>\n");
    }

    legend(&mut out, picture, &classes, 2.0 * centre + 10.0);
    out.push_str("</svg>\n");
    out
}

/// The legend, in the column that starts at `left`.
fn legend(out: &mut String, picture: &Picture, classes: &[u32], left: f64) {
    let mut y = 30.0;
    out.push_str("<g class=\"legend\">\n");
    text_line(out, left, &mut y, &picture.title, 13, "bold");
    text_line(
        out,
        left,
        &mut y,
        &format!(
            "each node at its {} / 2^{}, clockwise from 0",
            if picture.chord { "identifier" } else { "ID" },
            picture.bits
        ),
        11,
        "normal",
    );
    text_line(
        out,
        left,
        &mut y,
        &format!(
            "arrows: table entries, by {}",
            if picture.chord {
                "finger i = successor(n + 2^i)"
            } else {
                "positions ahead on the ring"
            }
        ),
        11,
        "normal",
    );
    for &class in classes {
        let edges = picture
            .edges
            .iter()
            .filter(|edge| edge.class == class)
            .count();
        let label = picture.class_label(class);
        let what = if picture.chord {
            format!("{label}: finger for n + {label} ({edges} arrows)")
        } else {
            format!(
                "{label}: {} ahead ({edges} arrows)",
                match class {
                    0 => "1 position".to_string(),
                    _ => format!("{} positions", 1u128 << class.min(127)),
                }
            )
        };
        let _ = writeln!(
            out,
            r#"<line class="legend-class" data-class="{label}" x1="{left:.0}" y1="{:.0}" x2="{:.0}" y2="{:.0}" stroke="{}" stroke-width="3"/><text x="{:.0}" y="{y:.0}" font-size="11">{}</text>"#,
            y - 4.0,
            left + 28.0,
            y - 4.0,
            colour(class),
            left + 36.0,
            escape(&what)
        );
        y += 20.0;
    }
    let width = match picture.traffic_run {
        Some(run) => format!(
            "arrow width: packets the link carried in run {run} (widest {})",
            crate::summary::thousands(picture.packets_max().into())
        ),
        None => "arrow width: no run on this overlay yet".to_string(),
    };
    text_line(out, left, &mut y, &width, 11, "normal");
    out.push_str("</g>\n");
}

/// One line of the legend at `y`, which moves to the next line.
fn text_line(out: &mut String, left: f64, y: &mut f64, text: &str, size: u32, weight: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{left:.0}" y="{y:.0}" font-size="{size}" font-weight="{weight}">{}</text>"#,
        escape(text)
    );
    *y += 20.0;
}

/// The point `turn` of the way round the circle of `radius` about (`centre`, `centre`),
/// clockwise from the top.
fn at(centre: f64, radius: f64, turn: f64) -> (f64, f64) {
    let angle = 2.0 * PI * turn;
    (centre + radius * angle.sin(), centre - radius * angle.cos())
}

/// `0`, `32`, `64`, `96` for 7 bits; `0`, `2^158`, `2^159`, `3·2^158` for 160.
fn quarter_label(quarter: u32, bits: u32) -> String {
    match (quarter, bits) {
        (0, _) => "0".to_string(),
        (_, 0..=2) => format!("{quarter}/4 of 2^{bits}"),
        (_, 3..=40) => (u64::from(quarter) << (bits - 2)).to_string(),
        (2, _) => format!("2^{}", bits - 1),
        (1, _) => format!("2^{}", bits - 2),
        _ => format!("{quarter}·2^{}", bits - 2),
    }
}

/// Text safe inside an element or an attribute.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
