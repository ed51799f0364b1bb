//! One overlay's membership as its nodes route by it ([`View`]), shared by the nodes of a
//! process, and the keys a source draws in a run addressed to keys ([`KeyDraw`]).

use super::*;

/// How a view's nodes pick next hops: the position rule's NR and its keys (the IDs as
/// identifiers), or a Chord layout (identifiers, every node's fingers).
#[derive(Debug)]
pub(super) enum Layout {
    Positions { nr: usize, keys: Membership },
    Chord(ChordLayout),
}

/// One overlay's membership as its nodes route by it: the ring, the identifiers keys are
/// compared with, every finger table a Chord overlay has, where every ID sits, the longest
/// route. Immutable: a membership change is a new `View`, and a node takes it by building its
/// [`Router`] from it ([`Router::of`], one call). Nodes of one process that hold the same
/// membership share one `View` behind an `Arc` (`node::views::Views` interns them by content),
/// so a group of K nodes holds the O(N) state once, not K times.
#[derive(Debug)]
pub struct View {
    pub(super) ring: Ring,
    pub(super) layout: Layout,
    /// Dense position index over IDs 0..=max (when the IDs are not too sparse to allow it).
    pub(super) positions: Option<Vec<u32>>,
    /// The most relays a route to any node passes (the longest path: the trace's capacity).
    pub(super) longest_relays: usize,
}

impl View {
    /// The position rule over `ring` with `nr` entries per table; keys lie in `space`, which
    /// holds every ID. Refuses an NR the ring cannot fill ([`check_nr`]).
    pub fn positions(ring: Ring, nr: usize, space: IdSpace) -> Result<View, String> {
        check_nr(ring.len(), nr)?;
        let keys = Membership::new(space, ring.ids().iter().map(|&id| id_of(id)).collect())?;
        let longest_relays = longest_path_relays(ring.len(), nr);
        Ok(View::with_layout(
            ring,
            Layout::Positions { nr, keys },
            longest_relays,
        ))
    }

    /// Chord fingers: `layout` of `ring` ([`ChordLayout::new`]), whose longest route passes
    /// `longest_relays` relays (the registry computes it once and sizes the trace by it).
    pub fn chord(ring: Ring, layout: ChordLayout, longest_relays: usize) -> View {
        View::with_layout(ring, Layout::Chord(layout), longest_relays)
    }

    pub(super) fn with_layout(ring: Ring, layout: Layout, longest_relays: usize) -> View {
        let max = ring.ids().last().copied().unwrap_or(0);
        let positions = (u64::from(max) < DENSE_INDEX_MAX).then(|| {
            let mut index = vec![ABSENT; max as usize + 1];
            for (position, id) in ring.ids().iter().enumerate() {
                index[*id as usize] = position as u32;
            }
            index
        });
        View {
            ring,
            layout,
            positions,
            longest_relays,
        }
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Chord fingers (else the position rule).
    pub fn is_chord(&self) -> bool {
        matches!(self.layout, Layout::Chord(_))
    }

    /// The position rule's NR (0 in Chord mode, whose tables differ in length).
    pub fn nr(&self) -> usize {
        match self.layout {
            Layout::Positions { nr, .. } => nr,
            Layout::Chord(_) => 0,
        }
    }

    /// The identifiers of the members: the IDs under the position rule.
    pub fn keys(&self) -> &Membership {
        match &self.layout {
            Layout::Positions { keys, .. } => keys,
            Layout::Chord(layout) => &layout.membership,
        }
    }

    /// The identifiers of a Chord overlay, by ring position (`None` under the position rule).
    pub fn chord_ids(&self) -> Option<impl Iterator<Item = Id> + '_> {
        match &self.layout {
            Layout::Positions { .. } => None,
            Layout::Chord(layout) => Some((0..self.ring.len()).map(|p| layout.id(p))),
        }
    }

    /// The most relays a route to any node passes.
    pub fn longest_relays(&self) -> usize {
        self.longest_relays
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

    /// The member (place by identifier) of the node at ring position `position`: the place
    /// routes make clockwise progress in.
    #[inline]
    pub(super) fn member_of(&self, position: usize) -> usize {
        match &self.layout {
            Layout::Positions { .. } => position,
            Layout::Chord(layout) => layout.member_of[position] as usize,
        }
    }

    /// The ring position of member `member`.
    #[inline]
    pub(super) fn position_of(&self, member: usize) -> usize {
        match &self.layout {
            Layout::Positions { .. } => member,
            Layout::Chord(layout) => layout.position_of[member] as usize,
        }
    }

    /// The table of the node at ring position `position`, as members.
    pub(super) fn table(&self, position: usize) -> Result<FingerTable, String> {
        match &self.layout {
            Layout::Positions { nr, keys } => {
                FingerTable::new(FingerRule::Positions { nr: *nr }, keys, position)
            }
            Layout::Chord(layout) => Ok(layout.tables[layout.member_of[position] as usize].clone()),
        }
    }

    /// Whether the table of the node at ring position `holder` holds the node at `position`.
    pub(super) fn holds(&self, holder: usize, position: usize) -> bool {
        match &self.layout {
            Layout::Positions { nr, .. } => {
                let distance = self.ring.distance(holder, position);
                distance.is_power_of_two() && distance.ilog2() < *nr as u32
            }
            Layout::Chord(layout) => layout.fingers(holder).any(|finger| finger == position),
        }
    }
}

/// The keys one source sends to in a run addressed to keys: uniform over those another node
/// owns, (own, predecessor] clockwise (a key the source owned would go nowhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDraw {
    pub(super) space: IdSpace,
    /// The source's identifier (its ID under the position rule).
    pub(super) own: Id,
    /// Keys from `own` (exclusive) to the source's predecessor (inclusive).
    pub(super) others: Id,
}

impl KeyDraw {
    /// The next key.
    pub fn next(&self, rng: &mut impl rand::Rng) -> Id {
        let offset = self.space.random_below(self.others, rng);
        self.space
            .add(self.own, self.space.add(offset, Id::from(1)))
    }
}
