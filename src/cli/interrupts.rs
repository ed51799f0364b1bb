//! Signals counted in a socket: Ctrl-C in scripted mode, read by the registry's loop; SIGTERM
//! at a node (`terminate.rs`).

use std::io::Read as _;
use std::os::unix::net::UnixStream;

/// Ctrl-C (SIGINT), counted. signal-hook's handler writes one byte per signal into a socket
/// (a write is async-signal-safe, and the crate owns the handler's registration); the registry's
/// loop reads them every [`INTERRUPT_CHECK_NS`]. Reading them through the ring would wake it at
/// once, but a signal goes to any thread of the process (the console thread as often as the
/// loop), so a check at a bounded interval is needed anyway, and a tenth of a second costs the
/// registry nothing.
pub(crate) struct Interrupts {
    signals: UnixStream,
}

impl Interrupts {
    /// Counts `signal` (SIGINT for Ctrl-C) from now on.
    pub(crate) fn install(signal: i32) -> std::io::Result<Interrupts> {
        let (signals, handler_end) = UnixStream::pair()?;
        signals.set_nonblocking(true)?;
        handler_end.set_nonblocking(true)?;
        signal_hook::low_level::pipe::register(signal, handler_end)?;
        Ok(Interrupts { signals })
    }

    /// Signals since the last call.
    pub(crate) fn take(&mut self) -> usize {
        let mut bytes = [0u8; 64];
        let mut count = 0;
        while let Ok(read @ 1..) = self.signals.read(&mut bytes) {
            count += read;
        }
        count
    }
}
