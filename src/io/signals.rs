//! Signals read through the ring (`DriverConfig::signals`: SIGTERM at a node, Ctrl-C at a
//! scripted registry).
//!
//! A signal goes to any thread of the process (the console thread as often as the loop), and
//! a handler may do almost nothing; so signal-hook's handler writes one byte per signal into a
//! socket (a write is async-signal-safe, and the crate owns the handler's registration), and
//! the loop keeps a receive armed on the other end, as on the console's. Whichever thread the
//! signal interrupts, the byte completes that receive and the loop wakes at once; until a
//! signal comes, nothing wakes it (a check at an interval woke every idle node four times a
//! second: docs/PERFORMANCE.md, the idle row).

use std::os::unix::net::UnixStream;

use crate::limits::SIGNAL_READ_BYTES;

/// One signal's socket and the loop's receive window on it.
///
/// Same buffer rules as the console (`console::ConsoleReader`): `buffer` keeps its length and
/// is read only when no receive is in flight.
pub(crate) struct SignalReader {
    /// The signal's number (`libc::SIGTERM`, ...).
    pub signal: i32,
    /// The loop's end; the handler writes into the other.
    pub stream: UnixStream,
    /// Each byte received is one signal.
    pub buffer: Box<[u8]>,
    pub recv_in_flight: bool,
    /// False once a receive failed or ended (at exit): not armed again.
    pub open: bool,
    registration: signal_hook::SigId,
}

impl SignalReader {
    /// Counts `signal` in a socket from now on (its default action, termination for SIGTERM
    /// and SIGINT, no longer applies).
    pub(crate) fn install(signal: i32) -> std::io::Result<SignalReader> {
        let (stream, handler_end) = UnixStream::pair()?;
        // A full socket (signals the loop has not read) drops the handler's byte rather than
        // blocking the handler; the loop sees the signal anyway from those it has not read.
        handler_end.set_nonblocking(true)?;
        let registration = signal_hook::low_level::pipe::register(signal, handler_end)?;
        Ok(SignalReader {
            signal,
            stream,
            buffer: vec![0; SIGNAL_READ_BYTES].into_boxed_slice(),
            recv_in_flight: false,
            open: true,
            registration,
        })
    }
}

impl Drop for SignalReader {
    /// Later signals find no handler of ours writing into a socket nobody reads.
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.registration);
    }
}
