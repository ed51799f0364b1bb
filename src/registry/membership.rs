//! Who is in the overlay: registration and deregistration (with their refusals), IDs, and
//! the end of a node's membership (deregistered, its connection lost or refused). Connections
//! that never register are closed after `stranger_timeout`.

use std::net::SocketAddr;

use rand::Rng;

use super::Registry;
use super::changes::Queued;
use crate::limits::{CONNECTION_WARNINGS_MAX, ID_SPACE_LISTED_MAX, NODES_MAX};
use crate::machine::{ConnId, Effect, Nanos};
use crate::summary::counted;
use crate::wire::{ALREADY_REGISTERED, Codec, Control, GroupTag, NodeId, Refusal, Status, Targets};

/// A registered node.
#[derive(Debug)]
pub(super) struct NodeRecord {
    /// The address it listens on (as it registered it).
    pub(super) addr: SocketAddr,
    /// The connection it registered on.
    pub(super) conn: ConnId,
}

impl<C: Codec> Registry<C> {
    /// IDs are drawn from `0..id_space`.
    fn id_space(&self) -> u64 {
        1u64 << self.config.id_bits
    }

    /// A free ID: where `group`'s next node goes (`placement.rs`) if that one is free,
    /// otherwise one at random; `None` when the ID space or [`NODES_MAX`] is full.
    fn pick_id(&mut self, group: Option<GroupTag>) -> Option<NodeId> {
        let space = self.id_space();
        // Members that left since the last run ended keep their IDs until it has.
        let taken = self.nodes.len() + self.departed.len();
        if taken as u64 >= space || self.nodes.len() >= NODES_MAX {
            return None;
        }
        if let Some(group) = group.filter(|_| self.config.place_groups) {
            let nodes = self.config.script.as_ref().map(|script| script.nodes);
            if let Some(id) = self.placement.propose(group, space, nodes)
                && !self.nodes.contains_key(&id)
                && !self.departed.contains(&id)
            {
                return Some(id);
            }
        }
        if space <= ID_SPACE_LISTED_MAX {
            // Uniform over the free IDs. Listing them for each registration cost a map lookup
            // per ID of the space: 1.6 x 10^8 over 10,000 registrations in a 14-bit space, and
            // answers came later than nodes wait for them.
            let free = space - taken as u64;
            let rank = self.rng.random_range(0..free as usize) as NodeId;
            if self.departed.is_empty() {
                Some(nth_free(self.nodes.keys().copied(), rank))
            } else {
                let mut ids: Vec<NodeId> = self.nodes.keys().copied().collect();
                ids.extend(&self.departed);
                ids.sort_unstable();
                Some(nth_free(ids.into_iter(), rank))
            }
        } else {
            loop {
                let id = self.rng.random_range(0..space) as NodeId;
                if !self.nodes.contains_key(&id) && !self.departed.contains(&id) {
                    return Some(id);
                }
            }
        }
    }

    /// Answers a request with a refusal (`reply` builds the status message from the reason)
    /// and logs it with the peer's address; the connection stays open.
    fn refuse(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        reply: impl FnOnce(String) -> Control,
        info: String,
    ) {
        self.warn(conn, &format!("{peer}: {info}"));
        self.send(conn, &reply(info));
    }

    /// Refuses a registration with `info` (status -1, as the reference answers).
    fn refuse_registration(&mut self, conn: ConnId, peer: SocketAddr, info: String) {
        self.refuse(
            conn,
            peer,
            |info| Control::RegisterStatus {
                status: Status::Failed,
                info,
            },
            info,
        );
    }

