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
//!
//! Chord mode (`setup-overlay chord`) gives every node an identifier of up to 160 bits besides
//! its ID (the registry's node number, which stays what packets carry): the tables are Chord's
//! fingers over those identifiers, and every next hop and route comes from `crate::chord`
//! ([`ChordLayout`]), the code `overlay simulate` walks.

use std::sync::Arc;

use crate::chord::{FingerRule, FingerTable, Id, IdSpace, Membership, Step, walk};
use crate::limits::{DENSE_INDEX_MAX, ID_BITS_DEFAULT, ID_BITS_MAX, NR_MAX, TRACE_SLOTS_MAX};
use crate::wire::NodeId;
use std::collections::HashMap;

/// The finger rule an overlay is set up with (`setup-overlay`, `--fingers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fingers {
    /// The reference's tables: entry i = the node 2^i positions ahead, NR entries.
    Positions { nr: usize },
    /// Chord's fingers over identifiers of `bits` bits (1..=160), drawn at random or, if
    /// `hashed`, the first bits of SHA-256 of each node's address; distinct either way.
    Chord { bits: u32, hashed: bool },
}

impl Fingers {
    /// "positions" or "chord", as the result JSON records it.
    pub fn name(self) -> &'static str {
        match self {
            Fingers::Positions { .. } => "positions",
            Fingers::Chord { .. } => "chord",
        }
    }
}

impl std::fmt::Display for Fingers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Fingers::Positions { nr } => write!(f, "position fingers, {nr} table entries each"),
            Fingers::Chord { bits, hashed } => write!(
                f,
                "Chord fingers, {bits}-bit identifiers {}",
                if hashed {
                    "hashed from each node's address"
                } else {
                    "drawn at random"
                }
            ),
        }
    }
}

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
    let widest = nr as u32 - 1;
    (distance >> widest) + u64::from((distance & ((1 << widest) - 1)).count_ones())
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

/// A Chord overlay: every node's identifier and every node's fingers, by the code of
/// `crate::chord`. Positions here are ring positions (nodes by ID), as everywhere in this
/// module; members are the same nodes by identifier.
#[derive(Debug, Clone)]
pub struct ChordLayout {
    membership: Membership,
    tables: Vec<FingerTable>,
    /// Ring position -> member.
    member_of: Vec<u32>,
    /// Member -> ring position.
    position_of: Vec<u32>,
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

/// How a view's nodes pick next hops: the position rule's NR and its keys (the IDs as
/// identifiers), or a Chord layout (identifiers, every node's fingers).
#[derive(Debug)]
enum Layout {
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
    ring: Ring,
    layout: Layout,
    /// Dense position index over IDs 0..=max (when the IDs are not too sparse to allow it).
    positions: Option<Vec<u32>>,
    /// The most relays a route to any node passes (the longest path: the trace's capacity).
    longest_relays: usize,
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

