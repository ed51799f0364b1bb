//! Operator console: a thread reads standard input and hands whole lines to the loop.
//!
//! Standard input may be a terminal, a pipe, or closed; reading it blocks, so a small thread
//! reads it and writes each line (capped, lossy UTF-8, newline-terminated) into one end of a
//! Unix socket pair. The loop receives from the other end through the ring, like any
//! connection. End of input (or an input error) only ends the thread: the loop sees end of
//! stream and stops reading the console; it is never an error.

use std::io::{BufRead, Write};
use std::os::unix::net::UnixStream;

use crate::limits::COMMAND_LINE_BYTES_MAX;

/// Bytes of the loop's console receive buffer: room for several whole lines.
pub(crate) const CONSOLE_BUFFER_BYTES: usize = 4 * (COMMAND_LINE_BYTES_MAX + 1);

/// The loop's end of the console: the socket and its receive window.
///
/// Same buffer rules as a connection slot (see `conn`): `buffer` keeps its length, and is read
/// only when no receive is in flight.
pub(crate) struct ConsoleReader {
    pub stream: UnixStream,
    pub buffer: Vec<u8>,
    pub filled: usize,
    pub recv_in_flight: bool,
    /// False once the console reached end of stream.
    pub open: bool,
}

/// Starts the console thread, or returns `Ok(None)` when standard input is not open.
pub(crate) fn start() -> std::io::Result<Option<ConsoleReader>> {
    if !stdin_is_open() {
        tracing::debug!("standard input is closed: no console");
        return Ok(None);
    }
    let (loop_end, thread_end) = UnixStream::pair()?;
    std::thread::Builder::new()
        .name("console".into())
        .spawn(move || read_lines(thread_end))?;
    Ok(Some(ConsoleReader {
        stream: loop_end,
        buffer: vec![0; CONSOLE_BUFFER_BYTES],
        filled: 0,
        recv_in_flight: false,
        open: true,
    }))
}

/// True when descriptor 0 is open (a closed stdin must not be read: the descriptor number may
/// be reused by a socket).
fn stdin_is_open() -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags of descriptor 0; it touches no memory.
    let flags = unsafe { libc::fcntl(0, libc::F_GETFD) };
    flags >= 0
}

/// The console thread: standard input to `sink`, one capped line at a time.
fn read_lines(mut sink: UnixStream) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut raw = Vec::with_capacity(COMMAND_LINE_BYTES_MAX + 1);
    loop {
        raw.clear();
        match read_capped_line(&mut input, &mut raw) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                tracing::debug!(%error, "console input failed; console closed");
                break;
            }
        }
        let line = clean_line(&raw);
        let mut message = Vec::with_capacity(line.len() + 1);
        message.extend_from_slice(line.as_bytes());
        message.push(b'\n');
        if sink.write_all(&message).is_err() {
            // The loop is gone.
            return;
        }
    }
    tracing::debug!("console input ended");
}

/// Reads one line into `raw` (without the rest of an over-long line). False at end of input
/// with nothing read.
fn read_capped_line(input: &mut impl BufRead, raw: &mut Vec<u8>) -> std::io::Result<bool> {
    let cap = (COMMAND_LINE_BYTES_MAX + 1) as u64;
    let count = std::io::Read::take(&mut *input, cap).read_until(b'\n', raw)?;
    if count == 0 {
        return Ok(false);
    }
    if raw.last() != Some(&b'\n') && raw.len() > COMMAND_LINE_BYTES_MAX {
        // Over-long line: keep its head, skip the rest.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let skipped = std::io::Read::take(&mut *input, cap).read_until(b'\n', &mut rest)?;
            if skipped == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
    }
    Ok(true)
}

/// Lossy UTF-8, line ending stripped, at most `COMMAND_LINE_BYTES_MAX` bytes, no newline inside.
fn clean_line(raw: &[u8]) -> String {
    let mut line = String::from_utf8_lossy(raw).into_owned();
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    if line.len() > COMMAND_LINE_BYTES_MAX {
        let mut end = COMMAND_LINE_BYTES_MAX;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_capped_and_stripped() {
        let long = "x".repeat(COMMAND_LINE_BYTES_MAX + 10);
        let text = format!("hello\r\n{long}\nnext");
        let mut input = std::io::Cursor::new(text.into_bytes());
        let mut raw = Vec::new();
        let mut lines = Vec::new();
        loop {
            raw.clear();
            if !read_capped_line(&mut input, &mut raw).unwrap() {
                break;
            }
            lines.push(clean_line(&raw));
        }
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "hello");
        assert_eq!(lines[1].len(), COMMAND_LINE_BYTES_MAX);
        assert_eq!(lines[2], "next");
    }
}
