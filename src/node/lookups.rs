//! Key lookups, the DHT operation: `lookup KEY` at a node's console, or asked by the registry
//! for its console. A lookup frame goes through the overlay routed by its key, as a keyed
//! packet does, to the key's owner; the owner's reply comes back to the asker routed by node
//! ID (as an ack does), carrying the path the lookup took and the owner's address
//! (docs/PROTOCOL.md, "Lookups").

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::data_plane::{Cut, Relayed};
use super::overlay::{Around, Link, Overlay, route_around};
use super::shares::Batch;
use crate::chord::id::ID_BYTES;
use crate::chord::{Id, Step};
use crate::limits::{LOOKUP_TIMEOUT_NS, LOOKUPS_PENDING_MAX};
use crate::machine::{Effect, Nanos};
use crate::wire::{Codec, DataFrame, LookupAnswer};

/// A lookup this node asked and waits for.
#[derive(Debug, Clone)]
struct Pending {
    key: Id,
    /// The key as it was asked for.
    asked: String,
    asked_at: Nanos,
    /// The registry's number for it, when the registry asked.
    for_registry: Option<u32>,
}

/// The lookups of this node: those it waits for (at most [`LOOKUPS_PENDING_MAX`]: a lookup is
/// typed by an operator or asked by the registry for one, so more waiting at once means
/// something is wrong; each for at most [`LOOKUP_TIMEOUT_NS`]), and those the registry asked
/// for that ended since the node last reported.
#[derive(Debug, Default)]
pub(super) struct Lookups {
    next: u32,
    pending: BTreeMap<u32, Pending>,
    /// Ended lookups the registry asked for: its number, the outcome.
    pub(super) for_registry: Vec<(u32, Result<LookupAnswer, String>)>,
}

impl Lookups {
    /// When the oldest lookup gives up waiting.
    pub(super) fn next_deadline(&self) -> Option<Nanos> {
        self.pending
            .values()
            .map(|pending| pending.asked_at + LOOKUP_TIMEOUT_NS)
            .min()
    }
}

impl<C: Codec> Overlay<C> {
    /// Starts a lookup of `asked` (a key in the words of `IdSpace::parse_key`); its outcome is
    /// printed, and kept for the registry if it asked (`for_registry`).
    pub(super) fn lookup(
        &mut self,
        effects: &mut Vec<Effect>,
        now: Nanos,
        asked: &str,
        for_registry: Option<u32>,
    ) {
        let space = self.router.key_space();
        let key = match space.parse_key(asked, self.router.is_chord()) {
            Ok(key) => key,
            Err(why) => return self.lookup_ended(effects, asked, for_registry, Err(why), None),
        };
        let mut index = match self.router.key_step(key) {
            Step::Owner => {
                let answer = LookupAnswer {
                    key: format!("{key:x}"),
                    owner: self.id,
                    path: vec![self.id],
                    round_trip_ns: 0,
                };
                let listen = self.listen;
                return self.lookup_ended(effects, asked, for_registry, Ok(answer), Some(listen));
            }
            Step::Deliver(index) | Step::Forward(index) => index,
        };
        if self.lookups.pending.len() >= LOOKUPS_PENDING_MAX {
            let why = format!("{LOOKUPS_PENDING_MAX} lookups are waiting for replies already");
            return self.lookup_ended(effects, asked, for_registry, Err(why), None);
        }
        // Around a dead first link as a keyed packet goes, toward the key's owner.
        let detoured = self.entries[index].link != Link::Up;
        if detoured {
            let dead = self.entries[index].id;
            let owner = self.router.key_owner(key);
            let why = match route_around::<C>(&self.router, &self.entries, owner) {
                Around::Entry(other) => {
                    index = other;
                    None
                }
                Around::LostWith(_) => Some(format!(
                    "the key's owner, node {owner}, is down (its link is dead)"
                )),
                Around::Stuck => Some(format!(
                    "the link to node {dead} is down, and no live link leads toward the key's \
                     owner, node {owner}"
                )),
            };
            if let Some(why) = why {
                return self.lookup_ended(effects, asked, for_registry, Err(why), None);
            }
        }
        let number = self.lookups.next;
        self.lookups.next = number.wrapping_add(1);
        let entry = &mut self.entries[index];
        if entry.pending.is_empty() {
            effects.push(Effect::Send(entry.conn));
        }
        let start = entry.pending.len();
        let mut key_bytes = [0; ID_BYTES];
        C::append_lookup(
            &mut entry.pending,
            self.id,
            space.write_key(key, &mut key_bytes),
            self.shape,
            number,
            now,
        );
        if detoured {
            C::mark_detoured(&mut entry.pending[start..]);
        }
        self.lookups.pending.insert(
            number,
            Pending {
                key,
                asked: asked.to_string(),
                asked_at: now,
                for_registry,
            },
        );
    }

