//! Network namespaces for the reliability tests: a small bridged network of hosts, removed on
//! drop, with iptables inside; and the checks that skip a test loudly where they cannot run.

use std::process::Command;

use super::{ensure_command, say_skipped};

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
            super::say_skipped(
                test,
                &format!("{why}. This test needs root and iproute2 (.ci/run installs them)"),
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