    fn with_layout(ring: Ring, layout: Layout, longest_relays: usize) -> View {
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
    fn member_of(&self, position: usize) -> usize {
        match &self.layout {
            Layout::Positions { .. } => position,
            Layout::Chord(layout) => layout.member_of[position] as usize,
        }
    }

    /// The ring position of member `member`.
    #[inline]
    fn position_of(&self, member: usize) -> usize {
        match &self.layout {
            Layout::Positions { .. } => member,
            Layout::Chord(layout) => layout.position_of[member] as usize,
        }
    }

    /// The table of the node at ring position `position`, as members.
    fn table(&self, position: usize) -> Result<FingerTable, String> {
        match &self.layout {
            Layout::Positions { nr, keys } => {
                FingerTable::new(FingerRule::Positions { nr: *nr }, keys, position)
            }
            Layout::Chord(layout) => Ok(layout.tables[layout.member_of[position] as usize].clone()),
        }
    }

    /// Whether the table of the node at ring position `holder` holds the node at `position`.
    fn holds(&self, holder: usize, position: usize) -> bool {
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
    space: IdSpace,
    /// The source's identifier (its ID under the position rule).
    own: Id,
    /// Keys from `own` (exclusive) to the source's predecessor (inclusive).
    others: Id,
}

impl KeyDraw {
    /// The next key.
    pub fn next(&self, rng: &mut impl rand::Rng) -> Id {
        let offset = self.space.random_below(self.others, rng);
        self.space
            .add(self.own, self.space.add(offset, Id::from(1)))
    }
}

/// A node's view of the ring for routing: the shared [`View`], this node's place in it, its
/// table and its next hop toward every ID in O(1).
#[derive(Debug, Clone)]
pub struct Router {
    view: Arc<View>,
    /// Entries of this node's table.
    nr: usize,
    /// Chord fingers (else the position rule).
    chord: bool,
    self_position: usize,
    /// This node's table, as members of the view.
    table: FingerTable,
    /// Dense next-hop table over IDs 0..=max: the entry for each sink, [`NO_HOP`] for unknown
    /// IDs and ourselves. One load per relayed frame; this node's own (a byte per ID).
    next_hops: Option<Vec<u8>>,
    /// Predecessors (in the order routes progress in) that keep this node as a backup entry.
    backup_holders: usize,
    /// The membership changed since the overlay was set up ([`Router::after_change`]): a
    /// packet may have been routed partly under an earlier one, so the sink checks the rule
    /// only, within `trace_slots` relays.
    changed: bool,
    /// A packet not routed around a dead link took exactly the route the rule gives: the
    /// position rule, and a membership unchanged since setup. The sink then compares the
    /// trace with that route inline ([`Router::check_delivered_route`]).
    exact_routes: bool,
    trace_slots: usize,
    /// After a change: nodes that are no members of this ring but may still be in a trace or
    /// be a packet's source (those that left, those about to join), with their keys.
    others: HashMap<NodeId, Id>,
}

/// A node ID as an identifier (the position rule's keys are IDs).
fn id_of(id: NodeId) -> Id {
    Id::from(u128::from(id))
}

const ABSENT: u32 = u32::MAX;
const NO_HOP: u8 = u8::MAX;
const _: () = assert!(NR_MAX < NO_HOP as usize);

impl Router {
    /// The router of node `self_id` under the position rule, whose table has `nr` entries,
    /// in a view of its own; keys are IDs of 32 bits. `None` if `self_id` is not in the ring
    /// or `nr` does not fit it.
    pub fn new(ring: Ring, nr: usize, self_id: NodeId) -> Option<Router> {
        let space = IdSpace::new(ID_BITS_MAX).expect("32 bits is a space");
        let view = View::positions(ring, nr, space).ok()?;
        Router::of(Arc::new(view), self_id).ok()
    }

    /// The router of node `self_id` in `view`: its table and its next hop toward every node.
    /// Everything O(N) stays in the view; this node adds a byte per ID of the dense range.
    /// A node whose membership changes takes the new one by this call.
    pub fn of(view: Arc<View>, self_id: NodeId) -> Result<Router, String> {
        let self_position = view
            .position(self_id)
            .ok_or_else(|| format!("the ring does not list this node's ID {self_id}"))?;
        let table = view.table(self_position)?;
        let nr = table.entries().len();
        let chord = view.is_chord();
        let next_hops = view.positions.as_ref().map(|index| {
            let mut next_hops = vec![NO_HOP; index.len()];
            let ids = view.ring.ids();
            if chord {
                // The closest preceding finger of each member, walking the members clockwise
                // from this node: entry e for the members after entry e up to entry e + 1
                // (inclusive), entry 0 for the successor. O(members + entries), where a lookup
                // per member cost a table search with identifier arithmetic each.
                let members = ids.len();
                let own = view.member_of(self_position);
                let rank = |member: usize| (member + members - own) % members;
                let entries = table.entries();
                let mut passed = 0;
                for offset in 1..members {
                    while passed < entries.len() && rank(entries[passed] as usize) < offset {
                        passed += 1;
                    }
                    let member = (own + offset) % members;
                    let id = ids[view.position_of(member)];
                    next_hops[id as usize] = passed.saturating_sub(1) as u8;
                }
            } else {
                for (position, &id) in ids.iter().enumerate() {
                    if position != self_position {
                        let distance = view.ring.distance(self_position, position);
                        next_hops[id as usize] = entry_for_distance(distance, nr) as u8;
                    }
                }
            }
            next_hops
        });
        Ok(Router {
            view,
            nr,
            chord,
            self_position,
            table,
            next_hops,
            backup_holders: 0,
            changed: false,
            exact_routes: !chord,
            trace_slots: 0,
            others: HashMap::new(),
        })
    }

    /// Makes this router one for a membership that changed since setup (docs/ARCHITECTURE.md,
    /// "Membership that changes"): packets in flight may have been routed by several
    /// memberships' tables, so the sink checks them by [`Router::check_route_after_change`]:
    /// clockwise progress through members and `others`, within `trace_slots` relays.
    pub fn after_change(&mut self, trace_slots: usize, others: HashMap<NodeId, Id>) {
        self.changed = true;
        self.exact_routes = false;
        self.trace_slots = trace_slots;
        self.others = others;
    }

    /// Whether the membership changed since setup ([`Router::after_change`]).
    #[inline]
    pub fn changed(&self) -> bool {
        self.changed
    }

    /// The nodes whose tables, or backup entries ([`Router::with_backup_holders`]), hold
    /// this node.
    pub fn holders(&self) -> Vec<NodeId> {
        self.ring()
            .ids()
            .iter()
            .copied()
            .filter(|&node| self.held_by(node))
            .collect()
    }

    /// The key routes make progress toward: a member's identifier (its ID under the position
    /// rule), or the key of a node known besides the members.
    fn key_of(&self, node: NodeId) -> Option<Id> {
        match self.position(node) {
            Some(position) => Some(self.id_of_position(position)),
            None => self.others.get(&node).copied(),
        }
    }

    /// The sink's check after a change of membership: the source and every relay are
    /// members or nodes known besides them (a packet routed partly under an earlier
    /// membership may have been sent or relayed by a node that has left since, or relayed by
    /// one that is joining), each step strictly closer to this node clockwise in the key
    /// space (the IDs under the position rule, whose ring order they are; the identifiers in
    /// Chord mode), at most the trace's slots. Returns the source's ring position if it is a
    /// member.
    pub fn check_route_after_change(
        &self,
        source: NodeId,
        relays: usize,
        trace: impl Iterator<Item = NodeId>,
    ) -> Result<Option<usize>, RouteFault> {
        let me = self.id_of_position(self.self_position);
        let space = self.view.keys().space();
        let Some(key) = self.key_of(source).filter(|&key| key != me) else {
            return Err(RouteFault::Source { origin: source });
        };
        if relays > self.trace_slots {
            return Err(RouteFault::TooLong {
                relays,
                longest: self.trace_slots,
            });
        }
        let mut left = space.distance(key, me);
        let mut before = source;
        for relay in trace {
            let Some(key) = self.key_of(relay) else {
                return Err(RouteFault::NotMember { relay });
            };
            let closer = space.distance(key, me);
            if closer == Id::ZERO || closer >= left {
                return Err(RouteFault::NoProgress { relay, before });
            }
            left = closer;
            before = relay;
        }
        Ok(self.position(source))
    }

    /// The view this router routes by.
    pub fn view(&self) -> &Arc<View> {
        &self.view
    }

    /// Whether `node`'s table, or its backup entries ([`Router::with_backup_holders`]), holds
    /// this node (only its link may bring data named after it).
    pub fn held_by(&self, node: NodeId) -> bool {
        self.position(node).is_some_and(|holder| {
            let len = self.ring().len();
            let back = (self.rank(self.self_position) + len - self.rank(holder)) % len;
            self.view.holds(holder, self.self_position) || (1..=self.backup_holders).contains(&back)
        })
    }

    /// The nodes that keep this one as a backup entry (its `count` predecessors in the order
    /// routes progress in) may open links to it too: their links bring data named after them
    /// ([`Router::held_by`]).
    pub fn with_backup_holders(mut self, count: usize) -> Router {
        self.backup_holders = count.min(self.ring().len() - 1);
        self
    }

    /// Clockwise distance from this node to the node at ring position `position`, in the
    /// order routes make progress in (ring positions, or identifiers in Chord mode): what the
    /// route-around rule compares (`chord::churn::detour`).
    #[inline]
    pub fn distance_to(&self, position: usize) -> usize {
        let len = self.ring().len();
        (self.rank(position) + len - self.rank(self.self_position)) % len
    }

    pub fn ring(&self) -> &Ring {
        &self.view.ring
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
        self.view.position(id)
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
        self.next_hop_sparse(sink)
    }

    /// [`Router::next_hop`] without the dense table (IDs too wide for it), out of line so that
    /// the dense lookup stays a few inlined instructions on the relay path.
    #[cold]
    #[inline(never)]
    fn next_hop_sparse(&self, sink: NodeId) -> Option<usize> {
        let position = self.position(sink)?;
        if position == self.self_position {
            return None;
        }
        if self.chord {
            return match self
                .table
                .next_hop(self.view.keys(), self.id_of_position(position))
            {
                Step::Deliver(entry) | Step::Forward(entry) => Some(entry),
                Step::Owner => None,
            };
        }
        let distance = self.ring().distance(self.self_position, position);
        Some(entry_for_distance(distance, self.nr))
    }

    /// The identifier of the node at ring position `position` (its ID, under the position
    /// rule).
    pub fn id_of_position(&self, position: usize) -> Id {
        self.view.keys().id(self.view.member_of(position))
    }

    /// Whether the overlay has Chord fingers (keys are identifiers, not node IDs).
    pub fn is_chord(&self) -> bool {
        self.chord
    }

    /// Node `id`'s Chord identifier (`None` under position fingers, or for a stranger).
    pub fn identifier_of(&self, id: NodeId) -> Option<Id> {
        let position = self.position(id)?;
        self.chord.then(|| self.id_of_position(position))
    }

    /// The space keys lie in: Chord's identifiers, or under the position rule the 32-bit
    /// node-ID space, where a key's owner is the first node whose ID is at or after it
    /// (wrapping), as a node's own ID is its own.
    pub fn key_space(&self) -> IdSpace {
        self.view.keys().space()
    }

    /// What this node does with a packet for `key` (in [`Router::key_space`]): deliver it
    /// here (this node owns the key: it lies between its predecessor, exclusive, and itself),
    /// or send it on a table entry.
    #[inline]
    pub fn key_step(&self, key: Id) -> Step {
        self.table.next_hop(self.view.keys(), key)
    }

    /// The node that owns `key` (in [`Router::key_space`]): successor(key), the node a keyed
    /// packet routed around a dead link goes toward as a node-addressed one goes to its sink.
    #[cold]
    pub fn key_owner(&self, key: Id) -> NodeId {
        let member = self.view.keys().successor(key);
        self.ring().ids()[self.view.position_of(member)]
    }

    /// The keys of 0..2^`bits` that other nodes own, drawn for a run addressed to keys:
    /// refused when `bits` is not the Chord identifiers' width, or (position fingers) when
    /// some node ID does not fit it.
    pub fn key_draw(&self, bits: u32) -> Result<KeyDraw, String> {
        let membership = self.view.keys();
        let space = IdSpace::new(bits).ok_or_else(|| format!("keys of {bits} bits"))?;
        if self.chord && bits != membership.space().bits() {
            return Err(format!(
                "keys of {bits} bits in an overlay of {}-bit identifiers",
                membership.space().bits()
            ));
        }
        let largest = membership.id(membership.len() - 1);
        if !space.contains(largest) {
            return Err(format!(
                "keys of {bits} bits, but node {largest:x} does not fit"
            ));
        }
        let member = self.view.member_of(self.self_position);
        let own = membership.id(member);
        let predecessor = membership.id(membership.predecessor_of(member));
        Ok(KeyDraw {
            space,
            own,
            others: space.distance(own, predecessor),
        })
    }

    /// The IDs of this node's table entries, in entry order.
    pub fn entry_ids(&self) -> Vec<NodeId> {
        self.table
            .entries()
            .iter()
            .map(|&member| self.ring().ids()[self.view.position_of(member as usize)])
            .collect()
    }

    /// The place of the node at ring position `position` in the order routes make clockwise
    /// progress in: its ring position under the position rule, its place by identifier in
    /// Chord mode.
    #[inline]
    fn rank(&self, position: usize) -> usize {
        if self.chord {
            self.view.member_of(position)
        } else {
            position
        }
    }

    /// The sink's check of a delivered packet's route (docs/PROTOCOL.md, "What the sink
    /// checks"): `source` and every relay of `trace` (`relays` of them, in the order passed)
    /// are members; each step makes strictly clockwise progress toward this node, so the ring
    /// distance to it falls strictly from the source through each relay (no node twice, neither
    /// source nor sink among the relays); there are at most as many relays as the longest
    /// route has. Under the position rule, whose routes are a function of the ring distance,
    /// the trace must moreover be the route itself: the hop count its distance gives
    /// ([`transmissions`], checked first, in O(1)) and each relay the one the rule's step
    /// reaches. That exactness holds for a membership that did not change while the packet
    /// travelled, and for a packet that no node routed around a dead link; a packet that was
    /// (`detoured`, `chord::churn`) is held to the structural rule alone, on the relays its
    /// trace recorded. Needs nothing per source: O(1) per relay. Returns the source's ring
    /// position.
    #[inline(always)]
    pub fn check_route(
        &self,
        source: NodeId,
        relays: usize,
        detoured: bool,
        trace: impl Iterator<Item = NodeId> + Clone,
    ) -> Result<usize, RouteFault> {
        let quick = if self.chord {
            self.on_chord_route(source, relays, detoured, trace.clone())
        } else if !detoured {
            self.on_exact_route(source, relays, trace.clone())
        } else {
            None
        };
        match quick {
            Some(from) => Ok(from),
            None => self.check_route_by_rule(source, relays, detoured, trace),
        }
    }

    /// The sink's check of a delivered packet's route, whatever the membership did since
    /// setup: [`Router::check_route`] while it is unchanged, [`Router::check_route_after_change`]
    /// once it has changed. Returns the source's ring position, `None` for a source that has
    /// left since. The common case, a position-rule packet on its exact route, is compared
    /// inline; every other case is out of line ([`Router::check_delivered_route_otherwise`]).
    #[inline(always)]
    pub fn check_delivered_route(
        &self,
        source: NodeId,
        relays: usize,
        detoured: bool,
        trace: impl Iterator<Item = NodeId> + Clone,
    ) -> Result<Option<usize>, RouteFault> {
        if self.exact_routes
            && !detoured
            && let Some(from) = self.on_exact_route(source, relays, trace.clone())
        {
            return Ok(Some(from));
        }
        self.check_delivered_route_otherwise(source, relays, detoured, trace)
    }

    /// [`Router::check_delivered_route`] but for its inline case: Chord mode, a detoured
    /// packet, a membership that changed, or a trace the exact route's comparison did not
    /// accept (then named by the rule).
    #[inline(never)]
    fn check_delivered_route_otherwise(
        &self,
        source: NodeId,
        relays: usize,
        detoured: bool,
        trace: impl Iterator<Item = NodeId> + Clone,
    ) -> Result<Option<usize>, RouteFault> {
        if self.changed {
            self.check_route_after_change(source, relays, trace)
        } else {
            self.check_route(source, relays, detoured, trace).map(Some)
        }
    }

    /// [`Router::check_route`] in Chord mode, with the dense index of IDs: the structural
    /// rule (every relay a member, each strictly closer to this node by identifier, at most
    /// the longest route's relays unless detoured), reading the layout once rather than per
    /// relay and looking each relay up with one load from the index and one from the layout.
    /// Accepts exactly the traces [`Router::check_route_by_rule`] accepts in Chord mode.
    /// `None`: some rule is broken (or the IDs are too wide for the dense index); the rule
    /// then says which.
    #[inline(always)]
    fn on_chord_route(
        &self,
        source: NodeId,
        relays: usize,
        detoured: bool,
        trace: impl Iterator<Item = NodeId>,
    ) -> Option<usize> {
        let (Some(index), Layout::Chord(layout)) = (&self.view.positions, &self.view.layout) else {
            return None;
        };
        if relays > self.view.longest_relays && !detoured {
            return None;
        }
        let (member_of, len) = (&layout.member_of, self.ring().len());
        let me = member_of[self.self_position] as usize;
        // Clockwise places from the node at ring position `at` to this node; `None` for a
        // stranger (not in the index: ABSENT lies beyond every position).
        let to_me = |at: u32| -> Option<usize> {
            let member = *member_of.get(at as usize)? as usize;
            Some(if member <= me {
                me - member
            } else {
                me + len - member
            })
        };
        let from = *index.get(source as usize)?;
        let mut left = to_me(from)?;
        if left == 0 {
            return None;
        }
        for relay in trace {
            let closer = to_me(*index.get(relay as usize)?)?;
            if closer == 0 || closer >= left {
                return None;
            }
            left = closer;
        }
        Some(from as usize)
    }

    /// [`Router::check_route`]'s common case under the position rule: the trace is the route
    /// itself. Walking the rule's steps from the source, each relay is compared with the ID at
    /// the ring position the step reaches (a load and a compare, no lookup of the relay's own
    /// position), and what is left after the last relay must be one step (so the hop count is
    /// the distance's, [`transmissions`]). A route is made of members each strictly closer than
    /// the one before, so this accepts exactly the traces [`Router::check_route_by_rule`]
    /// accepts under the position rule. `None`: the source is no other member or the trace is
    /// not its route; the rule then says why.
    #[inline(always)]
    fn on_exact_route(
        &self,
        source: NodeId,
        relays: usize,
        trace: impl Iterator<Item = NodeId>,
    ) -> Option<usize> {
        let from = self.position(source)?;
        let (me, len) = (self.self_position, self.ring().len());
        // Clockwise positions from the source to this node (not 0: the source is another).
        let mut left = if from < me {
            me - from
        } else if from > me {
            me + len - from
        } else {
            return None;
        };
        let ids = self.ring().ids();
        let mut seen = 0;
        for relay in trace {
            left -= 1 << entry_for_distance(left, self.nr);
            if left == 0 {
                // The route has ended here: a relay more is no step of it.
                return None;
            }
            let at = if left <= me {
                me - left
            } else {
                me + len - left
            };
            if ids[at] != relay {
                return None;
            }
            seen += 1;
        }
        // The last transmission is one step: a power of two no wider than the widest entry.
        let last_step = left & (left - 1) == 0 && left >> (self.nr - 1) <= 1;
        (seen == relays && last_step).then_some(from)
    }

    /// [`Router::check_route`] by the rule itself, step by step, naming the first fault:
    /// every trace in Chord mode or once detoured, and any trace the exact route's quick
    /// comparison ([`Router::on_exact_route`]) did not accept.
    #[inline(never)]
    fn check_route_by_rule(
        &self,
        source: NodeId,
        relays: usize,
        detoured: bool,
        trace: impl Iterator<Item = NodeId>,
    ) -> Result<usize, RouteFault> {
        let from = match self.position(source) {
            Some(from) if from != self.self_position => from,
            _ => return Err(RouteFault::Source { origin: source }),
        };
        // A packet routed around a dead link (`detoured`) took another route than the rule's,
        // possibly longer than the longest (its trace may have overflowed: `relays` are those
        // recorded): the structural rule alone holds for it.
        let longest = self.view.longest_relays;
        if relays > longest && !detoured {
            return Err(RouteFault::TooLong { relays, longest });
        }
        let len = self.ring().len();
        let me = self.rank(self.self_position);
        // Clockwise distance to this node, in places; 0 only for this node.
        let to_me = |position: usize| {
            let rank = self.rank(position);
            if rank <= me {
                me - rank
            } else {
                me + len - rank
            }
        };
        let distance = to_me(from);
        let exact = !self.chord && !detoured;
        if exact {
            let expected = transmissions(distance as u64, self.nr) as usize - 1;
            if relays != expected {
                return Err(RouteFault::Hops {
                    relays,
                    expected,
                    distance,
                });
            }
        }
        let mut left = distance;
        let mut before = source;
        for relay in trace {
            let Some(at) = self.position(relay) else {
                return Err(RouteFault::NotMember { relay });
            };
            let closer = to_me(at);
            if closer == 0 || closer >= left {
                return Err(RouteFault::NoProgress { relay, before });
            }
            if exact {
                let step = 1 << entry_for_distance(left, self.nr);
                if closer != left - step {
                    let on_route = (self.self_position + len - (left - step)) % len;
                    return Err(RouteFault::OffRoute {
                        relay,
                        expected: self.ring().ids()[on_route],
                    });
                }
            }
            left = closer;
            before = relay;
        }
        Ok(from)
    }
}

/// Why a delivered packet's trace is no route to its sink ([`Router::check_route`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteFault {
    #[error("its source {origin} is no other member of the overlay")]
    Source { origin: NodeId },
    #[error("relay {relay} is no member of the overlay")]
    NotMember { relay: NodeId },
    #[error("relay {relay} is not strictly closer (clockwise) to the sink than {before} before it")]
    NoProgress { relay: NodeId, before: NodeId },
    #[error("relay {relay} is off the route, which passes {expected} there")]
    OffRoute { relay: NodeId, expected: NodeId },
    #[error("{relays} relays, more than the longest route's {longest}")]
    TooLong { relays: usize, longest: usize },
    #[error("{relays} relays, where a route from {distance} positions away passes {expected}")]
    Hops {
        relays: usize,
        expected: usize,
        distance: usize,
    },
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
        ring.relays(
            ring.position(97).unwrap(),
            sink.self_position(),
            3,
            &mut relays,
        );
        assert_eq!(relays, [19, 60]);
        let check = |source: NodeId, trace: &[NodeId]| {
            sink.check_route(source, trace.len(), false, trace.iter().copied())
        };
        assert_eq!(check(97, &[19, 60]), Ok(ring.position(97).unwrap()));
        // 97 is 7 positions before 82: 3 transmissions, 2 relays, each strictly closer.
        assert_eq!(
            check(97, &[19]),
            Err(RouteFault::Hops {
                relays: 1,
                expected: 2,
                distance: 7
            })
        );
        assert_eq!(
            check(97, &[60, 19]),
            Err(RouteFault::OffRoute {
                relay: 60,
                expected: 19
            })
        );
        assert_eq!(
            check(97, &[19, 19]),
            Err(RouteFault::NoProgress {
                relay: 19,
                before: 19
            })
        );
        assert_eq!(
            check(97, &[97, 60]),
            Err(RouteFault::NoProgress {
                relay: 97,
                before: 97
            })
        );
        assert_eq!(
            check(97, &[19, 82]),
            Err(RouteFault::NoProgress {
                relay: 82,
                before: 19
            })
        );
        assert_eq!(
            check(97, &[19, 61]),
            Err(RouteFault::NotMember { relay: 61 })
        );
        // 4 is 5 positions before 82: its route passes 60; 33 would progress as well, with the
        // right hop count, but is off the route (the position rule's routes are exact).
        assert_eq!(check(4, &[60]), Ok(ring.position(4).unwrap()));
        assert_eq!(
            check(4, &[33]),
            Err(RouteFault::OffRoute {
                relay: 33,
                expected: 60
            })
        );
        assert_eq!(check(82, &[]), Err(RouteFault::Source { origin: 82 }));
        assert_eq!(check(5, &[]), Err(RouteFault::Source { origin: 5 }));
        // More relays than any route passes: refused before the trace is read.
        assert_eq!(
            check(97, &[4; 3]),
            Err(RouteFault::TooLong {
                relays: 3,
                longest: 2
            })
        );
        // Every route every node takes passes its sink's check; backwards it does not.
        for nr in 1..=3 {
            for &node in ring.ids() {
                let router = Router::new(ring.clone(), nr, node).unwrap();
                for &source in ring.ids().iter().filter(|&&s| s != node) {
                    let from = ring.position(source).unwrap();
                    relays.clear();
                    ring.relays(from, router.self_position(), nr, &mut relays);
                    assert_eq!(
                        router.check_route(source, relays.len(), false, relays.iter().copied()),
                        Ok(from)
                    );
                    if relays.len() >= 2 {
                        let mut reversed = relays.clone();
                        reversed.reverse();
                        assert!(matches!(
                            router.check_route(
                                source,
                                reversed.len(),
                                false,
                                reversed.iter().copied()
                            ),
                            Err(RouteFault::OffRoute { .. })
                        ));
                    }
                    let source_table = ring.table(from, nr);
                    assert_eq!(router.held_by(source), source_table.contains(&node));
                }
            }
        }
    }

