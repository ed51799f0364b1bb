//! The members of an overlay by identifier: the sorted ring, who owns a key, and the two ways
//! identifiers are assigned (at random, or as a hash of the node's address).

use super::id::{Id, IdSpace};

/// Every member's identifier, sorted and distinct, in one identifier space. A member is named
/// by its position in this order (0..len), which is what finger tables store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    space: IdSpace,
    ids: Vec<Id>,
}

impl Membership {
    /// The membership of `ids` (any order). Refuses fewer than 2 members (a ring needs a
    /// successor other than oneself), duplicates, and identifiers outside the space.
    pub fn new(space: IdSpace, mut ids: Vec<Id>) -> Result<Membership, String> {
        if ids.len() < 2 {
            return Err(format!(
                "a ring needs at least 2 members, not {}",
                ids.len()
            ));
        }
        if ids.len() > u32::MAX as usize {
            return Err(format!("{} members do not fit u32 positions", ids.len()));
        }
        if let Some(id) = ids.iter().find(|&&id| !space.contains(id)) {
            return Err(format!(
                "identifier {id:x} is outside the {}-bit space",
                space.bits()
            ));
        }
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!("identifier {:x} is given twice", pair[0]));
        }
        Ok(Membership { space, ids })
    }

    /// `nodes` distinct identifiers drawn uniformly at random.
    pub fn random(
        space: IdSpace,
        nodes: usize,
        rng: &mut impl rand::Rng,
    ) -> Result<Membership, String> {
        check_room(space, nodes)?;
        let mut ids = Vec::with_capacity(nodes);
        while ids.len() < nodes {
            while ids.len() < nodes {
                ids.push(space.random(rng));
            }
            // Draws that collide are dropped and drawn again: the survivors stay uniform.
            ids.sort_unstable();
            ids.dedup();
        }
        Membership::new(space, ids)
    }

    /// The identifiers of nodes at `addresses` (for example "10.0.0.7:4000"), each the first
    /// m bits of SHA-256 of its address, as Chord's consistent hashing. Distinct addresses
    /// that hash to one identifier (likely only in small spaces) are made unique: the later
    /// one, in the given order, hashes its address followed by a counter 1, 2, ... until its
    /// identifier is free. Returns the identifier of each address, in the given order, too.
    pub fn hashed<A: AsRef<[u8]>>(
        space: IdSpace,
        addresses: &[A],
    ) -> Result<(Membership, Vec<Id>), String> {
        check_room(space, addresses.len())?;
        let mut taken = std::collections::HashSet::with_capacity(addresses.len());
        let mut assigned = Vec::with_capacity(addresses.len());
        for address in addresses {
            let address = address.as_ref();
            let mut id = space.hash(address);
            let mut counter = 0u64;
            while !taken.insert(id) {
                counter += 1;
                let mut salted = address.to_vec();
                salted.extend_from_slice(&counter.to_be_bytes());
                id = space.hash(&salted);
            }
            assigned.push(id);
        }
        Ok((Membership::new(space, assigned.clone())?, assigned))
    }

    pub fn space(&self) -> IdSpace {
        self.space
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Always false: a membership has at least 2 members.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn ids(&self) -> &[Id] {
        &self.ids
    }

    /// The identifier of the member at `position`.
    #[inline]
    pub fn id(&self, position: usize) -> Id {
        self.ids[position]
    }

    /// The position of the member with identifier `id`, if there is one.
    pub fn position(&self, id: Id) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// The owner of `key`: successor(key), the first member at or after it clockwise.
    #[inline]
    pub fn successor(&self, key: Id) -> usize {
        let at = self.ids.partition_point(|&id| id < key);
        if at == self.ids.len() { 0 } else { at }
    }

    /// The member before `position` clockwise.
    #[inline]
    pub fn predecessor_of(&self, position: usize) -> usize {
        (position + self.ids.len() - 1) % self.ids.len()
    }

    /// Positions from `from` clockwise to `to`.
    #[inline]
    pub fn positions_between(&self, from: usize, to: usize) -> usize {
        (to + self.ids.len() - from) % self.ids.len()
    }
}

/// Refuses more nodes than the space has identifiers (or than a ring can hold).
fn check_room(space: IdSpace, nodes: usize) -> Result<(), String> {
    if space.bits() < 64 && nodes as u64 > 1u64 << space.bits() {
        return Err(format!(
            "{nodes} nodes need {nodes} distinct identifiers, but a {}-bit space has {}",
            space.bits(),
            1u64 << space.bits()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn space(bits: u32) -> IdSpace {
        IdSpace::new(bits).unwrap()
    }

    fn ids(values: &[u128]) -> Vec<Id> {
        values.iter().map(|&v| Id::from(v)).collect()
    }

    #[test]
    fn successor_owns_the_keys_up_to_it_and_wraps() {
        let ring = Membership::new(space(7), ids(&[97, 4, 18, 19, 33, 60, 82, 119])).unwrap();
        assert_eq!(ring.ids()[0], Id::from(4));
        let owner = |key: u128| ring.id(ring.successor(Id::from(key)));
        assert_eq!(owner(4), Id::from(4));
        assert_eq!(owner(5), Id::from(18));
        assert_eq!(owner(19), Id::from(19));
        assert_eq!(owner(120), Id::from(4));
        assert_eq!(owner(127), Id::from(4));
        assert_eq!(owner(0), Id::from(4));
        assert_eq!(ring.predecessor_of(0), 7);
        assert_eq!(ring.positions_between(6, 1), 3);
    }

    #[test]
    fn refuses_what_is_not_a_ring() {
        assert!(Membership::new(space(7), ids(&[3])).is_err());
        assert!(Membership::new(space(7), ids(&[3, 3])).is_err());
        assert!(Membership::new(space(7), ids(&[3, 128])).is_err());
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        assert!(Membership::random(space(3), 9, &mut rng).is_err());
        assert!(Membership::hashed(space(1), &["a", "b", "c"]).is_err());
    }

    #[test]
    fn random_ids_fill_even_a_full_space() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let ring = Membership::random(space(3), 8, &mut rng).unwrap();
        assert_eq!(ring.ids(), &ids(&[0, 1, 2, 3, 4, 5, 6, 7])[..]);
        let ring = Membership::random(space(160), 1000, &mut rng).unwrap();
        assert_eq!(ring.len(), 1000);
    }

    #[test]
    fn hashed_ids_are_unique_even_when_hashes_collide() {
        // 16 addresses in a 4-bit space: collisions are certain, every ID is still used once.
        let addresses: Vec<String> = (0..16).map(|i| format!("10.0.0.{i}:4000")).collect();
        let (ring, assigned) = Membership::hashed(space(4), &addresses).unwrap();
        assert_eq!(ring.len(), 16);
        assert_eq!(assigned[0], space(4).hash(addresses[0].as_bytes()));
        for (address, id) in addresses.iter().zip(&assigned) {
            assert_eq!(
                ring.position(*id).map(|p| ring.id(p)),
                Some(*id),
                "{address}"
            );
        }
        // Deterministic: the same addresses give the same identifiers.
        assert_eq!(
            Membership::hashed(space(4), &addresses).unwrap().1,
            assigned
        );
        let (wide, _) = Membership::hashed(space(160), &addresses).unwrap();
        assert!(wide.ids().contains(&space(160).hash(b"10.0.0.3:4000")));
    }
}
