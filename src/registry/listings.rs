//! What the operator can ask to see: `list-messaging-nodes`, `list-routing-tables`, and
//! `export-overlay FILE` (an SVG picture or Graphviz DOT, drawn by `export/`).

use std::fmt::Write as _;

use super::Registry;
use super::export::{Format, Picture};
use crate::machine::Effect;
use crate::wire::{Codec, NodeId};

impl<C: Codec> Registry<C> {
    /// `list-messaging-nodes`: one line per node (IP, port, ID).
    pub(super) fn list_nodes(&self) -> String {
        if self.nodes.is_empty() {
            return "No messaging nodes are registered.".to_string();
        }
        let mut out = String::new();
        for (id, node) in &self.nodes {
            let _ = writeln!(out, "{} {} {id}", node.addr.ip(), node.addr.port());
        }
        out.pop();
        out
    }

    /// `list-routing-tables`: the finger rule, then each node and its table entries: with
    /// their distances in positions (position fingers), or with every identifier (Chord).
    pub(super) fn list_tables(&self) -> String {
        let Some(overlay) = &self.overlay else {
            return "The overlay is not set up: run setup-overlay first.".to_string();
        };
        let address = |id: &NodeId| {
            self.nodes
                .get(id)
                .map_or("?".to_string(), |n| n.addr.to_string())
        };
        let mut out = format!("{} nodes, {}\n\n", overlay.ring.len(), overlay.fingers);
        for (position, id) in overlay.ring.ids().iter().enumerate() {
            match &overlay.chord {
                None => {
                    let _ = writeln!(out, "Node {id} at {}", address(id));
                }
                Some(layout) => {
                    let _ = writeln!(
                        out,
                        "Node {id} at {}, identifier {:x}",
                        address(id),
                        layout.id(position)
                    );
                }
            }
            for (hop, entry) in overlay.tables[position].iter().enumerate() {
                let step = match &overlay.chord {
                    None => format!("+{:<4}", 1u64 << hop),
                    Some(_) => format!("f{hop:<4}"),
                };
                let _ = write!(out, "  {step} node {entry:>10} at {}", address(entry));
                if let Some(layout) = &overlay.chord {
                    let finger = layout.fingers(position).nth(hop).expect("one per entry");
                    let _ = write!(out, ", identifier {:x}", layout.id(finger));
                }
                out.push('\n');
            }
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out
    }

    /// `export-overlay FILE`: the overlay as an SVG picture (`FILE.svg`) or Graphviz DOT
    /// (`FILE.dot`), with the last run's traffic on it; written by the driver.
    pub(super) fn export_overlay(&mut self, path: String) {
        let format = match Format::of(&path) {
            Ok(format) => format,
            Err(why) => {
                self.say(format!("export-overlay refused: {why}"));
                return;
            }
        };
        let Some(overlay) = &self.overlay else {
            self.say("export-overlay refused: the overlay is not set up: run setup-overlay first.");
            return;
        };
        let addrs = self.nodes.iter().map(|(id, n)| (*id, n.addr)).collect();
        let contents = Picture::of(overlay, self.config.id_bits, &addrs).render(format);
        self.effects.push(Effect::WriteFile {
            path: path.into(),
            contents,
        });
    }
}
