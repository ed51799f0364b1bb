//! A raw control connection to the registry, speaking the native encoding: tests that play a
//! node (or a hostile peer) byte by byte.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use overlay::wire::native::Native;
use overlay::wire::{Codec, Control};

use super::DEADLINE;

/// A raw control connection to the registry, speaking the native encoding.
pub struct Client {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        Client::connect_to(SocketAddr::from(([127, 0, 0, 1], port)), None)
    }

    /// Connects to `to`, from local address `from` (port chosen by the kernel) if given.
    pub fn connect_to(to: SocketAddr, from: Option<std::net::IpAddr>) -> Client {
        let stream = match from {
            None => TcpStream::connect(to).expect("connect"),
            Some(ip) => {
                let socket = socket2::Socket::new(
                    socket2::Domain::for_address(to),
                    socket2::Type::STREAM,
                    None,
                )
                .unwrap();
                socket
                    .bind(&SocketAddr::new(ip, 0).into())
                    .unwrap_or_else(|e| panic!("bind {ip}: {e}"));
                socket.connect(&to.into()).expect("connect");
                socket.into()
            }
        };
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buffer: Vec::new(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub fn send(&mut self, message: &Control) {
        let mut bytes = Vec::new();
        Native::encode_control(message, &mut bytes);
        self.stream.write_all(&bytes).expect("send to the registry");
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the registry");
    }

    /// Like `send_raw`, but a peer that already closed is not an error.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Sets how long `closed_by_peer` and `recv` wait.
    pub fn timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// The next control message from the registry.
    pub fn recv(&mut self) -> Control {
        loop {
            if let Some(len) = Native::frame_len(&self.buffer).expect("registry frame length") {
                let frame: Vec<u8> = self.buffer.drain(..len).collect();
                return Native::decode_control(&frame).expect("registry message");
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the registry closed the connection"),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("reading from the registry: {e}"),
            }
        }
    }

    /// Sends `message` and returns the answer.
    pub fn request(&mut self, message: &Control) -> Control {
        self.send(message);
        self.recv()
    }

    /// True once the registry closed the connection (end of stream or reset); false if it is
    /// still open at the deadline or sends something.
    pub fn closed_by_peer(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ) =>
                {
                    return true;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(e) => panic!("reading from the registry: {e}"),
            }
        }
    }
}
