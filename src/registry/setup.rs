//! `setup-overlay [NR | chord ...]`: the checks, the ring (and in Chord mode the identifiers)
//! and one manifest per node, then each node's setup status until all are ready. A change of
//! membership invalidates the overlay.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::Registry;
use super::export::Traffic;
use crate::chord::{FingerRule, Id, IdSpace, Membership};
use crate::limits::{
    BACKUP_ENTRIES, MANIFESTS_OUTSTANDING_MAX, NR_MAX, TRACE_CHURN_HEADROOM, TRACE_SLOTS_MAX,
    default_window_bytes,
};
use crate::machine::Nanos;
use crate::routing::{self, ChordLayout, Fingers, Ring, check_nr, longest_path_relays};
use crate::summary::counted;
use crate::wire::{
    ChordIds, Codec, Control, Manifest, ManifestEntry, NodeId, Status, slot_bytes_for,
};

/// A membership before a join: ring, tables, backups, identifiers.
pub(super) type Previous = (
    Ring,
    Vec<Vec<NodeId>>,
    Vec<Vec<NodeId>>,
    Option<ChordLayout>,
);

/// The overlay set up by the last `setup-overlay`.
#[derive(Debug)]
pub(super) struct Overlay {
    pub(super) fingers: Fingers,
    /// Routing-table entries of the widest table (NR under the position rule).
    pub(super) nr: usize,
    /// Each source's window, as the manifests told the nodes (0: the encoding has none).
    pub(super) window_bytes: u64,
    pub(super) ring: Ring,
    /// Each node's table entries, by ring position, in entry order.
    pub(super) tables: Vec<Vec<NodeId>>,
    /// Each node's backup entries, by ring position (`routing::backups`; none without
    /// `Codec::DETOURS`).
    pub(super) backups: Vec<Vec<NodeId>>,
    /// Chord mode: the identifiers and fingers.
    pub(super) chord: Option<ChordLayout>,
    /// Nodes that have not reported setup success yet.
    pub(super) waiting: BTreeSet<NodeId>,
    /// The manifests still to send, paced.
    pub(super) sending: Sending,
    /// Every node reported setup success: runs may start.
    pub(super) ready: bool,
    /// The packets each link carried in the last run on this overlay (`export-overlay`).
    pub(super) traffic: Option<Traffic>,
    /// Relay slots of every data frame's trace in this overlay.
    pub(super) trace_slots: usize,
    /// The membership's version: one more per change since setup (changes.rs).
    pub(super) version: u32,
    /// Final reports the nodes gave since setup: the window's epoch a node that joins
    /// starts in.
    pub(super) epoch: u32,
    /// The membership change being carried out, and those waiting (changes.rs).
    pub(super) changes: super::changes::Changes,
    /// During a join: the ring, tables, backups and identifiers before it (to tell who changed, or to
    /// go back if the newcomer does not make it).
    pub(super) previous: Option<Previous>,
}

impl Overlay {
    /// The tables of the membership `ring` (with each node's identifier by ring position in
    /// Chord mode) under this overlay's finger rule: refused when the rule cannot fill them,
    /// or when a route would not fit this overlay's traces.
    pub(super) fn tables_for(
        &self,
        ring: &Ring,
        identifiers: Option<Vec<Id>>,
    ) -> Result<(Vec<Vec<NodeId>>, Option<ChordLayout>), String> {
        match (self.fingers, identifiers, &self.chord) {
            (Fingers::Positions { nr }, None, _) => {
                check_nr(ring.len(), nr)?;
                let longest = longest_path_relays(ring.len(), nr);
                if longest + TRACE_CHURN_HEADROOM > self.trace_slots {
                    return Err(format!(
                        "{} nodes need traces of {longest} + {TRACE_CHURN_HEADROOM} relays; this \
                         overlay's have {}",
                        ring.len(),
                        self.trace_slots
                    ));
                }
                Ok(((0..ring.len()).map(|p| ring.table(p, nr)).collect(), None))
            }
            (Fingers::Chord { .. }, Some(identifiers), Some(layout)) => {
                if ring.len() < 2 {
                    return Err("an overlay needs at least 2 nodes".to_string());
                }
                let layout = ChordLayout::new(ring, layout.space(), &identifiers)?;
                let longest = layout.longest_route_relays();
                if longest + TRACE_CHURN_HEADROOM > self.trace_slots {
                    return Err(format!(
                        "{} nodes need traces of {longest} + {TRACE_CHURN_HEADROOM} relays; this \
                         overlay's have {}",
                        ring.len(),
                        self.trace_slots
                    ));
                }
                let tables = (0..ring.len())
                    .map(|p| layout.fingers(p).map(|q| ring.ids()[q]).collect())
                    .collect();
                Ok((tables, Some(layout)))
            }
            _ => Err("identifiers do not match the finger rule".to_string()),
        }
    }
}

