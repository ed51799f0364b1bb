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
//! no power of two no hop of 2^k positions would stay in its process that way (2^k is no
//! multiple of G), which measured slower than IDs at random. So when the registry knows the
//! overlay's size N (scripted, `--nodes`), it splits the ring into arcs, one for each bit set
//! in G = N / K (rounded, of the first group placed), each as wide as its share of the
//! groups and holding a power of two of them interleaved as above ([`arc_of`]): with 20
//! groups, arcs of 16 and 4, in which a hop of 2^k positions stays in its process unless it
//! leaves its arc (about half the hops of 1,024 nodes in 20 processes, against one in 20 at
//! random; docs/PERFORMANCE.md, "Layout and placement"). It does not place the nodes of a
//! process of more than [`PLACEMENT_GROUP_NODES_MAX`]: in-memory hand-overs between hundreds
//! of nodes cost more than the trunk crossings placement saves. An ID that is taken (another
//! group's, a node that left) is not proposed twice: the registry draws one at random
//! instead, as it does for nodes that name no group.

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
    /// When the registry knows the overlay's size N: how many groups it will have (N / K of
    /// the first group placed, K its size, rounded) and the slots each group's nodes are
    /// spread over (N / groups, rounded up, or the group's size if larger), kept for every
    /// later group so that all of them share one layout ([`arc_of`]): a group smaller than
    /// the rest (a launcher's last process) leaves its last slots empty, at the end of its
    /// arc, instead of spacing its nodes wider and shifting its arc's pattern at every node.
    expected: Option<Expected>,
}

#[derive(Debug, Clone, Copy)]
struct Expected {
    groups: u32,
    slots: u32,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    index: u32,
    placed: u32,
}

impl Placement {
    /// The ID for the next node of `group` in an ID space of `space` IDs (at most 2^32), in
    /// an overlay of `nodes` nodes if the registry knows; `None`: place it at random (the
    /// group is too large, or one more than the overlay's size allows for).
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
        let expected = nodes.map(|nodes| {
            *self.expected.get_or_insert_with(|| {
                let groups = ((nodes + size as usize / 2) / size as usize).max(1);
                Expected {
                    groups: u32::try_from(groups).unwrap_or(u32::MAX),
                    slots: u32::try_from(nodes.div_ceil(groups)).unwrap_or(u32::MAX),
                }
            })
        });
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
        // Interleaved over the whole ring when the groups' number is not known: an arc of
        // every group there is, each new one in the widest gaps.
        let (before, width, total, rank, slots) = match expected {
            Some(Expected { groups, slots }) => {
                let (before, width) = arc_of(seen.index, groups)?;
                (before, width, groups, seen.index - before, slots.max(size))
            }
            None => (0, 1, 1, seen.index, size),
        };
        // The node's place as a fraction of the space: its arc's start, then within the arc
        // its slot and its group's offset. Every factor is below 2^32 and `slot < slots`,
        // `before + width <= total`, so the ID is below `space`.
        let within = (u128::from(slot) << 32) + u128::from(offset(rank));
        let at = ((u128::from(before) * u128::from(slots)) << 32) + u128::from(width) * within;
        let whole = (u128::from(total) * u128::from(slots)) << 32;
        Some((u128::from(space) * at / whole) as NodeId)
    }
}

