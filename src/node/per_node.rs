//! Values kept per other node of the overlay, by ring position: a slot per node in small
//! overlays, only the nodes that have a value in large ones (`limits::FLOW_DENSE_NODES_MAX`).
//! A node's record per other node (`flow.rs`: the window's counts and the packets originated
//! toward it and taken from it, which a leave's hand-over needs) is kept so.

use rustc_hash::FxHashMap;

use crate::limits::{
    FLOW_DENSE_NODES_MAX, PREFETCH_SLOTS_MIN_NODES, SPARSE_ENTRIES_PER_DENSE_NODES,
};

/// A value per node of an overlay of `nodes` nodes: at most one per node either way (keys are
/// ring positions). Sparse from [`FLOW_DENSE_NODES_MAX`] nodes on until it holds more than
/// `nodes / SPARSE_ENTRIES_PER_DENSE_NODES` values: a hash map that full takes about as many
/// bytes as the slots would (`limits.rs`), so it turns into slots, and is never much larger.
#[derive(Debug, Clone)]
pub(crate) struct PerNode<T> {
    nodes: usize,
    values: Values<T>,
}

#[derive(Debug, Clone)]
enum Values<T> {
    /// Each slot starts a cache line (a flow record is one line: `flow.rs`).
    Dense(Vec<Line<T>>),
    /// Keyed by ring position: hashed with FxHash, as keys the process draws itself
    /// (`machine::ConnMap`) are; a position is below the overlay's size whoever sends.
    Sparse(FxHashMap<u32, T>),
}

/// A slot aligned to a cache line, so that one record is read with one miss, not two.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Line<T>(T);

impl<T> Default for PerNode<T> {
    fn default() -> PerNode<T> {
        PerNode {
            nodes: 0,
            values: Values::Sparse(FxHashMap::default()),
        }
    }
}

impl<T: Copy + Default> PerNode<T> {
    /// Every value at its default, for `nodes` nodes.
    pub(crate) fn new(nodes: usize) -> PerNode<T> {
        let values = if nodes <= FLOW_DENSE_NODES_MAX {
            Values::Dense(vec![Line::default(); nodes])
        } else {
            Values::Sparse(FxHashMap::default())
        };
        PerNode { nodes, values }
    }

    /// The value of the node at `position` (the default if it has none).
    #[inline]
    pub(crate) fn get(&self, position: usize) -> T {
        match &self.values {
            Values::Dense(values) => values[position].0,
            Values::Sparse(values) => values.get(&(position as u32)).copied().unwrap_or_default(),
        }
    }

    /// The value of the node at `position` to change, if it has one of its own (a slot
    /// always does); `None` adds nothing, where [`PerNode::get_mut`] would.
    #[inline]
    pub(crate) fn get_existing_mut(&mut self, position: usize) -> Option<&mut T> {
        match &mut self.values {
            Values::Dense(values) => values.get_mut(position).map(|line| &mut line.0),
            Values::Sparse(values) => values.get_mut(&(position as u32)),
        }
    }

    /// The value of the node at `position`, to change.
    #[inline]
    pub(crate) fn get_mut(&mut self, position: usize) -> &mut T {
        if let Values::Sparse(values) = &self.values
            && values.len() >= self.nodes / SPARSE_ENTRIES_PER_DENSE_NODES
            && !values.contains_key(&(position as u32))
        {
            self.densify();
        }
        match &mut self.values {
            Values::Dense(values) => &mut values[position].0,
            Values::Sparse(values) => values.entry(position as u32).or_default(),
        }
    }

    /// Whether asking for slots ahead of their use is worth it ([`PerNode::prefetch`]): slots
    /// of an overlay of at least [`PREFETCH_SLOTS_MIN_NODES`] nodes (a map: no).
    #[inline]
    pub(crate) fn prefetches(&self) -> bool {
        matches!(self.values, Values::Dense(_)) && self.nodes >= PREFETCH_SLOTS_MIN_NODES
    }

    /// Asks for the slot of the node at `position` to be brought into the cache, ahead of
    /// its use (a large overlay's map: nothing).
    #[inline]
    pub(crate) fn prefetch(&self, position: usize) {
        if let Values::Dense(values) = &self.values
            && let Some(value) = values.get(position)
        {
            crate::io::prefetch::fetch(value);
        }
    }