/// The manifests of a setup, sent a bounded number at a time ([`MANIFESTS_OUTSTANDING_MAX`]).
#[derive(Debug, Default)]
pub(super) struct Sending {
    /// What every manifest shares: the IDs, the Chord identifiers, the trace slots, the window.
    manifest: Manifest,
    /// Ring positions of the nodes whose manifest is still to be sent, in order.
    unsent: std::ops::Range<usize>,
    /// Manifests sent whose node has not reported its setup status yet.
    outstanding: usize,
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
    /// Node `id`'s identifier, when the overlay has Chord fingers.
    pub(super) fn chord_identifier(&self, id: NodeId) -> Option<crate::chord::Id> {
        let overlay = self.overlay.as_ref()?;
        let layout = overlay.chord.as_ref()?;
        Some(layout.id(overlay.ring.position(id)?))
    }

    pub fn overlay_settings(&self) -> Option<OverlaySettings> {
        self.overlay.as_ref().map(|overlay| OverlaySettings {
            nr: overlay.nr,
            rule: match overlay.fingers {
                Fingers::Positions { nr } => FingerRule::Positions { nr },
                Fingers::Chord { .. } => FingerRule::Chord,
            },
            window_bytes: overlay.window_bytes,
        })
    }
}

/// The tables of an overlay before it is set up: what `setup-overlay` computed.
struct Tables {
    ring: Ring,
    tables: Vec<Vec<NodeId>>,
    chord: Option<ChordLayout>,
    /// The longest path's relays: every frame's trace slots.
    slots: usize,
}

impl<C: Codec> Registry<C> {
    /// The position rule's tables: refused when NR does not fit the node count or the trace.
    fn position_tables(&self, nr: usize) -> Result<Tables, String> {
        let count = self.nodes.len();
        check_nr(count, nr)?;
        let slots = longest_path_relays(count, nr);
        if slots > TRACE_SLOTS_MAX {
            let fits = (nr + 1..=NR_MAX).find(|&n| {
                check_nr(count, n).is_ok() && longest_path_relays(count, n) <= TRACE_SLOTS_MAX
            });
            return Err(format!(
                "with {count} nodes and NR {nr} the longest path passes {slots} relays, but a \
                 packet's hop trace holds at most {TRACE_SLOTS_MAX}{}",
                fits.map_or(String::new(), |n| format!("; use NR {n} or more"))
            ));
        }
        let ring = Ring::new(self.nodes.keys().copied().collect());
        let tables = (0..ring.len()).map(|p| ring.table(p, nr)).collect();
        Ok(Tables {
            ring,
            tables,
            chord: None,
            slots,
        })
    }

    /// Chord's tables: an identifier for every node (distinct), its fingers, and the longest
    /// route, which must fit the trace.
    fn chord_tables(&mut self, bits: u32, hashed: bool) -> Result<Tables, String> {
        let count = self.nodes.len();
        if count < 2 {
            return Err(format!(
                "an overlay needs at least 2 registered nodes, there {} {count}",
                if count == 1 { "is" } else { "are" }
            ));
        }
        let space = IdSpace::new(bits)
            .ok_or_else(|| format!("identifiers have 1 to 160 bits, not {bits}"))?;
        let ring = Ring::new(self.nodes.keys().copied().collect());
        let identifiers = if hashed {
            let addresses: Vec<String> = ring
                .ids()
                .iter()
                .map(|id| self.nodes[id].addr.to_string())
                .collect();
            Membership::hashed(space, &addresses)?.1
        } else {
            if bits < 64 && count as u64 > 1u64 << bits {
                return Err(format!(
                    "{count} nodes need {count} distinct identifiers, but a {bits}-bit space has {}",
                    1u64 << bits
                ));
            }
            // Drawn per node and again on a collision: distinct, and uniform over the space.
            let mut taken = HashSet::with_capacity(count);
            let mut identifiers: Vec<Id> = Vec::with_capacity(count);
            while identifiers.len() < count {
                let id = space.random(&mut self.rng);
                if taken.insert(id) {
                    identifiers.push(id);
                }
            }
            identifiers
        };
        let layout = ChordLayout::new(&ring, space, &identifiers)?;
        let slots = layout.longest_route_relays();
        if slots > TRACE_SLOTS_MAX {
            return Err(format!(
                "the longest route passes {slots} relays, but a packet's hop trace holds at most \
                 {TRACE_SLOTS_MAX}"
            ));
        }
        let tables = (0..ring.len())
            .map(|p| layout.fingers(p).map(|q| ring.ids()[q]).collect())
            .collect();
        Ok(Tables {
            ring,
            tables,
            chord: Some(layout),
            slots,
        })
    }

