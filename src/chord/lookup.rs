//! A lookup followed hop by hop through every node's table: what the overlay does to a packet
//! for a key, without sockets.
//!
//! Two counts come out of each walk. `hops` counts transmissions of the packet from its source
//! to the key's owner (our data plane's hop count: a node-addressed packet that passes r
//! relays takes r + 1). `forwards` counts only the transmissions to a node that routes further
//! ([`Step::Forward`]): the nodes traversed before the query is resolved, which is what the
//! Chord paper calls path length (Fig. 10): the last node reached by a forward is the key's
//! predecessor, which answers with its successor, the owner. So `hops = forwards + 1` whenever
//! the source does not own the key, and both are 0 when it does.

use super::id::Id;
use super::membership::Membership;
use super::table::{FingerTable, Step};

/// The outcome of one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    /// The member that owns the key (where the walk ended).
    pub owner: usize,
    /// Transmissions from the source to the owner.
    pub hops: u32,
    /// Transmissions to nodes that route further: the Chord paper's path length.
    pub forwards: u32,
}

/// Routes `key` from the member at `from` through `tables` (one per member, in member order)
/// until it reaches its owner; calls `visit` with every node on the way and what it does.
/// Allocation-free.
#[inline]
pub fn walk(
    membership: &Membership,
    tables: &[FingerTable],
    from: usize,
    key: Id,
    mut visit: impl FnMut(usize, Step),
) -> Lookup {
    debug_assert_eq!(tables.len(), membership.len());
    let mut at = from;
    let mut hops = 0u32;
    let mut forwards = 0u32;
    loop {
        let step = tables[at].next_hop(membership, key);
        visit(at, step);
        match step {
            Step::Owner => {
                return Lookup {
                    owner: at,
                    hops,
                    forwards,
                };
            }
            Step::Deliver(entry) => at = tables[at].entries()[entry] as usize,
            Step::Forward(entry) => {
                at = tables[at].entries()[entry] as usize;
                forwards += 1;
            }
        }
        hops += 1;
        // Both rules make clockwise progress: a walk longer than the ring is a routing bug,
        // never a slow lookup.
        assert!(
            hops as usize <= membership.len(),
            "a lookup from member {from} went round the ring"
        );
    }
}

/// [`walk`] without a visitor.
#[inline]
pub fn lookup(membership: &Membership, tables: &[FingerTable], from: usize, key: Id) -> Lookup {
    walk(membership, tables, from, key, |_, _| {})
}
