//! Membership that changes while traffic flows (docs/ARCHITECTURE.md, "Membership that
//! changes"): the registry's [`Change`]s as a node carries them out.
//!
//! - A join or a departure gives the node a new router (the membership without or with the
//!   node) and, when its table changes, new entries: it connects to those first and keeps
//!   routing on its old table until every new link is up (make before break); then it
//!   switches at once, hands the entries it no longer has to the driver to flush and close,
//!   and acknowledges.
//! - Sinks: a node that joined is picked only once the registry opens it (every node routes
//!   to it by then); a leaving node is picked no more from its `Leave`, which the node
//!   acknowledges with the packets it originated toward the leaver.
//! - The leaver waits for every packet addressed to it, and for every packet it sent to be
//!   acknowledged (the others acknowledge a leaver's packets one by one: `Drain`), then, out
//!   of every table,
//!   for every link other nodes opened to it to be closed by them (`Close`), relaying all the
//!   while.
//! - Nodes lost together (crashed) are picked no more from their `Lost`, and leave the tables
//!   in one switch (`Repair`).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use super::Node;
use super::links::{Connection, Role};
use super::overlay::{Around, Entry, Link, Members, Overlay, Switch, route_around};
use crate::auth::Handshake;
use crate::buffer;
use crate::chord::Id;
use crate::limits::{BACKUP_ENTRIES, LEAVE_FLUSH_TIMEOUT_NS, relay_queued_bytes_max};
use crate::machine::{ConnId, Effect, Nanos};
use crate::wire::{
    Change, Codec, Control, ManifestEntry, MembershipChange, NewTable, NodeId, fits_slot,
};

impl<C: Codec> Node<C> {
    /// A membership change from the registry.
    pub(super) fn on_membership(&mut self, message: MembershipChange) {
        let Some(overlay) = self.overlay.as_mut() else {
            self.say("Ignoring a membership change: the overlay is not set up here");
            return;
        };
        let MembershipChange {
            version,
            change,
            table,
        } = message;
        let me = overlay.id;
        // A change builds on the newest membership this node heard of: a switch still
        // waiting (the registry gave up waiting for it and went on) is superseded.
        let newest = overlay
            .switch
            .as_ref()
            .map_or(&overlay.members, |switch| &switch.members)
            .clone();
        // From the first change on, packets may travel partly on other nodes' newer tables:
        // the sink checks routes by rule only.
        if !overlay.router.changed() {
            let (slots, others) = (overlay.members.trace_slots, overlay.others.clone());
            overlay.router.after_change(slots, others);
        }
        match change {
            Change::Join {
                id,
                addr,
                identifier,
            } => {
                let mut members = newest;
                let slot_bytes = overlay.shape.slot_bytes;
                let added = if fits_slot(id, slot_bytes) {
                    members.add(id, identifier)
                } else {
                    Err(format!(
                        "node {id} does not fit the overlay's trace slots of {slot_bytes} bytes"
                    ))
                };
                if let Err(why) = added {
                    self.membership_problem(version, &why);
                    return;
                }
                // A trace may name it once some node switched; it is not a sink until every
                // node routes to it (`Change::Open`).
                let key = identifier.unwrap_or_else(|| Id::from(u128::from(id)));
                overlay.others.insert(id, key);
                let (slots, others) = (members.trace_slots, overlay.others.clone());
                overlay.router.after_change(slots, others);
                overlay.closed.insert(id);
                tracing::debug!("node {id} at {addr} joins (version {version})");
                self.begin_switch(version, members, table, false);
            }
            Change::Commit { id } => match overlay.switch.as_mut() {
                Some(switch) if switch.version == version => {
                    switch.commit = true;
                    self.try_switch();
                }
                _ => {
                    let why = format!("no switch prepared for node {id}");
                    self.membership_problem(version, &why);
                }
            },
            Change::Open { id } => {
                overlay.closed.remove(&id);
                overlay.pick_sinks();
            }
            Change::Leave { id } if id == me => {
                // This node leaves: it originates nothing more.
                overlay.leaving.began = true;
                if let Some(run) = overlay.run.as_mut() {
                    run.remaining = 0;
                    self.finish_run();
                }
                self.acknowledge(version, 0);
            }
            Change::Leave { id } => {
                overlay.closed.insert(id);
                overlay.pick_sinks();
                let position = overlay.router.position(id);
                let count = position.map_or(0, |p| overlay.flow.originated_toward(p));
                // Its drain also waits until all it sent has arrived: acknowledged at once.
                if let Some(acked) = position.and_then(|p| overlay.flow.ack_at_once(p)) {
                    overlay.send_ack(&mut self.effects, id, acked);
                }
                self.acknowledge(version, count);
            }
            Change::Drain { id, expected } if id == me => {
                overlay.leaving.drain = Some((version, expected));
                self.check_leaving();
            }
            Change::Close { id } if id == me => {
                overlay.leaving.close = Some(version);
                self.check_leaving();
            }
            Change::Gone { id } if id != me => {
                let mut members = newest;
                if let Err(why) = members.remove(id) {
                    self.membership_problem(version, &why);
                    return;
                }
                overlay.closed.insert(id);
                overlay.pick_sinks();
                self.begin_switch(version, members, table, true);
            }
            Change::Lost { ids } => {
                overlay
                    .closed
                    .extend(ids.iter().copied().filter(|&id| id != me));
                overlay.pick_sinks();
                // What they held of this node's packets never arrives: the window is given
                // back, and the relays' bound makes room for what arrives after all.
                overlay.flow.forgive();
                overlay.shares.bound = relay_queued_bytes_max(
                    overlay.router.ring().len(),
                    overlay.flow.bound_window_bytes(),
                );
                self.acknowledge(version, 0);
            }
            Change::Repair { ids } if !ids.contains(&me) => {
                let mut members = newest;
                for &id in &ids {
                    if let Err(why) = members.remove(id) {
                        self.membership_problem(version, &why);
                        return;
                    }
                }
                overlay.closed.extend(ids);
                overlay.pick_sinks();
                self.begin_switch(version, members, table, true);
            }
            other => {
                let why = format!("a change this node cannot carry out: {other:?}");
                self.membership_problem(version, &why);
            }
        }
    }

