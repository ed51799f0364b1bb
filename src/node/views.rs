//! The membership views of one process: one [`View`] per distinct membership its nodes hold,
//! shared. Every node of a group (`overlay node --count K`) gets the same manifest membership
//! from the registry, so the O(N) state (the ring, identifiers, Chord's finger tables, the
//! position index) is built by the first node that receives it and handed to the others.
//!
//! A view is found by a hash of its content and taken only if the content is equal, so two
//! memberships never share a view by a collision. The map holds weak references: a view lives
//! as long as a node routes by it. Its size is bounded by the nodes of the process: each node
//! holds one view, so at most K views are alive, and dead entries are dropped whenever a view
//! is added.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::chord::{Id, IdSpace};
use crate::routing::{ChordLayout, Ring, View};
use crate::wire::{ChordIds, NodeId};

/// A process's views, by content hash. Cloning shares them (a group hands one to each node).
#[derive(Debug, Clone, Default)]
pub struct Views {
    views: Arc<Mutex<HashMap<u64, Vec<Weak<View>>>>>,
}

/// A membership as a manifest lists it, put in ring order: what a view is built from.
struct Members {
    ring: Ring,
    /// Chord: m, the identifiers in ring order, the longest route's relays.
    chord: Option<(u32, Vec<Id>, usize)>,
    /// The position rule's NR.
    nr: usize,
}

impl Members {
    /// The manifest's IDs (any order), Chord identifiers in the same order, NR (position
    /// rule) and trace slots (the longest Chord route).
    fn new(
        all_ids: &[NodeId],
        chord: Option<&ChordIds>,
        nr: usize,
        trace_slots: usize,
    ) -> Result<Members, String> {
        let nodes = all_ids.len();
        let Some(chord) = chord else {
            let ring = Ring::new(all_ids.to_vec());
            if ring.len() != nodes {
                return Err("the manifest lists an ID twice".to_string());
            }
            return Ok(Members {
                ring,
                chord: None,
                nr,
            });
        };
        if chord.ids.len() != nodes {
            return Err(format!(
                "the manifest has {} identifiers for {nodes} nodes",
                chord.ids.len()
            ));
        }
        let mut pairs: Vec<(NodeId, Id)> = all_ids
            .iter()
            .copied()
            .zip(chord.ids.iter().copied())
            .collect();
        pairs.sort_unstable_by_key(|&(id, _)| id);
        let ring = Ring::new(pairs.iter().map(|&(id, _)| id).collect());
        if ring.len() != nodes {
            return Err("the manifest lists an ID twice".to_string());
        }
        let identifiers = pairs
            .into_iter()
            .map(|(_, identifier)| identifier)
            .collect();
        Ok(Members {
            ring,
            chord: Some((chord.bits, identifiers, trace_slots)),
            nr,
        })
    }

    fn digest(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.ring.ids().hash(&mut hasher);
        self.chord.hash(&mut hasher);
        self.nr.hash(&mut hasher);
        hasher.finish()
    }

    /// Whether `view` is this membership.
    fn is(&self, view: &View) -> bool {
        if view.ring() != &self.ring {
            return false;
        }
        match (&self.chord, view.chord_ids()) {
            (None, None) => view.nr() == self.nr,
            (Some((bits, identifiers, longest)), Some(ids)) => {
                view.keys().space().bits() == *bits
                    && view.longest_relays() == *longest
                    && identifiers.iter().copied().eq(ids)
            }
            _ => false,
        }
    }

    fn build(self) -> Result<View, String> {
        match self.chord {
            None => {
                let space = IdSpace::new(crate::limits::ID_BITS_MAX).expect("32 bits is a space");
                View::positions(self.ring, self.nr, space)
            }
            Some((bits, identifiers, longest)) => {
                let space =
                    IdSpace::new(bits).ok_or_else(|| format!("identifiers of {bits} bits"))?;
                let layout = ChordLayout::new(&self.ring, space, &identifiers)?;
                Ok(View::chord(self.ring, layout, longest))
            }
        }
    }
}

