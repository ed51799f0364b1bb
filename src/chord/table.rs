//! Finger tables under either finger rule, and the next hop toward a key.
//!
//! Both rules route a key to its owner, successor(key), and answer the same question at every
//! node ([`FingerTable::next_hop`]): am I the owner, or on which entry does the packet go?
//! A node-addressed packet is routed by its sink's identifier, which its sink owns.
//!
//! - **Positions** (the reference's rule, `src/routing.rs`): entry i is the member 2^i
//!   positions ahead; a packet goes on the entry with the largest 2^i not beyond the owner.
//! - **Chord** (Stoica et al., SIGCOMM 2001): finger i is successor(n + 2^i mod 2^m) for
//!   i = 0..m-1, duplicates (and n itself) removed; a key in (n, successor(n)] is delivered
//!   at the successor, any other goes to the closest preceding finger: the finger furthest
//!   clockwise strictly before the key.

use super::id::{Id, IdSpace};
use super::membership::Membership;
use crate::limits::CHORD_ID_BITS_MAX;
use crate::routing::{check_nr, entry_for_distance};

/// Which rule builds the tables and picks the next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FingerRule {
    /// Entry i = the member 2^i positions ahead, NR entries.
    Positions { nr: usize },
    /// Finger i = successor(n + 2^i mod 2^m), distinct fingers only.
    Chord,
}

impl FingerRule {
    pub fn name(self) -> &'static str {
        match self {
            FingerRule::Positions { .. } => "positions",
            FingerRule::Chord => "chord",
        }
    }
}

/// What a node does with a packet for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This node owns the key: deliver here.
    Owner,
    /// The entry at this index owns the key: send it there, where it is delivered.
    Deliver(usize),
    /// Send it on the entry at this index, which routes it further.
    Forward(usize),
}

/// One node's table under one rule: what a messaging node holds to route.
#[derive(Debug, Clone)]
pub enum FingerTable {
    Positions(PositionTable),
    Chord(ChordTable),
}

impl FingerTable {
    /// The table of the member at `position` under `rule`.
    pub fn new(
        rule: FingerRule,
        membership: &Membership,
        position: usize,
    ) -> Result<FingerTable, String> {
        Ok(match rule {
            FingerRule::Positions { nr } => {
                FingerTable::Positions(PositionTable::new(membership, position, nr)?)
            }
            FingerRule::Chord => FingerTable::Chord(ChordTable::new(membership, position)),
        })
    }

    /// The table of every member, in member order.
    pub fn all(rule: FingerRule, membership: &Membership) -> Result<Vec<FingerTable>, String> {
        (0..membership.len())
            .map(|position| FingerTable::new(rule, membership, position))
            .collect()
    }

    /// The members the entries point at (positions in the membership), distinct, in
    /// clockwise order from this node; entry 0 is the successor.
    pub fn entries(&self) -> &[u32] {
        match self {
            FingerTable::Positions(table) => &table.entries,
            FingerTable::Chord(table) => &table.entries,
        }
    }

    /// What to do with a packet for `key` here. Allocation-free; O(log entries) for Chord,
    /// O(log members) for positions (it finds the owner's position).
    #[inline]
    pub fn next_hop(&self, membership: &Membership, key: Id) -> Step {
        match self {
            FingerTable::Positions(table) => table.next_hop(membership, key),
            FingerTable::Chord(table) => table.next_hop(membership.space(), key),
        }
    }
}

/// A table of the position rule.
#[derive(Debug, Clone)]
pub struct PositionTable {
    position: usize,
    nr: usize,
    entries: Vec<u32>,
}

impl PositionTable {
    /// Entry i = the member 2^i positions after `position`, i < `nr`; refuses an NR whose
    /// entries would repeat a member or point back at the node (`routing::check_nr`).
    pub fn new(membership: &Membership, position: usize, nr: usize) -> Result<Self, String> {
        check_nr(membership.len(), nr)?;
        let entries = (0..nr)
            .map(|i| ((position + (1 << i)) % membership.len()) as u32)
            .collect();
        Ok(PositionTable {
            position,
            nr,
            entries,
        })
    }

    #[inline]
    fn next_hop(&self, membership: &Membership, key: Id) -> Step {
        let owner = membership.successor(key);
        let distance = membership.positions_between(self.position, owner);
        if distance == 0 {
            return Step::Owner;
        }
        let entry = entry_for_distance(distance, self.nr);
        if 1 << entry == distance {
            Step::Deliver(entry)
        } else {
            Step::Forward(entry)
        }
    }
}