    /// Tells the registry that change `version` is done here.
    fn acknowledge(&mut self, version: u32, count: u64) {
        self.send_control(&Control::MembershipAck { version, count });
    }

    /// A change this node refuses: said, and not acknowledged (the registry gives up on it
    /// after its stall timeout and says so).
    fn membership_problem(&mut self, version: u32, why: &str) {
        self.say(format!("Membership change {version} refused: {why}"));
    }

    /// Starts the switch to the router of `members`, its table and backup entries (`table`,
    /// if the registry sent one, must be the router's; without one they stay): connects to
    /// the new entries, and switches once every link of the new table is up or known dead
    /// (`commit`: a dead one is routed around until the registry repairs it), or says so and
    /// waits for the registry's commit. A switch still waiting is superseded.
    fn begin_switch(
        &mut self,
        version: u32,
        members: Members,
        table: Option<NewTable>,
        commit: bool,
    ) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let router = match members.router(&self.views, overlay.id) {
            Ok(router) if C::DETOURS => router.with_backup_holders(BACKUP_ENTRIES),
            Ok(router) => router,
            Err(why) => {
                self.membership_problem(version, &why);
                return;
            }
        };
        let wanted = router.entry_ids();
        // The table and backups in use, or those of the switch this one supersedes.
        let (current, current_backups) = match overlay.switch.take() {
            Some(switch) => {
                tracing::debug!(
                    "membership change {version} supersedes change {}, still switching",
                    switch.version
                );
                (switch.table, switch.backups)
            }
            None => {
                let nr = overlay.router.entry_ids().len();
                let ids: Vec<NodeId> = overlay.entries.iter().map(|e| e.id).collect();
                (ids[..nr].to_vec(), ids[nr..].to_vec())
            }
        };
        // The links of the new table and backups (none when the registry sent none).
        let (links, backups) = match table {
            Some(NewTable { entries, backups }) => {
                let sent: Vec<NodeId> = entries.iter().map(|e| e.id).collect();
                if sent != wanted {
                    let why = format!("the registry's table {sent:?} is not the ring's {wanted:?}");
                    self.membership_problem(version, &why);
                    return;
                }
                // Backups are only ever sent on short of a sink, so any other member will do.
                if let Some(bad) = backups.iter().find(|backup| {
                    backup.id == overlay.id
                        || sent.contains(&backup.id)
                        || router.position(backup.id).is_none()
                }) {
                    let why = format!(
                        "the registry's backup entry {} is no other member outside the table",
                        bad.id
                    );
                    self.membership_problem(version, &why);
                    return;
                }
                let ids = backups.iter().map(|e| e.id).collect();
                (entries.into_iter().chain(backups).collect(), ids)
            }
            None if wanted == current => (Vec::new(), current_backups),
            None => {
                let why = format!(
                    "the new membership gives the table {wanted:?}, but the registry sent none \
                     (the table is {current:?})"
                );
                self.membership_problem(version, &why);
                return;
            }
        };
        // Make before break: the links to new entries first, after the old ones.
        let mut known: Vec<NodeId> = overlay.entries.iter().map(|e| e.id).collect();
        let links: Vec<ManifestEntry> = links
            .into_iter()
            .filter(|e| {
                let new = !known.contains(&e.id);
                known.push(e.id);
                new
            })
            .collect();
        for link in links {
            self.add_entry(link.id, link.addr);
        }
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.switch = Some(Switch {
                version,
                members,
                router,
                table: wanted,
                backups,
                commit,
                ready_told: false,
            });
        }
        self.try_switch();
    }

    /// Opens the link to a new table entry, after the current ones (the router in use does
    /// not send on it until the switch).
    fn add_entry(&mut self, id: NodeId, addr: SocketAddr) {
        let conn = self.conn_ids.next_outbound();
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let index = overlay.entries.len();
        self.connections
            .insert(conn, Connection::new(Role::Entry(index), Handshake::Done));
        self.effects.push(Effect::Connect {
            conn,
            addr,
            keepalive: false,
        });
        overlay.entries.push(Entry {
            id,
            addr,
            // Set at the switch, for the router switched to; until then no route uses it.
            distance: 0,
            conn,
            link: Link::Connecting,
            pending: buffer::mapped_empty(self.config.link_buffer_bytes),
            held: Vec::new(),
            held_bytes: 0,
            with_driver: 0,
            packets_out: 0,
            taken_bytes: 0,
            spans: VecDeque::new(),
            stranded: Vec::new(),
        });
    }

    /// Switches to the pending router and table once every entry of it is up.
    pub(super) fn try_switch(&mut self) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let Some(switch) = &overlay.switch else {
            return;
        };
        // Up, or dead (a crashed node: routed around until the registry repairs the tables).
        let settled = switch.table.iter().all(|id| {
            overlay
                .entries
                .iter()
                .any(|e| e.id == *id && e.link != Link::Connecting)
        });
        if !settled {
            return;
        }
        if !switch.commit {
            if !switch.ready_told {
                let version = switch.version;
                if let Some(switch) = overlay.switch.as_mut() {
                    switch.ready_told = true;
                }
                self.acknowledge(version, 0);
            }
            return;
        }
        let Some(Switch {
            version,
            members,
            mut router,
            table,
            backups,
            ..
        }) = overlay.switch.take()
        else {
            return;
        };
        // The table's entries, then the backups.
        let kept_ids: Vec<NodeId> = table.iter().chain(&backups).copied().collect();
        // The entries the new ones do not have: what is queued for them is theirs no longer
        // (for the bound on links), and the driver flushes it, then closes them.
        for index in 0..overlay.entries.len() {
            if !kept_ids.contains(&overlay.entries[index].id) {
                let queued = overlay.entries[index].queued_len();
                overlay.dequeued(index, queued);
            }
        }
        let mut kept: HashMap<NodeId, Entry> = HashMap::with_capacity(kept_ids.len());
        for mut entry in std::mem::take(&mut overlay.entries) {
            if kept_ids.contains(&entry.id) {
                kept.insert(entry.id, entry);
                continue;
            }
            *overlay.retired_out.entry(entry.id).or_default() += entry.packets_out;
            // A dead link is closed already, and what it held went around it.
            if self.connections.remove(&entry.conn).is_some() {
                self.farewells.keep(entry.conn, entry.take_queued());
                self.effects.push(Effect::Close(entry.conn));
            }
        }
        overlay.entries = kept_ids.iter().filter_map(|id| kept.remove(id)).collect();
        for (index, entry) in overlay.entries.iter_mut().enumerate() {
            entry.distance = router
                .position(entry.id)
                .map_or(0, |position| router.distance_to(position));
            if let Some(connection) = self.connections.get_mut(&entry.conn) {
                connection.role = Role::Entry(index);
            }
        }
        overlay.connected = overlay
            .entries
            .iter()
            .filter(|e| e.link == Link::Up)
            .count();
        // Per-node state moves to the new ring positions; a node that left takes with it.
        let old_ring = overlay.router.ring().ids().to_vec();
        let nodes = router.ring().len();
        let moved = |p: usize| router.position(old_ring[p]);
        overlay.flow.remap(nodes, moved);
        overlay
            .holders_seen
            .extend(router.holders().iter().copied());
        // The nodes that left stay known to the check (packets they sent or relayed may still
        // be on their way) until the next final report; those that joined are members now.
        for (p, &id) in old_ring.iter().enumerate() {
            if router.position(id).is_none() {
                let key = overlay.router.id_of_position(p);
                overlay.others.insert(id, key);
            }
        }
        overlay
            .others
            .retain(|id, _| router.position(*id).is_none());
        router.after_change(members.trace_slots, overlay.others.clone());
        overlay.shares.bound = relay_queued_bytes_max(nodes, overlay.flow.bound_window_bytes());
        overlay.router = router;
        overlay.members = members;
        overlay.version = version;
        let ring = overlay.router.ring().clone();
        overlay.closed.retain(|id| ring.position(*id).is_some());
        overlay.pick_sinks();
        // Frames held with no live way on go on through the new table.
        overlay.release_stuck(&mut self.effects);
        self.acknowledge(version, 0);
    }

    /// Deregistered: what is queued for the table entries is flushed (the driver hands it to
    /// the kernel, then closes each link: `on_flushed`), then the node exits; at most
    /// [`LEAVE_FLUSH_TIMEOUT_NS`] later it exits anyway, saying so.
    pub(super) fn depart(&mut self, now: Nanos) {
        // Out of the overlay: nothing more is originated, relayed or delivered here.
        if let Some(mut overlay) = self.overlay.take() {
            // Never to go on: said, as a final report would count them dropped.
            let held = overlay.stuck.packets;
            if held > 0 {
                self.say(format!(
                    "dropped {held} packets held with no live way on toward their sinks"
                ));
            }
            for index in 0..overlay.entries.len() {
                let queued = overlay.entries[index].queued_len();
                overlay.dequeued(index, queued);
            }
            for mut entry in std::mem::take(&mut overlay.entries) {
                self.connections.remove(&entry.conn);
                self.farewells.keep(entry.conn, entry.take_queued());
                self.effects.push(Effect::Close(entry.conn));
                self.flushing.insert(entry.conn);
            }
        }
        self.exit_at = Some(now + LEAVE_FLUSH_TIMEOUT_NS);
        self.exit_if_flushed();
    }

    /// A link closed at departure is flushed.
    pub(super) fn flushed(&mut self, conn: ConnId) {
        if self.flushing.remove(&conn) {
            self.exit_if_flushed();
        }
    }

    fn exit_if_flushed(&mut self) {
        if self.exit_at.is_some() && self.flushing.is_empty() {
            self.exit_at = None;
            self.effects.push(Effect::Exit(0));
        }
    }

    /// The departure's flush took too long: exit anyway.
    pub(super) fn departure_tick(&mut self, now: Nanos) {
        if self.exit_at.is_some_and(|at| at <= now) {
            let links = self.flushing.len();
            self.say(format!(
                "{links} table links did not finish sending within {} s; exiting",
                LEAVE_FLUSH_TIMEOUT_NS / 1_000_000_000
            ));
            self.exit_at = None;
            self.effects.push(Effect::Exit(0));
        }
    }

    /// A leaving node's waits: every packet addressed to it arrived (`Drain`); every link
    /// other nodes opened to it closed (`Close`).
    pub(super) fn check_leaving(&mut self) {
        let inbound = self
            .connections
            .values()
            .filter(|c| matches!(c.role, Role::Inbound(_)) && c.handshake.is_done())
            .count();
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let mut done = Vec::new();
        // Every packet toward it arrived (or did by a final report it gave while leaving), and
        // every packet it sent arrived (acknowledged): none of its packets is on its way to a
        // node that leaves after it.
        if let Some((version, expected)) = overlay.leaving.drain
            && (overlay.leaving.reported || overlay.flow.sunk_total() >= expected)
            && overlay.flow.in_flight_bytes == 0
        {
            overlay.leaving.drain = None;
            done.push(version);
        }
        if let Some(version) = overlay.leaving.close
            && inbound == 0
        {
            overlay.leaving.close = None;
            done.push(version);
        }
        for version in done {
            self.acknowledge(version, 0);
        }
    }
}