    /// Every trace of up to `length` relays drawn from `candidates`.
    fn traces(candidates: &[NodeId], length: usize) -> Vec<Vec<NodeId>> {
        let mut traces: Vec<Vec<NodeId>> = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..length {
            last = last
                .iter()
                .flat_map(|trace: &Vec<NodeId>| {
                    candidates.iter().map(move |&relay| {
                        let mut next = trace.clone();
                        next.push(relay);
                        next
                    })
                })
                .collect();
            traces.extend(last.iter().cloned());
        }
        traces
    }

    /// The sink's check against independent statements of its rules, for every trace of up
    /// to 3 relays over a small ring (members and strangers): under the position rule it
    /// accepts exactly the route; with Chord fingers exactly the traces of members whose
    /// distance to the sink, in identifier order, falls strictly at each step, no longer than
    /// the longest route.
    #[test]
    fn the_route_check_accepts_exactly_what_its_rules_allow() {
        let ids: Vec<NodeId> = vec![2, 5, 6, 9, 11, 14, 20];
        let ring = Ring::new(ids.clone());
        let nodes = ring.len();
        let all = traces(&(0..=21).collect::<Vec<NodeId>>(), 3);
        for nr in 1..=3 {
            for &sink in ring.ids() {
                let router = Router::new(ring.clone(), nr, sink).unwrap();
                for &source in ring.ids() {
                    let mut route = Vec::new();
                    if source != sink {
                        let from = ring.position(source).unwrap();
                        ring.relays(from, router.self_position(), nr, &mut route);
                    }
                    for trace in &all {
                        let checked =
                            router.check_route(source, trace.len(), false, trace.iter().copied());
                        assert_eq!(
                            checked.is_ok(),
                            source != sink && *trace == route,
                            "NR {nr}, {source} -> {sink} via {trace:?}: {checked:?}"
                        );
                        // The node's own entry point (exact route inline) says the same.
                        let delivered = router.check_delivered_route(
                            source,
                            trace.len(),
                            false,
                            trace.iter().copied(),
                        );
                        assert_eq!(delivered, checked.clone().map(Some));
                    }
                }
            }
        }
        // Chord: identifiers in another order than the IDs, so that identifier order matters.
        let space = IdSpace::new(8).unwrap();
        let identifiers: Vec<Id> = [200u128, 13, 77, 140, 31, 250, 99]
            .into_iter()
            .map(Id::from)
            .collect();
        let layout = ChordLayout::new(&ring, space, &identifiers).unwrap();
        let longest = layout.longest_route_relays();
        // Identifier order of each ID: its place among the identifiers.
        let mut sorted = identifiers.clone();
        sorted.sort_unstable();
        let place = |id: NodeId| {
            ring.position(id)
                .map(|p| sorted.binary_search(&identifiers[p]).unwrap())
        };
        let view = Arc::new(View::chord(ring.clone(), layout, longest));
        for &sink in ring.ids() {
            let router = Router::of(Arc::clone(&view), sink).unwrap();
            let me = place(sink).unwrap();
            let to_sink = |id: NodeId| place(id).map(|p| (me + nodes - p) % nodes);
            for &source in ring.ids() {
                for trace in &all {
                    let mut chain = vec![to_sink(source)];
                    chain.extend(trace.iter().map(|&id| to_sink(id)));
                    let structural = source != sink
                        && chain.iter().all(Option::is_some)
                        && chain.windows(2).all(|w| w[1] < w[0])
                        && chain.last().copied().flatten() != Some(0);
                    let expected = structural && trace.len() <= longest;
                    let checked =
                        router.check_route(source, trace.len(), false, trace.iter().copied());
                    assert_eq!(
                        checked.is_ok(),
                        expected,
                        "Chord, {source} -> {sink} via {trace:?}: {checked:?}"
                    );
                    let delivered = router.check_delivered_route(
                        source,
                        trace.len(),
                        false,
                        trace.iter().copied(),
                    );
                    assert_eq!(delivered, checked.clone().map(Some));
                    // A detoured packet is held to the structural rule alone, at any length.
                    let detoured =
                        router.check_route(source, trace.len(), true, trace.iter().copied());
                    assert_eq!(
                        detoured.is_ok(),
                        structural,
                        "Chord, detoured, {source} -> {sink} via {trace:?}: {detoured:?}"
                    );
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

    /// A Chord router's next hops and expected routes are the walks of `crate::chord` (what
    /// `overlay simulate` counts), with dense and with sparse node IDs; keys route to their
    /// owner the same way.
    #[test]
    fn chord_routers_walk_as_the_simulator_does() {
        use crate::chord::lookup;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let space = IdSpace::new(160).unwrap();
        for ids in [
            (0..40).map(|i| i * 3).collect::<Vec<NodeId>>(),
            (0..40).map(|i| i * 100_000_007).collect(),
        ] {
            let ring = Ring::new(ids.clone());
            let identifiers: Vec<Id> = (0..ring.len()).map(|_| space.random(&mut rng)).collect();
            let layout = ChordLayout::new(&ring, space, &identifiers).unwrap();
            let membership = Membership::new(space, identifiers.clone()).unwrap();
            let tables = FingerTable::all(FingerRule::Chord, &membership).unwrap();
            let longest_relays = layout.longest_route_relays();
            let view = Arc::new(View::chord(ring.clone(), layout.clone(), longest_relays));
            let routers: Vec<Router> = ids
                .iter()
                .map(|&id| Router::of(Arc::clone(&view), id).unwrap())
                .collect();
            // The dense next-hop tables answer for every ID as the lookup per key does.
            for router in routers.iter().filter(|router| router.next_hops.is_some()) {
                for id in 0..=ids[ids.len() - 1] + 1 {
                    assert_eq!(router.next_hop(id), router.next_hop_sparse(id), "ID {id}");
                }
            }
            let mut longest = 0;
            for from in 0..ring.len() {
                for to in (0..ring.len()).filter(|&to| to != from) {
                    // Hop by hop with each node's own router.
                    let mut at = from;
                    let mut relays = Vec::new();
                    while at != to {
                        let entry = routers[at].next_hop(ring.ids()[to]).unwrap();
                        at = ring.position(routers[at].entry_ids()[entry]).unwrap();
                        if at != to {
                            relays.push(ring.ids()[at]);
                        }
                    }
                    // The route the nodes took is the simulator's walk, and its sink
                    // accepts it; backwards it makes no progress.
                    let mut walked = Vec::new();
                    layout.route(from, layout.id(to), &mut walked);
                    let walked: Vec<NodeId> = walked.iter().map(|&p| ring.ids()[p]).collect();
                    assert_eq!(walked, relays);
                    let source = ring.ids()[from];
                    assert_eq!(
                        routers[to].check_route(
                            source,
                            relays.len(),
                            false,
                            relays.iter().copied()
                        ),
                        Ok(from)
                    );
                    if relays.len() >= 2 {
                        assert!(matches!(
                            routers[to].check_route(
                                source,
                                relays.len(),
                                false,
                                relays.iter().rev().copied()
                            ),
                            Err(RouteFault::NoProgress { .. })
                        ));
                    }
                    assert_eq!(
                        routers[to].held_by(ring.ids()[from]),
                        routers[from].entry_ids().contains(&ring.ids()[to])
                    );
                    let walked = lookup(&membership, &tables, 0, identifiers[to]);
                    assert_eq!(membership.id(walked.owner), identifiers[to]);
                    let hops = lookup(
                        &membership,
                        &tables,
                        membership.position(identifiers[from]).unwrap(),
                        identifiers[to],
                    )
                    .hops;
                    assert_eq!(hops as usize, relays.len() + 1);
                    longest = longest.max(relays.len());
                }
            }
            assert_eq!(longest_relays, longest);
            // A key goes to its owner, and passes the relays its owner's identifier would.
            for _ in 0..200 {
                let key = space.random(&mut rng);
                let from = rng.random_range(0..ring.len());
                let mut relays = Vec::new();
                let owner = layout.route(from, key, &mut relays);
                assert_eq!(layout.id(owner), membership.id(membership.successor(key)));
                let mut by_identifier = Vec::new();
                layout.route(from, layout.id(owner), &mut by_identifier);
                assert_eq!(relays, by_identifier);
            }
        }
    }

    /// Under the position rule too, the dense next-hop table is the rule for every ID.
    #[test]
    fn dense_next_hops_are_the_position_rule() {
        let ring = Ring::new((0..50).map(|i| i * 7 + 3).collect());
        for nr in 1..=5 {
            for &id in ring.ids() {
                let router = Router::new(ring.clone(), nr, id).unwrap();
                assert!(router.next_hops.is_some());
                for probe in 0..=400 {
                    assert_eq!(router.next_hop(probe), router.next_hop_sparse(probe));
                }
            }
        }
    }

    #[test]
    fn wide_ids_use_the_sparse_index() {
        let ring = Ring::new(vec![5, 1 << 30, u32::MAX]);
        let router = Router::new(ring, 1, 5).unwrap();
        assert!(router.view.positions.is_none() && router.next_hops.is_none());
        assert_eq!(router.next_hop(u32::MAX), Some(0));
        assert_eq!(router.next_hop(7), None);
        assert_eq!(router.next_hop(5), None);
    }
}