/// A table of the Chord rule: distinct fingers with their clockwise distances.
#[derive(Debug, Clone)]
pub struct ChordTable {
    self_id: Id,
    /// Clockwise distance from the predecessor to this node: the node owns the keys at a
    /// distance below this before it, (predecessor, self].
    owned_span: Id,
    /// The fingers' members, distinct, by increasing distance.
    entries: Box<[u32]>,
    /// `distances[i]` = clockwise distance from this node to `entries[i]`, strictly
    /// increasing and never zero.
    distances: Box<[Id]>,
    /// `level_entries[i]` = the entry of finger i, successor(n + 2^i), for every i whose
    /// finger is not n itself. The closest preceding finger of a key at distance d is finger
    /// floor(log2 d) or the entry before it, so a lookup reads one entry here and one distance
    /// instead of searching all the distances (each a likely cache miss in a large simulation).
    level_entries: Box<[u8]>,
}

impl ChordTable {
    /// The fingers of the member at `position`: successor(n + 2^i) for i = 0..m-1, each
    /// distinct one once, the node itself never.
    pub fn new(membership: &Membership, position: usize) -> ChordTable {
        let space = membership.space();
        let self_id = membership.id(position);
        let predecessor = membership.id(membership.predecessor_of(position));
        let mut entries = Vec::new();
        let mut distances: Vec<Id> = Vec::new();
        let mut level_entries = Vec::new();
        for i in 0..space.bits() {
            let span = space.power_of_two(i);
            // Finger i - 1 lies at least 2^i ahead: no member starts in between, so finger
            // i is the same member. Only about log2(N) fingers need a search.
            if distances.last().is_none_or(|&last| span > last) {
                let finger = membership.successor(space.add(self_id, span));
                if finger == position {
                    // No member in [n + 2^i, n): every further finger wraps back to n too.
                    break;
                }
                entries.push(finger as u32);
                distances.push(space.distance(self_id, membership.id(finger)));
            }
            level_entries.push((entries.len() - 1) as u8);
        }
        debug_assert!(distances.windows(2).all(|pair| pair[0] < pair[1]));
        const _: () = assert!(CHORD_ID_BITS_MAX <= u8::MAX as u32 + 1);
        ChordTable {
            self_id,
            owned_span: space.distance(predecessor, self_id),
            entries: entries.into(),
            distances: distances.into(),
            level_entries: level_entries.into(),
        }
    }

    /// The fingers' clockwise distances from this node, increasing.
    pub fn distances(&self) -> &[Id] {
        &self.distances
    }

