//! The node's connections: one record each, the handshake a data link starts with, and the
//! table links coming up and going down.

use std::net::SocketAddr;

use super::overlay::{Link, Span};
use super::{Node, Said};
use crate::auth::{self, Binding, Handshake, Outcome};
use crate::machine::{ConnId, Effect, Nanos};
use crate::wire::{Codec, Control, NodeId, Peek, Status};

/// What a connection is to this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Registry,
    /// The link to table entry `usize` (which holds its outgoing bytes).
    Entry(usize),
    /// A link another node opened to us, from this address.
    Inbound(SocketAddr),
}

/// One open connection. Everything the node keeps about a connection is here, so that closing
/// it is removing its record.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) role: Role,
    /// The handshake this connection must finish before anything else (`crate::auth`).
    pub(super) handshake: Handshake,
    /// Bytes queued for the connection, not yet taken by the driver: the registry's messages,
    /// an inbound link's challenge. A table entry's bytes are in its `Entry`, where the data
    /// plane appends them.
    pub(super) pending: Vec<u8>,
    /// The node at the other end of a link data arrives on, named by its first data packet.
    pub(super) peer: LinkPeer,
}

/// Who is at the other end of a link that data arrives on, as its first data packet says.
///
/// The first packet on a node's own link is one it originated (the source is the node) or
/// relayed (the node wrote itself into the last slot of the trace): either way its previous
/// hop is that node. An outsider's link can name any node, but then only adds packets to that
/// node's count, which the registry notices (`summary::Accounting`). A first packet whose trace
/// overflowed, or that names a node whose table does not hold this node, comes from no node's
/// link: the link is unnamed and its packets are counted apart, as foreign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkPeer {
    /// No data packet yet.
    Unknown,
    /// The link of this node (it has us in its table).
    Node(NodeId),
    /// No node's link.
    Unnamed,
}

impl Connection {
    pub(super) fn new(role: Role, handshake: Handshake) -> Connection {
        Connection {
            role,
            handshake,
            pending: Vec::new(),
            peer: LinkPeer::Unknown,
        }
    }
}

/// What the handshake made of the front of a data link's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The link is authenticated (or needs no handshake): its bytes are data-plane frames.
    Through,
    /// The handshake's frame has not arrived whole yet.
    Waiting,
    /// The handshake took its frame of this many bytes; the link is authenticated now.
    Took(usize),
    /// The handshake took its frame of this many bytes and answered it: nothing more is read
    /// until the peer's next message arrives (a peer that sends before it is answered is
    /// refused then).
    Answered(usize),
    /// The peer failed the handshake: the link is closed.
    Closed,
}

impl<C: Codec> Node<C> {
    /// The front of a data link's bytes while its handshake runs (`crate::auth`): the hello
    /// of a node that connected to us (and, with a secret, its proof), or the challenge of a
    /// node we connected to (we check it, prove ourselves, and the entry is up). After it,
    /// a table entry's link carries nothing toward us but, perhaps, its refusal.
    pub(super) fn handshake(&mut self, now: Nanos, conn: ConnId, bytes: &[u8]) -> Step {
        let Some(connection) = self.connections.get(&conn) else {
            return Step::Through;
        };
        let role = connection.role;
        let done = connection.handshake.is_done();
        if done && !matches!(role, Role::Entry(_)) {
            return Step::Through;
        }
        let len = match C::frame_len(bytes) {
            Ok(Some(len)) => len,
            Ok(None) => return Step::Waiting,
            Err(error) => {
                self.close(conn, format!("bad frame before the handshake: {error}"));
                return Step::Closed;
            }
        };
        let frame = &bytes[..len];
        let message = match C::peek(frame) {
            Ok(Peek::Control) => C::decode_control(frame).ok(),
            _ => None,
        };
        if done {
            // A table entry sends nothing after the handshake but a refusal (one that
            // requires a secret we lack); anything else is for the data plane to refuse.
            if let Some(Control::Refused(refusal)) = message {
                let why = refusal.describe(&self.peer_of(conn));
                self.close(conn, why);
                return Step::Closed;
            }
            return Step::Through;
        }
        let Some(connection) = self.connections.get_mut(&conn) else {
            return Step::Through;
        };
        let outcome = connection.handshake.on_message(
            self.config.secret.as_ref(),
            message.as_ref(),
            &mut self.nonces,
        );
        match (outcome, role) {
            (Outcome::Reply(challenge), Role::Inbound(_)) => {
                if connection.pending.is_empty() {
                    self.effects.push(Effect::Send(conn));
                }
                C::encode_control(&challenge, &mut connection.pending);
                Step::Answered(len)
            }
            (Outcome::Done(response), Role::Entry(index)) => {
                if let Some(response) = response {
                    self.queue_for_entry(index, &response);
                }
                self.on_entry_connected(index);
                Step::Took(len)
            }
            // A node that connected to us is a link now (within the bound on links).
            (Outcome::Done(_), _) if self.inbound_link_up(now, conn) => Step::Took(len),
            (Outcome::PassThrough, _) if self.inbound_link_up(now, conn) => Step::Through,
            (Outcome::Done(_) | Outcome::PassThrough, _) => Step::Closed,
            (Outcome::Failed(failure), _) => {
                let why = failure.describe(&self.peer_of(conn));
                self.close_telling(conn, failure.tell(), why, Said::InTheLog);
                Step::Closed
            }
            (Outcome::Reply(_), _) => {
                self.close(conn, "a table entry's handshake went out of turn".into());
                Step::Closed
            }
        }
    }

