//! A connection's life in the driver: opened (accepted, connected), its buffers, shut down
//! and released once no operation is in flight.

use super::*;

impl<'m, M: Machine> Driver<'m, M> {
    // ----- Connection life -----

    /// A new slot for `socket`, or `None` if the slab is full.
    pub(super) fn insert(
        &mut self,
        socket: Socket,
        conn: ConnId,
        peer: SocketAddr,
        state: State,
    ) -> Option<usize> {
        if self.connections.len() >= self.connections_max {
            return None;
        }
        assert!(!self.slots.contains_key(&conn), "{conn:?} is already open");
        self.generation = self.generation.wrapping_add(1) & GENERATION_MASK;
        let (recv_buffer, send_buffer) = self.buffers(conn.is_outbound());
        // SAFETY: an all-zero `msghdr` is valid (null pointers, zero lengths); the gathered
        // send fills in its iovecs.
        let send_message = Box::new(unsafe { std::mem::zeroed::<libc::msghdr>() });
        assert_eq!(
            recv_buffer.len(),
            if self.shared_recv.is_some() {
                0
            } else {
                self.recv_buffer_bytes
            }
        );
        assert!(send_buffer.is_empty());
        let key = self.connections.insert(Connection {
            socket,
            conn,
            generation: self.generation,
            peer,
            state,
            connected: state == State::Open,
            recv_buffer,
            recv_filled: 0,
            partial: Vec::new(),
            send_buffer,
            send_held: Vec::new(),
            send_held_bytes: 0,
            send_offset: 0,
            send_iovecs: Vec::new(),
            send_message,
            connect_address: None,
            recv_in_flight: false,
            send_in_flight: false,
            send_wanted: false,
            send_wanted_at: 0,
            connect_in_flight: false,
        });
        assert!(
            self.connections.capacity() == self.connections_max,
            "the connection slab never grows"
        );
        self.slots.insert(conn, key);
        Some(key)
    }

    /// A new slot's receive and send buffers: those of a released slot, or new ones.
    ///
    /// With `send_buffer_bytes` nonzero (a node), new buffers are mapped up front
    /// (`buffer::mapped`) for the connections the machine opens itself (table links, the
    /// registry), and a receive buffer for the first `MAPPED_INBOUND_RECV_BUFFERS` accepted ones
    /// (the links of predecessors). Any peer can open connections, so beyond that count
    /// accepted connections get buffers mapped at first use, as before: connections that
    /// never become links cannot make a node map more than that many buffers. Inbound links
    /// carry no data toward the peer, so they get an empty send buffer.
    pub(super) fn buffers(&mut self, outbound: bool) -> (Arc<[u8]>, Vec<u8>) {
        if self.shared_recv.is_some() {
            // Receives go to the shared ring; the slot keeps partial frames only. Sends start
            // empty and grow with what the machine queues.
            return (Arc::from(Vec::new()), Vec::new());
        }
        let map = self.send_buffer_bytes > 0
            && (outbound || self.inbound_recv_mapped < MAPPED_INBOUND_RECV_BUFFERS);
        let recv = self.spare_recv_buffers.pop().unwrap_or_else(|| {
            self.inbound_recv_mapped += usize::from(map && !outbound);
            recv_buffer(self.recv_buffer_bytes, map)
        });
        let send = if outbound || self.send_buffer_bytes == 0 {
            self.spare_send_buffers
                .pop()
                .unwrap_or_else(|| buffer::mapped_empty(self.send_buffer_bytes))
        } else {
            Vec::new()
        };
        (recv, send)
    }

    /// Shuts the socket down (a pending receive then completes) and forgets the connection's
    /// name; the slot is released when its operations are done.
    pub(super) fn shut_down(&mut self, key: usize) {
        let slot = &mut self.connections[key];
        if slot.state == State::Closed {
            return;
        }
        slot.state = State::Closed;
        // Fails harmlessly (ENOTCONN) on a socket that never connected.
        let _ = slot.socket.shutdown(Shutdown::Both);
        self.slots.remove(&slot.conn);
    }

    /// The connection failed or the peer closed it: tell the machine (unless the machine
    /// closed it itself) and shut it down.
    pub(super) fn fail(&mut self, key: usize, reason: CloseReason) {
        let slot = &self.connections[key];
        if slot.state == State::Closed {
            return;
        }
        let notify = slot.state != State::Flushing;
        let (conn, peer) = (slot.conn, slot.peer);
        self.shut_down(key);
        if notify {
            if reason == CloseReason::PeerClosed {
                tracing::debug!(?conn, %peer, %reason, "connection closed");
            } else {
                tracing::warn!(%peer, %reason, "connection closed");
            }
            // Bytes taken from the machine that will never leave: it can account for them.
            let slot = &self.connections[key];
            if !slot.send_in_flight && slot.send_offset < slot.send_len() {
                let taken = if slot.send_held.is_empty() {
                    std::borrow::Cow::Borrowed(&slot.send_buffer[..])
                } else {
                    std::borrow::Cow::Owned(machine::gathered(&slot.send_buffer, &slot.send_held))
                };
                self.machine
                    .on_unsent(self.now, conn, &taken, slot.send_offset);
            }
            self.machine.on_closed(self.now, conn, reason);
        } else {
            tracing::debug!(?conn, %peer, %reason, "closing connection ended");
            self.machine.on_flushed(self.now, conn);
        }
        self.release_if_idle(key);
    }

    /// Releases a closed slot whose operations have all completed: closes the descriptor and
    /// keeps the buffers for the next slot.
    pub(super) fn release_if_idle(&mut self, key: usize) {
        let slot = &self.connections[key];
        if slot.state != State::Closed || slot.ops_in_flight() != 0 {
            return;
        }
        let slot = self.connections.remove(key);
        let Connection {
            socket,
            mut recv_buffer,
            mut send_buffer,
            ..
        } = slot;
        drop(socket);
        send_buffer.clear();
        if self.shared_recv.is_some() {
            return;
        }
        if Arc::get_mut(&mut recv_buffer).is_some() {
            self.spare_recv_buffers.push(recv_buffer);
        } else {
            // Parts of it are still queued: reused once they are sent.
            self.held_recv_buffers.push(recv_buffer);
        }
        // Only full-size send buffers are kept for the next slots (an inbound slot's may be a
        // small one the machine swapped in).
        if send_buffer.capacity() >= self.send_buffer_bytes {
            self.spare_send_buffers.push(send_buffer);
        }
    }

    /// The slot at `key` if it still holds the use `generation` names.
    pub(super) fn slot_is(&self, key: usize, generation: u32) -> bool {
        self.connections
            .get(key)
            .is_some_and(|slot| slot.generation == generation)
    }
}