impl<C: Codec> Overlay<C> {
    /// Acknowledges `acked` bytes to source `to` outside the delivery of a frame (a leaving
    /// source's bytes not yet acknowledged when it began to leave): queued on no inbound link's
    /// behalf, on the rule's entry toward it or around it when that link is down, as acks are.
    fn send_ack(&mut self, effects: &mut Vec<Effect>, to: NodeId, acked: u64) {
        let Some(mut index) = self.router.next_hop(to) else {
            return;
        };
        if self.entries[index].link != Link::Up
            && let Around::Entry(other) = route_around::<C>(&self.router, &self.entries, to)
        {
            index = other;
        }
        let (me, epoch) = (self.id, self.flow.epoch);
        let entry = &mut self.entries[index];
        if entry.link != Link::Up {
            return;
        }
        if entry.pending.is_empty() {
            effects.push(Effect::Send(entry.conn));
        }
        C::append_ack(&mut entry.pending, me, to, epoch, acked);
    }
}

impl Members {
    /// Adds node `id` (with its identifier, in Chord mode).
    fn add(&mut self, id: NodeId, identifier: Option<Id>) -> Result<(), String> {
        if self.ids.contains(&id) {
            return Err(format!("node {id} is a member already"));
        }
        match (&mut self.chord, identifier) {
            (Some(chord), Some(identifier)) => {
                if chord.ids.contains(&identifier) {
                    return Err(format!("node {id}'s identifier {identifier:x} is taken"));
                }
                Arc::make_mut(chord).ids.push(identifier);
            }
            (None, None) => {}
            (Some(_), None) => return Err(format!("node {id} joined without an identifier")),
            (None, Some(_)) => return Err(format!("node {id} joined with an identifier")),
        }
        self.ids.push(id);
        Ok(())
    }

    /// Removes node `id`.
    fn remove(&mut self, id: NodeId) -> Result<(), String> {
        let index = self
            .ids
            .iter()
            .position(|&member| member == id)
            .ok_or_else(|| format!("node {id} is no member"))?;
        self.ids.remove(index);
        if let Some(chord) = &mut self.chord {
            Arc::make_mut(chord).ids.remove(index);
        }
        Ok(())
    }
}
