//! What each completion means: accept, connect, receive, send, console input, signals; the count
//! of operations in flight.

use super::*;

impl<M: Machine> Driver<'_, M> {
    pub(super) fn dispatch(&mut self, completion: Completion) -> Result<(), DriverError> {
        let token = Token::decode(completion.user_data);
        let more = cqueue::more(completion.flags);
        match token.kind {
            OpKind::Accept => self.on_accept(token.slot, completion.result, more),
            OpKind::Console => self.on_console(completion.result),
            OpKind::Signal => self.on_signal(token.slot, completion.result),
            OpKind::Cancel => {
                assert!(self.cancels_in_flight > 0, "a cancellation completed twice");
                self.cancels_in_flight -= 1;
                Ok(())
            }
            OpKind::Recv | OpKind::Send | OpKind::Connect => {
                assert!(!more, "connection operations are single-shot");
                let slot = self
                    .connections
                    .get_mut(token.slot)
                    .expect("a slot is released only when its operations completed");
                assert_eq!(
                    slot.generation, token.generation,
                    "completion for a reused slot"
                );
                slot.completed(token.kind);
                match token.kind {
                    OpKind::Recv if self.shared_recv.is_some() => {
                        self.on_recv_shared(token.slot, completion.result, completion.flags)
                    }
                    OpKind::Recv => self.on_recv(token.slot, completion.result),
                    OpKind::Send => self.on_send(token.slot, completion.result),
                    _ => self.on_connect(token.slot, completion.result),
                }
            }
        }
    }

    /// Operations submitted whose last completion has not arrived, of every kind: derived
    /// from the flags each operation sets when submitted and its completion clears.
    pub(super) fn ops_in_flight(&self) -> usize {
        let console = self
            .console
            .as_ref()
            .is_some_and(|console| console.recv_in_flight);
        let slots: usize = self
            .connections
            .iter()
            .map(|(_, slot)| slot.ops_in_flight())
            .sum();
        let signals = self
            .signals
            .iter()
            .filter(|signal| signal.recv_in_flight)
            .count();
        self.accepts_armed.iter().filter(|&&armed| armed).count()
            + usize::from(console)
            + signals
            + self.cancels_in_flight
            + slots
    }

    pub(super) fn exiting(&self) -> bool {
        self.exit_code.is_some()
    }

    pub(super) fn on_accept(
        &mut self,
        index: usize,
        result: i32,
        more: bool,
    ) -> Result<(), DriverError> {
        assert!(
            self.accepts_armed[index],
            "an accept completion with no accept in flight"
        );
        if !more {
            self.accepts_armed[index] = false;
        }
        if result >= 0 {
            // SAFETY: a successful accept returns a new descriptor that nothing else owns.
            let descriptor = unsafe { OwnedFd::from_raw_fd(result) };
            if !self.exiting() {
                self.accepted(index, Socket::from(descriptor))?;
            }
        } else if !self.exiting() && result != -libc::ECANCELED {
            let error = failure(Operation::Accept, result);
            if !accept_pause::is_shortage(error) {
                tracing::warn!(%error, "accept failed");
            } else if let Some(failures) = self.accept_pause.failed(self.now) {
                tracing::warn!(
                    "cannot accept connections: {error} ({failures} failed tries since the last \
                     such warning, at most one every {} s); trying again every {} ms, existing \
                     links keep working",
                    ACCEPT_WARNING_INTERVAL_NS / 1_000_000_000,
                    ACCEPT_RETRY_NS / 1_000_000,
                );
            }
        }
        // Paused, the accept is armed again by the loop once the pause is over.
        if self.exiting() || self.accepts_armed[index] || self.accept_pause.resume_at().is_some() {
            return Ok(());
        }
        self.arm_accept(index)
    }

    pub(super) fn accepted(&mut self, index: usize, socket: Socket) -> Result<(), DriverError> {
        let addresses = SockRef::from(&socket)
            .peer_addr()
            .and_then(|peer| Ok((peer, SockRef::from(&socket).local_addr()?)));
        let (peer, local) = match addresses {
            Ok((peer, local)) => (peer.as_socket(), local.as_socket()),
            Err(error) => {
                tracing::warn!(%error, "accepted connection has no peer or local address; closed");
                return Ok(());
            }
        };
        let (Some(peer), Some(local)) = (peer, local) else {
            tracing::warn!("accepted connection is not TCP/IP; closed");
            return Ok(());
        };
        if let Err(error) = set_link_timeouts(&socket, false) {
            tracing::warn!(%peer, %error, "link timeouts failed on accepted connection");
        }
        if let Err(error) = socket.set_tcp_nodelay(true) {
            tracing::warn!(%peer, %error, "TCP_NODELAY failed on accepted connection");
        }
        if self.connections.len() >= self.accepted_max {
            if let Some(held) = self.accept_limit_warnings.admit(self.now) {
                tracing::warn!(
                    %peer,
                    limit = self.accepted_max,
                    "connection limit reached; accepted connection closed ({held} more since \
                     the last such warning)"
                );
            }
            return Ok(());
        }
        let conn = ConnId::inbound(self.inbound_sequence).in_group(index);
        self.inbound_sequence += 1;
        let key = self
            .insert(socket, conn, peer, State::Open)
            .expect("room was checked above");
        let generation = self.connections[key].generation;
        tracing::debug!(?conn, %peer, "accepted");
        self.machine.on_accepted(self.now, conn, peer, local);
        self.apply_effects()?;
        if self.slot_is(key, generation) && self.connections[key].state == State::Open {
            self.arm_recv(key)?;
        }
        Ok(())
    }

    pub(super) fn on_connect(&mut self, key: usize, result: i32) -> Result<(), DriverError> {
        let exiting = self.exiting();
        let slot = &mut self.connections[key];
        slot.connect_address = None;
        if exiting {
            return Ok(());
        }
        let (conn, peer, generation, state) = (slot.conn, slot.peer, slot.generation, slot.state);
        if result < 0 {
            let error = failure(Operation::Connect, result);
            self.fail(key, CloseReason::ConnectFailed { addr: peer, error });
            return self.apply_effects();
        }
        slot.connected = true;
        match state {
            State::Closed => {
                self.release_if_idle(key);
                Ok(())
            }
            State::Flushing => self.start_send(key),
            State::Open => unreachable!("an open connection has no connect in flight"),
            State::Connecting => {
                slot.state = State::Open;
                tracing::debug!(?conn, %peer, "connected");
                self.machine.on_connected(self.now, conn);
                self.apply_effects()?;
                if self.slot_is(key, generation) && self.connections[key].state == State::Open {
                    self.arm_recv(key)?;
                    self.start_send(key)?;
                }
                Ok(())
            }
        }
    }

    /// Whether what a completed receive on `key` brought is still to be read: not while the
    /// loop exits, nor once the machine closed the connection (what the peer sends then is
    /// not read; a closed slot is released once nothing of it is in flight).
    fn receive_wanted(&mut self, key: usize) -> bool {
        if self.exiting() {
            return false;
        }
        match self.connections[key].state {
            State::Closed => {
                self.release_if_idle(key);
                false
            }
            State::Flushing => false,
            State::Connecting => unreachable!("no receive before the connection is established"),
            State::Open => true,
        }
    }

    /// A receive on `key` that brought no bytes: the peer closed (0) or the receive failed.
    fn receive_ended(&mut self, key: usize, result: i32) -> Result<(), DriverError> {
        let reason = if result == 0 {
            CloseReason::PeerClosed
        } else {
            CloseReason::ReceiveFailed(failure(Operation::Receive, result))
        };
        self.fail(key, reason);
        self.apply_effects()
    }

    pub(super) fn on_recv(&mut self, key: usize, result: i32) -> Result<(), DriverError> {
        if !self.receive_wanted(key) {
            return Ok(());
        }
        if result <= 0 {
            return self.receive_ended(key, result);
        }
        let count = result as usize;
        self.stats.recvs += 1;
        self.stats.bytes_received += count as u64;
        let lend = self.may_lend();
        let slot = &mut self.connections[key];
        slot.recv_filled += count;
        assert!(slot.recv_filled <= slot.recv_buffer.len());
        let (conn, generation, filled) = (slot.conn, slot.generation, slot.recv_filled);
        let bytes = &slot.recv_buffer[..filled];
        let consumed = if lend {
            let lent = Lent::new(&slot.recv_buffer);
            self.machine.on_received_in(self.now, conn, bytes, lent)
        } else {
            self.stats.recvs_not_lent += 1;
            self.machine.on_received(self.now, conn, bytes)
        }
        .min(filled);
        self.apply_effects()?;
        if !self.slot_is(key, generation) || self.connections[key].state != State::Open {
            return Ok(());
        }
        let slot = &mut self.connections[key];
        match Arc::get_mut(&mut slot.recv_buffer) {
            Some(buffer) => buffer.copy_within(consumed..filled, 0),
            None => {
                // The machine kept parts of it: the next receives go into another buffer,
                // which starts with the partial frame.
                self.stats.recvs_held += 1;
                let mut next = self.unheld_recv_buffer();
                let slot = &mut self.connections[key];
                Arc::get_mut(&mut next).expect("an unheld buffer is ours alone")
                    [..filled - consumed]
                    .copy_from_slice(&slot.recv_buffer[consumed..filled]);
                let kept = std::mem::replace(&mut slot.recv_buffer, next);
                self.held_recv_buffers.push(kept);
            }
        }
        let slot = &mut self.connections[key];
        slot.recv_filled = filled - consumed;
        if slot.recv_filled == slot.recv_buffer.len() {
            self.fail(key, CloseReason::FrameTooLarge);
            return self.apply_effects();
        }
        self.arm_recv(key)
    }

    /// Whether the next receive's buffer may be lent: its parts can be held only if another
    /// buffer can take its place (`HELD_RECV_BUFFERS_MAX`).
    fn may_lend(&self) -> bool {
        self.held_recv_buffers.len() < HELD_RECV_BUFFERS_MAX
            || self
                .held_recv_buffers
                .iter()
                .any(|buffer| Arc::strong_count(buffer) == 1)
    }

    /// A receive buffer no part of which is held: one given back, or a new one.
    fn unheld_recv_buffer(&mut self) -> Arc<[u8]> {
        match self
            .held_recv_buffers
            .iter()
            .position(|buffer| Arc::strong_count(buffer) == 1)
        {
            Some(index) => self.held_recv_buffers.swap_remove(index),
            None => recv_buffer(self.recv_buffer_bytes, true),
        }
    }

    /// A receive into the shared ring completed: its buffer (if it names one) is read, then
    /// given back, whatever happened.
    pub(super) fn on_recv_shared(
        &mut self,
        key: usize,
        result: i32,
        flags: u32,
    ) -> Result<(), DriverError> {
        let mut shared = self.shared.take().expect("shared receives need the ring");
        let buffer = cqueue::buffer_select(flags);
        if let Some(id) = buffer {
            shared.taken(id);
        }
        let bytes = buffer.map(|id| shared.bytes(id, usize::try_from(result).unwrap_or(0)));
        let outcome = self.recv_shared(key, result, bytes);
        if let Some(id) = buffer {
            shared.recycle(id);
        }
        self.shared = Some(shared);
        outcome
    }

    /// `bytes` arrived on `key` into a shared buffer: joined to the partial frame the slot
    /// kept, if any (only as far as that frame goes, when the machine says its length), then
    /// offered to the machine in place; what ends in a partial frame is kept in the slot.
    fn recv_shared(
        &mut self,
        key: usize,
        result: i32,
        bytes: Option<&[u8]>,
    ) -> Result<(), DriverError> {
        if !self.receive_wanted(key) {
            return Ok(());
        }
        let slot = &mut self.connections[key];
        if result == -libc::ENOBUFS {
            // The ring is empty: armed again once buffers are back (`rearm_starved`).
            self.starved.push((key, slot.generation));
            return Ok(());
        }
        if result <= 0 {
            return self.receive_ended(key, result);
        }
        let bytes = bytes.expect("a receive with data names its buffer");
        let count = bytes.len();
        self.stats.recvs += 1;
        self.stats.bytes_received += count as u64;
        let (conn, generation) = (slot.conn, slot.generation);
        let mut start = 0;
        if !slot.partial.is_empty() {
            let kept = slot.partial.len();
            let take = match self.machine.frame_len(&slot.partial) {
                Some(frame) if frame > kept => (frame - kept).min(count),
                _ => count,
            };
            slot.partial.extend_from_slice(&bytes[..take]);
            let filled = slot.partial.len();
            let consumed = self
                .machine
                .on_received(self.now, conn, &slot.partial)
                .min(filled);
            self.apply_effects()?;
            if !self.slot_is(key, generation) || self.connections[key].state != State::Open {
                return Ok(());
            }
            let slot = &mut self.connections[key];
            slot.partial.drain(..consumed);
            if !slot.partial.is_empty() {
                // The first frame is still not whole (or the machine stopped early): the rest
                // waits behind it.
                slot.partial.extend_from_slice(&bytes[take..]);
                return self.kept_partial(key);
            }
            start = take;
        }
        if start < count {
            let consumed = self
                .machine
                .on_received(self.now, conn, &bytes[start..])
                .min(count - start);
            self.apply_effects()?;
            if !self.slot_is(key, generation) || self.connections[key].state != State::Open {
                return Ok(());
            }
            self.connections[key]
                .partial
                .extend_from_slice(&bytes[start + consumed..]);
        }
        self.kept_partial(key)
    }

    /// After a shared receive: a partial frame as large as a receive buffer may be is never
    /// whole (closed); an emptied one gives its memory back if it grew; the receive is armed.
    fn kept_partial(&mut self, key: usize) -> Result<(), DriverError> {
        let slot = &mut self.connections[key];
        if slot.partial.len() >= self.recv_buffer_bytes {
            self.fail(key, CloseReason::FrameTooLarge);
            return self.apply_effects();
        }
        if slot.partial.is_empty() && slot.partial.capacity() > LEFTOVER_KEPT_BYTES {
            slot.partial = Vec::new();
        }
        self.arm_recv(key)
    }

    /// Arms again the receives that found the shared ring empty, as far as buffers are back.
    pub(super) fn rearm_starved(&mut self) -> Result<(), DriverError> {
        let provided = self.shared.as_ref().map_or(0, |shared| shared.provided());
        if self.starved.is_empty() || provided == 0 {
            return Ok(());
        }
        let mut starved = std::mem::take(&mut self.starved);
        let count = starved.len().min(provided);
        for (key, generation) in starved.drain(..count) {
            if self.slot_is(key, generation)
                && self.connections[key].state == State::Open
                && !self.connections[key].recv_in_flight
            {
                self.arm_recv(key)?;
            }
        }
        starved.append(&mut self.starved);
        self.starved = starved;
        Ok(())
    }

    pub(super) fn on_send(&mut self, key: usize, result: i32) -> Result<(), DriverError> {
        let exiting = self.exiting();
        let slot = &mut self.connections[key];
        if exiting {
            return Ok(());
        }
        if slot.state == State::Closed {
            self.release_if_idle(key);
            return Ok(());
        }
        if result < 0 {
            let error = failure(Operation::Send, result);
            self.fail(key, CloseReason::SendFailed(error));
            return self.apply_effects();
        }
        slot.send_offset += result as usize;
        self.stats.sends += 1;
        self.stats.bytes_sent += result as u64;
        assert!(slot.send_offset <= slot.send_len());
        if slot.send_offset < slot.send_len() {
            // A short send: the rest goes at once.
            return self.start_send(key);
        }
        self.want_send(key);
        Ok(())
    }

    /// Notes that `key` may have bytes to send once this batch of completions is handled.
    pub(super) fn want_send(&mut self, key: usize) {
        let slot = &mut self.connections[key];
        if !slot.send_wanted {
            slot.send_wanted = true;
            slot.send_wanted_at = self.now;
            self.sends_wanted.push((key, slot.generation));
        }
    }

    /// Starts the sends noted so far: all of them, or (`all` false) those with enough bytes
    /// or that have waited long enough; the others stay noted.
    pub(super) fn start_wanted_sends(&mut self, all: bool) -> Result<(), DriverError> {
        let mut wanted = std::mem::take(&mut self.sends_wanted);
        let mut kept = 0;
        for index in 0..wanted.len() {
            let (key, generation) = wanted[index];
            if !self.slot_is(key, generation) {
                continue;
            }
            let slot = &self.connections[key];
            let ready = all
                || self.now.saturating_sub(slot.send_wanted_at) >= SEND_HOLD_NS
                || self.machine.pending_len(slot.conn) >= SEND_BATCH_BYTES;
            if ready {
                self.connections[key].send_wanted = false;
                self.start_send(key)?;
            } else {
                wanted[kept] = (key, generation);
                kept += 1;
            }
        }
        wanted.truncate(kept);
        // Sends started above may have noted more (a flushing close); keep both.
        wanted.append(&mut self.sends_wanted);
        self.sends_wanted = wanted;
        // What the machine did when its bytes were taken or a close was flushed (its exit
        // once its last link is flushed) is carried out now, not with the next event: there
        // may be none.
        self.apply_effects()
    }

    pub(super) fn on_console(&mut self, result: i32) -> Result<(), DriverError> {
        let exiting = self.exiting();
        let console = self
            .console
            .as_mut()
            .expect("console completions need a console");
        assert!(
            console.recv_in_flight,
            "a console completion with no receive in flight"
        );
        console.recv_in_flight = false;
        if exiting {
            return Ok(());
        }
        if result <= 0 {
            if result < 0 {
                let error = failure(Operation::Receive, result);
                tracing::debug!(%error, "console read failed; console closed");
            } else {
                tracing::debug!("console input ended");
            }
            console.open = false;
            return Ok(());
        }
        console.filled += result as usize;
        assert!(console.filled <= console.buffer.len());
        loop {
            let console = self.console.as_mut().expect("console still present");
            let filled = console.filled;
            let end = match console.buffer[..filled]
                .iter()
                .position(|&byte| byte == b'\n')
            {
                Some(newline) => newline,
                // The thread caps lines, so a full buffer without a newline cannot happen;
                // deliver it whole rather than stall.
                None if filled == console.buffer.len() => filled,
                None => break,
            };
            let line = String::from_utf8_lossy(&console.buffer[..end]).into_owned();
            let next = (end + 1).min(filled);
            console.buffer.copy_within(next..filled, 0);
            console.filled = filled - next;
            self.machine.on_command(self.now, &line);
            self.apply_effects()?;
            if self.exiting() {
                return Ok(());
            }
        }
        self.arm_console()
    }

    /// Bytes on the socket of the signal at `index`: each is one signal, told to the machine
    /// as one call; then the receive is armed again.
    pub(super) fn on_signal(&mut self, index: usize, result: i32) -> Result<(), DriverError> {
        let exiting = self.exiting();
        let reader = &mut self.signals[index];
        assert!(
            reader.recv_in_flight,
            "a signal completion with no receive in flight"
        );
        reader.recv_in_flight = false;
        if exiting {
            return Ok(());
        }
        if result <= 0 {
            // The loop's end is shut down only at exit, and a socket pair does not fail: a
            // kernel that says otherwise leaves the signal unread rather than spin on it.
            let error = (result < 0).then(|| failure(Operation::Receive, result));
            tracing::warn!(
                signal = reader.signal,
                ?error,
                "signal socket closed; signal no longer read"
            );
            reader.open = false;
            return Ok(());
        }
        let (signal, count) = (reader.signal, result as usize);
        self.machine.on_signal(self.now, signal, count);
        self.apply_effects()?;
        if self.exiting() {
            return Ok(());
        }
        self.arm_signal(index)
    }
}
