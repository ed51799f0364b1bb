//! `setup-overlay NR`: the checks, the ring and one manifest per node, then each node's setup
//! status until all are ready. A change of membership invalidates the overlay.

use std::collections::BTreeSet;

use super::Registry;
use crate::chord::FingerRule;
use crate::limits::{NR_MAX, TRACE_SLOTS_MAX, default_window_bytes};
use crate::routing::{Ring, check_nr, longest_path_relays};
use crate::wire::{Codec, Control, Manifest, ManifestEntry, NodeId, Status};

/// The overlay set up by the last `setup-overlay`.
#[derive(Debug)]
pub(super) struct Overlay {
    /// Routing-table entries per node.
    pub(super) nr: usize,
    /// The rule the tables were built with.
    pub(super) rule: FingerRule,
    /// Each source's window, as the manifests told the nodes (0: the encoding has none).
    pub(super) window_bytes: u64,
    pub(super) ring: Ring,
    /// Nodes that have not reported setup success yet.
    pub(super) waiting: BTreeSet<NodeId>,
    /// Every node reported setup success: runs may start.
    pub(super) ready: bool,
}

/// What the overlay of the last `setup-overlay` was built with, for a result's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlaySettings {
    pub nr: usize,
    pub rule: FingerRule,
    pub window_bytes: u64,
}

impl<C: Codec> Registry<C> {
    /// The overlay's settings, once set up (ready or not).
    pub fn overlay_settings(&self) -> Option<OverlaySettings> {
        self.overlay.as_ref().map(|overlay| OverlaySettings {
            nr: overlay.nr,
            rule: overlay.rule,
            window_bytes: overlay.window_bytes,
        })
    }

    /// `setup-overlay NR`: refused during a run, when NR does not fit the node count or the
    /// trace, or when the encoding cannot carry a manifest; otherwise each node gets its own.
    pub(super) fn setup_overlay(&mut self, nr: usize) {
        if self.run.is_some() {
            self.say("setup-overlay refused: a run is in progress");
            return;
        }
        let count = self.nodes.len();
        if let Err(why) = check_nr(count, nr) {
            self.say(format!("setup-overlay refused: {why}"));
            return;
        }
        let slots = longest_path_relays(count, nr);
        if slots > TRACE_SLOTS_MAX {
            let fits = (nr + 1..=NR_MAX).find(|&n| {
                check_nr(count, n).is_ok() && longest_path_relays(count, n) <= TRACE_SLOTS_MAX
            });
            self.say(format!(
                "setup-overlay refused: with {count} nodes and NR {nr} the longest path passes \
                 {slots} relays, but a packet's hop trace holds at most {TRACE_SLOTS_MAX}{}",
                fits.map_or(String::new(), |n| format!("; use NR {n} or more"))
            ));
            return;
        }
        let window_bytes = if C::HAS_ACKS {
            self.config
                .window_bytes
                .unwrap_or_else(|| default_window_bytes(count))
        } else {
            0
        };
        let ring = Ring::new(self.nodes.keys().copied().collect());
        let mut manifests = Vec::with_capacity(count);
        for (position, id) in ring.ids().iter().enumerate() {
            let entries = ring
                .table(position, nr)
                .into_iter()
                .map(|entry| ManifestEntry {
                    id: entry,
                    addr: self.nodes[&entry].addr,
                })
                .collect();
            manifests.push((
                *id,
                Manifest {
                    entries,
                    all_ids: ring.ids().to_vec(),
                    trace_slots: slots as u8,
                    window_bytes,
                },
            ));
        }
        for (_, manifest) in manifests.iter_mut() {
            // Checked in place: the manifest moves into the message and back, no copy.
            let message = Control::Manifest(std::mem::take(manifest));
            let checked = C::encodable(&message);
            if let Control::Manifest(back) = message {
                *manifest = back;
            }
            if let Err(error) = checked {
                self.say(format!("setup-overlay refused: {error}"));
                return;
            }
        }
        self.overlay = Some(Overlay {
            nr,
            rule: FingerRule::Positions { nr },
            window_bytes,
            waiting: ring.ids().iter().copied().collect(),
            ring,
            ready: false,
        });
        self.say(if C::HAS_ACKS {
            format!(
                "Setting up the overlay: {count} nodes, {nr} table entries each, trace of {slots} \
                 relays, window {window_bytes} bytes per source"
            )
        } else {
            format!(
                "Setting up the overlay: {count} nodes, {nr} table entries each, at most {slots} \
                 relays per packet, no window ({} wire format)",
                C::NAME
            )
        });
        for (id, manifest) in manifests {
            self.send_to_node(id, &Control::Manifest(manifest));
        }
    }

    /// A node's setup status: the overlay is ready once every node reported success; a
    /// failure drops it.
    pub(super) fn on_setup_status(&mut self, id: NodeId, status: Status, info: String) {
        let Some(overlay) = self.overlay.as_mut() else {
            self.say(format!(
                "Ignoring setup status from node {id}: no setup in progress ({info})"
            ));
            return;
        };
        match status {
            Status::Ok(reported) if reported == id => {
                if overlay.waiting.remove(&id) && overlay.waiting.is_empty() {
                    overlay.ready = true;
                    self.say("Registry now ready to initiate tasks.");
                    self.maybe_script_start();
                }
            }
            Status::Ok(reported) => {
                self.say(format!(
                    "Node {id} reported setup success for node {reported}: counted as failure"
                ));
                self.overlay = None;
            }
            Status::Failed => {
                self.say(format!(
                    "Node {id} failed to set up its connections: {info}; run setup-overlay again"
                ));
                self.overlay = None;
            }
        }
    }

    /// The membership changed: an overlay that was set up no longer holds.
    pub(super) fn overlay_changed(&mut self, what: String) {
        if self.overlay.take().is_some() {
            self.say(format!(
                "The overlay changed ({what}): run setup-overlay again before start"
            ));
        }
    }
}
