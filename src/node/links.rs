//! The node's connections: one record each, the handshake a data link starts with, and the
//! table links coming up and going down.

use std::net::SocketAddr;

use super::Node;
use super::overlay::{Link, unsent_data_frames};
use crate::auth::{Handshake, Outcome};
use crate::machine::{ConnId, Effect};
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
    /// With a secret: the challenge-response this connection must finish before anything else.
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
    /// The peer failed the handshake: the link is closed.
    Closed,
}

impl<C: Codec> Node<C> {
    /// With a secret, the first frame on a data link: the challenge of a node we connected
    /// to (we answer it; the entry is then up), or the answer of a node that connected to us.
    pub(super) fn handshake(&mut self, conn: ConnId, bytes: &[u8]) -> Step {
        let (Some(secret), Some(connection)) =
            (self.config.secret.as_ref(), self.connections.get_mut(&conn))
        else {
            return Step::Through;
        };
        if connection.handshake.is_done() {
            return Step::Through;
        }
        let len = match C::frame_len(bytes) {
            Ok(Some(len)) => len,
            Ok(None) => return Step::Waiting,
            Err(error) => {
                self.close(conn, format!("bad frame before authenticating: {error}"));
                return Step::Closed;
            }
        };
        let frame = &bytes[..len];
        let message = match C::peek(frame) {
            Ok(Peek::Control) => C::decode_control(frame).ok(),
            _ => None,
        };
        let role = connection.role;
        match (
            connection.handshake.on_message(secret, message.as_ref()),
            role,
        ) {
            (Outcome::Reply(response), Role::Entry(index)) => {
                self.queue_for_entry(index, &response);
                self.on_entry_connected(index);
                Step::Took(len)
            }
            (Outcome::Verified, _) => Step::Took(len),
            (_, Role::Entry(_)) => {
                self.close(conn, "the node did not send a challenge first".into());
                Step::Closed
            }
            (_, _) => {
                self.close(
                    conn,
                    "authentication failed: the peer did not answer the challenge with the \
                     shared secret"
                        .into(),
                );
                Step::Closed
            }
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

    /// Table entry `index` is connected (and, with a secret, we answered its challenge).
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

    /// The link to table entry `index` is gone: it is down, and what was queued for it is
    /// dropped.
    pub(super) fn on_entry_closed(&mut self, index: usize, reason: &str) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        let entry = &mut overlay.entries[index];
        let was = entry.link;
        entry.link = Link::Down;
        // Frames still queued for the entry can no longer be delivered: account for them.
        let lost = unsent_data_frames::<C>(&entry.pending, 0);
        entry.pending.clear();
        entry.take_back(lost);
        let line = format!(
            "lost the link to table entry {} (node {} at {}): {reason}; {lost} queued packets \
             counted as dropped",
            index, entry.id, entry.addr
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
        overlay.counters.dropped += lost;
        overlay.problem(&mut self.effects, line);
        if let Some(info) = failure {
            self.send_control(&Control::SetupStatus {
                status: Status::Failed,
                info,
            });
        }
    }
}