impl Views {
    /// The view of the membership a manifest lists (`all_ids` in any order, Chord
    /// identifiers in the same order, the position rule's `nr`, the trace slots that bound a
    /// Chord route): the one a node of this process already holds, or a new one.
    pub fn view(
        &self,
        all_ids: &[NodeId],
        chord: Option<&ChordIds>,
        nr: usize,
        trace_slots: usize,
    ) -> Result<Arc<View>, String> {
        let members = Members::new(all_ids, chord, nr, trace_slots)?;
        let digest = members.digest();
        let mut views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(view) = views
            .get(&digest)
            .into_iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .find(|view| members.is(view))
        {
            return Ok(view);
        }
        let view = Arc::new(members.build()?);
        views.retain(|_, same| {
            same.retain(|view| view.strong_count() > 0);
            !same.is_empty()
        });
        views.entry(digest).or_default().push(Arc::downgrade(&view));
        Ok(view)
    }

    /// Views alive in this process (the nodes' distinct memberships).
    pub fn alive(&self) -> usize {
        let views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
        views
            .values()
            .flatten()
            .filter(|view| view.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Router;

    #[test]
    fn equal_memberships_share_one_view_and_others_get_their_own() {
        let views = Views::default();
        let a = views.view(&[30, 10, 20, 40], None, 2, 2).unwrap();
        let b = views.view(&[10, 20, 30, 40], None, 2, 2).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same members in another order");
        let other_nr = views.view(&[10, 20, 30, 40], None, 1, 2).unwrap();
        let other_ids = views.view(&[10, 20, 30, 41], None, 2, 2).unwrap();
        assert!(!Arc::ptr_eq(&a, &other_nr) && !Arc::ptr_eq(&a, &other_ids));
        assert_eq!(views.alive(), 3);
        // Routers of two nodes route by the one view.
        let r10 = Router::of(Arc::clone(&a), 10).unwrap();
        let r20 = Router::of(Arc::clone(&b), 20).unwrap();
        assert!(Arc::ptr_eq(r10.view(), r20.view()));
        drop((a, b, other_nr, other_ids, r10, r20));
        assert_eq!(views.alive(), 0);
        // A dead view is not taken: a fresh one is built, and the dead entries go.
        let c = views.view(&[10, 20, 30, 40], None, 2, 2).unwrap();
        assert_eq!(views.alive(), 1);
        assert_eq!(Router::of(c, 30).unwrap().entry_ids(), [40, 10]);
        assert_eq!(views.alive(), 0, "c went with its router");
    }

    #[test]
    fn chord_views_differ_by_identifiers_and_bits() {
        let views = Views::default();
        let ids = |list: &[u128]| ChordIds {
            bits: 8,
            ids: list.iter().map(|&i| Id::from(i)).collect(),
        };
        let a = views
            .view(&[1, 2, 3], Some(&ids(&[200, 13, 77])), 0, 1)
            .unwrap();
        // The same pairs listed in another order.
        let b = views
            .view(&[3, 1, 2], Some(&ids(&[77, 200, 13])), 0, 1)
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let swapped = views
            .view(&[1, 2, 3], Some(&ids(&[13, 200, 77])), 0, 1)
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &swapped));
        let wider = ChordIds {
            bits: 9,
            ..ids(&[200, 13, 77])
        };
        let wider = views.view(&[1, 2, 3], Some(&wider), 0, 1).unwrap();
        assert!(!Arc::ptr_eq(&a, &wider));
        let positions = views.view(&[1, 2, 3], None, 1, 1).unwrap();
        assert!(!Arc::ptr_eq(&a, &positions));
        assert!(
            views
                .view(&[1, 2, 2], None, 1, 1)
                .unwrap_err()
                .contains("twice")
        );
    }
}