    /// The values of every node that has one (in no particular order).
    pub(crate) fn values(&self) -> impl Iterator<Item = T> + '_ {
        let (dense, sparse) = match &self.values {
            Values::Dense(values) => (Some(values.iter().map(|line| line.0)), None),
            Values::Sparse(values) => (None, Some(values.values().copied())),
        };
        dense
            .into_iter()
            .flatten()
            .chain(sparse.into_iter().flatten())
    }

    /// The values moved to new ring positions (`moved(p)`: where the node at old position `p`
    /// is now, `None` if it left), for `nodes` nodes; returns those of the nodes that left.
    pub(crate) fn remap(&mut self, nodes: usize, moved: impl Fn(usize) -> Option<usize>) -> Vec<T> {
        let mut gone = Vec::new();
        let mut fresh = PerNode::new(nodes);
        let mut keep = |old: usize, value: T| match moved(old) {
            Some(new) => *fresh.get_mut(new) = value,
            None => gone.push(value),
        };
        match std::mem::take(&mut self.values) {
            Values::Dense(values) => values
                .into_iter()
                .enumerate()
                .for_each(|(p, line)| keep(p, line.0)),
            Values::Sparse(values) => values
                .into_iter()
                .for_each(|(p, value)| keep(p as usize, value)),
        }
        *self = fresh;
        gone
    }

    /// Changes every value kept (a large overlay's absent ones stay at their default).
    pub(crate) fn for_each_mut(&mut self, mut change: impl FnMut(&mut T)) {
        match &mut self.values {
            Values::Dense(values) => values.iter_mut().for_each(|line| change(&mut line.0)),
            Values::Sparse(values) => values.values_mut().for_each(&mut change),
        }
    }

    /// Every value back to its default; a large overlay's map gives back what it grew.
    pub(crate) fn clear(&mut self) {
        match &mut self.values {
            Values::Dense(values) if self.nodes <= FLOW_DENSE_NODES_MAX => {
                values.fill(Line::default());
            }
            _ => *self = PerNode::new(self.nodes),
        }
    }

    fn densify(&mut self) {
        let mut dense = vec![Line::default(); self.nodes];
        if let Values::Sparse(values) = &self.values {
            for (&p, &value) in values {
                dense[p as usize] = Line(value);
            }
        }
        self.values = Values::Dense(dense);
    }

    /// Whether a value per node is kept in a slot (for tests).
    #[cfg(test)]
    pub(crate) fn is_dense(&self) -> bool {
        matches!(self.values, Values::Dense(_))
    }

    /// The positions that have a value of their own, sorted (for tests: sparse only).
    #[cfg(test)]
    pub(crate) fn sparse_positions(&self) -> Option<Vec<u32>> {
        match &self.values {
            Values::Dense(_) => None,
            Values::Sparse(values) => {
                let mut positions: Vec<u32> = values.keys().copied().collect();
                positions.sort_unstable();
                Some(positions)
            }
        }
    }
}

impl<T> Default for Values<T> {
    fn default() -> Values<T> {
        Values::Sparse(FxHashMap::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small overlays keep a slot per node; large ones only the nodes with a value, as many as
    /// a quarter of the nodes, then a slot per node; either way the values are the same.
    #[test]
    fn large_overlays_keep_values_only_for_the_nodes_that_have_one_until_slots_are_smaller() {
        assert!(PerNode::<u64>::new(FLOW_DENSE_NODES_MAX).is_dense());
        let nodes = 4 * FLOW_DENSE_NODES_MAX;
        let mut counts = PerNode::<u64>::new(nodes);
        assert!(!counts.is_dense());
        *counts.get_mut(nodes - 1) += 3;
        *counts.get_mut(7) += 1;
        *counts.get_mut(7) += 1;
        assert_eq!(
            (counts.get(7), counts.get(nodes - 1), counts.get(8)),
            (2, 3, 0)
        );
        assert_eq!(counts.sparse_positions(), Some(vec![7, nodes as u32 - 1]));
        assert_eq!(counts.values().sum::<u64>(), 5);
        // Reading creates nothing.
        assert_eq!(counts.get(9), 0);
        assert_eq!(counts.sparse_positions().map(|p| p.len()), Some(2));
        // Up to a quarter of the nodes with a value, then slots.
        let quarter = nodes / SPARSE_ENTRIES_PER_DENSE_NODES;
        let others = 100..100 + quarter - 2;
        for p in others.clone() {
            *counts.get_mut(p) += 1;
        }
        assert_eq!(counts.sparse_positions().map(|p| p.len()), Some(quarter));
        *counts.get_mut(99) += 1;
        assert!(counts.is_dense());
        let sum = 5 + others.len() as u64 + 1;
        assert_eq!(counts.values().sum::<u64>(), sum);
        assert_eq!(
            (counts.get(7), counts.get(nodes - 1), counts.get(99)),
            (2, 3, 1)
        );
        // A node leaves: the others move down one place, and its value is given back.
        let gone = counts.remap(nodes - 1, |p| match p {
            7 => None,
            p if p > 7 => Some(p - 1),
            p => Some(p),
        });
        assert_eq!(gone, [2]);
        assert_eq!((counts.get(nodes - 2), counts.get(98)), (3, 1));
        assert_eq!(counts.values().sum::<u64>(), sum - 2);
        counts.clear();
        assert_eq!(counts.sparse_positions(), Some(vec![]));
        let mut small = PerNode::<u64>::new(4);
        *small.get_mut(3) += 1;
        small.clear();
        assert!(small.is_dense() && small.values().all(|v| v == 0));
    }
}