    /// `register`: refused when the claimed IP is not the connection's, when the connection
    /// or the address already registered, during a run, or when every ID is taken.
    pub(super) fn on_register(
        &mut self,
        now: Nanos,
        conn: ConnId,
        addr: SocketAddr,
        group: Option<GroupTag>,
    ) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        let peer = connection.peer;
        let refusal = if addr.ip() != peer.ip() {
            Some(format!(
                "registration refused: the request says {} but came from {}",
                addr.ip(),
                peer.ip()
            ))
        } else if let Some(id) = connection.node {
            Some(format!(
                "registration refused: this connection already registered node {id}"
            ))
        } else if let Some((id, _)) = self.nodes.iter().find(|(_, n)| n.addr == addr) {
            Some(format!(
                "registration refused: {addr} {ALREADY_REGISTERED} {id}"
            ))
        } else if self.run.is_some() && !self.live_overlay() {
            Some("registration refused: a run is in progress".to_string())
        } else if self
            .run
            .as_ref()
            .is_some_and(|run| matches!(run.targets, Targets::Keys { .. }))
        {
            Some(
                "registration refused: a run to keys is in progress (a newcomer would take \
                 over some of its keys); register once it is over"
                    .to_string(),
            )
        } else {
            None
        };
        if let Some(info) = refusal {
            self.refuse_registration(conn, peer, info);
            return;
        }
        let Some(id) = self.pick_id(group) else {
            // The node prints this and stops (waiting would not help).
            let space = self.id_space();
            let info = format!(
                "registration refused: the registry is full ({} nodes): all {} IDs (0..={}) are \
                 taken; start the registry with a wider --id-bits",
                self.nodes.len(),
                space.min(NODES_MAX as u64),
                space.min(NODES_MAX as u64) - 1
            );
            self.refuse_registration(conn, peer, info);
            return;
        };
        self.nodes.insert(id, NodeRecord { addr, conn });
        if self.run.is_some()
            && let Err(why) = self.join_fits(id)
        {
            self.nodes.remove(&id);
            let info = format!("registration refused during a run: {why}");
            self.refuse_registration(conn, peer, info);
            return;
        }
        self.strangers.leave(conn);
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.node = Some(id);
        }
        let count = self.nodes.len();
        self.send(
            conn,
            &Control::RegisterStatus {
                status: Status::Ok(id),
                info: format!(
                    "Registration request successful. The number of messaging nodes currently \
                     constituting the overlay is ({count})"
                ),
            },
        );
        self.say(format!(
            "Registered node {id} at {addr} ({})",
            counted(count as u64, "node")
        ));
        if self.live_overlay() {
            // It joins the overlay as it is (changes.rs); during a run, it relays and is a
            // sink from the moment the others know of it, and originates from the next run
            // (the run polls it once its links are up: `on_joiner_setup`).
            self.queue_join(now, id);
            return;
        }
        self.overlay_changed(now, format!("node {id} joined"));
        self.maybe_script_setup();
    }

    /// `deregister`: refused on an address mismatch, for an unknown ID, or for a node
    /// registered on another connection.
    pub(super) fn on_deregister(&mut self, now: Nanos, conn: ConnId, addr: SocketAddr, id: NodeId) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        let peer = connection.peer;
        let refusal = if addr.ip() != peer.ip() {
            Some(format!(
                "deregistration refused: the request says {} but came from {}",
                addr.ip(),
                peer.ip()
            ))
        } else {
            match self.nodes.get(&id) {
                None => Some(format!(
                    "deregistration refused: node {id} is not registered"
                )),
                Some(node) if node.addr != addr && !self.loose_port_match(node, conn, addr) => {
                    Some(format!(
                        "deregistration refused: node {id} is registered at {}, not {addr}",
                        node.addr
                    ))
                }
                Some(node) if node.conn != conn => Some(format!(
                    "deregistration refused: node {id} registered on another connection"
                )),
                Some(_) => None,
            }
        };
        let member = self
            .overlay
            .as_ref()
            .is_some_and(|o| o.ring.position(id).is_some() || o.changes.concerns(id));
        let refusal = refusal.or_else(|| {
            (self.live_overlay()
                && self
                    .overlay
                    .as_ref()
                    .is_some_and(|o| o.changes.concerns(id)))
            .then(|| format!("deregistration refused: node {id} is joining or leaving already"))
        });
        // During a run, a leave the overlay cannot take is refused rather than failing the
        // run: it may leave once the run is over (the overlay is then set up again).
        let refusal = refusal.or_else(|| {
            let during_run = self.run.is_some() && self.live_overlay() && member;
            let run_to_keys = self
                .run
                .as_ref()
                .is_some_and(|run| matches!(run.targets, Targets::Keys { .. }));
            if !during_run {
                None
            } else if run_to_keys {
                Some(
                    "deregistration refused: a run to keys is in progress; leave after it"
                        .to_string(),
                )
            } else {
                // The node's line is short (a status text holds 127 bytes); the registry's
                // says why in full.
                self.leave_fits(id).err().map(|(left, why)| {
                    self.say(format!(
                        "Node {id} may not leave during the run: without it {why}; it may leave \
                         once the run is over (then setup-overlay again, with a smaller NR if \
                         need be)"
                    ));
                    format!(
                        "deregistration refused: the {left} nodes left could not keep the \
                         overlay's tables; leave after the run"
                    )
                })
            }
        });
        if let Some(info) = refusal {
            self.refuse(
                conn,
                peer,
                |info| Control::DeregisterStatus {
                    status: Status::Failed,
                    info,
                },
                info,
            );
            return;
        }
        if self.live_overlay() && member {
            // A graceful leave (changes.rs): the answer comes once nothing is lost by it.
            self.queue_change(now, Queued::Leave(id));
            return;
        }
        self.send(conn, &deregistered(id, self.nodes.len() - 1));
        self.remove_node(now, id, "deregistered".to_string());
    }

    /// `LOOSE_PORTS` encodings: a message on the node's own connection, from its registered
    /// IP, identifies the node even if the port it names differs (peers written by others
    /// may send another port); the difference is logged.
    pub(super) fn loose_port_match(
        &self,
        node: &NodeRecord,
        conn: ConnId,
        addr: SocketAddr,
    ) -> bool {
        let matches = C::LOOSE_PORTS && node.conn == conn && node.addr.ip() == addr.ip();
        if matches {
            tracing::info!(
                "node at {} named port {} in a message on its own connection: accepted",
                node.addr,
                addr.port()
            );
        }
        matches
    }

    /// A registered node is gone (deregistered, disconnected or refused).
    pub(super) fn remove_node(&mut self, now: Nanos, id: NodeId, why: String) {
        let Some(node) = self.nodes.remove(&id) else {
            return;
        };
        let joiner = self.end_joiner(id);
        if let Some(connection) = self.connections.get_mut(&node.conn) {
            connection.node = None;
        }
        self.say(format!(
            "Node {id} at {} left: {why} ({})",
            node.addr,
            counted(self.nodes.len() as u64, "node")
        ));
        if self.run.is_some() && !joiner {
            self.lost_during_run(
                now,
                id,
                format!("node {id} at {} left during the run: {why}", node.addr),
            );
        }
        let member = self
            .overlay
            .as_ref()
            .is_some_and(|o| o.ring.position(id).is_some() || o.changes.concerns(id));
        if self.live_overlay() && member {
            // The others route around it (changes.rs), as for a leave without the hand-over.
            // Queued (or taken into a repair being set up) before the stage under way stops
            // waiting for it, which might end that stage without it.
            self.departed.insert(id);
            self.crash_during_leave(id);
            self.queue_change(now, Queued::Lost(id));
            self.forget_waiting(now, id);
            return;
        }
        self.forget_waiting(now, id);
        if joiner && self.live_overlay() {
            // Its join was let go: the overlay never had it.
            return;
        }
        self.overlay_changed(now, format!("node {id} left"));
    }

    /// Refuses a peer's message and closes its connection.
    pub(super) fn refuse_and_close(&mut self, now: Nanos, conn: ConnId, why: String) {
        let peer = self
            .connections
            .get(&conn)
            .map_or("?".to_string(), |c| c.peer.to_string());
        match self.close_warnings.admit(now) {
            Some(0) => tracing::warn!("{peer}: {why}; closing the connection"),
            Some(hidden) => tracing::warn!(
                "{peer}: {why}; closing the connection (and {hidden} more closed connections \
                 since the last warning, not shown)"
            ),
            None => tracing::debug!("{peer}: {why}; closing the connection"),
        }
        self.effects.push(Effect::Close(conn));
        self.forget_connection(now, conn, &why);
    }

    /// [`Registry::refuse_and_close`], telling the peer why first (`refusal`; not in the
    /// classic format, which has no such message).
    pub(super) fn tell_and_close(
        &mut self,
        now: Nanos,
        conn: ConnId,
        refusal: Option<Refusal>,
        why: String,
    ) {
        if let Some(refusal) = refusal.filter(|_| C::HELLO) {
            let mut farewell = Vec::new();
            C::encode_control(&Control::Refused(refusal), &mut farewell);
            self.farewells.keep(conn, farewell);
        }
        self.refuse_and_close(now, conn, why);
    }

    /// A connection is gone (closed or refused): its node, if it registered one, leaves.
    pub(super) fn forget_connection(&mut self, now: Nanos, conn: ConnId, why: &str) {
        self.strangers.leave(conn);
        let Some(connection) = self.connections.remove(&conn) else {
            return;
        };
        if connection.warnings > CONNECTION_WARNINGS_MAX {
            tracing::warn!(
                "{}: {} more warnings about this connection were not logged",
                connection.peer,
                connection.warnings - CONNECTION_WARNINGS_MAX
            );
        }
        if let Some(id) = connection.node {
            self.remove_node(now, id, why.to_string());
        }
    }

    /// Closes the connections that have not registered a node within `stranger_timeout` of
    /// being accepted.
    pub(super) fn expire_strangers(&mut self, now: Nanos) {
        while let Some(conn) = self.strangers.expired(now) {
            let seconds = self.config.stranger_timeout / 1_000_000_000;
            let why = format!("did not register a node within {seconds} s of connecting");
            self.strangers_closed(now, conn, None, &why);
        }
    }

    /// Closes a stranger (`why`, told as `refusal`), logging at most one such line per
    /// [`STRANGER_WARNING_INTERVAL_NS`](crate::limits::STRANGER_WARNING_INTERVAL_NS): strangers come and go as fast as any host can
    /// connect, and the log must not grow with them.
    pub(super) fn strangers_closed(
        &mut self,
        now: Nanos,
        conn: ConnId,
        refusal: Option<Refusal>,
        why: &str,
    ) {
        if let Some(held) = self.stranger_warnings.admit(now) {
            let peer = self
                .connections
                .get(&conn)
                .map_or("?".to_string(), |c| c.peer.to_string());
            let more = match held {
                0 => String::new(),
                held => format!(
                    " ({held} more connections that never registered were closed since the \
                     last such line)"
                ),
            };
            tracing::warn!("{peer}: {why}; closing the connection{more}");
        }
        if let Some(refusal) = refusal.filter(|_| C::HELLO) {
            let mut farewell = Vec::new();
            C::encode_control(&Control::Refused(refusal), &mut farewell);
            self.farewells.keep(conn, farewell);
        }
        self.effects.push(Effect::Close(conn));
        self.forget_connection(now, conn, why);
    }
}

