//! Several messaging nodes in one machine, so that one process and one io_uring loop can run
//! them (`overlay node --count K`). No I/O, like the nodes themselves.
//!
//! Each node keeps its own listener, registration, ID, links and counters: to the registry a
//! group of K nodes is K nodes (how their links travel is `mux.rs`'s business). The group only multiplexes: the driver names a connection accepted on
//! listener `i` in group `i` (`ConnId::in_group`), and the group names the connections node `i`
//! opens the same way, so every event goes to its node by the connection's group bits, and each
//! node sees the ungrouped identifiers it chose or was given, exactly as when it runs alone.
//!
//! What differs from K processes: one copy of each membership view for all of them
//! (`views.rs`: the ring and what is derived from it, held once per process), one console for
//! all of them (each command goes to every
//! node, each line a node prints starts with its address), one tick for all (the nodes whose
//! tick is due run in turn, at most [`GROUP_TICK_NODES_MAX`] per tick, longest waiting first),
//! nodes that start one after the other, [`GROUP_JOIN_GAP_NS`] apart (thousands of nodes
//! dialling their registry at the same instant overflow its listen queue), and a node that
//! exits leaves the others running: the group closes its connections and
//! closes whatever is accepted on its listener from then on. The process exits once every
//! node has, with the highest of their statuses.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;

use super::views::Views;
use super::{Node, NodeConfig};
use crate::limits::{GROUP_JOIN_GAP_NS, GROUP_TICK_NODES_MAX};
use crate::machine::{CloseReason, ConnId, Effect, Machine, Nanos};
use crate::wire::Codec;

/// One node of the group and what the group keeps about it.
struct Member<C: Codec> {
    node: Node<C>,
    /// The start of every line it prints (its listening address).
    label: String,
    /// Its tick as entered in the group's queue (`None`: not queued).
    queued_tick: Option<Nanos>,
    /// Its open connections, ungrouped: closed by the group if the node exits.
    open: HashSet<ConnId>,
    /// The status it exited with.
    exited: Option<i32>,
}

/// K messaging nodes driven as one machine.
pub struct Group<C: Codec> {
    members: Vec<Member<C>>,
    /// `(tick, node index)` of every node that wants a tick; a due tick is entered as the time
    /// it was seen due, so nodes that keep asking for a tick take turns.
    ticks: BTreeSet<(Nanos, usize)>,
    effects: Vec<Effect>,
    /// A node's effects before they are named in its group.
    scratch: Vec<Effect>,
    /// Nodes whose tick is due in this tick (kept to reuse its allocation).
    due: Vec<usize>,
    /// When the group started, and how many of its nodes have (node `i` starts at
    /// `started_at + i x GROUP_JOIN_GAP_NS`).
    started_at: Nanos,
    started: usize,
}

impl<C: Codec> Group<C> {
    /// A group of one node per configuration (at least one, at most `ConnId::GROUPS_MAX`);
    /// node `i` owns the connections the driver accepts on listener `i`.
    pub fn new(configs: Vec<NodeConfig>) -> Group<C> {
        assert!(!configs.is_empty(), "a group has at least one node");
        assert!(
            configs.len() <= ConnId::GROUPS_MAX,
            "too many nodes for one group"
        );
        let views = Views::default();
        let members = configs
            .into_iter()
            .map(|config| Member {
                label: format!("node {}: ", config.listen),
                node: Node::sharing(config, views.clone()),
                queued_tick: None,
                open: HashSet::new(),
                exited: None,
            })
            .collect();
        Group {
            members,
            ticks: BTreeSet::new(),
            effects: Vec::new(),
            scratch: Vec::new(),
            due: Vec::new(),
            started_at: 0,
            started: 0,
        }
    }

    /// The nodes, in listener order.
    pub fn nodes(&self) -> impl Iterator<Item = &Node<C>> {
        self.members.iter().map(|member| &member.node)
    }

    /// Forgets accepted connection `conn` without a word: the process's multiplexer took it
    /// as a trunk (`node::mux`) before it became anything to its node.
    pub(crate) fn forget(&mut self, conn: ConnId) {
        if let Some(member) = self.members.get_mut(conn.group()) {
            let local = conn.ungrouped();
            member.open.remove(&local);
            member.node.forget(local);
        }
    }

    /// When the next node that has not started starts.
    fn next_start(&self) -> Option<Nanos> {
        (self.started < self.members.len())
            .then(|| self.started_at + self.started as Nanos * GROUP_JOIN_GAP_NS)
    }

