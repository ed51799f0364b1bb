//! `lookup KEY [NODE]` at the registry's console: the registry asks one node (the one named,
//! or one at random) to look the key up through the overlay, and prints what that node's
//! lookup found, with the owner's address and identifier from its own records.

use rand::Rng;

use super::Registry;
use crate::limits::LOOKUPS_PENDING_MAX;
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
        let node = match node {
            Some(node) if self.nodes.contains_key(&node) => node,
            Some(node) => {
                self.say(format!("lookup refused: no node {node} is registered"));
                return;
            }
            None => {
                let index = self.rng.random_range(0..self.nodes.len());
                *self
                    .nodes
                    .keys()
                    .nth(index)
                    .expect("an index below the count")
            }
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
                answer.line(&asked.key, addr, identifier)
            }
            Err(why) => format!("Lookup {} failed: {why}", asked.key),
        };
        self.say(format!("{line} (asked of node {from})"));
        Ok(())
    }
}