    /// `setup-overlay`: refused during a run, when the tables cannot be built (NR does not fit
    /// the node count, a route does not fit the trace) or when the encoding cannot carry a
    /// manifest; otherwise each node gets its own.
    pub(super) fn setup_overlay(&mut self, fingers: Fingers) {
        if self.run.is_some() {
            self.say("setup-overlay refused: a run is in progress");
            return;
        }
        // A new overlay would drop the old one's changes, and a leaver would wait for an
        // answer for ever: it is carried out first (between runs, within milliseconds).
        let leaving = self
            .overlay
            .as_ref()
            .map(|o| o.changes.leavers())
            .unwrap_or_default();
        if let Some(id) = leaving.first() {
            self.say(format!(
                "setup-overlay refused: node {id} is leaving; set the overlay up once it has left"
            ));
            return;
        }
        let count = self.nodes.len();
        let built = match fingers {
            Fingers::Positions { nr } => self.position_tables(nr),
            Fingers::Chord { bits, hashed } => self.chord_tables(bits, hashed),
        };
        let Tables {
            ring,
            tables,
            chord,
            slots,
        } = match built {
            Ok(tables) => tables,
            Err(why) => {
                self.say(format!("setup-overlay refused: {why}"));
                return;
            }
        };
        let nr = tables.iter().map(Vec::len).max().unwrap_or(0);
        // Room for the routes of a membership that changes while packets travel: a packet
        // routed partly by tables from before a change and partly by tables from after it
        // may pass more relays than any route of either (native only: the classic format's
        // overlays do not change).
        let slots = if C::HELLO {
            (slots + TRACE_CHURN_HEADROOM).min(TRACE_SLOTS_MAX)
        } else {
            slots
        };
        let chord_ids = chord.as_ref().map(|layout| {
            Arc::new(ChordIds {
                bits: layout.space().bits(),
                ids: (0..ring.len()).map(|p| layout.id(p)).collect(),
            })
        });
        let window_bytes = if C::HAS_ACKS {
            self.config
                .window_bytes
                .unwrap_or_else(|| default_window_bytes(count))
        } else {
            0
        };
        let shared = Manifest {
            entries: Vec::new(),
            all_ids: ring.ids().into(),
            chord: chord_ids,
            trace_slots: slots as u8,
            trace_slot_bytes: slot_bytes_for(self.config.id_bits) as u8,
            window_bytes,
            backups: Vec::new(),
            epoch: 0,
        };
        // Backup entries only where data frames can say they were routed around a dead link
        // (the classic format keeps the reference's behaviour).
        let backups: Vec<Vec<NodeId>> = (0..ring.len())
            .map(|position| {
                if C::DETOURS {
                    routing::backups(
                        &ring,
                        chord.as_ref(),
                        position,
                        BACKUP_ENTRIES,
                        &tables[position],
                    )
                } else {
                    Vec::new()
                }
            })
            .collect();
        // Every manifest is checked before the first goes out (each differs only in its
        // table; nothing of the shared part is copied).
        for (table, backups) in tables.iter().zip(&backups) {
            let message = Control::Manifest(manifest_of(&shared, table, backups, &self.nodes));
            if let Err(error) = C::encodable(&message) {
                self.say(format!("setup-overlay refused: {error}"));
                return;
            }
        }
        // Every node counts its final reports (the run tag) from its new manifest.
        self.owed_finals.clear();
        self.overlay = Some(Overlay {
            fingers,
            nr,
            window_bytes,
            waiting: ring.ids().iter().copied().collect(),
            sending: Sending {
                manifest: shared,
                unsent: 0..ring.len(),
                outstanding: 0,
            },
            ring,
            tables,
            backups,
            chord,
            ready: false,
            traffic: None,
            trace_slots: slots,
            version: 0,
            epoch: 0,
            changes: Default::default(),
            previous: None,
        });
        let shape = match fingers {
            Fingers::Positions { nr } => format!("{nr} table entries each"),
            Fingers::Chord { .. } => format!("{fingers}, at most {nr} fingers per node"),
        };
        self.say(if C::HAS_ACKS {
            format!(
                "Setting up the overlay: {count} nodes, {shape}, trace of {}, window \
                 {window_bytes} bytes per source",
                counted(slots as u64, "relay")
            )
        } else {
            format!(
                "Setting up the overlay: {count} nodes, {shape}, at most {} per packet, no \
                 window ({} wire format)",
                counted(slots as u64, "relay"),
                C::NAME
            )
        });
        self.send_manifests();
    }

