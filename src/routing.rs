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

use crate::limits::{DENSE_INDEX_MAX, ID_BITS_DEFAULT, NR_MAX, TRACE_SLOTS_MAX};
use crate::wire::NodeId;

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
    let largest = 1u64 << (nr - 1);
    distance / largest + u64::from((distance % largest).count_ones())
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

/// A node's view of the ring for routing: where every ID sits, in O(1).
#[derive(Debug, Clone)]
pub struct Router {
    ring: Ring,
    nr: usize,
    self_position: usize,
    /// Dense position index over IDs 0..=max (when the IDs are not too sparse to allow it).
    positions: Option<Vec<u32>>,
    /// Dense next-hop table over IDs 0..=max: the entry for each sink, [`NO_HOP`] for unknown
    /// IDs and ourselves. One load per relayed frame.
    next_hops: Option<Vec<u8>>,
    /// The relays of the route from every position to us, back to back (built once, so a
    /// sink checks a packet's trace with one slice comparison).
    routes_in: Vec<NodeId>,
    /// `routes_in[routes_in_start[p]..routes_in_start[p + 1]]` is the route from position p.
    routes_in_start: Vec<u32>,
}

const ABSENT: u32 = u32::MAX;
const NO_HOP: u8 = u8::MAX;
const _: () = assert!(NR_MAX < NO_HOP as usize);

