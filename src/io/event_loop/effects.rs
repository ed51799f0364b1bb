//! Carrying out a machine's effects: connect, send, close, print, write a file, exit.

use super::*;

impl<M: Machine> Driver<'_, M> {
    /// Carries out the machine's effects in order, until it has none left or it exits.
    pub(super) fn apply_effects(&mut self) -> Result<(), DriverError> {
        machine::drain_effects(self)
    }

    pub(super) fn carry_out(&mut self, effect: Effect) -> Result<(), DriverError> {
        match effect {
            Effect::Connect {
                conn,
                addr,
                keepalive,
            } => self.connect(conn, addr, keepalive),
            Effect::Send(conn) => {
                if let Some(&key) = self.slots.get(&conn) {
                    self.want_send(key);
                }
                Ok(())
            }
            Effect::Close(conn) => {
                let Some(&key) = self.slots.get(&conn) else {
                    return Ok(());
                };
                let slot = &mut self.connections[key];
                tracing::debug!(?conn, peer = %slot.peer, "closing connection");
                // The flush of a closed connection must end even if its peer never reads
                // (a hostile peer cut for not reading its answers): here the liveness rule
                // that spares slow readers (`set_link_timeouts`) gives way to
                // TCP_USER_TIMEOUT, which ends a flush whose window stays closed within
                // `LINK_TIMEOUT_SECS`. One syscall per close, none per frame.
                if let Err(error) = slot
                    .socket
                    .set_tcp_user_timeout(Some(Duration::from_secs(LINK_TIMEOUT_SECS)))
                {
                    tracing::debug!(?conn, %error, "TCP_USER_TIMEOUT failed on a closing connection");
                }
                slot.state = State::Flushing;
                self.start_send(key)
            }
            Effect::Print(line) => {
                let mut stdout = std::io::stdout().lock();
                // Standard output may be closed; the loop carries on.
                let _ = writeln!(stdout, "{line}");
                let _ = stdout.flush();
                Ok(())
            }
            Effect::WriteFile { path, contents } => {
                let line = super::super::write_file(&path, &contents);
                let _ = writeln!(std::io::stdout().lock(), "{line}");
                Ok(())
            }
            Effect::Exit(code) => {
                tracing::debug!(code, "machine exits");
                self.exit_code = Some(code);
                Ok(())
            }
        }
    }

    pub(super) fn connect(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        keepalive: bool,
    ) -> Result<(), DriverError> {
        if self.connections.len() >= self.connections_max {
            let reason = CloseReason::ConnectionLimit {
                addr,
                limit: self.connections_max,
            };
            tracing::warn!("{reason}");
            self.machine.on_closed(self.now, conn, reason);
            return Ok(());
        }
        let socket = match self.outbound_socket(addr, keepalive) {
            Ok(socket) => socket,
            Err(error) => {
                let error = outcome::setup_error(&error);
                let reason = CloseReason::ConnectFailed { addr, error };
                tracing::warn!("{reason}");
                self.machine.on_closed(self.now, conn, reason);
                return Ok(());
            }
        };
        let key = self
            .insert(socket, conn, addr, State::Connecting)
            .expect("room was checked above");
        let slot = &mut self.connections[key];
        let address = slot.connect_address.insert(Box::new(SockAddr::from(addr)));
        let entry = opcode::Connect::new(
            types::Fd(slot.socket.as_raw_fd()),
            address.as_ptr().cast::<libc::sockaddr>(),
            address.len(),
        )
        .build()
        .user_data(token(OpKind::Connect, key, slot.generation));
        slot.connect_in_flight = true;
        tracing::debug!(?conn, %addr, "connecting");
        // SAFETY: the address is boxed in the slot and dropped only by the connect completion;
        // the slot is not released while `connect_in_flight` is set.
        unsafe { self.push(&entry)? };
        Ok(())
    }

    pub(super) fn outbound_socket(
        &self,
        addr: SocketAddr,
        keepalive: bool,
    ) -> std::io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_tcp_nodelay(true)?;
        set_link_timeouts(&socket, keepalive)?;
        if let Some(ip) = self.local_ip {
            // Without it (a kernel before 4.2) the bind takes a port of its own, as before.
            if let Err(error) = bind_address_no_port(&socket) {
                tracing::debug!(%error, "IP_BIND_ADDRESS_NO_PORT failed");
            }
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        Ok(socket)
    }
}

/// Lets the kernel pick the local port of a socket bound to an address only at connect, for
/// the connection's four-tuple (IP_BIND_ADDRESS_NO_PORT): a bind to port 0 would take a port
/// of its own for every outbound connection, and the 28,000 ephemeral ports of one address
/// would run out long before 10,000 nodes on one machine had their links.
fn bind_address_no_port(socket: &Socket) -> std::io::Result<()> {
    let enable: libc::c_int = 1;
    // SAFETY: the descriptor is open (owned by `socket`), and the option value is a live
    // c_int whose size is passed with it; the kernel only reads it.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const enable).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl<M: Machine> EffectSink for Driver<'_, M> {
    type Error = DriverError;

    fn scratch(&mut self) -> &mut Vec<Effect> {
        &mut self.effects
    }

    fn take_effects(&mut self, into: &mut Vec<Effect>) {
        self.machine.take_effects(into);
    }

    fn apply(&mut self, effect: Effect) -> Result<(), DriverError> {
        self.carry_out(effect)
    }

    fn exited(&self) -> bool {
        self.exit_code.is_some()
    }
}
