//! One adaptive poller per core: a token each process on a core must hold to poll.
//!
//! A core kept awake by one polling process wakes its other processes cheaply (a same-core
//! wake-up, or an interrupt to a running vCPU rather than a halted one), and that poller
//! answers its own packets at once. Every recent node polling instead made the pollers on
//! a core take turns with yields, each moving its deadline later under EEVDF, so a packet
//! for any of them waited behind the others' turns (docs/PERFORMANCE.md, W4).
//!
//! The token is an abstract Unix socket name per user and core (`overlay-poll-UID-core-N`):
//! only one socket can be bound to a name, the kernel releases it when its holder closes it,
//! exits or dies, and it leaves nothing in the file system. Abstract names belong to a
//! network namespace, so processes on one core in different namespaces hold one token each.
//! Any user can bind any abstract name: another user who holds ours only keeps our nodes on
//! that core from polling (they sleep, as with `--busy-poll-us 0`).

use socket2::{Domain, SockAddr, Socket, Type};

/// The right to poll on one core, taken before a poll and given back before the loop sleeps.
#[derive(Debug)]
pub(crate) struct CoreToken {
    name: SockAddr,
    /// The socket bound to `name` while the token is held; kept unbound after a failed
    /// attempt, for the next one (a bound socket cannot be unbound: releasing closes it).
    socket: Option<Socket>,
    held: bool,
    /// An attempt failed otherwise than by the name being taken (warned once).
    warned: bool,
}

impl CoreToken {
    /// The token of `core` for this process's user; not taken yet.
    pub(crate) fn new(core: usize) -> Self {
        // SAFETY: `getuid` cannot fail and touches no memory.
        let uid = unsafe { libc::getuid() };
        let name = format!("\0overlay-poll-{uid}-core-{core}");
        CoreToken {
            name: SockAddr::unix(name).expect("a short abstract name fits in sun_path"),
            socket: None,
            held: false,
            warned: false,
        }
    }

    /// Takes the token if no other process holds it; whether this process now holds it.
    /// One system call when another process holds it, none when this one already does.
    pub(crate) fn acquire(&mut self) -> bool {
        if self.held {
            return true;
        }
        let socket = match self.socket.take() {
            Some(socket) => socket,
            None => match Socket::new(Domain::UNIX, Type::DGRAM, None) {
                Ok(socket) => socket,
                Err(error) => {
                    self.warn(&error);
                    return false;
                }
            },
        };
        match socket.bind(&self.name) {
            Ok(()) => self.held = true,
            Err(error) if error.raw_os_error() == Some(libc::EADDRINUSE) => {}
            Err(error) => self.warn(&error),
        }
        self.socket = Some(socket);
        self.held
    }

    /// Gives the token back (another process on the core may poll now).
    pub(crate) fn release(&mut self) {
        if self.held {
            self.held = false;
            self.socket = None;
        }
    }

    fn warn(&mut self, error: &std::io::Error) {
        if !self.warned {
            self.warned = true;
            tracing::warn!(%error, "cannot take the core's poll token; this node will not poll");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two holders of one core's token in one process stand for two processes: the kernel
    /// refuses a second bind of the name whoever asks.
    #[test]
    fn one_holder_at_a_time_and_release_hands_it_on() {
        // A core number no machine has, so that no node running beside the test interferes.
        let core = 1_000_000 + std::process::id() as usize;
        let mut first = CoreToken::new(core);
        let mut second = CoreToken::new(core);
        assert!(first.acquire());
        assert!(first.acquire(), "taking a held token again keeps it");
        assert!(!second.acquire(), "the core has a poller");
        assert!(!second.acquire());
        first.release();
        assert!(!first.held);
        assert!(second.acquire(), "released: the next one takes it");
        assert!(!first.acquire());
        drop(second);
        assert!(first.acquire(), "closing (exit, death) releases it");
    }
}