    /// Starts the nodes whose start time has come.
    fn start_due(&mut self, now: Nanos) {
        while let Some(at) = self.next_start()
            && at <= now
        {
            let index = self.started;
            self.started += 1;
            if self.members[index].exited.is_none() {
                self.members[index].node.on_start(now);
                self.after(now, index);
            }
        }
    }

    /// The node a connection belongs to, unless it exited (or no node has that index).
    fn live(&mut self, conn: ConnId) -> Option<(usize, &mut Node<C>)> {
        let index = conn.group();
        let member = self.members.get_mut(index)?;
        if member.exited.is_some() {
            return None;
        }
        Some((index, &mut member.node))
    }

    /// After every call into node `index`: its effects named in its group, its connections
    /// tracked, its tick queued again.
    fn after(&mut self, now: Nanos, index: usize) {
        let member = &mut self.members[index];
        member.node.take_effects(&mut self.scratch);
        for effect in self.scratch.drain(..) {
            let effect = match effect {
                Effect::Connect {
                    conn,
                    addr,
                    keepalive,
                } => {
                    member.open.insert(conn);
                    Effect::Connect {
                        conn: conn.in_group(index),
                        addr,
                        keepalive,
                    }
                }
                Effect::Send(conn) => Effect::Send(conn.in_group(index)),
                Effect::Close(conn) => {
                    member.open.remove(&conn);
                    Effect::Close(conn.in_group(index))
                }
                Effect::Print(line) => Effect::Print(format!("{}{line}", member.label)),
                Effect::WriteFile { path, contents } => Effect::WriteFile { path, contents },
                Effect::Exit(code) => {
                    // Nothing a node asks for after its exit is carried out (as a driver does).
                    member.exited = Some(code);
                    for conn in member.open.drain() {
                        self.effects.push(Effect::Close(conn.in_group(index)));
                    }
                    break;
                }
            };
            self.effects.push(effect);
        }
        self.scratch.clear();
        let tick = match member.exited {
            Some(_) => None,
            None => member.node.next_tick().map(|tick| tick.max(now)),
        };
        if tick != member.queued_tick {
            if let Some(old) = member.queued_tick {
                self.ticks.remove(&(old, index));
            }
            if let Some(new) = tick {
                self.ticks.insert((new, index));
            }
            member.queued_tick = tick;
        }
        if member.exited.is_some() && self.members.iter().all(|m| m.exited.is_some()) {
            let code = self.members.iter().filter_map(|m| m.exited).max();
            self.effects.push(Effect::Exit(code.unwrap_or(0)));
        }
    }
}

impl<C: Codec> Machine for Group<C> {
    fn on_start(&mut self, now: Nanos) {
        self.started_at = now;
        self.start_due(now);
    }

    fn on_accepted(&mut self, now: Nanos, conn: ConnId, peer: SocketAddr, address: SocketAddr) {
        let Some((index, node)) = self.live(conn) else {
            // The node of this listener exited: as if nothing listened any more.
            self.effects.push(Effect::Close(conn));
            return;
        };
        let local = conn.ungrouped();
        node.on_accepted(now, local, peer, address);
        self.members[index].open.insert(local);
        self.after(now, index);
    }

    fn on_connected(&mut self, now: Nanos, conn: ConnId) {
        if let Some((index, node)) = self.live(conn) {
            node.on_connected(now, conn.ungrouped());
            self.after(now, index);
        }
    }

