//! Helpers for tests that run the real `overlay` binary: child processes whose output is read
//! on threads (so a test can wait for a line), killed on drop; a raw control-message client;
//! and, for the reliability tests, network namespaces with cleanup on drop, iptables, /proc
//! readings (resident memory, CPU time) and signals.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use overlay::wire::native::Native;
use overlay::wire::{Codec, Control};

/// How long any condition may take to come true (a busy 2-core machine runs tests in parallel).
pub const DEADLINE: Duration = Duration::from_secs(60);

pub const BIN: &str = env!("CARGO_BIN_EXE_overlay");

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

/// A registry started with `extra` arguments on a free port; returns it and the port it
/// printed.
pub fn registry(extra: &[&str], piped: bool) -> (Proc, u16) {
    let mut args = vec!["registry", "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    let proc = Proc::spawn("registry", &args, piped);
    let (line, _) = proc.wait_line("Registry listening on ", 0);
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (proc, port)
}

/// A messaging node of the registry at 127.0.0.1:`port`.
pub fn node(name: &str, port: u16, extra: &[&str], piped: bool) -> Proc {
    let port = port.to_string();
    let mut args = vec!["node", "127.0.0.1", port.as_str()];
    args.extend_from_slice(extra);
    Proc::spawn(name, &args, piped)
}

/// What a node printed about itself once registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub id: u32,
    pub addr: SocketAddr,
}

/// Waits for the node's `Node listening on ADDR` and `Registered as node N` lines.
pub fn registered(node: &Proc) -> Registered {
    let (line, _) = node.wait_line("Node listening on ", 0);
    let addr = line["Node listening on ".len()..]
        .split(',')
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let (line, _) = node.wait_line("Registered as node ", 0);
    let id = line["Registered as node ".len()..]
        .split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ID in {line:?}"));
    Registered { id, addr }
}

/// A test's output file, fresh for each run and removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn temp_path(name: &str) -> TempFile {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rel-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    TempFile(path)
}

/// Polls until `path` holds text that `check` accepts.
pub fn wait_file<T>(path: &std::path::Path, mut check: impl FnMut(&str) -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(found) = check(&text)
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held what was expected",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

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

// ----- /proc readings -----

/// Resident memory of `pid` in KiB (VmRSS), `None` once it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user + system) of `pid` in clock ticks, `None` once it is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the command.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Raises the soft limit on open files to `want` (or the hard limit if lower); returns the
/// limit now in force. Children inherit it.
pub fn raise_nofile(want: u64) -> u64 {
    rlimit::increase_nofile_limit(want).expect("getrlimit/setrlimit")
}

/// Polls `check` every 20 ms until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ----- network namespaces -----

/// Why namespace tests cannot run here, if they cannot (not root, or no `ip`).
pub fn netns_unavailable() -> Option<String> {
    // /proc/self belongs to the process's effective user.
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if !root {
        return Some("not running as root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("the `ip` command (iproute2) is missing".into()),
    }
}

/// Skips the calling test loudly (stderr, and a marker line CI logs show) when namespaces
/// are unavailable. Returns true if the test must return at once.
pub fn skip_without_netns(test: &str) -> bool {
    match netns_unavailable() {
        None => false,
        Some(why) => {
            eprintln!(
                "\n*** SKIPPED {test}: {why}. This test needs root and iproute2 (.ci/run \
                 installs them). It did NOT run. ***\n"
            );
            true
        }
    }
}

/// Runs a command, panicking with its output if it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Prefix of every namespace these tests create: `ovt-PID-N-...`.
const NETNS_PREFIX: &str = "ovt-";

/// Deletes namespaces left by test processes that no longer exist (a SIGKILLed test cannot
/// run its Drop).
fn sweep_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A small network of namespaces: a hub namespace holding a bridge, and one namespace per
/// host, each joined to the bridge by a veth pair (`eth0` inside the host, on 10.77.0.0/24).
/// Host `i` has address `10.77.0.(i + 1)`. Everything, including iptables rules inside the
/// namespaces, is removed on drop (even when the test panics). Traffic never leaves the
/// namespaces.
pub struct Netns {
    hub: String,
    pub hosts: Vec<String>,
}

static NETNS_SEQUENCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Netns {
    pub fn new(hosts: usize) -> Netns {
        sweep_stale_namespaces();
        let seq = NETNS_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = format!("{NETNS_PREFIX}{}-{seq}", std::process::id());
        let mut net = Netns {
            hub: format!("{base}-hub"),
            hosts: Vec::new(),
        };
        sh("ip", &["netns", "add", &net.hub]);
        net.exec_ok(
            &net.hub.clone(),
            &["ip", "link", "add", "br0", "type", "bridge"],
        );
        net.exec_ok(&net.hub.clone(), &["ip", "link", "set", "br0", "up"]);
        for i in 0..hosts {
            let host = format!("{base}-h{i}");
            sh("ip", &["netns", "add", &host]);
            net.hosts.push(host.clone());
            let port = format!("p{i}");
            sh(
                "ip",
                &[
                    "link", "add", "name", &port, "netns", &net.hub, "type", "veth", "peer",
                    "name", "eth0", "netns", &host,
                ],
            );
            let hub = net.hub.clone();
            net.exec_ok(&hub, &["ip", "link", "set", &port, "master", "br0"]);
            net.exec_ok(&hub, &["ip", "link", "set", &port, "up"]);
            let address = format!("{}/24", net.ip(i));
            net.exec_ok(&host, &["ip", "addr", "add", &address, "dev", "eth0"]);
            net.exec_ok(&host, &["ip", "link", "set", "eth0", "up"]);
            net.exec_ok(&host, &["ip", "link", "set", "lo", "up"]);
        }
        net
    }

    /// The address of host `i`.
    pub fn ip(&self, i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// Runs a command inside namespace `ns`, panicking if it fails.
    pub fn exec_ok(&self, ns: &str, command: &[&str]) -> String {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(command);
        sh("ip", &args)
    }

    /// Adds an iptables rule inside host `i` (`iptables ARGS`).
    pub fn iptables(&self, i: usize, rule: &[&str]) {
        let mut command = vec!["iptables", "-w"];
        command.extend_from_slice(rule);
        self.exec_ok(&self.hosts[i].clone(), &command);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(std::iter::once(&self.hub)) {
            let status = Command::new("ip").args(["netns", "del", ns]).status();
            if !matches!(status, Ok(s) if s.success()) {
                eprintln!("warning: could not delete network namespace {ns}");
            }
        }
    }
}

/// Whether iptables works inside a namespace (the binary exists and the kernel has the
/// tables it needs).
pub fn iptables_unavailable(net: &Netns) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &net.hosts[0], "iptables", "-w", "-L", "-n"])
        .output();
    match out {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "iptables does not work in a network namespace here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("iptables cannot be run: {e}")),
    }
}