impl Router {
    /// The router of node `self_id`, whose table has `nr` entries. `None` if `self_id` is not
    /// in the ring.
    pub fn new(ring: Ring, nr: usize, self_id: NodeId) -> Option<Router> {
        let self_position = ring.position(self_id)?;
        let max = ring.ids().last().copied().unwrap_or(0);
        let positions = (u64::from(max) < DENSE_INDEX_MAX).then(|| {
            let mut index = vec![ABSENT; max as usize + 1];
            for (position, id) in ring.ids().iter().enumerate() {
                index[*id as usize] = position as u32;
            }
            index
        });
        let next_hops = positions.as_ref().map(|index| {
            index
                .iter()
                .map(|&position| {
                    if position == ABSENT || position as usize == self_position {
                        NO_HOP
                    } else {
                        let distance = ring.distance(self_position, position as usize);
                        entry_for_distance(distance, nr) as u8
                    }
                })
                .collect()
        });
        let mut routes_in = Vec::new();
        let mut routes_in_start = Vec::with_capacity(ring.len() + 1);
        for from in 0..ring.len() {
            routes_in_start.push(routes_in.len() as u32);
            if from != self_position {
                ring.relays(from, self_position, nr, &mut routes_in);
            }
        }
        routes_in_start.push(routes_in.len() as u32);
        Some(Router {
            ring,
            nr,
            self_position,
            positions,
            next_hops,
            routes_in,
            routes_in_start,
        })
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn nr(&self) -> usize {
        self.nr
    }

    pub fn self_position(&self) -> usize {
        self.self_position
    }

    /// The position of `id`, if it is in the ring.
    #[inline]
    pub fn position(&self, id: NodeId) -> Option<usize> {
        match &self.positions {
            Some(index) => match index.get(id as usize) {
                Some(&position) if position != ABSENT => Some(position as usize),
                _ => None,
            },
            None => self.ring.position(id),
        }
    }

    /// The table entry to send a packet for `sink` on; `None` if `sink` is unknown or is us.
    #[inline]
    pub fn next_hop(&self, sink: NodeId) -> Option<usize> {
        if let Some(table) = &self.next_hops {
            return match table.get(sink as usize) {
                Some(&entry) if entry != NO_HOP => Some(usize::from(entry)),
                _ => None,
            };
        }
        let position = self.position(sink)?;
        let distance = self.ring.distance(self.self_position, position);
        (distance > 0).then(|| entry_for_distance(distance, self.nr))
    }

    /// The relays a packet from `source` to us must have passed, in order; `None` if `source`
    /// is unknown or is us.
    #[inline]
    pub fn expected_relays(&self, source: NodeId) -> Option<&[NodeId]> {
        self.expected_relays_from_position(self.position(source)?)
    }

    /// [`Router::expected_relays`] for the source at ring position `from`.
    #[inline]
    pub fn expected_relays_from_position(&self, from: usize) -> Option<&[NodeId]> {
        if from == self.self_position || from + 1 >= self.routes_in_start.len() {
            return None;
        }
        let start = self.routes_in_start[from] as usize;
        let end = self.routes_in_start[from + 1] as usize;
        Some(&self.routes_in[start..end])
    }

    /// The relays a packet from `source` to us must have passed, appended to `out`; false if
    /// `source` is unknown. (Computes the route; [`Router::expected_relays`] looks it up.)
    pub fn expected_relays_from(&self, source: NodeId, out: &mut Vec<NodeId>) -> bool {
        out.clear();
        match self.position(source) {
            Some(from) if from != self.self_position => {
                self.ring.relays(from, self.self_position, self.nr, out);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_for_a_node_count_fit_it() {
        assert_eq!(nr_for(2), 1);
        assert_eq!(nr_for(8), 3);
        assert_eq!(nr_for(10), 4);
        assert_eq!(nr_for(1000), 10);
        assert_eq!(nr_for(10_000), 14);
        assert_eq!(id_bits_for(100), ID_BITS_DEFAULT);
        assert_eq!(id_bits_for(129), 8);
        assert_eq!(id_bits_for(10_000), 14);
        for nodes in 2..=4096 {
            let nr = nr_for(nodes);
            assert!(check_overlay(nodes, nr).is_ok(), "{nodes} nodes, NR {nr}");
            // The next size up would not fit: ceil(log2 N) is the largest table.
            assert!(
                check_nr(nodes, nr + 1).is_err(),
                "{nodes} nodes, NR {}",
                nr + 1
            );
            assert!(1u64 << id_bits_for(nodes) >= nodes as u64);
        }
    }

    fn example_b() -> Ring {
        Ring::new(vec![97, 4, 18, 19, 33, 60, 82, 119])
    }

    #[test]
    fn example_a_tables() {
        let ring = Ring::new(vec![10, 21, 32, 43, 54, 61, 77, 87, 99, 101, 103]);
        assert_eq!(ring.table(ring.position(10).unwrap(), 3), [21, 32, 54]);
        assert_eq!(ring.table(ring.position(101).unwrap(), 3), [103, 10, 32]);
    }

    #[test]
    fn example_b_tables() {
        let ring = example_b();
        let expected: [(NodeId, [NodeId; 3]); 8] = [
            (4, [18, 19, 60]),
            (18, [19, 33, 82]),
            (19, [33, 60, 97]),
            (33, [60, 82, 119]),
            (60, [82, 97, 4]),
            (82, [97, 119, 18]),
            (97, [119, 4, 19]),
            (119, [4, 18, 33]),
        ];
        for (node, table) in expected {
            assert_eq!(
                ring.table(ring.position(node).unwrap(), 3),
                table,
                "node {node}"
            );
        }
    }

    #[test]
    fn route_97_to_82_goes_through_19_and_60() {
        let ring = example_b();
        let mut path = vec![97];
        let mut at = 97;
        while at != 82 {
            let router = Router::new(ring.clone(), 3, at).unwrap();
            let entry = router.next_hop(82).unwrap();
            at = ring.table(router.self_position(), 3)[entry];
            path.push(at);
        }
        assert_eq!(path, [97, 19, 60, 82]);
        let sink = Router::new(ring.clone(), 3, 82).unwrap();
        let mut relays = Vec::new();
        assert!(sink.expected_relays_from(97, &mut relays));
        assert_eq!(relays, [19, 60]);
        assert_eq!(sink.expected_relays(97), Some(&[19, 60][..]));
        assert_eq!(sink.expected_relays(82), None);
        assert_eq!(sink.expected_relays(5), None);
        // The table agrees with the computed routes everywhere.
        for nr in 1..=3 {
            for &node in ring.ids() {
                let router = Router::new(ring.clone(), nr, node).unwrap();
                for &source in ring.ids().iter().filter(|&&s| s != node) {
                    assert!(router.expected_relays_from(source, &mut relays));
                    assert_eq!(router.expected_relays(source), Some(&relays[..]));
                }
            }
        }
    }

    #[test]
    fn next_hop_matches_the_reference_rule_on_ids() {
        // The reference states the rule on ID distance mod 128; check both agree everywhere.
        let ring = Ring::new(vec![3, 9, 14, 40, 41, 42, 77, 90, 100, 126, 127]);
        for nr in 1..=4 {
            for &node in ring.ids() {
                let router = Router::new(ring.clone(), nr, node).unwrap();
                let table = ring.table(router.self_position(), nr);
                for &sink in ring.ids().iter().filter(|&&s| s != node) {
                    let dist = |e: NodeId| (e + 128 - node) % 128;
                    let reference = if table.contains(&sink) {
                        sink
                    } else {
                        *table
                            .iter()
                            .filter(|&&e| dist(e) < dist(sink))
                            .max_by_key(|&&e| dist(e))
                            .unwrap()
                    };
                    assert_eq!(table[router.next_hop(sink).unwrap()], reference);
                }
            }
        }
    }

    #[test]
    fn transmissions_formula() {
        assert_eq!(transmissions(1, 3), 1);
        assert_eq!(transmissions(3, 3), 2);
        assert_eq!(transmissions(7, 3), 3);
        assert_eq!(transmissions(9, 3), 3);
        assert_eq!(transmissions(127, 3), 33);
        assert_eq!(transmissions(63, 6), 6);
        assert_eq!(longest_path_relays(128, 3), 32);
        assert_eq!(longest_path_relays(10, 3), 2);
        assert_eq!(longest_path_relays(64, 6), 5);
        assert_eq!(longest_path_relays(2, 1), 0);
    }

    #[test]
    fn nr_bounds() {
        assert!(check_nr(10, 3).is_ok());
        assert!(check_nr(10, 4).is_ok()); // 8 <= 9
        assert!(check_nr(9, 4).is_ok());
        assert!(check_nr(8, 4).is_err()); // 8 positions ahead is the node itself
        assert!(check_nr(2, 1).is_ok());
        assert!(check_nr(1, 1).is_err());
        assert!(check_nr(10, 0).is_err());
        let message = check_nr(4, 3).unwrap_err();
        assert!(message.contains("use at most 2"), "{message}");
    }

    #[test]
    fn wide_ids_use_the_sparse_index() {
        let ring = Ring::new(vec![5, 1 << 30, u32::MAX]);
        let router = Router::new(ring, 1, 5).unwrap();
        assert!(router.positions.is_none() && router.next_hops.is_none());
        assert_eq!(router.next_hop(u32::MAX), Some(0));
        assert_eq!(router.next_hop(7), None);
        assert_eq!(router.next_hop(5), None);
    }
}