    /// A lookup frame from a link: answered here if this node owns its key (the reply goes
    /// to the asker by node ID, queued on behalf of the link as a relayed frame is), otherwise
    /// relayed on the entry its key's route takes. Lookups are never counted as packets.
    #[cold]
    #[inline(never)]
    pub(super) fn route_lookup(
        &mut self,
        effects: &mut Vec<Effect>,
        frame: &DataFrame<'_, C>,
        batch: &mut Batch,
    ) -> Result<(), Cut> {
        let Some(key) = self.router.key_space().read_key(C::key(frame)) else {
            let line = format!(
                "a lookup from node {} for {:02x?}, which is not a key of this overlay: ignored",
                frame.source(),
                C::key(frame)
            );
            self.problem(effects, line);
            return Ok(());
        };
        match self.router.key_step(key) {
            Step::Owner => {
                let Some(index) = self.router.next_hop(frame.source()) else {
                    let line = format!(
                        "a lookup from node {}, which is not a member: not answered",
                        frame.source()
                    );
                    self.problem(effects, line);
                    return Ok(());
                };
                let mut reply = Vec::new();
                C::append_lookup_reply(&mut reply, frame, self.id, self.listen);
                let asker = frame.source();
                self.relay_on(effects, index, |_| asker, Relayed::Verbatim(&reply), batch)
            }
            // Around a dead link as a keyed packet goes, toward the key's owner.
            Step::Deliver(index) | Step::Forward(index) => self.relay_on(
                effects,
                index,
                |router| router.key_owner(key),
                Relayed::Lookup(frame),
                batch,
            ),
        }
    }

    /// A lookup reply addressed to this node: the path is this node, the relays the lookup
    /// passed, and the owner that answered.
    #[cold]
    #[inline(never)]
    pub(super) fn on_lookup_reply(
        &mut self,
        effects: &mut Vec<Effect>,
        now: Nanos,
        frame: &DataFrame<'_, C>,
    ) {
        let (number, owner_addr) = C::lookup_reply(frame);
        let Some(pending) = self.lookups.pending.remove(&number) else {
            let line = format!(
                "a lookup reply from node {} that no lookup waits for (number {number}): ignored",
                frame.source()
            );
            self.problem(effects, line);
            return;
        };
        let mut path = vec![self.id];
        path.extend(frame.trace());
        path.push(frame.source());
        let answer = LookupAnswer {
            key: format!("{:x}", pending.key),
            owner: frame.source(),
            path,
            round_trip_ns: now.saturating_sub(pending.asked_at),
        };
        self.lookup_ended(
            effects,
            &pending.asked,
            pending.for_registry,
            Ok(answer),
            Some(owner_addr),
        );
    }

    /// Lookups that waited [`LOOKUP_TIMEOUT_NS`] end without a reply.
    pub(super) fn expire_lookups(&mut self, effects: &mut Vec<Effect>, now: Nanos) {
        let expired: Vec<u32> = self
            .lookups
            .pending
            .iter()
            .filter(|(_, pending)| now >= pending.asked_at + LOOKUP_TIMEOUT_NS)
            .map(|(&number, _)| number)
            .collect();
        for number in expired {
            if let Some(pending) = self.lookups.pending.remove(&number) {
                let why = format!(
                    "no reply within {} s (a link on the way closed, or the owner is gone)",
                    LOOKUP_TIMEOUT_NS / 1_000_000_000
                );
                self.lookup_ended(
                    effects,
                    &pending.asked,
                    pending.for_registry,
                    Err(why),
                    None,
                );
            }
        }
    }

    /// Prints a lookup's outcome, and keeps it for the registry if it asked.
    fn lookup_ended(
        &mut self,
        effects: &mut Vec<Effect>,
        asked: &str,
        for_registry: Option<u32>,
        outcome: Result<LookupAnswer, String>,
        owner_addr: Option<SocketAddr>,
    ) {
        let line = match &outcome {
            Ok(answer) => {
                let identifier = self.router.identifier_of(answer.owner);
                answer.line(asked, owner_addr, identifier)
            }
            Err(why) => format!("Lookup {asked} failed: {why}"),
        };
        effects.push(Effect::Print(line));
        if let Some(number) = for_registry {
            self.lookups.for_registry.push((number, outcome));
        }
    }
}
