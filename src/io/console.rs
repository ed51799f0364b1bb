//! Operator console: a thread reads standard input and hands whole lines to the loop.
//!
//! Standard input may be a terminal, a pipe, or closed; reading it blocks, so a small thread
//! reads it and writes each line (capped, lossy UTF-8, newline-terminated) into one end of a
//! Unix socket pair. On a terminal (standard input and output both) the thread reads with
//! rustyline: line editing, and history (up and down arrows) for the session; Ctrl-C still
//! interrupts the process and Ctrl-D ends the input. The terminal's mode is saved when the
//! console starts and put back when the loop drops its end, so an exit while the editor has
//! the terminal in raw mode leaves it as it was. Anything else is read as plain lines. The loop receives from the other end through the ring, like any
//! connection. End of input (or an input error) only ends the thread: the loop sees end of
//! stream and stops reading the console; it is never an error.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::net::UnixStream;

use crate::limits::{COMMAND_LINE_BYTES_MAX, CONSOLE_BUFFER_BYTES};

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
    /// The terminal's mode before the line editor changed it, put back on drop.
    terminal: Option<libc::termios>,
}

impl Drop for ConsoleReader {
    fn drop(&mut self) {
        if let Some(mode) = &self.terminal {
            // SAFETY: tcsetattr reads the termios it is given, which lives across the call.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, mode) };
        }
    }
}

/// The mode of the terminal on standard input, if it is one the editor will use.
fn terminal_mode() -> Option<libc::termios> {
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return None;
    }
    let mut mode = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: tcgetattr writes one termios into the memory it is given, which is large enough.
    let got = unsafe { libc::tcgetattr(0, mode.as_mut_ptr()) };
    // SAFETY: tcgetattr returned 0, so it filled the termios.
    (got == 0).then(|| unsafe { mode.assume_init() })
}

/// Starts the console thread, or returns `Ok(None)` when standard input is not open.
pub(crate) fn start() -> std::io::Result<Option<ConsoleReader>> {
    if !stdin_is_open() {
        tracing::debug!("standard input is closed: no console");
        return Ok(None);
    }
    let terminal = terminal_mode();
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
        terminal,
    }))
}

/// True when descriptor 0 is open (a closed stdin must not be read: the descriptor number may
/// be reused by a socket).
fn stdin_is_open() -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags of descriptor 0; it touches no memory.
    let flags = unsafe { libc::fcntl(0, libc::F_GETFD) };
    flags >= 0
}

/// The console thread: standard input to `sink`, one line at a time.
fn read_lines(sink: UnixStream) {
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        match rustyline::DefaultEditor::with_config(
            rustyline::Config::builder()
                .auto_add_history(true)
                .history_ignore_dups(true)
                .and_then(|c| c.max_history_size(1000))
                .map(|c| c.build())
                .unwrap_or_default(),
        ) {
            Ok(editor) => return edit_lines(editor, sink),
            Err(error) => tracing::debug!(%error, "no line editor; reading plain lines"),
        }
    }
    read_plain_lines(sink)
}

/// Terminal input through rustyline (no prompt: the loop prints at any time).
fn edit_lines(mut editor: rustyline::DefaultEditor, mut sink: UnixStream) {
    use rustyline::error::ReadlineError;
    loop {
        let line = match editor.readline("") {
            Ok(line) => line,
            Err(ReadlineError::Eof) => break,
            // Ctrl-C: rustyline has restored the terminal; interrupt the process as a
            // terminal in its usual mode would.
            Err(ReadlineError::Interrupted) => {
                // SAFETY: raise only sends a signal to this process; no memory is involved.
                unsafe { libc::raise(libc::SIGINT) };
                continue;
            }
            Err(ReadlineError::Signal(_)) => continue,
            Err(error) => {
                tracing::debug!(%error, "console input failed; console closed");
                break;
            }
        };
        let mut message = clean_line(line.as_bytes()).into_bytes();
        message.push(b'\n');
        if sink.write_all(&message).is_err() {
            return;
        }
    }
    tracing::debug!("console input ended");
}

/// Piped or redirected input: plain lines, each capped.
fn read_plain_lines(mut sink: UnixStream) {
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
