//! `lookup KEY [NODE]` at the registry's console: the registry asks one node (the one named,
//! or one at random) to look the key up through the overlay, and prints what that node's
//! lookup found, with the owner's address and identifier from its own records.

use rand::Rng;

use super::Registry;
use crate::chord::{Id, IdSpace};
use crate::limits::{ID_BITS_MAX, LOOKUPS_PENDING_MAX};
use crate::wire::{Codec, Control, LookupAnswer, NodeId};

/// A lookup the registry asked a node for and waits to hear of.
#[derive(Debug, Clone)]
pub(super) struct AskedLookup {
    pub(super) node: NodeId,
    pub(super) key: String,
}

impl<C: Codec> Registry<C> {
    /// Asks `node` (or a node at random) to look `key` up. Refused before the overlay is
    /// ready, for a node that is not a member, when the encoding has no lookups, and when
    /// [`LOOKUPS_PENDING_MAX`] lookups wait already (a node answers each within its timeout,
    /// so only nodes that went silent leave entries; the oldest then makes room).
    pub(super) fn lookup(&mut self, key: String, node: Option<NodeId>) {
        if !self.overlay.as_ref().is_some_and(|o| o.ready) {
            self.say(
                "lookup refused: the overlay is not set up (run setup-overlay and wait for \
                 \"Registry now ready to initiate tasks.\")",
            );
            return;
        }
        let members = self.overlay.as_ref().map_or(&[][..], |o| o.ring.ids());
        let node = match node {
            Some(node) if members.contains(&node) => node,
            Some(node) if self.nodes.contains_key(&node) => {
                self.say(format!(
                    "lookup refused: node {node} is not in the overlay's tables yet (it is \
                     joining)"
                ));
                return;
            }
            Some(node) => {
                self.say(format!("lookup refused: no node {node} is registered"));
                return;
            }
            // Among the members: a node still joining has no table to route with.
            None => members[self.rng.random_range(0..members.len())],
        };
        self.lookups_asked += 1;
        let number = self.lookups_asked;
        let message = Control::Lookup {
            number,
            key: key.clone(),
        };
        if let Err(error) = C::encodable(&message) {
            self.say(format!("lookup refused: {error}"));
            return;
        }
        if self.lookups.len() >= LOOKUPS_PENDING_MAX
            && let Some((&oldest, asked)) = self.lookups.iter().next()
        {
            let line = format!(
                "Lookup {} through node {}: no answer yet; no longer waited for",
                asked.key, asked.node
            );
            self.lookups.remove(&oldest);
            self.say(line);
        }
        self.lookups.insert(number, AskedLookup { node, key });
        self.say(format!("Lookup {number} asked of node {node}"));
        self.send_to_node(node, &message);
    }

    /// What node `from` found for the registry's lookup `number`.
    pub(super) fn on_lookup_result(
        &mut self,
        from: NodeId,
        number: u32,
        result: Result<LookupAnswer, String>,
    ) -> Result<(), String> {
        let asked = match self.lookups.get(&number) {
            Some(asked) if asked.node == from => self.lookups.remove(&number).expect("present"),
            _ => {
                return Err(format!(
                    "a lookup result (number {number}) the registry did not ask node {from} for"
                ));
            }
        };
        let line = match result {
            Ok(answer) => {
                let addr = self.nodes.get(&answer.owner).map(|node| node.addr);
                let identifier = self.chord_identifier(answer.owner);
                let mut line = answer.line(&asked.key, addr, identifier);
                // The owner is checked against the registry's own membership: a node that
                // lies, or tables that disagree, are named.
                match self.owner_by_membership(&answer.key) {
                    Some(owner) if owner == answer.owner => {}
                    Some(owner) => {
                        let changing = if self.membership_changing() {
                            " (the membership is changing)"
                        } else {
                            ""
                        };
                        line += &format!(
                            "; but by the registry's membership node {owner} owns it{changing}"
                        );
                        tracing::warn!("lookup {number}: {line}");
                    }
                    None => {
                        line += "; the registry cannot read the key the node answered";
                        tracing::warn!("lookup {number}: {line}");
                    }
                }
                line
            }
            Err(why) => format!("Lookup {} failed: {why}", asked.key),
        };
        self.say(format!("{line} (asked of node {from})"));
        Ok(())
    }

    /// The member that owns `key` (hex, as a lookup's answer gives it) by the registry's own
    /// membership: successor(key) among the Chord identifiers, or (position fingers) among
    /// the node IDs as keys of [`ID_BITS_MAX`] bits, as the nodes route; `None` when the
    /// overlay is not set up or the text is no key of its space.
    fn owner_by_membership(&self, key: &str) -> Option<NodeId> {
        let overlay = self.overlay.as_ref()?;
        let ids = overlay.ring.ids();
        let hex = format!("0x{key}");
        match &overlay.chord {
            Some(layout) => {
                let key = layout.space().parse_key(&hex, false).ok()?;
                Some(ids[layout.owner(key)])
            }
            None => {
                let space = IdSpace::new(ID_BITS_MAX)?;
                let key = space.parse_key(&hex, false).ok()?;
                // The first node at or after the key, or past the top, the first of all.
                let at_or_after = ids
                    .iter()
                    .copied()
                    .filter(|&id| Id::from(u128::from(id)) >= key)
                    .min();
                at_or_after.or_else(|| ids.iter().copied().min())
            }
        }
    }
}
