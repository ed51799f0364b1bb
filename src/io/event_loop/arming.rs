//! Arming operations: accepts, the console's read, the signals' reads, receives (into a connection's buffer or
//! a lent one) and sends (copied, gathered, zero-copy).

use super::*;

impl<'m, M: Machine> Driver<'m, M> {
    // ----- Arming operations -----

    /// Arms the accept of every listener that has none in flight.
    pub(super) fn arm_accepts(&mut self) -> Result<(), DriverError> {
        for index in 0..self.listeners.len() {
            if !self.accepts_armed[index] {
                self.arm_accept(index)?;
            }
        }
        Ok(())
    }

    pub(super) fn arm_accept(&mut self, index: usize) -> Result<(), DriverError> {
        assert!(
            !self.accepts_armed[index],
            "one accept in flight per listener"
        );
        let entry = opcode::AcceptMulti::new(types::Fd(self.listeners[index].as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(accept_token(index));
        // SAFETY: a multishot accept reads and writes no memory of ours (no address buffer);
        // the listener stays open until the loop has drained at exit.
        unsafe { self.push(&entry)? };
        self.accepts_armed[index] = true;
        Ok(())
    }

    pub(super) fn arm_console(&mut self) -> Result<(), DriverError> {
        let Some(console) = &mut self.console else {
            return Ok(());
        };
        if !console.open || console.recv_in_flight {
            return Ok(());
        }
        let window = &mut console.buffer[console.filled..];
        assert!(
            !window.is_empty(),
            "console lines are split before re-arming"
        );
        let entry = opcode::Recv::new(
            types::Fd(console.stream.as_raw_fd()),
            window.as_mut_ptr(),
            u32::try_from(window.len()).expect("console buffer fits in u32"),
        )
        .build()
        .user_data(Token::unslotted(OpKind::Console).encode());
        console.recv_in_flight = true;
        // SAFETY: the window is inside `console.buffer`, whose heap allocation is never resized
        // and is read only after this receive completes (`recv_in_flight`); the reader is
        // dropped only after the exit drain (or leaked).
        unsafe { self.push(&entry)? };
        Ok(())
    }

    /// Arms the receive on the socket of the signal at `index` (`signals`), unless it is
    /// closed or already armed.
    pub(super) fn arm_signal(&mut self, index: usize) -> Result<(), DriverError> {
        let reader = &mut self.signals[index];
        if !reader.open || reader.recv_in_flight {
            return Ok(());
        }
        let entry = opcode::Recv::new(
            types::Fd(reader.stream.as_raw_fd()),
            reader.buffer.as_mut_ptr(),
            u32::try_from(reader.buffer.len()).expect("signal buffer fits in u32"),
        )
        .build()
        .user_data(
            Token {
                kind: OpKind::Signal,
                slot: index,
                generation: 0,
            }
            .encode(),
        );
        reader.recv_in_flight = true;
        // SAFETY: `buffer` is a boxed slice, never resized or moved, and read only after this
        // receive completes (`recv_in_flight`); the reader is dropped only after the exit
        // drain (or leaked).
        unsafe { self.push(&entry)? };
        Ok(())
    }

    pub(super) fn arm_recv(&mut self, key: usize) -> Result<(), DriverError> {
        if let Some((group, buffer_bytes)) = self.shared_recv {
            let slot = &mut self.connections[key];
            assert!(!slot.recv_in_flight, "one receive in flight per connection");
            assert_eq!(slot.state, State::Open);
            let entry = opcode::Recv::new(
                types::Fd(slot.socket.as_raw_fd()),
                std::ptr::null_mut(),
                buffer_bytes,
            )
            .buf_group(group)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(token(OpKind::Recv, key, slot.generation));
            slot.recv_in_flight = true;
            // SAFETY: the receive names no memory of ours: the kernel writes into a buffer of
            // the shared ring, which is its own until a completion hands it over (`buf_ring`).
            unsafe { self.push(&entry)? };
            return Ok(());
        }
        let slot = &mut self.connections[key];
        assert!(!slot.recv_in_flight, "one receive in flight per connection");
        assert_eq!(slot.state, State::Open);
        let buffer = Arc::get_mut(&mut slot.recv_buffer)
            .expect("a buffer the machine kept parts of was replaced before this receive");
        let window = &mut buffer[slot.recv_filled..];
        assert!(
            !window.is_empty(),
            "a full receive buffer is closed, never re-armed"
        );
        let entry = opcode::Recv::new(
            types::Fd(slot.socket.as_raw_fd()),
            window.as_mut_ptr(),
            u32::try_from(window.len()).unwrap_or(u32::MAX),
        )
        .build()
        .user_data(token(OpKind::Recv, key, slot.generation));
        slot.recv_in_flight = true;
        // SAFETY: the window is the unused tail of `recv_buffer`, whose heap allocation keeps
        // its length until the slot is released, and the slot is not released while
        // `recv_in_flight` is set. The buffer is ours alone (checked above), and nothing
        // shares it before the completion: the machine sees it only in `on_received_in`.
        unsafe { self.push(&entry)? };
        Ok(())
    }

    /// Sends the rest of the send buffer, or takes the machine's pending bytes and sends
    /// them; shuts a flushing connection down once nothing is left.
    pub(super) fn start_send(&mut self, key: usize) -> Result<(), DriverError> {
        let grown_on_demand = self.send_buffer_bytes == 0;
        let slot = &mut self.connections[key];
        if slot.send_in_flight || !slot.connected {
            return Ok(());
        }
        if !matches!(slot.state, State::Open | State::Flushing) {
            return Ok(());
        }
        if slot.send_offset == slot.send_len() {
            let capacity = slot.send_buffer.capacity();
            if grown_on_demand
                && capacity > SEND_BUFFER_KEPT_BYTES
                && slot.send_buffer.len() <= capacity / 4
            {
                // Grown in a burst that is over (its last send used a quarter of it at most):
                // given back, so that thousands of mostly idle connections do not each keep
                // their largest burst (the next send grows a fresh buffer to what it needs).
                slot.send_buffer = Vec::new();
            }
            slot.send_buffer.clear();
            slot.send_held.clear();
            slot.send_held_bytes = 0;
            slot.send_offset = 0;
            self.machine
                .swap_outgoing_held(slot.conn, &mut slot.send_buffer, &mut slot.send_held);
            slot.send_held_bytes = slot.send_held.iter().map(|hole| hole.held.len()).sum();
            if grown_on_demand && slot.send_len() == 0 {
                // Nothing more to send: neither this buffer nor the one the machine now holds
                // (ours, just swapped) stays larger than the bound. One more swap hands the
                // machine a small one and brings ours back, empty.
                if slot.send_buffer.capacity() > SEND_BUFFER_KEPT_BYTES {
                    slot.send_buffer = Vec::new();
                }
                self.machine.swap_outgoing(slot.conn, &mut slot.send_buffer);
                if slot.send_buffer.capacity() > SEND_BUFFER_KEPT_BYTES {
                    slot.send_buffer = Vec::new();
                }
            }
        }
        if slot.send_len() == 0 {
            if slot.state == State::Flushing {
                let conn = slot.conn;
                self.shut_down(key);
                self.release_if_idle(key);
                self.machine.on_flushed(self.now, conn);
            }
            return Ok(());
        }
        if !slot.send_held.is_empty() {
            return self.start_gathered_send(key);
        }
        let remaining = &slot.send_buffer[slot.send_offset..];
        let entry = opcode::Send::new(
            types::Fd(slot.socket.as_raw_fd()),
            remaining.as_ptr(),
            u32::try_from(remaining.len()).unwrap_or(u32::MAX),
        )
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(token(OpKind::Send, key, slot.generation));
        slot.send_in_flight = true;
        // SAFETY: `send_buffer` is not cleared, swapped or dropped while `send_in_flight`, and
        // the slot is not released while `send_in_flight` is set.
        unsafe { self.push(&entry)? };
        Ok(())
    }

    /// Sends the rest of `key`'s bytes from `send_offset` on, gathered from the send buffer
    /// and the held bytes between its parts (at most `SEND_IOVECS_MAX` pieces; the rest
    /// follows as after a short send).
    pub(super) fn start_gathered_send(&mut self, key: usize) -> Result<(), DriverError> {
        self.stats.gathered_sends += 1;
        let slot = &mut self.connections[key];
        let mut skip = slot.send_offset;
        let mut iovecs = std::mem::take(&mut slot.send_iovecs);
        iovecs.clear();
        let mut piece = |bytes: &[u8]| {
            if skip >= bytes.len() {
                skip -= bytes.len();
                return;
            }
            if iovecs.len() < SEND_IOVECS_MAX {
                let rest = &bytes[skip..];
                iovecs.push(libc::iovec {
                    iov_base: rest.as_ptr().cast_mut().cast::<libc::c_void>(),
                    iov_len: rest.len(),
                });
            }
            skip = 0;
        };
        let mut from = 0;
        for hole in &slot.send_held {
            piece(&slot.send_buffer[from..hole.at]);
            piece(hole.held.bytes());
            from = hole.at;
        }
        piece(&slot.send_buffer[from..]);
        assert!(!iovecs.is_empty(), "a gathered send has bytes left");
        slot.send_iovecs = iovecs;
        let message = &mut *slot.send_message;
        message.msg_iov = slot.send_iovecs.as_mut_ptr();
        message.msg_iovlen = slot.send_iovecs.len();
        let entry = opcode::SendMsg::new(types::Fd(slot.socket.as_raw_fd()), &raw const *message)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(token(OpKind::Send, key, slot.generation));
        slot.send_in_flight = true;
        // SAFETY: the message, its iovecs and the memory they name (`send_buffer`, and the
        // buffers the holes of `send_held` keep alive) are not changed, swapped or dropped
        // while `send_in_flight`, and the slot is not released while it is set.
        unsafe { self.push(&entry)? };
        Ok(())
    }
}
