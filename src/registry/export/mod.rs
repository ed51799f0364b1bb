//! The overlay drawn (`export-overlay FILE`, and `--export-overlay FILE` after a script's last
//! run): `FILE.svg` is a picture (`svg.rs`), `FILE.dot` Graphviz DOT (`dot.rs`). Both draw one
//! [`Picture`]: every node at the angle of its identifier on the ring (clockwise from the top,
//! so that gaps in the ID space show), one arrow per table entry coloured by its entry (`+1`,
//! `+2`, ... positions ahead; Chord's fingers by the power of two they stand for), and, after
//! a run on this overlay, each arrow as wide as the packets its link carried. Pure text: the
//! driver writes the file.

mod dot;
mod svg;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::setup::Overlay;
use crate::chord::Id;
use crate::wire::NodeId;

/// What `export-overlay` writes, chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Svg,
    Dot,
}

impl Format {
    /// `.svg` or `.dot` (`.gv`), in any case; anything else is refused with the reason.
    pub(super) fn of(path: &str) -> Result<Format, String> {
        let extension = std::path::Path::new(path)
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("dot" | "gv") => Ok(Format::Dot),
            _ => Err(format!(
                "{path}: the file's name must end in .svg (a picture) or .dot (Graphviz DOT)"
            )),
        }
    }
}

/// The packets each link carried in the last run on the overlay: (from, to) -> data packets
/// `from` handed to its link to `to` (the nodes' own per-link counts). At most one row per
/// table entry of each node reported: bounded by `NODES_MAX` x `NR_MAX`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Traffic {
    pub(super) run: u32,
    pub(super) packets: BTreeMap<(NodeId, NodeId), u64>,
}

/// One node of the picture.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PictureNode {
    pub(super) id: NodeId,
    pub(super) address: Option<SocketAddr>,
    /// Where its identifier lies on the ring, as a fraction of a turn clockwise from the top.
    pub(super) turn: f64,
    /// Chord: the identifier, in hexadecimal.
    pub(super) identifier: Option<String>,
}

/// One table entry: an arrow from node `from` to node `to` (indices into the nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edge {
    pub(super) from: usize,
    pub(super) to: usize,
    /// Its index in `from`'s table (0: the successor).
    pub(super) entry: usize,
    /// Its class: position fingers, the entry's index i (2^i positions ahead); Chord, the
    /// largest i for which it is finger i (floor(log2) of its distance in the ID space).
    pub(super) class: u32,
    /// Packets its link carried in the last run (`None` before any run on this overlay).
    pub(super) packets: Option<u64>,
}

/// The overlay as both drawings see it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Picture {
    /// `16 nodes, position fingers, 4 table entries each`.
    pub(super) title: String,
    /// Bits of the identifiers the angles stand for.
    pub(super) bits: u32,
    pub(super) chord: bool,
    /// In ring order (by node ID).
    pub(super) nodes: Vec<PictureNode>,
    /// Each node's entries in table order, the nodes in ring order.
    pub(super) edges: Vec<Edge>,
    /// The run whose traffic the edges carry.
    pub(super) traffic_run: Option<u32>,
}

impl Picture {
    /// The picture of `overlay`, node IDs drawn from 0..2^`id_bits`, addresses from `addrs`.
    pub(super) fn of(
        overlay: &Overlay,
        id_bits: u32,
        addrs: &BTreeMap<NodeId, SocketAddr>,
    ) -> Picture {
        let ring = &overlay.ring;
        let bits = overlay
            .chord
            .as_ref()
            .map_or(id_bits, |layout| layout.space().bits());
        let nodes = ring
            .ids()
            .iter()
            .enumerate()
            .map(|(position, &id)| {
                let (turn, identifier) = match &overlay.chord {
                    Some(layout) => {
                        let identifier = layout.id(position);
                        (turn_of(identifier, bits), Some(format!("{identifier:x}")))
                    }
                    None => (turn_of(Id::from(u128::from(id)), bits), None),
                };
                PictureNode {
                    id,
                    address: addrs.get(&id).copied(),
                    turn,
                    identifier,
                }
            })
            .collect();
        let traffic = overlay.traffic.as_ref();
        let mut edges = Vec::new();
        for (position, &id) in ring.ids().iter().enumerate() {
            for (hop, &entry) in overlay.tables[position].iter().enumerate() {
                let Some(to) = ring.position(entry) else {
                    continue;
                };
                let class = match &overlay.chord {
                    Some(layout) => layout
                        .space()
                        .distance(layout.id(position), layout.id(to))
                        .ilog2()
                        .unwrap_or(0),
                    None => hop as u32,
                };
                edges.push(Edge {
                    from: position,
                    to,
                    entry: hop,
                    class,
                    packets: traffic
                        .map(|traffic| traffic.packets.get(&(id, entry)).copied().unwrap_or(0)),
                });
            }
        }
        Picture {
            title: format!("{} nodes, {}", ring.len(), overlay.fingers),
            bits,
            chord: overlay.chord.is_some(),
            nodes,
            edges,
            traffic_run: traffic.map(|traffic| traffic.run),
        }
    }

    /// The text of the picture in `format`.
    pub(super) fn render(&self, format: Format) -> String {
        match format {
            Format::Svg => svg::svg(self),
            Format::Dot => dot::dot(self),
        }
    }

    /// What an edge of `class` stands for: `+4` (positions ahead) or `2^12` (Chord: the
    /// finger for n + 2^12).
    pub(super) fn class_label(&self, class: u32) -> String {
        if self.chord {
            format!("2^{class}")
        } else {
            format!("+{}", 1u128 << class.min(127))
        }
    }

    /// The most packets any link carried.
    pub(super) fn packets_max(&self) -> u64 {
        self.edges
            .iter()
            .filter_map(|edge| edge.packets)
            .max()
            .unwrap_or(0)
    }
}

/// `id` / 2^`bits`: where it lies on the ring, as a fraction of a turn.
fn turn_of(id: Id, bits: u32) -> f64 {
    let value = id
        .to_be_bytes()
        .iter()
        .fold(0.0f64, |value, &byte| value * 256.0 + f64::from(byte));
    value / 2f64.powi(bits as i32)
}

/// Edge colours by class.
pub(super) const COLOURS: [&str; 8] = [
    "#000000", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
];

/// The colour of edges of `class`.
pub(super) fn colour(class: u32) -> &'static str {
    COLOURS[class as usize % COLOURS.len()]
}

#[cfg(test)]
mod tests;