/// Prints the loud marker of a test that did not run, and why.
pub fn say_skipped(test: &str, why: &str) {
    eprintln!("\n*** SKIPPED {test}: {why}. It did NOT run. ***\n");
}

/// Serializes installs: the tests of one binary run in parallel threads.
static INSTALLS: Mutex<()> = Mutex::new(());

/// Makes `program` available, installing Debian's `package` with apt-get when it is missing
/// and this process may (root, apt-get present): the README's test command then passes on a
/// fresh machine of our kind. `Err` says why it is still missing.
pub fn ensure_command(program: &str, package: &str) -> Result<(), String> {
    let present = || present_program(program);
    let _guard = INSTALLS.lock().unwrap_or_else(|e| e.into_inner());
    if present() {
        return Ok(());
    }
    if netns_unavailable().is_some() || !present_program("apt-get") {
        return Err(format!(
            "`{program}` is missing and cannot be installed here (needs root and apt-get; \
             install Debian's `{package}`)"
        ));
    }
    eprintln!("installing Debian's `{package}` for the tests that need `{program}` (apt-get)");
    let install = || {
        Command::new("apt-get")
            .args([
                "-o",
                "DPkg::Lock::Timeout=300",
                "install",
                "-y",
                "-qq",
                package,
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    // A fresh machine may have no package lists yet: update once, then try again.
    if !install() {
        let _ = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300", "update", "-qq"])
            .stdout(Stdio::null())
            .status();
        install();
    }
    if present() {
        Ok(())
    } else {
        Err(format!(
            "`{program}` is missing and `apt-get install {package}` did not provide it"
        ))
    }
}

/// Whether `program` is on the PATH.
fn present_program(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Skips the calling test loudly unless namespaces work and iptables works inside them
/// (installed on demand, see [`ensure_command`]). Returns the namespaces when it may run.
pub fn netns_with_iptables(test: &str, hosts: usize) -> Option<Netns> {
    if skip_without_netns(test) {
        return None;
    }
    if let Err(why) = ensure_command("iptables", "iptables") {
        say_skipped(test, &why);
        return None;
    }
    let net = Netns::new(hosts);
    if let Some(why) = iptables_unavailable(&net) {
        say_skipped(test, &why);
        return None;
    }
    Some(net)
}