/// The free ID of rank `rank` (0 = the lowest) among IDs not in `taken` (ascending): `rank`
/// shifted past every taken ID at or below it, in one pass.
fn nth_free(taken: impl Iterator<Item = NodeId>, rank: NodeId) -> NodeId {
    let mut id = rank;
    for taken in taken {
        if taken > id {
            break;
        }
        id += 1;
    }
    id
}

/// The answer to a leave carried out: `id` is gone and `remaining` nodes stay.
pub(in crate::registry) fn deregistered(id: NodeId, remaining: usize) -> Control {
    Control::DeregisterStatus {
        status: Status::Ok(id),
        info: format!(
            "Deregistration request successful. The number of messaging nodes currently \
             constituting the overlay is ({remaining})"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_nth_free_id_is_the_listed_one() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        for _ in 0..200 {
            let space = rng.random_range(1..300u32);
            let taken: std::collections::BTreeSet<NodeId> = (0..rng.random_range(0..space))
                .map(|_| rng.random_range(0..space))
                .collect();
            let free: Vec<NodeId> = (0..space).filter(|id| !taken.contains(id)).collect();
            for (rank, &id) in free.iter().enumerate() {
                assert_eq!(nth_free(taken.iter().copied(), rank as NodeId), id);
            }
        }
    }
}
