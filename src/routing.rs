//! The ring, the finger tables and the routing rule.
//!
//! Entry i of a node's table is the node 2^i positions ahead of it in the sorted ring. A packet
//! whose sink is d positions ahead goes to the entry with the largest 2^i <= d: straight to the
//! sink when it is an entry, otherwise to the entry furthest clockwise without passing it. This
//! is the reference's rule ("largest (e - self) mod space below (sink - self) mod space"), read
//! in positions rather than ID distance, which orders the entries the same way.
//!
//! A path of d positions therefore takes floor(d / 2^(NR-1)) + popcount(d mod 2^(NR-1))
//! transmissions: whole largest steps first, then one step per remaining bit.
//!
//! Chord mode (`setup-overlay chord`) gives every node an identifier of up to 160 bits besides
//! its ID (the registry's node number, which stays what packets carry): the tables are Chord's
//! fingers over those identifiers, and every next hop and route comes from `crate::chord`
//! ([`ChordLayout`]), the code `overlay simulate` walks.

use std::sync::Arc;

use crate::chord::{FingerRule, FingerTable, Id, IdSpace, Membership, Step, walk};
use crate::limits::{DENSE_INDEX_MAX, ID_BITS_DEFAULT, ID_BITS_MAX, NR_MAX, TRACE_SLOTS_MAX};
use crate::wire::NodeId;
use std::collections::HashMap;

mod layout;
mod router;
mod view;
pub use layout::*;
pub use router::*;
pub use view::*;

/// The finger rule an overlay is set up with (`setup-overlay`, `--fingers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fingers {
    /// The reference's tables: entry i = the node 2^i positions ahead, NR entries.
    Positions { nr: usize },
    /// Chord's fingers over identifiers of `bits` bits (1..=160), drawn at random or, if
    /// `hashed`, the first bits of SHA-256 of each node's address; distinct either way.
    Chord { bits: u32, hashed: bool },
}

impl Fingers {
    /// "positions" or "chord", as the result JSON records it.
    pub fn name(self) -> &'static str {
        match self {
            Fingers::Positions { .. } => "positions",
            Fingers::Chord { .. } => "chord",
        }
    }
}

impl std::fmt::Display for Fingers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Fingers::Positions { nr } => write!(f, "position fingers, {nr} table entries each"),
            Fingers::Chord { bits, hashed } => write!(
                f,
                "Chord fingers, {bits}-bit identifiers {}",
                if hashed {
                    "hashed from each node's address"
                } else {
                    "drawn at random"
                }
            ),
        }
    }
}

/// Every node ID of an overlay, sorted: the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    ids: Vec<NodeId>,
}

impl Ring {
    /// Builds the ring from IDs in any order. Duplicates are removed.
    pub fn new(mut ids: Vec<NodeId>) -> Ring {
        ids.sort_unstable();
        ids.dedup();
        Ring { ids }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// The position of `id` in the sorted ring.
    pub fn position(&self, id: NodeId) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// The ID `steps` positions after position `from`, wrapping.
    pub fn ahead(&self, from: usize, steps: usize) -> NodeId {
        self.ids[(from + steps) % self.ids.len()]
    }

    /// Positions from `from` clockwise to `to`.
    pub fn distance(&self, from: usize, to: usize) -> usize {
        (to + self.ids.len() - from) % self.ids.len()
    }

    /// The routing table of the node at position `at`: NR entries in hop order.
    pub fn table(&self, at: usize, nr: usize) -> Vec<NodeId> {
        (0..nr).map(|i| self.ahead(at, 1 << i)).collect()
    }

    /// The relays a packet passes from position `from` to position `to` (exclusive of both),
    /// appended to `out`.
    pub fn relays(&self, from: usize, to: usize, nr: usize, out: &mut Vec<NodeId>) {
        let mut at = from;
        let mut remaining = self.distance(from, to);
        while remaining > 0 {
            let step = 1 << entry_for_distance(remaining, nr);
            remaining -= step;
            at = (at + step) % self.ids.len();
            if remaining > 0 {
                out.push(self.ids[at]);
            }
        }
    }
}

/// The table entry (hop index) that a packet `distance` positions from its sink takes.
#[inline]
pub fn entry_for_distance(distance: usize, nr: usize) -> usize {
    debug_assert!(distance > 0 && nr > 0);
    (distance.ilog2() as usize).min(nr - 1)
}

/// Transmissions a packet needs to travel `distance` positions with NR entries per table.
pub fn transmissions(distance: u64, nr: usize) -> u64 {
    let widest = nr as u32 - 1;
    (distance >> widest) + u64::from((distance & ((1 << widest) - 1)).count_ones())
}

/// The most relays any path in an overlay of `nodes` nodes with NR entries passes.
pub fn longest_path_relays(nodes: usize, nr: usize) -> usize {
    (1..nodes as u64)
        .map(|distance| transmissions(distance, nr) - 1)
        .max()
        .unwrap_or(0) as usize
}

/// Checks that `nodes` nodes can have tables of `nr` distinct entries, none the node itself.
pub fn check_nr(nodes: usize, nr: usize) -> Result<(), String> {
    if nodes < 2 {
        return Err(format!(
            "an overlay needs at least 2 registered nodes, there {} {nodes}",
            if nodes == 1 { "is" } else { "are" }
        ));
    }
    if nr == 0 || nr > NR_MAX {
        return Err(format!(
            "the routing table size must be between 1 and {NR_MAX}, not {nr}"
        ));
    }
    let widest = 1u64 << (nr - 1);
    if widest > nodes as u64 - 1 {
        let most = (nodes - 1).ilog2() + 1;
        return Err(format!(
            "{nodes} nodes cannot fill {nr} table entries: entry {} would be {widest} positions \
             ahead and repeat a node or point back at the node itself; use at most {most}",
            nr - 1
        ));
    }
    Ok(())
}

/// The routing-table size for an overlay of `nodes` nodes when the operator gives none in a
/// scripted run: ceil(log2 nodes), so that paths stay about log2 N long at any size (the
/// widest entry, 2^(NR-1) positions ahead, is then the farthest that still fits).
pub fn nr_for(nodes: usize) -> usize {
    (nodes.max(2).next_power_of_two().ilog2() as usize).min(NR_MAX)
}

/// The ID width for `nodes` nodes when the operator gives none: the reference's 7 bits
/// (0..=127), or the fewest bits that give every node an ID.
pub fn id_bits_for(nodes: usize) -> u32 {
    (nodes.max(2).next_power_of_two().ilog2()).max(ID_BITS_DEFAULT)
}

/// Checks that an overlay of `nodes` nodes with NR `nr` can be set up: distinct table entries
/// ([`check_nr`]) and a longest path that fits a packet's hop trace; says which NR would fit.
pub fn check_overlay(nodes: usize, nr: usize) -> Result<(), String> {
    check_nr(nodes, nr)?;
    let slots = longest_path_relays(nodes, nr);
    if slots > TRACE_SLOTS_MAX {
        let fits = (nr + 1..=NR_MAX).find(|&n| {
            check_nr(nodes, n).is_ok() && longest_path_relays(nodes, n) <= TRACE_SLOTS_MAX
        });
        return Err(format!(
            "with {nodes} nodes and NR {nr} the longest path passes {slots} relays, but a \
             packet's hop trace holds at most {TRACE_SLOTS_MAX}{}",
            fits.map_or(String::new(), |n| format!("; use NR {n} or more"))
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
