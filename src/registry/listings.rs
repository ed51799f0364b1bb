//! What the operator can ask to see: `list-messaging-nodes`, `list-routing-tables`, and
//! `export-overlay FILE` (Graphviz DOT, drawn by `export.rs`).

use std::fmt::Write as _;

use super::{Registry, export};
use crate::machine::Effect;
use crate::wire::Codec;

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

    /// `list-routing-tables`: each node and its table entries, with their distances.
    pub(super) fn list_tables(&self) -> String {
        let Some(overlay) = &self.overlay else {
            return "The overlay is not set up: run setup-overlay first.".to_string();
        };
        let mut out = String::new();
        for (position, id) in overlay.ring.ids().iter().enumerate() {
            let addr = self.nodes.get(id).map(|n| n.addr);
            let _ = writeln!(
                out,
                "Node {id} at {}",
                addr.map_or("?".to_string(), |a| a.to_string())
            );
            for (hop, entry) in overlay.ring.table(position, overlay.nr).iter().enumerate() {
                let entry_addr = self.nodes.get(entry).map(|n| n.addr);
                let _ = writeln!(
                    out,
                    "  +{:<4} node {entry:>10} at {}",
                    1u64 << hop,
                    entry_addr.map_or("?".to_string(), |a| a.to_string())
                );
            }
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out
    }

    /// `export-overlay FILE`: the overlay as Graphviz DOT, written by the driver.
    pub(super) fn export_overlay(&mut self, path: String) {
        let Some(overlay) = &self.overlay else {
            self.say("export-overlay refused: the overlay is not set up: run setup-overlay first.");
            return;
        };
        let addrs = self.nodes.iter().map(|(id, n)| (*id, n.addr)).collect();
        let contents = export::dot(&overlay.ring, overlay.nr, &addrs);
        self.effects.push(Effect::WriteFile {
            path: path.into(),
            contents,
        });
    }
}
