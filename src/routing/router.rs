//! A node's routing state ([`Router`]): its table, its next hop toward every ID in O(1), the
//! route-around and the sink's check of a packet's trace ([`RouteFault`]).

use super::*;

/// A node's view of the ring for routing: the shared [`View`], this node's place in it, its
/// table and its next hop toward every ID in O(1).
#[derive(Debug, Clone)]
pub struct Router {
    pub(super) view: Arc<View>,
    /// Entries of this node's table.
    pub(super) nr: usize,
    /// Chord fingers (else the position rule).
    pub(super) chord: bool,
    pub(super) self_position: usize,
    /// This node's table, as members of the view.
    pub(super) table: FingerTable,
    /// Dense next-hop table over IDs 0..=max: the entry for each sink, [`NO_HOP`] for unknown
    /// IDs and ourselves. One load per relayed frame; this node's own (a byte per ID).
    pub(super) next_hops: Option<Vec<u8>>,
    /// Predecessors (in the order routes progress in) that keep this node as a backup entry.
    pub(super) backup_holders: usize,
    /// The membership changed since the overlay was set up ([`Router::after_change`]): a
    /// packet may have been routed partly under an earlier one, so the sink checks the rule
    /// only, within `trace_slots` relays.
    pub(super) changed: bool,
    /// A packet not routed around a dead link took exactly the route the rule gives: the
    /// position rule, and a membership unchanged since setup. The sink then compares the
    /// trace with that route inline ([`Router::check_delivered_route`]).
    pub(super) exact_routes: bool,
    pub(super) trace_slots: usize,
    /// After a change: nodes that are no members of this ring but may still be in a trace or
    /// be a packet's source (those that left, those about to join), with their keys.
    pub(super) others: HashMap<NodeId, Id>,
}

/// A node ID as an identifier (the position rule's keys are IDs).
pub(super) fn id_of(id: NodeId) -> Id {
    Id::from(u128::from(id))
}

pub(super) const ABSENT: u32 = u32::MAX;
pub(super) const NO_HOP: u8 = u8::MAX;
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
    pub(super) fn key_of(&self, node: NodeId) -> Option<Id> {
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
    pub(super) fn next_hop_sparse(&self, sink: NodeId) -> Option<usize> {
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
    pub(super) fn rank(&self, position: usize) -> usize {
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
    pub(super) fn check_delivered_route_otherwise(
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
    pub(super) fn on_chord_route(
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
    pub(super) fn on_exact_route(
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
    pub(super) fn check_route_by_rule(
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
