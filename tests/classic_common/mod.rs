//! Helpers for the classic-format interop tests: child processes (the `overlay` binary or the
//! independent Python classic peer of `tests/support/classic_peer.py`) whose output is read on
//! threads so a test can wait for a line, killed and reaped on drop. A trimmed copy of the
//! pattern in `tests/common/mod.rs`, able to start any program.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any condition may take to come true (a busy 2-core machine runs tests in parallel).
pub const DEADLINE: Duration = Duration::from_secs(60);

pub const BIN: &str = env!("CARGO_BIN_EXE_overlay");

/// The independent classic peer (registry or node), written from REFERENCE.md alone.
pub const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/classic_peer.py");

#[derive(Default)]
pub struct Captured {
    state: Mutex<(String, bool)>,
    changed: Condvar,
}

impl Captured {
    fn start(stream: impl Read + Send + 'static) -> (Arc<Captured>, JoinHandle<()>) {
        let captured = Arc::new(Captured::default());
        let writer = Arc::clone(&captured);
        let handle = std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let mut state = writer.state.lock().unwrap();
                        state.0.push_str(&String::from_utf8_lossy(&line));
                        writer.changed.notify_all();
                    }
                }
            }
            writer.state.lock().unwrap().1 = true;
            writer.changed.notify_all();
        });
        (captured, handle)
    }

    pub fn text(&self) -> String {
        self.state.lock().unwrap().0.clone()
    }

    fn wait<T>(&self, mut check: impl FnMut(&str) -> Option<T>) -> Result<T, String> {
        let deadline = Instant::now() + DEADLINE;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(found) = check(&state.0) {
                return Ok(found);
            }
            if state.1 {
                return Err("the stream ended".to_string());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("nothing after {DEADLINE:?}"));
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}

/// A child process of the test, killed (and reaped) on drop. Its stdin is /dev/null: every
/// peer must cope with end of input at once.
pub struct Proc {
    pub name: String,
    child: Child,
    pub out: Arc<Captured>,
    pub err: Arc<Captured>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: &str, program: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} {args:?}: {e}"));
        let (out, out_reader) = Captured::start(child.stdout.take().unwrap());
        let (err, err_reader) = Captured::start(child.stderr.take().unwrap());
        Proc {
            name: name.to_string(),
            child,
            out,
            err,
            readers: vec![out_reader, err_reader],
            status: None,
        }
    }

    pub fn dump(&self) -> String {
        format!(
            "--- {} stdout ---\n{}--- {} stderr ---\n{}",
            self.name,
            self.out.text(),
            self.name,
            self.err.text()
        )
    }

    /// Waits for a line of stdout holding `needle`; returns it.
    pub fn wait_line(&self, needle: &str) -> String {
        let found = self.out.wait(|text| {
            let at = text.find(needle)?;
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = at + text[at..].find('\n')?;
            Some(text[start..end].to_string())
        });
        found.unwrap_or_else(|why| {
            panic!(
                "{}: waited for {needle:?}: {why}\n{}",
                self.name,
                self.dump()
            )
        })
    }

    /// The exit status, once the child has exited on its own (polled, up to the deadline).
    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    for reader in self.readers.drain(..) {
                        let _ = reader.join();
                    }
                    return status;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => panic!(
                    "{}: did not exit within {DEADLINE:?}\n{}",
                    self.name,
                    self.dump()
                ),
                Err(e) => panic!("{}: wait failed: {e}", self.name),
            }
        }
    }

    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
        }
    }
}

/// The port in a `... listening on HOST:PORT` line.
pub fn listening_port(proc: &Proc) -> u16 {
    let line = proc.wait_line("Registry listening on ");
    line.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// Our registry in classic mode on a free port of 127.0.0.1.
pub fn our_registry(extra: &[&str]) -> (Proc, u16) {
    let mut args = vec!["registry", "--bind", "127.0.0.1", "--wire", "classic"];
    args.extend_from_slice(extra);
    let proc = Proc::spawn("registry", BIN, &args);
    let port = listening_port(&proc);
    (proc, port)
}

/// The Python classic registry on a free port.
pub fn classic_registry(extra: &[&str]) -> (Proc, u16) {
    let mut args = vec![PEER, "registry"];
    args.extend_from_slice(extra);
    let proc = Proc::spawn("classic-registry", "python3", &args);
    let port = listening_port(&proc);
    (proc, port)
}

/// Our node in classic mode.
pub fn our_node(name: &str, port: u16) -> Proc {
    let port = port.to_string();
    Proc::spawn(
        name,
        BIN,
        &["node", "127.0.0.1", port.as_str(), "--wire", "classic"],
    )
}

/// A Python classic node.
pub fn classic_node(name: &str, port: u16, extra: &[&str]) -> Proc {
    let port = port.to_string();
    let mut args = vec![PEER, "node", "127.0.0.1", port.as_str()];
    args.extend_from_slice(extra);
    Proc::spawn(name, "python3", &args)
}
