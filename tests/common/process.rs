//! Child processes of a test (the `overlay` binary or another program): their output read on
//! threads so that a test can wait for a line, killed and reaped on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{BIN, DEADLINE};

/// What a finished command wrote, standard output then standard error, for a failure's
/// message.
pub fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Text a child wrote to one stream, growing as it arrives.
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

    /// Waits until `check(text)` returns `Some`, the stream ends or the deadline passes.
    /// `Err` carries the text seen and why it failed.
    fn wait<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
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
                return Err(format!("nothing after {timeout:?}"));
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}

/// A child process of the test, killed (and reaped) on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    pub out: Arc<Captured>,
    pub err: Arc<Captured>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `overlay ARGS`; `piped` gives it a stdin the test writes to, else /dev/null.
    pub fn spawn(name: &str, args: &[&str], piped: bool) -> Proc {
        Proc::spawn_in(name, None, args, piped)
    }

    /// Starts `overlay ARGS`, inside network namespace `netns` if given (`ip netns exec`
    /// execs the program, so the child's PID is the overlay process itself).
    pub fn spawn_in(name: &str, netns: Option<&str>, args: &[&str], piped: bool) -> Proc {
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        command.args(args);
        Proc::spawn_command(name, command, piped)
    }

    /// Starts `overlay ARGS` with its own `RUST_LOG` filter (to read what it logs at exit).
    pub fn spawn_logging(name: &str, args: &[&str], rust_log: &str) -> Proc {
        let mut command = Command::new(BIN);
        command.args(args).env("RUST_LOG", rust_log);
        Proc::spawn_command(name, command, false)
    }

    /// Starts another program (a test peer, say) with the same capture and cleanup.
    pub fn spawn_program(name: &str, program: &str, args: &[&str], piped: bool) -> Proc {
        let mut command = Command::new(program);
        command.args(args);
        Proc::spawn_command(name, command, piped)
    }

    fn spawn_command(name: &str, mut command: Command, piped: bool) -> Proc {
        let described = format!("{command:?}");
        let inherited_log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        if !command.get_envs().any(|(key, _)| key == "RUST_LOG") {
            command.env("RUST_LOG", inherited_log);
        }
        let mut child = command
            .stdin(if piped { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {described}: {e}"));
        let stdin = child.stdin.take();
        let (out, out_reader) = Captured::start(child.stdout.take().unwrap());
        let (err, err_reader) = Captured::start(child.stderr.take().unwrap());
        Proc {
            name: name.to_string(),
            child,
            stdin,
            out,
            err,
            readers: vec![out_reader, err_reader],
            status: None,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (SIGSTOP, SIGCONT, ...) to the child, unless it has been reaped.
    pub fn signal(&self, signal: i32) {
        if self.status.is_none() {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(self.child.id().to_string())
                .status()
                .expect("kill(1) runs");
            assert!(status.success(), "{}: kill -{signal} failed", self.name);
        }
    }

    /// Sends `signal` to every one of `procs` that has not exited, with one `kill(1)`, so that
    /// they get it within microseconds of each other (one `kill` each spreads them over the
    /// milliseconds each process start takes on a loaded machine).
    pub fn signal_all(procs: &[&Proc], signal: i32) {
        let pids: Vec<String> = procs
            .iter()
            .filter(|p| p.status.is_none())
            .map(|p| p.child.id().to_string())
            .collect();
        if pids.is_empty() {
            return;
        }
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{signal} {pids:?} failed");
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.status = Some(status);
        }
        self.status
    }

    /// Waits up to `timeout` for the child to exit on its own.
    pub fn wait_exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything written so far, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "--- {} stdout ---\n{}--- {} stderr ---\n{}",
            self.name,
            self.out.text(),
            self.name,
            self.err.text()
        )
    }

    /// Length of stdout so far: later waits can look only at what comes after it.
    pub fn mark(&self) -> usize {
        self.out.state.lock().unwrap().0.len()
    }

    /// Waits until `check` (given stdout from `from`) returns `Some`; panics after the deadline
    /// or at end of output.
    pub fn wait_until<T>(
        &self,
        what: &str,
        from: usize,
        check: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let mut check = check;
        match self
            .out
            .wait(DEADLINE, |text| check(&text[from.min(text.len())..]))
        {
            Ok(found) => found,
            Err(why) => panic!("{}: waited for {what}: {why}\n{}", self.name, self.dump()),
        }
    }

    /// Waits for `needle` in stdout after `from`; returns the whole line holding it and the
    /// offset just after that line.
    pub fn wait_line(&self, needle: &str, from: usize) -> (String, usize) {
        self.wait_until(&format!("{needle:?}"), from, |text| {
            let at = text.find(needle)?;
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = at + text[at..].find('\n')?;
            Some((text[start..end].to_string(), from + end + 1))
        })
    }

    /// Waits for `needle` in stderr; returns the whole line holding it.
    pub fn wait_err_line(&self, needle: &str) -> String {
        let found = self.err.wait(DEADLINE, |text| {
            let at = text.find(needle)?;
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = at + text[at..].find('\n')?;
            Some(text[start..end].to_string())
        });
        found.unwrap_or_else(|why| {
            panic!(
                "{}: waited for {needle:?} on stderr: {why}\n{}",
                self.name,
                self.dump()
            )
        })
    }

    /// Waits for a line of stdout (after `from`) starting with `prefix`.
    pub fn wait_line_starting(&self, prefix: &str, from: usize) -> (String, usize) {
        self.wait_until(&format!("a line starting with {prefix:?}"), from, |text| {
            let mut offset = 0;
            for line in text.split_inclusive('\n') {
                offset += line.len();
                if line.ends_with('\n') && line.starts_with(prefix) {
                    return Some((line.trim_end().to_string(), from + offset));
                }
            }
            None
        })
    }

    /// Types a command line.
    pub fn send(&mut self, line: &str) {
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{}: stdin is not piped", self.name));
        writeln!(stdin, "{line}").unwrap_or_else(|e| panic!("{}: cannot type: {e}", self.name));
        stdin.flush().unwrap();
    }

    /// Closes the child's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
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
                    // Let the readers take the rest of the output.
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

    /// Kills the child now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin = None;
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.dump());
        }
    }
}