    #[inline]
    fn next_hop(&self, space: IdSpace, key: Id) -> Step {
        if space.distance(key, self.self_id) < self.owned_span {
            return Step::Owner;
        }
        let distance = space.distance(self.self_id, key);
        if distance <= self.distances[0] {
            return Step::Deliver(0);
        }
        // The closest preceding finger, the last one strictly before the key. Finger L, for
        // L = floor(log2 distance), is the first entry at least 2^L ahead: every earlier entry
        // precedes the key, every later one lies at least 2^(L+1) > distance ahead. Without a
        // finger L (it would be n itself), every entry precedes the key. Entry 0 precedes it
        // (checked above), so entry - 1 is never below 0.
        let level = distance
            .ilog2()
            .expect("a distance beyond finger 0 is not zero") as usize;
        let entry = self
            .level_entries
            .get(level)
            .map_or(self.entries.len(), |&entry| usize::from(entry));
        if entry < self.entries.len() && self.distances[entry] < distance {
            Step::Forward(entry)
        } else {
            Step::Forward(entry - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(bits: u32, values: &[u128]) -> Membership {
        let space = IdSpace::new(bits).unwrap();
        Membership::new(space, values.iter().map(|&v| Id::from(v)).collect()).unwrap()
    }

    fn finger_ids(ring: &Membership, table: &FingerTable) -> Vec<u128> {
        table
            .entries()
            .iter()
            .map(|&p| {
                let bytes = ring.id(p as usize).to_be_bytes();
                u128::from_be_bytes(bytes[4..].try_into().unwrap())
            })
            .collect()
    }

    /// The Chord paper's Fig. 3(b) ring: m = 3, nodes 0, 1, 3.
    #[test]
    fn paper_figure_3_fingers() {
        let ring = ring(3, &[0, 1, 3]);
        let tables = FingerTable::all(FingerRule::Chord, &ring).unwrap();
        // Node 0: successor(1) = 1, successor(2) = 3, successor(4) = 0 (itself: dropped).
        assert_eq!(finger_ids(&ring, &tables[0]), [1, 3]);
        // Node 1: successor(2) = 3, successor(3) = 3 (duplicate), successor(5) = 0.
        assert_eq!(finger_ids(&ring, &tables[1]), [3, 0]);
        // Node 3: successor(4) = 0, successor(5) = 0, successor(7) = 0.
        assert_eq!(finger_ids(&ring, &tables[2]), [0]);
    }

    #[test]
    fn fingers_by_hand_on_a_7_bit_ring() {
        let ring = ring(7, &[4, 18, 19, 33, 60, 82, 97, 119]);
        let table = FingerTable::new(FingerRule::Chord, &ring, 0).unwrap();
        // 4 + 1, 2, 4, 8 -> 18; + 16 = 20 -> 33; + 32 = 36 -> 60; + 64 = 68 -> 82.
        assert_eq!(finger_ids(&ring, &table), [18, 33, 60, 82]);
        let table = FingerTable::new(FingerRule::Chord, &ring, 7).unwrap();
        // 119 + 1..8 -> 120..127 -> 4 (wraps); + 16 = 7 -> 18; + 32 = 23 -> 33; + 64 = 55 -> 60.
        assert_eq!(finger_ids(&ring, &table), [4, 18, 33, 60]);
        let FingerTable::Chord(chord) = &table else {
            unreachable!()
        };
        assert_eq!(chord.distances(), [13, 27, 42, 69].map(Id::from).as_slice());
    }

    #[test]
    fn next_hop_delivers_at_the_successor_and_forwards_to_the_closest_preceding_finger() {
        let ring = ring(7, &[4, 18, 19, 33, 60, 82, 97, 119]);
        let table = FingerTable::new(FingerRule::Chord, &ring, 0).unwrap();
        let hop = |key: u128| table.next_hop(&ring, Id::from(key));
        assert_eq!(hop(4), Step::Owner);
        assert_eq!(hop(120), Step::Owner); // (119, 4] wraps
        assert_eq!(hop(0), Step::Owner);
        assert_eq!(hop(5), Step::Deliver(0));
        assert_eq!(hop(18), Step::Deliver(0));
        assert_eq!(hop(19), Step::Forward(0)); // 18 precedes 19
        assert_eq!(hop(33), Step::Forward(0)); // 33 is a finger but not before 33
        assert_eq!(hop(34), Step::Forward(1));
        assert_eq!(hop(83), Step::Forward(3));
        assert_eq!(hop(119), Step::Forward(3));
    }

    #[test]
    fn positions_rule_keeps_the_reference_tables() {
        // docs/PROTOCOL.md example B, as routing.rs checks it.
        let ring = ring(7, &[4, 18, 19, 33, 60, 82, 97, 119]);
        let table = FingerTable::new(FingerRule::Positions { nr: 3 }, &ring, 6).unwrap();
        assert_eq!(finger_ids(&ring, &table), [119, 4, 19]);
        assert_eq!(table.next_hop(&ring, Id::from(82)), Step::Forward(2));
        assert_eq!(table.next_hop(&ring, Id::from(4)), Step::Deliver(1));
        assert_eq!(table.next_hop(&ring, Id::from(97)), Step::Owner);
        // A key between members goes to its owner: 83 is owned by 97, here.
        assert_eq!(table.next_hop(&ring, Id::from(83)), Step::Owner);
        assert!(FingerTable::new(FingerRule::Positions { nr: 4 }, &ring, 0).is_err());
    }

    #[test]
    fn two_members_at_160_bits() {
        let space = IdSpace::new(160).unwrap();
        let ring = Membership::new(space, vec![Id::ZERO, space.max()]).unwrap();
        let tables = FingerTable::all(FingerRule::Chord, &ring).unwrap();
        assert_eq!(tables[0].entries(), [1]);
        assert_eq!(tables[1].entries(), [0]);
        assert_eq!(
            tables[0].next_hop(&ring, space.power_of_two(159)),
            Step::Deliver(0)
        );
        assert_eq!(
            tables[1].next_hop(&ring, space.power_of_two(159)),
            Step::Owner
        );
        assert_eq!(tables[1].next_hop(&ring, Id::ZERO), Step::Deliver(0));
    }
}
