//! What a failed completion means, by operation and errno (TigerBeetle's `io/linux.zig` way).
//!
//! An errno that only a bug of ours can cause (a bad descriptor, a bad pointer, an argument
//! the kernel rejects) stops the process with an assertion: closing the link and carrying on
//! would make our bug look like a peer's reset. Every other errno is a peer or network outcome
//! ([`LinkError`]) that closes one connection.

use crate::machine::LinkError;

/// The socket operations whose failures the driver maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// The multishot accept on the listener.
    Accept,
    /// A connect to a peer.
    Connect,
    /// A receive on a connection.
    Receive,
    /// A send on a connection.
    Send,
}

/// True if `operation` failing with `errno` can only be a bug of ours.
fn is_our_bug(operation: Operation, errno: i32) -> bool {
    let any_operation = matches!(
        errno,
        // A descriptor we closed or never opened, or one that is not a socket.
        libc::EBADF | libc::ENOTSOCK
        // A pointer into memory that is not ours.
        | libc::EFAULT
        // Arguments the kernel rejects (length, flags, address size).
        | libc::EINVAL
    );
    let this_operation = match operation {
        // The listener is not a listening stream socket.
        Operation::Accept => matches!(errno, libc::EOPNOTSUPP),
        // A second connect on one socket, or an address of the wrong family.
        Operation::Connect => matches!(errno, libc::EISCONN | libc::EALREADY | libc::EAFNOSUPPORT),
        // Flags a stream socket does not take.
        Operation::Receive => matches!(errno, libc::EOPNOTSUPP),
        // Flags a stream socket does not take, or a send on a socket that never connected.
        Operation::Send => matches!(
            errno,
            libc::EOPNOTSUPP | libc::EDESTADDRREQ | libc::EMSGSIZE
        ),
    };
    any_operation || this_operation
}

/// The outcome of `operation` failing with `errno`; asserts that it is not a bug of ours.
pub(crate) fn link_error(operation: Operation, errno: i32) -> LinkError {
    assert!(errno > 0, "{operation:?} failure without an errno");
    assert!(
        !is_our_bug(operation, errno),
        "{operation:?} failed with {}: a driver bug, not a peer's doing",
        std::io::Error::from_raw_os_error(errno)
    );
    LinkError::from_errno(errno)
}

/// The outcome of setting up an outbound socket failing with `error` (creating, configuring
/// or binding it). Not asserted: the address family and the `--bind` address come from the
/// operator and the peers, so even EINVAL or EAFNOSUPPORT can be theirs.
pub(crate) fn setup_error(error: &std::io::Error) -> LinkError {
    LinkError::from_errno(
        error
            .raw_os_error()
            .expect("socket calls fail with an errno"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_and_network_errnos_map_to_their_outcome() {
        use Operation::*;
        let table = [
            (Receive, libc::ECONNRESET, LinkError::Reset),
            (Receive, libc::ETIMEDOUT, LinkError::TimedOut),
            (Receive, libc::ENOTCONN, LinkError::NotConnected),
            (Receive, libc::ENOMEM, LinkError::OutOfMemory),
            (Send, libc::EPIPE, LinkError::BrokenPipe),
            (Send, libc::ECONNRESET, LinkError::Reset),
            (Send, libc::ETIMEDOUT, LinkError::TimedOut),
            (Send, libc::ENOBUFS, LinkError::NoBuffers),
            (Connect, libc::ECONNREFUSED, LinkError::Refused),
            (Connect, libc::ETIMEDOUT, LinkError::TimedOut),
            (Connect, libc::EHOSTUNREACH, LinkError::HostUnreachable),
            (Connect, libc::ENETUNREACH, LinkError::NetworkUnreachable),
            (Connect, libc::ENETDOWN, LinkError::NetworkDown),
            (Connect, libc::EPERM, LinkError::NotPermitted),
            (Connect, libc::EADDRNOTAVAIL, LinkError::AddressUnavailable),
            (Connect, libc::EADDRINUSE, LinkError::AddressInUse),
            (Connect, libc::EMFILE, LinkError::TooManyFiles),
            (Connect, libc::ENFILE, LinkError::SystemTooManyFiles),
            (Accept, libc::EMFILE, LinkError::TooManyFiles),
            (Accept, libc::ECONNABORTED, LinkError::Aborted),
            (
                Receive,
                libc::EIO,
                LinkError::Unexpected { errno: libc::EIO },
            ),
        ];
        for (operation, errno, outcome) in table {
            assert_eq!(
                link_error(operation, errno),
                outcome,
                "{operation:?} {errno}"
            );
            assert_eq!(outcome.errno(), errno);
        }
    }

    #[test]
    fn errnos_only_our_bugs_cause_are_bugs_for_every_operation() {
        use Operation::*;
        for operation in [Accept, Connect, Receive, Send] {
            for errno in [libc::EBADF, libc::ENOTSOCK, libc::EFAULT, libc::EINVAL] {
                assert!(is_our_bug(operation, errno), "{operation:?} {errno}");
            }
        }
        assert!(is_our_bug(Connect, libc::EISCONN));
        assert!(is_our_bug(Send, libc::EDESTADDRREQ));
        assert!(!is_our_bug(Receive, libc::EISCONN));
    }

    #[test]
    #[should_panic(expected = "a driver bug")]
    fn a_bad_address_asserts() {
        link_error(Operation::Receive, libc::EFAULT);
    }

    #[test]
    fn outcomes_read_as_the_system_says_them() {
        assert_eq!(
            LinkError::Refused.to_string(),
            std::io::Error::from_raw_os_error(libc::ECONNREFUSED).to_string()
        );
    }
}