/// The arc of the ring group `index` goes to when `groups` groups are expected, as (groups
/// before it, groups in it): one arc for each bit set in `groups`, largest first, each
/// holding a power of two of groups interleaved, and each as wide as its groups' share. With
/// `groups` a power of two that is one arc, the whole ring, where a hop of 2^k positions stays
/// in its process for every 2^k at or above `groups`; with 20 groups, arcs of 16 and 4 groups,
/// in which such a hop stays unless it leaves its arc. `None` past the expected groups.
fn arc_of(index: u32, groups: u32) -> Option<(u32, u32)> {
    let mut before = 0;
    for bit in (0..u32::BITS).rev() {
        let width = 1 << bit;
        if groups & width == 0 {
            continue;
        }
        if index < before + width {
            return Some((before, width));
        }
        before += width;
    }
    None
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

    /// One arc for each bit set in the expected number of groups, largest first.
    #[test]
    fn arcs_follow_the_bits_of_the_number_of_groups() {
        assert_eq!(arc_of(0, 1), Some((0, 1)));
        assert_eq!(arc_of(1, 1), None);
        assert_eq!(arc_of(15, 16), Some((0, 16)));
        assert_eq!(arc_of(15, 20), Some((0, 16)));
        assert_eq!(arc_of(16, 20), Some((16, 4)));
        assert_eq!(arc_of(19, 20), Some((16, 4)));
        assert_eq!(arc_of(20, 20), None);
        assert_eq!(arc_of(3, 6), Some((0, 4)));
        assert_eq!(arc_of(5, 6), Some((4, 2)));
        assert_eq!(arc_of(4, 5), Some((4, 1)));
        assert_eq!(arc_of(6, 7), Some((6, 1)));
    }

    /// The ring of `sizes.len()` groups of those sizes placed in an overlay of their sum,
    /// registering in turns: each position's group, and how many proposed IDs were taken.
    fn placed_ring(sizes: &[u32], bits: u32) -> (Vec<usize>, usize) {
        let nodes: u32 = sizes.iter().sum();
        let mut placement = Placement::default();
        let mut ring = Vec::new();
        let mut taken = std::collections::BTreeSet::new();
        let mut moved = 0;
        let mut left = sizes.to_vec();
        while left.iter().any(|&l| l > 0) {
            for (g, left) in left.iter_mut().enumerate() {
                if *left > 0 {
                    *left -= 1;
                    let mut id = placement
                        .propose(
                            group(100 + g as u64, sizes[g]),
                            1 << bits,
                            Some(nodes as usize),
                        )
                        .expect("placed");
                    assert!(u64::from(id) < 1 << bits);
                    // Taken (groups of different sizes meet): the registry draws a free ID
                    // at random; here the next free one.
                    if !taken.insert(id) {
                        moved += 1;
                        while !taken.insert(id) {
                            id = (id + 1) % (1 << bits);
                        }
                    }
                    ring.push((id, g));
                }
            }
        }
        ring.sort_unstable();
        (ring.into_iter().map(|(_, g)| g).collect(), moved)
    }

    /// Of the hops of 2^k positions for every k below log2 of the ring, the share that stays
    /// in its group.
    fn in_group(ring: &[usize]) -> f64 {
        let (mut stay, mut all) = (0, 0);
        let mut hop = 1;
        while hop < ring.len() {
            for (position, &g) in ring.iter().enumerate() {
                all += 1;
                stay += usize::from(ring[(position + hop) % ring.len()] == g);
            }
            hop *= 2;
        }
        stay as f64 / all as f64
    }

    /// Groups that number no power of two go into arcs, one for each bit of their number,
    /// each a power of two of groups interleaved: most hops of 2^k positions stay in their
    /// process (at random: one in G), and no two neighbours on the ring share a process
    /// except within an arc of one group. Sizes that differ (a launcher's last process holds
    /// the rest) keep the layout of the first group placed.
    #[test]
    fn groups_that_number_no_power_of_two_are_placed_in_arcs() {
        for (sizes, bits, share) in [
            (vec![52; 20], 11, 0.5),
            // As tools/launch.sh spreads 1,024 nodes over 20 processes, and 64 over 6.
            ([vec![52; 4], vec![51; 16]].concat(), 11, 0.45),
            ([vec![51; 16], vec![52; 4]].concat(), 11, 0.45),
            ([vec![11; 4], vec![10; 2]].concat(), 7, 0.4),
            ([vec![52; 19], vec![36]].concat(), 11, 0.4),
            // The smaller group first: the layout is made for 28 groups of 37 (its N / K), and
            // holds less, but still more than at random (0.05).
            ([vec![36], vec![52; 19]].concat(), 11, 0.15),
            (vec![11; 6], 7, 0.4),
            ([vec![11; 5], vec![9]].concat(), 7, 0.35),
            (vec![10; 3], 6, 0.5),
            (vec![64; 16], 11, 0.55),
        ] {
            let (ring, moved) = placed_ring(&sizes, bits);
            if sizes.iter().all(|&s| s == sizes[0]) {
                assert_eq!(moved, 0, "{sizes:?}: equal groups' IDs are distinct");
            }
            let measured = in_group(&ring);
            // The shares docs/ARCHITECTURE.md quotes (`-- --nocapture` shows them).
            eprintln!(
                "{} groups {sizes:?}: {measured:.3} of hops in their group",
                sizes.len()
            );
            assert!(
                measured >= share,
                "{} groups ({sizes:?}): {measured:.3} of hops in their group",
                sizes.len()
            );
            if sizes.len() % 2 == 0 && sizes.iter().all(|&s| s == sizes[0]) {
                for (position, &g) in ring.iter().enumerate() {
                    assert_ne!(
                        g,
                        ring[(position + 1) % ring.len()],
                        "{sizes:?} at {position}"
                    );
                }
            }
        }
    }

    /// Knowing the overlay's size, the registry never places groups of more than
    /// `PLACEMENT_GROUP_NODES_MAX` nodes, nor more groups than the size allows for.
    #[test]
    fn large_groups_and_groups_past_the_expected_ones_are_placed_at_random() {
        for (nodes, size, placed) in [
            (64, 32, true),
            (1024, 52, true),
            (256, 128, true),
            (512, 256, false),
            (1000, 500, false),
        ] {
            let mut placement = Placement::default();
            assert_eq!(
                placement
                    .propose(group(1, size), 1 << 16, Some(nodes))
                    .is_some(),
                placed,
                "{nodes} nodes in groups of {size}"
            );
        }
        let mut placement = Placement::default();
        for token in 0..2 {
            assert!(
                placement
                    .propose(group(token, 3), 1 << 8, Some(6))
                    .is_some()
            );
        }
        let third = placement.propose(group(2, 3), 1 << 8, Some(6));
        assert_eq!(third, None, "a third group of 3 in 6 nodes");
    }
}
