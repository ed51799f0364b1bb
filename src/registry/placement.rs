//! Where a registering node goes on the ring: the nodes of one process (a group, named by
//! its [`GroupTag`]) spread evenly over the ID space, and the groups interleaved, so that a
//! hop of 2^k positions stays within a process for every k at or above log2 of the groups
//! (with two processes, every hop but the one of a single position). Such a hop is handed
//! over in memory (`node::mux`) instead of crossing TCP (docs/ARCHITECTURE.md, "Placement").
//!
//! The j-th node of group g (in the order the registry first heard of the groups) of size K
//! in an ID space of S IDs gets `floor(S x (j + r(g)) / K)`, where r(g) is g's bits reversed
//! as a binary fraction (0, 1/2, 1/4, 3/4, 1/8, ...): each new group falls in the middle of
//! the widest gaps the earlier ones left, so with G groups of K nodes, G a power of two, the
//! ring's positions take the groups in a fixed order that repeats every G positions. With G
//! no power of two no hop of 2^k positions stays in its process that way (2^k is no multiple
//! of G), which measured slower than IDs at random (docs/PERFORMANCE.md, "Layout and
//! placement"): when the registry knows the overlay's size N (scripted, `--nodes`), it places
//! nothing unless N / K, rounded, is a power of two. Nor does it place the nodes of a process
//! of more than [`PLACEMENT_GROUP_NODES_MAX`]: in-memory hand-overs between hundreds of nodes
//! cost more than the trunk crossings placement saves. An ID that is taken (another group's, a
//! node that left) is not proposed twice: the registry draws one at random instead, as it does
//! for nodes that name no group.

use rustc_hash::FxHashMap;

use crate::limits::{PLACEMENT_GROUP_NODES_MAX, PLACEMENT_GROUPS_MAX};
use crate::wire::{GroupTag, NodeId};

/// The groups the registry has placed nodes of.
#[derive(Debug, Default)]
pub(super) struct Placement {
    /// By token: the group's index and how many of its nodes were placed. At most
    /// [`PLACEMENT_GROUPS_MAX`] entries: when full it starts again empty (bounded memory
    /// whatever tokens peers make up; a group seen again then gets a new index, and its later
    /// nodes land between the earlier ones less evenly).
    groups: FxHashMap<u64, Seen>,
    /// The index the next new group gets (its offset in the ID space: [`offset`]).
    next_index: u32,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    index: u32,
    placed: u32,
}

impl Placement {
    /// The ID for the next node of `group` in an ID space of `space` IDs (at most 2^32), in
    /// an overlay of `nodes` nodes if the registry knows; `None`: place it at random (the
    /// groups would number no power of two, or the group is too large).
    pub(super) fn propose(
        &mut self,
        group: GroupTag,
        space: u64,
        nodes: Option<usize>,
    ) -> Option<NodeId> {
        let size = group.size.max(1);
        if size > PLACEMENT_GROUP_NODES_MAX {
            return None;
        }
        if let Some(nodes) = nodes {
            let groups = (nodes + size as usize / 2) / size as usize;
            if !groups.max(1).is_power_of_two() {
                return None;
            }
        }
        if self.groups.len() >= PLACEMENT_GROUPS_MAX && !self.groups.contains_key(&group.token) {
            self.groups.clear();
        }
        let next_index = &mut self.next_index;
        let seen = self.groups.entry(group.token).or_insert_with(|| {
            let index = *next_index;
            *next_index = next_index.wrapping_add(1);
            Seen { index, placed: 0 }
        });
        let slot = seen.placed % size;
        seen.placed = seen.placed.wrapping_add(1);
        // slot < size and offset < 2^32, so the ID is below `space`.
        let at = (u128::from(slot) << 32) + u128::from(offset(seen.index));
        Some((u128::from(space) * at / (u128::from(size) << 32)) as NodeId)
    }
}