    /// Table entry `index` is connected: say hello (and, with a secret, wait for its
    /// challenge; without, the entry is up).
    pub(super) fn greet_entry(&mut self, conn: ConnId, index: usize) {
        if C::HELLO {
            let Some(addr) = self
                .overlay
                .as_ref()
                .and_then(|o| o.entries.get(index))
                .map(|e| e.addr)
            else {
                return;
            };
            let binding = Binding {
                acceptor: auth::Role::Node,
                acceptor_addr: addr,
            };
            let (handshake, hello) =
                Handshake::connect(self.config.secret.as_ref(), binding, &mut self.nonces);
            if let Some(connection) = self.connections.get_mut(&conn) {
                connection.handshake = handshake;
            }
            self.queue_for_entry(index, &hello);
        }
        if self
            .connections
            .get(&conn)
            .is_some_and(|c| c.handshake.is_done())
        {
            self.on_entry_connected(index);
        }
    }

    /// Appends a control message to a table entry's link.
    fn queue_for_entry(&mut self, index: usize, message: &Control) {
        if let Some(entry) = self.overlay.as_mut().map(|o| &mut o.entries[index]) {
            if entry.pending.is_empty() {
                self.effects.push(Effect::Send(entry.conn));
            }
            C::encode_control(message, &mut entry.pending);
        }
    }

    /// Table entry `index` is up: connected and greeted (and, with a secret, each side proved
    /// itself).
    pub(super) fn on_entry_connected(&mut self, index: usize) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let entry = &mut overlay.entries[index];
        if entry.link != Link::Connecting {
            return;
        }
        entry.link = Link::Up;
        overlay.connected += 1;
        if overlay.switch.is_some() {
            self.try_switch();
            return;
        }
        if overlay.connected == overlay.entries.len() && !overlay.setup_reported {
            overlay.setup_reported = true;
            let count = overlay.entries.len();
            let id = overlay.id;
            self.send_control(&Control::SetupStatus {
                status: Status::Ok(id),
                info: format!("node {id} connected to its {count} table entries"),
            });
        }
    }

    /// The link to table entry `index` is gone: it is down, and what was queued for it and
    /// never reached the kernel goes around it (`Overlay::reroute`).
    pub(super) fn on_entry_closed(&mut self, index: usize, reason: &str) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let entry = &mut overlay.entries[index];
        let was = entry.link;
        entry.link = Link::Down;
        let pending = entry.take_queued();
        let stranded = std::mem::take(&mut entry.stranded);
        let spans: Vec<Span> = entry.spans.iter().copied().collect();
        let first = entry.taken_bytes;
        // Released first: what goes on is added to its link's share again where it is queued.
        overlay.dequeued(index, pending.len());
        // The driver's frames are older than those still pending; their spans were released
        // when the driver took them, so they go on as this node's own.
        let mut done = overlay.reroute(&mut self.effects, Some(index), &stranded, 0, &[]);
        let queued = overlay.reroute(&mut self.effects, Some(index), &pending, first, &spans);
        done.around += queued.around;
        done.lost_with += queued.lost_with;
        done.held += queued.held;
        done.dropped += queued.dropped;
        let which = if index < overlay.router.entry_ids().len() {
            "table entry"
        } else {
            "backup entry"
        };
        let entry = &overlay.entries[index];
        let line = format!(
            "lost the link to {which} {} (node {} at {}): {reason}; of the packets queued \
             for it and not yet sent, {} went on around it, {} were for it (lost with it), {} \
             are held until the table changes and {} were dropped (no live way on)",
            index, entry.id, entry.addr, done.around, done.lost_with, done.held, done.dropped
        );
        let failure = (was == Link::Connecting && !overlay.setup_reported).then(|| {
            format!(
                "could not connect to node {} at {}: {reason}",
                entry.id, entry.addr
            )
        });
        if failure.is_some() {
            overlay.setup_reported = true;
        }
        overlay.problem(&mut self.effects, line);
        let switching = overlay.switch.is_some();
        if let Some(info) = failure {
            self.send_control(&Control::SetupStatus {
                status: Status::Failed,
                info,
            });
        }
        // A new entry that died settles a switch as well as one that came up.
        if switching {
            self.try_switch();
        }
    }
}
