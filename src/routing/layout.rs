//! Chord fingers over a ring ([`ChordLayout`]: identifiers, every node's fingers, routes as
//! `overlay simulate` walks them) and every node's backup entries ([`backups`]).

use super::*;

/// A Chord overlay: every node's identifier and every node's fingers, by the code of
/// `crate::chord`. Positions here are ring positions (nodes by ID), as everywhere in this
/// module; members are the same nodes by identifier.
#[derive(Debug, Clone)]
pub struct ChordLayout {
    pub(super) membership: Membership,
    pub(super) tables: Vec<FingerTable>,
    /// Ring position -> member.
    pub(super) member_of: Vec<u32>,
    /// Member -> ring position.
    pub(super) position_of: Vec<u32>,
}

/// The backup entries of the node at ring position `position` (`limits::BACKUP_ENTRIES`, as
/// Chord's successor lists): its first `count` successors in the order routes progress in (ring
/// positions, or identifiers with a Chord `layout`), less itself and its table entries
/// `table`, in that order.
pub fn backups(
    ring: &Ring,
    layout: Option<&ChordLayout>,
    position: usize,
    count: usize,
    table: &[NodeId],
) -> Vec<NodeId> {
    let len = ring.len();
    (1..=count.min(len.saturating_sub(1)))
        .map(|step| match layout {
            None => ring.ids()[(position + step) % len],
            Some(layout) => {
                let member = (layout.member_of[position] as usize + step) % len;
                ring.ids()[layout.position_of[member] as usize]
            }
        })
        .filter(|id| !table.contains(id))
        .collect()
}

impl ChordLayout {
    /// The layout of `ring` whose node at position p has identifier `identifiers[p]` in
    /// `space`; refuses identifiers that repeat or lie outside the space, and tables of more
    /// than [`NR_MAX`] entries.
    pub fn new(ring: &Ring, space: IdSpace, identifiers: &[Id]) -> Result<ChordLayout, String> {
        if identifiers.len() != ring.len() {
            return Err(format!(
                "{} identifiers for {} nodes",
                identifiers.len(),
                ring.len()
            ));
        }
        let membership = Membership::new(space, identifiers.to_vec())?;
        let member_of: Vec<u32> = identifiers
            .iter()
            .map(|&id| {
                membership
                    .position(id)
                    .expect("every identifier is a member") as u32
            })
            .collect();
        let mut position_of = vec![0; ring.len()];
        for (position, &member) in member_of.iter().enumerate() {
            position_of[member as usize] = position as u32;
        }
        let tables = FingerTable::all(FingerRule::Chord, &membership)?;
        if let Some(widest) = tables.iter().map(|t| t.entries().len()).max()
            && widest > NR_MAX
        {
            return Err(format!(
                "a node would have {widest} distinct fingers, more than the {NR_MAX} links a \
                 node keeps"
            ));
        }
        Ok(ChordLayout {
            membership,
            tables,
            member_of,
            position_of,
        })
    }

    pub fn space(&self) -> IdSpace {
        self.membership.space()
    }

    /// The identifier of the node at ring position `position`.
    pub fn id(&self, position: usize) -> Id {
        self.membership.id(self.member_of[position] as usize)
    }

    /// The ring position of the node that owns `key`: successor(key).
    pub fn owner(&self, key: Id) -> usize {
        self.position_of[self.membership.successor(key)] as usize
    }

    /// The ring positions of the fingers of the node at `position`, by increasing distance.
    pub fn fingers(&self, position: usize) -> impl Iterator<Item = usize> + '_ {
        self.tables[self.member_of[position] as usize]
            .entries()
            .iter()
            .map(|&member| self.position_of[member as usize] as usize)
    }

    /// The relays (ring positions) a packet from position `from` to the owner of `key` passes,
    /// and that owner: the walk `overlay simulate` takes.
    pub fn route(&self, from: usize, key: Id, relays: &mut Vec<usize>) -> usize {
        relays.clear();
        let start = self.member_of[from] as usize;
        let found = walk(&self.membership, &self.tables, start, key, |at, _| {
            if at != start {
                relays.push(self.position_of[at] as usize);
            }
        });
        // The walk visits the owner last.
        relays.pop();
        self.position_of[found.owner] as usize
    }

    /// The most relays any packet passes, from any node to any node or key. A key's route is
    /// its owner's: every next-hop choice compares the key with member identifiers only, so
    /// the keys in (predecessor, owner] all take the owner's path. Each target's routes from
    /// every source form a tree toward it; depths are counted once per node (N^2 next hops).
    pub fn longest_route_relays(&self) -> usize {
        let nodes = self.membership.len();
        let mut depth = vec![u32::MAX; nodes];
        let mut path = Vec::new();
        let mut longest = 0;
        for target in 0..nodes {
            let key = self.membership.id(target);
            depth.fill(u32::MAX);
            depth[target] = 0;
            for source in 0..nodes {
                let mut at = source;
                while depth[at] == u32::MAX {
                    path.push(at);
                    at = match self.tables[at].next_hop(&self.membership, key) {
                        Step::Deliver(entry) | Step::Forward(entry) => {
                            self.tables[at].entries()[entry] as usize
                        }
                        Step::Owner => unreachable!("only the target owns its identifier"),
                    };
                }
                let mut hops = depth[at];
                while let Some(node) = path.pop() {
                    hops += 1;
                    depth[node] = hops;
                }
                longest = longest.max(hops);
            }
        }
        longest.saturating_sub(1) as usize
    }
}