/// Group `index`'s place within each group's share of the ID space, as a fraction of 2^32:
/// its bits reversed (0, 1/2, 1/4, 3/4, 1/8, 5/8, ...).
fn offset(index: u32) -> u32 {
    index.reverse_bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(token: u64, size: u32) -> GroupTag {
        GroupTag { token, size }
    }

    /// Groups of equal size whose count is a power of two take the ring's positions in a
    /// fixed order repeating every `groups` positions, whatever order their nodes register
    /// in: a hop of a multiple of `groups` positions stays in its group.
    #[test]
    fn groups_interleave_on_the_ring() {
        for (groups, size, bits) in [(2u64, 32u32, 7u32), (4, 16, 7), (16, 64, 11), (2, 4, 3)] {
            let mut placement = Placement::default();
            let mut ring = Vec::new();
            // Registrations arrive interleaved unevenly: group g's nodes in turns of g + 1.
            let mut left: Vec<u32> = vec![size; groups as usize];
            while left.iter().any(|&l| l > 0) {
                for g in 0..groups {
                    for _ in 0..=g {
                        if left[g as usize] > 0 {
                            left[g as usize] -= 1;
                            let nodes = Some(groups as usize * size as usize);
                            let id = placement
                                .propose(group(100 + g, size), 1 << bits, nodes)
                                .expect("a power of two of groups");
                            assert!(u64::from(id) < 1 << bits);
                            ring.push((id, g));
                        }
                    }
                }
            }
            ring.sort_unstable();
            let ids: std::collections::BTreeSet<_> = ring.iter().map(|&(id, _)| id).collect();
            assert_eq!(ids.len(), ring.len(), "{groups} groups: distinct IDs");
            for (position, &(_, g)) in ring.iter().enumerate() {
                let same = ring[(position + groups as usize) % ring.len()].1;
                assert_eq!(g, same, "{groups} groups of {size}: position {position}");
                if groups > 1 {
                    assert_ne!(g, ring[(position + 1) % ring.len()].1);
                }
            }
        }
    }

    /// More nodes than a group said it has wrap around onto its IDs (the registry then
    /// draws free ones); the map of groups never holds more than its bound.
    #[test]
    fn placement_stays_in_the_space_and_bounded() {
        let mut placement = Placement::default();
        let mut propose = |token, size, space| placement.propose(group(token, size), space, None);
        let first = propose(1, 2, 128);
        let second = propose(1, 2, 128);
        assert_eq!((first, second), (Some(0), Some(64)));
        assert_eq!(propose(1, 2, 128), first, "a third node of two");
        assert_eq!(propose(2, 2, 128), Some(32), "the next group between");
        assert_eq!(propose(3, 1, 1 << 32), Some(1 << 30));
        for token in 0..2 * PLACEMENT_GROUPS_MAX as u64 {
            let id = placement.propose(group(10 + token, 100), 1 << 14, None);
            assert!(id.is_some_and(|id| id < 1 << 14));
            assert!(placement.groups.len() <= PLACEMENT_GROUPS_MAX);
        }
    }

    /// Knowing the overlay's size, the registry places groups only when they number a power
    /// of two (N / K rounded: sizes that differ by one, as launchers spread nodes, count as
    /// the same), and never groups of more than `PLACEMENT_GROUP_NODES_MAX` nodes.
    #[test]
    fn groups_that_number_no_power_of_two_are_placed_at_random() {
        let mut placement = Placement::default();
        for (nodes, size, placed) in [
            (64, 32, true),
            (64, 11, false),
            (1024, 52, false),
            (1024, 51, false),
            (1024, 64, true),
            (9, 5, true),
            (9, 4, true),
            (10, 5, true),
            (30, 10, false),
            (3, 3, true),
            (256, 128, true),
            (512, 256, false),
            (1000, 500, false),
        ] {
            assert_eq!(
                placement
                    .propose(group(nodes as u64, size), 1 << 16, Some(nodes))
                    .is_some(),
                placed,
                "{nodes} nodes in groups of {size}"
            );
        }
    }
}
