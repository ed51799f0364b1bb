//! `tools/launch.sh --hosts` for real, over OpenSSH: three network namespaces the test creates
//! each run sshd (Debian's openssh-server, installed when missing) with host keys and a client
//! key generated here; the launcher runs in a fourth namespace, so every address is on the
//! namespaces' bridge. A verified run with the registry here, one with the registry on the
//! first host, one interrupted by Ctrl-C (SIGINT) and one naming a host nobody answers on:
//! after each, nothing of it runs anywhere and the copied binaries are gone. Needs root and
//! iproute2; without them, or without sshd, it says loudly that it did not run.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    BIN, DEADLINE, Netns, Proc, cores_by, ensure_command, poll, say_skipped, sh, skip_without_netns,
};
use serde_json::Value;

const TEST: &str = "launch_over_ssh_across_namespaces";
const SSHD: &str = "/usr/sbin/sshd";
/// Host 0 runs the launcher, hosts 1..=3 run sshd, host 4 runs nothing (unreachable).
const SSH_HOSTS: [usize; 3] = [1, 2, 3];
const SILENT_HOST: usize = 4;

/// The namespaces, one sshd listening in each of SSH_HOSTS, and the files they use. On drop,
/// every process still inside a namespace is killed before the namespaces go (a failing test
/// leaves nothing behind either).
struct Lab {
    dir: PathBuf,
    sshd: Vec<Proc>,
    net: Netns,
}

impl Lab {
    fn new() -> Lab {
        // sshd's privilege-separation directory, which a machine that never ran sshd lacks.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        std::fs::set_permissions("/run/sshd", std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ssh-lab-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
        let keygen = |file: &str| {
            sh(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file],
            )
        };
        let net = Netns::new(SILENT_HOST + 1);
        keygen(&path("client_key"));
        std::fs::copy(path("client_key.pub"), path("authorized_keys")).unwrap();
        let mut known_hosts = String::new();
        let mut sshd = Vec::new();
        for host in SSH_HOSTS {
            let key = path(&format!("host_key_{host}"));
            keygen(&key);
            let public = std::fs::read_to_string(format!("{key}.pub")).unwrap();
            known_hosts.push_str(&format!("{} {}", net.ip(host), public));
            // StrictModes would refuse the keys: the private directory is 0700, but its parents
            // (a checkout anywhere, /tmp) may be group- or world-writable. Without PAM, sshd
            // refuses a key for an account whose password is locked (`!`): PAM then.
            let config = format!(
                "ListenAddress {}\nHostKey {key}\nAuthorizedKeysFile {}\nPidFile none\n\
                 StrictModes no\nUsePAM {}\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n",
                net.ip(host),
                path("authorized_keys"),
                if root_password_locked() { "yes" } else { "no" },
            );
            let config_path = path(&format!("sshd_{host}.conf"));
            std::fs::write(&config_path, config).unwrap();
            sshd.push(Proc::spawn_program(
                &format!("sshd{host}"),
                "ip",
                &[
                    "netns",
                    "exec",
                    &net.hosts[host],
                    SSHD,
                    "-D",
                    "-e",
                    "-f",
                    &config_path,
                ],
                false,
            ));
        }
        std::fs::write(path("known_hosts"), known_hosts).unwrap();
        let client = format!(
            "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
             StrictHostKeyChecking yes\n  LogLevel ERROR\n",
            path("client_key"),
            path("known_hosts"),
        );
        std::fs::write(path("ssh_config"), client).unwrap();
        let lab = Lab { dir, sshd, net };
        for daemon in &lab.sshd {
            let listening = poll(DEADLINE, || {
                daemon
                    .err
                    .text()
                    .contains("Server listening on")
                    .then_some(())
            });
            assert!(listening.is_some(), "sshd did not start\n{}", daemon.dump());
        }
        lab
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// Starts `tools/launch.sh --hosts FILE ARGS` in host 0, FILE holding `hosts`; its output
    /// directory is `out`.
    fn launch(&self, name: &str, hosts: &str, args: &[&str]) -> (Proc, String) {
        self.launch_with(name, hosts, &[], args)
    }

    /// [`Lab::launch`] with more `VARIABLE=value` settings in the launcher's environment.
    fn launch_with(
        &self,
        name: &str,
        hosts: &str,
        environment: &[&str],
        args: &[&str],
    ) -> (Proc, String) {
        let file = self.path(&format!("{name}.hosts"));
        std::fs::write(&file, hosts).unwrap();
        let out = self.path(name);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/launch.sh");
        let mut command = vec![
            "netns".to_string(),
            "exec".to_string(),
            self.net.hosts[0].clone(),
            "env".to_string(),
            // SIGINT as the default for the launcher even when the test runs with it ignored
            // (a background job of a shell without job control): bash cannot trap a signal
            // ignored when it started, and the Ctrl-C case below sends one.
            "--default-signal=INT".to_string(),
            format!("OVERLAY_BIN={BIN}"),
            format!("OUT={out}"),
            format!("SSH_OPTS=-F {}", self.path("ssh_config")),
        ];
        command.extend(environment.iter().map(|setting| setting.to_string()));
        command.extend([script.to_string(), "--hosts".to_string(), file]);
        command.extend(args.iter().map(|a| a.to_string()));
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        (Proc::spawn_program(name, "ip", &command, false), out)
    }