    /// Sends manifests while fewer than [`MANIFESTS_OUTSTANDING_MAX`] await their node's setup
    /// status: the registry holds a bounded number of encoded manifests, and a bounded number
    /// of nodes set up (build their view, open their links) at once.
    fn send_manifests(&mut self) {
        loop {
            let Some(overlay) = self.overlay.as_mut() else {
                return;
            };
            let sending = &mut overlay.sending;
            if sending.outstanding >= MANIFESTS_OUTSTANDING_MAX {
                return;
            }
            let Some(position) = sending.unsent.next() else {
                return;
            };
            sending.outstanding += 1;
            let id = overlay.ring.ids()[position];
            let manifest = manifest_of(
                &sending.manifest,
                &overlay.tables[position],
                &overlay.backups[position],
                &self.nodes,
            );
            self.send_to_node(id, &Control::Manifest(manifest));
        }
    }

    /// A node's setup status: the overlay is ready once every node reported success; a
    /// failure drops it.
    pub(super) fn on_setup_status(&mut self, now: Nanos, id: NodeId, status: Status, info: String) {
        if self.on_joiner_setup(now, id, status, info.clone()) {
            return;
        }
        let Some(overlay) = self.overlay.as_mut() else {
            self.say(format!(
                "Ignoring setup status from node {id}: no setup in progress ({info})"
            ));
            return;
        };
        match status {
            Status::Ok(reported) if reported == id => {
                if !overlay.waiting.remove(&id) {
                    return;
                }
                overlay.sending.outstanding = overlay.sending.outstanding.saturating_sub(1);
                if overlay.waiting.is_empty() {
                    overlay.ready = true;
                    self.say("Registry now ready to initiate tasks.");
                    self.maybe_script_start();
                } else {
                    self.send_manifests();
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

    /// The membership changed: an overlay that was set up no longer holds. The graceful
    /// leaves it had not carried out go with it, their leavers let go at once
    /// (`Registry::let_go_leavers`). A run under way fails at once: what its nodes hold for
    /// the nodes that left waits for tables that will not come, so its account would never
    /// balance and it would end only by its stall timeout. (Without progress polls a node
    /// lost during a run has failed it already.)
    pub(super) fn overlay_changed(&mut self, now: Nanos, what: String) {
        if let Some(overlay) = self.overlay.take() {
            self.say(format!(
                "The overlay changed ({what}): run setup-overlay again before start"
            ));
            self.let_go_leavers(now, overlay.changes.leavers());
            if C::PROGRESS_POLLS && self.run.is_some() {
                self.fail_run(
                    now,
                    format!("the overlay changed ({what}) and cannot carry the run on"),
                );
            }
        }
    }
}

/// The manifest of the node whose table is `table` and backup entries `backups`: the shared
/// part (`Arc`s, no copy) and its entries with their addresses.
fn manifest_of(
    shared: &Manifest,
    table: &[NodeId],
    backups: &[NodeId],
    nodes: &std::collections::BTreeMap<NodeId, super::membership::NodeRecord>,
) -> Manifest {
    let entry_of = |&entry: &NodeId| ManifestEntry {
        id: entry,
        addr: nodes[&entry].addr,
    };
    Manifest {
        entries: table.iter().map(entry_of).collect(),
        backups: backups.iter().map(entry_of).collect(),
        ..shared.clone()
    }
}