    fn on_received(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> usize {
        let Some((index, node)) = self.live(conn) else {
            return bytes.len();
        };
        let consumed = node.on_received(now, conn.ungrouped(), bytes);
        self.after(now, index);
        consumed
    }

    fn on_closed(&mut self, now: Nanos, conn: ConnId, reason: CloseReason) {
        if let Some((index, node)) = self.live(conn) {
            let local = conn.ungrouped();
            node.on_closed(now, local, reason);
            self.members[index].open.remove(&local);
            self.after(now, index);
        }
    }

    fn on_unsent(&mut self, now: Nanos, conn: ConnId, taken: &[u8], sent: usize) {
        if let Some((index, node)) = self.live(conn) {
            node.on_unsent(now, conn.ungrouped(), taken, sent);
            self.after(now, index);
        }
    }

    fn on_flushed(&mut self, now: Nanos, conn: ConnId) {
        if let Some((index, node)) = self.live(conn) {
            let local = conn.ungrouped();
            node.on_flushed(now, local);
            self.members[index].open.remove(&local);
            self.after(now, index);
        }
    }

    fn on_command(&mut self, now: Nanos, line: &str) {
        for index in 0..self.members.len() {
            if self.members[index].exited.is_none() {
                self.members[index].node.on_command(now, line);
                self.after(now, index);
            }
        }
    }

    fn on_tick(&mut self, now: Nanos) {
        self.start_due(now);
        let mut due = std::mem::take(&mut self.due);
        while due.len() < GROUP_TICK_NODES_MAX
            && let Some(&(tick, index)) = self.ticks.first()
            && tick <= now
        {
            self.ticks.pop_first();
            self.members[index].queued_tick = None;
            due.push(index);
        }
        for &index in &due {
            self.members[index].node.on_tick(now);
            self.after(now, index);
        }
        due.clear();
        self.due = due;
    }

    fn next_tick(&self) -> Option<Nanos> {
        let tick = self.ticks.first().map(|&(tick, _)| tick);
        match (tick, self.next_start()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        std::mem::swap(&mut self.effects, into);
    }

    fn pending_len(&self, conn: ConnId) -> usize {
        self.members
            .get(conn.group())
            .map_or(0, |member| member.node.pending_len(conn.ungrouped()))
    }

    fn frame_len(&self, bytes: &[u8]) -> Option<usize> {
        C::frame_len(bytes).ok().flatten()
    }

    fn swap_outgoing(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        if let Some(member) = self.members.get_mut(conn.group()) {
            member.node.swap_outgoing(conn.ungrouped(), buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::LinkError;
    use crate::wire::native::Native;

    fn config(port: u16) -> NodeConfig {
        NodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            registry: "127.0.0.1:9".parse().unwrap(),
            seed: u64::from(port),
            secret: None,
            link_buffer_bytes: 0,
            registry_wait: 0,
            group: None,
        }
    }

    fn effects(group: &mut Group<Native>) -> Vec<Effect> {
        let mut into = Vec::new();
        group.take_effects(&mut into);
        into
    }

    fn connects(effects: &[Effect]) -> Vec<ConnId> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Connect { conn, .. } => Some(*conn),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_node_that_exits_leaves_the_others_running_and_the_last_one_ends_the_group() {
        let mut group = Group::<Native>::new(vec![config(1001), config(1002)]);
        group.on_start(0);
        // The nodes start one after the other.
        let mut started = connects(&effects(&mut group));
        assert_eq!(started.len(), 1, "{started:?}");
        assert_eq!(group.next_tick(), Some(GROUP_JOIN_GAP_NS));
        group.on_tick(GROUP_JOIN_GAP_NS);
        started.extend(connects(&effects(&mut group)));
        // Each node dials the registry, named in its own group.
        assert_eq!(started.len(), 2, "{started:?}");
        assert_eq!((started[0].group(), started[1].group()), (0, 1));
        assert_eq!(started[0].ungrouped(), started[1].ungrouped());
        // Node 1 cannot reach the registry and gives up (it tries once): it exits alone.
        let refused = CloseReason::ConnectFailed {
            addr: "127.0.0.1:9".parse().unwrap(),
            error: LinkError::Refused,
        };
        group.on_closed(1, started[1], refused);
        let after = effects(&mut group);
        assert!(
            !after.iter().any(|e| matches!(e, Effect::Exit(_))),
            "{after:?}"
        );
        assert!(
            after.iter().any(
                |e| matches!(e, Effect::Print(line) if line.starts_with("node 127.0.0.1:1002: "))
            ),
            "{after:?}"
        );
        // What reaches its listener now is closed at once; node 0 still takes connections.
        let late = ConnId::inbound(5).in_group(1);
        group.on_accepted(
            2,
            late,
            "127.0.0.1:7".parse().unwrap(),
            "127.0.0.1:1002".parse().unwrap(),
        );
        assert_eq!(effects(&mut group), vec![Effect::Close(late)]);
        let link = ConnId::inbound(6).in_group(0);
        group.on_accepted(
            2,
            link,
            "127.0.0.1:7".parse().unwrap(),
            "127.0.0.1:1001".parse().unwrap(),
        );
        assert!(!effects(&mut group).contains(&Effect::Close(link)));
        // Node 0 gives up too: it closes its connection, and the group exits.
        group.on_closed(3, started[0], refused);
        let last = effects(&mut group);
        assert_eq!(last.last(), Some(&Effect::Exit(1)), "{last:?}");
        assert!(last.contains(&Effect::Close(link)), "{last:?}");
    }
}