    /// The processes inside namespace `host` other than its sshd listener, as "PID name".
    fn strays(&self, host: usize) -> Vec<String> {
        let listeners: Vec<String> = self.sshd.iter().map(|p| p.id().to_string()).collect();
        pids_in(&self.net.hosts[host])
            .into_iter()
            .filter(|pid| !listeners.contains(pid))
            .map(|pid| {
                let name = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .replace('\0', " ");
                format!("{pid} {name}")
            })
            .collect()
    }

    /// Checks that the launcher's host runs nothing now (the launcher waits for every
    /// process it started there), then waits (bounded) until nothing but the sshd listeners
    /// runs in any namespace; panics naming what survives.
    fn assert_nothing_left(&self, after: &str) {
        assert_eq!(
            self.strays(0),
            Vec::<String>::new(),
            "after {after}, the launcher left these running"
        );
        let all = || -> Vec<String> {
            (0..self.net.hosts.len())
                .flat_map(|host| self.strays(host))
                .collect()
        };
        let left = poll(DEADLINE, || all().is_empty().then_some(()));
        assert!(
            left.is_some(),
            "after {after}, still running in the namespaces: {:?}",
            all()
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in &self.net.hosts {
            for pid in pids_in(ns) {
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether root's password is locked (`!` in /etc/shadow).
fn root_password_locked() -> bool {
    std::fs::read_to_string("/etc/shadow")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("root:"))
        .is_some_and(|rest| rest.starts_with('!'))
}

/// Process IDs inside network namespace `ns`.
fn pids_in(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The directories the launcher copied the binary to ("Copied overlay to DEST:DIR"); checks
/// that each is gone.
fn assert_copies_removed(launcher: &Proc, expected: usize) {
    let err = launcher.err.text();
    let dirs: Vec<&str> = err
        .lines()
        .filter_map(|l| l.strip_prefix("Copied overlay to "))
        .map(|l| l.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(dirs.len(), expected, "copies: {err}");
    for dir in dirs {
        assert!(!Path::new(dir).exists(), "{dir} is left on its host");
    }
}

fn result(out: &str) -> Value {
    let text = std::fs::read_to_string(format!("{out}/result.json")).expect("result.json");
    serde_json::from_str(&text).expect("result.json is JSON")
}

fn prerequisites() -> Result<(), String> {
    ensure_command(SSHD, "openssh-server")?;
    ensure_command("ssh", "openssh-client")?;
    ensure_command("ssh-keygen", "openssh-client")
}

#[test]
fn launch_over_ssh_across_namespaces() {
    if skip_without_netns(TEST) {
        return;
    }
    if let Err(why) = prerequisites() {
        say_skipped(TEST, &why);
        return;
    }
    let lab = Lab::new();
    let ip = |host: usize| lab.net.ip(host);
    // A comment, a destination with a user, one without, one with the address its nodes
    // listen on.
    let hosts = format!(
        "# three machines\nroot@{}\n{}   # no user\n{} {}\n",
        ip(1),
        ip(2),
        ip(3),
        ip(3)
    );

    // A verified run: the registry here, two nodes per host.
    let (mut launcher, out) = lab.launch("run", &hosts, &["6", "2000"]);
    let status = launcher.wait_exit();
    eprintln!("{}{}", launcher.out.text(), launcher.err.text());
    assert!(status.success(), "{status}\n{}", launcher.dump());
    let json = result(&out);
    assert_eq!(json["verdict"], "PASS", "{json:#}");
    assert_eq!(json["packets_received"], 12_000u64, "{json:#}");
    let registry = launcher.out.text();
    let err = launcher.err.text();
    for (host, label) in [(1, format!("root@{}", ip(1))), (2, ip(2)), (3, ip(3))] {
        let registered = format!(" at {}:", ip(host));
        assert_eq!(
            registry.matches(&registered).count(),
            2,
            "two nodes registered from {}\n{registry}",
            ip(host)
        );
        // Each node's lines come back prefixed with its host, and each exits by itself once
        // the registry is gone.
        let prefix = format!("[{label}] node ");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert!(
            lines.iter().any(|l| l.contains("Registered as node")),
            "{err}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("the registry connection closed"))
                .count(),
            2,
            "both nodes on {label} exit by themselves\n{err}"
        );
    }
    assert!(!err.contains("still run"), "{err}");
    lab.assert_nothing_left("a verified run");
    assert_copies_removed(&launcher, 3);

    // Groups of nodes per process on each host (`overlay node --count`), as a local launch
    // runs them: three nodes in one process per host.
    let (mut launcher, out) =
        lab.launch_with("groups", &hosts, &["NODES_PER_PROCESS=3"], &["9", "1000"]);
    let status = launcher.wait_exit();
    assert!(status.success(), "{status}\n{}", launcher.dump());
    let json = result(&out);
    assert_eq!(json["verdict"], "PASS", "{json:#}");
    assert_eq!(json["packets_received"], 9_000u64, "{json:#}");
    let registry = launcher.out.text();
    let err = launcher.err.text();
    for (host, label) in [(1, format!("root@{}", ip(1))), (2, ip(2)), (3, ip(3))] {
        assert_eq!(
            registry.matches(&format!(" at {}:", ip(host))).count(),
            3,
            "three nodes registered from {}\n{registry}",
            ip(host)
        );
        assert!(
            err.contains(&format!(
                "[{label}] overlay-launch: 3 nodes in 1 node processes"
            )),
            "{err}"
        );
        let prefix = format!("[{label}] node ");
        assert_eq!(
            err.lines()
                .filter(|l| l.starts_with(&prefix) && l.contains("the registry connection closed"))
                .count(),
            3,
            "the three nodes on {label} exit by themselves\n{err}"
        );
    }
    lab.assert_nothing_left("a run of node groups");
    assert_copies_removed(&launcher, 3);

    // By default nodes run in a process per core on each host, as a local launch runs them:
    // two nodes a core on each host, two in each process.
    let cores = cores_by(&["getconf", "_NPROCESSORS_ONLN"]);
    let per_host = (2 * cores).min(64);
    let nodes = (3 * per_host).to_string();
    let (mut launcher, out) = lab.launch_with("per-core", &hosts, &[], &[&nodes, "200"]);
    let status = launcher.wait_exit();
    assert!(status.success(), "{status}\n{}", launcher.dump());
    let json = result(&out);
    assert_eq!(json["verdict"], "PASS", "{json:#}");
    assert_eq!(
        json["packets_received"],
        (3 * per_host * 200) as u64,
        "{json:#}"
    );
    let per = per_host.div_ceil(cores);
    let processes = per_host.div_ceil(per);
    let err = launcher.err.text();
    for label in [format!("root@{}", ip(1)), ip(2), ip(3)] {
        assert!(
            err.contains(&format!(
                "[{label}] overlay-launch: {per_host} nodes in {processes} node processes"
            )),
            "{err}"
        );
    }
    lab.assert_nothing_left("a run of large payloads");
    assert_copies_removed(&launcher, 3);

    // The registry on the first host; result.json still lands here.
    let (mut launcher, out) = lab.launch("first", &hosts, &["--registry-on", "first", "4", "1000"]);
    let status = launcher.wait_exit();
    assert!(status.success(), "{status}\n{}", launcher.dump());
    let json = result(&out);
    assert_eq!(json["verdict"], "PASS", "{json:#}");
    assert_eq!(json["packets_received"], 4_000u64, "{json:#}");
    assert!(
        launcher
            .err
            .text()
            .contains(&format!("Registry on root@{}", ip(1))),
        "{}",
        launcher.dump()
    );
    lab.assert_nothing_left("a run with the registry on the first host");
    assert_copies_removed(&launcher, 3);

    // Ctrl-C during a long run.
    let (mut launcher, _) = lab.launch("interrupted", &hosts, &["6", "50000000"]);
    launcher.wait_line("Run 1:", 0);
    launcher.signal(libc::SIGINT);
    let status = launcher
        .wait_exit_within(DEADLINE)
        .unwrap_or_else(|| panic!("SIGINT did not stop the launcher\n{}", launcher.dump()));
    assert_eq!(status.code(), Some(130), "{}", launcher.dump());
    assert!(
        launcher.err.text().contains("interrupted"),
        "{}",
        launcher.dump()
    );
    lab.assert_nothing_left("Ctrl-C");
    assert_copies_removed(&launcher, 3);

    // A host nobody answers on: a clear message, nothing started, the copy that worked removed.
    let hosts = format!("{}\n{}\n", ip(1), ip(SILENT_HOST));
    let (mut launcher, _) = lab.launch("unreachable", &hosts, &["4", "1000"]);
    let status = launcher.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", launcher.dump());
    let err = launcher.err.text();
    assert!(
        err.contains(&format!(
            "cannot use {} over ssh: ssh: connect to host",
            ip(SILENT_HOST)
        )),
        "{err}"
    );
    assert!(err.contains("nothing was started"), "{err}");
    lab.assert_nothing_left("an unreachable host");
    assert_copies_removed(&launcher, 1);

    // Nothing of the test survives it: no sshd session, no node, no registry, no launcher.
    let mut lab = lab;
    for daemon in &mut lab.sshd {
        daemon.kill();
    }
    lab.sshd.clear();
    lab.assert_nothing_left("stopping sshd");
    drop(lab);
}
