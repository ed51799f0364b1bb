//! The consoles on a real terminal: the binary runs in a tmux pane (a pseudo-terminal), keys
//! are typed with `tmux send-keys` and the screen is read with `tmux capture-pane`. Checks
//! line editing (backspace), history (up arrow), `help`, that the terminal's mode is put back
//! when a node exits, and the progress bar of a run. tmux is installed on demand where it
//! can be (root, apt-get); elsewhere the tests say SKIPPED.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    BIN, DEADLINE, Proc, ensure_command, nodes, registered, say_skipped, temp_path, wait_file,
};

/// A tmux server of its own (private socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts a 160x50 session running `command` (a shell command line); `None` without tmux.
    fn start(name: &str, command: &str) -> Option<Tmux> {
        if let Err(why) = ensure_command("tmux", "tmux") {
            say_skipped(&format!("the terminal test ({name})"), &why);
            return None;
        }
        let tmux = Tmux {
            socket: format!("overlay-test-{}-{name}", std::process::id()),
        };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "160",
            "-y",
            "50",
        ]);
        tmux.run(&["set-option", "-g", "remain-on-exit", "on"]);
        tmux.run(&["respawn-pane", "-k", "-t", "0", command]);
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types text literally (no key names).
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "0", "-l", text]);
    }

    /// Presses named keys (`Enter`, `BSpace`, `Up`, `C-d`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// The whole pane, scrollback included.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-S", "-", "-t", "0"])
    }

    /// Waits until the screen satisfies `check`; panics with the screen after the deadline.
    fn wait(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn port_of(path: &Path) -> u16 {
    wait_file(path, |text| {
        text.ends_with('\n')
            .then(|| text.trim().parse().ok())
            .flatten()
    })
}

/// The registry's console on a terminal: a typo fixed with backspace, the command again with
/// the up arrow, and `help`.
#[test]
fn registry_console_edits_lines_and_keeps_history() {
    let port_file = temp_path("pty-registry.port");
    let command = format!(
        "{BIN} registry --bind 127.0.0.1 --port-file {}",
        port_file.arg()
    );
    let Some(tmux) = Tmux::start("registry", &command) else {
        return;
    };
    let port = port_of(&port_file.0);
    let nodes: Vec<Proc> = nodes(2, port, &[]);
    let me: Vec<String> = nodes
        .iter()
        .map(registered)
        .map(|r| format!("{} {} {}", r.addr.ip(), r.addr.port(), r.id))
        .collect();
    tmux.wait("both nodes registered", |s| s.contains("(2 nodes)"));

    // `lisx`, backspace, `t-messaging-nodes`: the registry sees `list-messaging-nodes`.
    tmux.type_text("lisx");
    tmux.keys(&["BSpace"]);
    tmux.type_text("t-messaging-nodes");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait("the node list", |s| me.iter().all(|m| s.contains(m)));
    assert!(!screen.contains("unknown command"), "{screen}");

    // Up arrow: the same command again, so each node is listed twice.
    tmux.keys(&["Up", "Enter"]);
    tmux.wait("the node list again", |s| {
        me.iter().all(|m| s.matches(m.as_str()).count() == 2)
    });

    tmux.type_text("help");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait("the help", |s| s.contains("export-overlay FILE"));
    for command in [
        "list-messaging-nodes",
        "setup-overlay [NR]",
        "list-routing-tables",
        "start N [BYTES]",
    ] {
        assert!(screen.contains(command), "{command} missing:\n{screen}");
    }
}

/// A node's console on a terminal: `exit-overlay` typed with an edit; after the node exits the
/// terminal is back in its usual mode (echo and canonical input).
#[test]
fn node_console_restores_the_terminal_on_exit() {
    let stty = temp_path("pty-node.stty");
    let (_registry, port) = common::registry(&[], false);
    let command = format!(
        "{BIN} node 127.0.0.1 {port}; echo exited $?; stty -a > {}",
        stty.arg()
    );
    let Some(tmux) = Tmux::start("node", &command) else {
        return;
    };
    tmux.wait("the registration", |s| s.contains("Registered as node"));
    tmux.type_text("exit-overlax");
    tmux.keys(&["BSpace"]);
    tmux.type_text("y");
    tmux.keys(&["Enter"]);
    tmux.wait("the node's exit", |s| s.contains("exited 0"));
    let modes = wait_file(&stty.0, |text| {
        text.contains("icanon").then(|| text.to_string())
    });
    let words: Vec<&str> = modes.split_whitespace().collect();
    for mode in ["echo", "icanon", "isig"] {
        assert!(words.contains(&mode), "{mode} is off after exit:\n{modes}");
    }
}

/// A scripted run on a terminal draws a progress bar (packets of the total with thousands
/// separators, rate, ETA), then clears it for the summary.
#[test]
fn registry_draws_a_progress_bar_on_a_terminal() {
    let port_file = temp_path("pty-bar.port");
    let command = format!(
        "{BIN} registry --bind 127.0.0.1 --port-file {} --nodes 2 --nr 1 --start 4000 --rate 1000",
        port_file.arg()
    );
    let Some(tmux) = Tmux::start("bar", &command) else {
        return;
    };
    let port = port_of(&port_file.0);
    let _nodes: Vec<Proc> = nodes(2, port, &[]);
    let screen = tmux.wait("the progress bar", |s| {
        s.lines()
            .any(|l| l.contains("/8,000 packets") && l.contains("pkt/s") && l.contains("ETA"))
    });
    assert!(!screen.contains("PASS"), "{screen}");
    let screen = tmux.wait("the summary", |s| s.contains("PASS"));
    let last = screen.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(
        !last.contains("pkt/s"),
        "the bar was not cleared:\n{screen}"
    );
}

/// A scripted run by time on a terminal: the bar shows its time and the packets delivered;
/// Ctrl-C (read by the line editor, which raises SIGINT) ends the run early with its report,
/// STOPPED, and the registry exits with status 130.
#[test]
fn ctrl_c_on_a_terminal_stops_a_scripted_run_by_time() {
    let port_file = temp_path("pty-ctrl-c.port");
    let command = format!(
        "{BIN} registry --bind 127.0.0.1 --port-file {} --nodes 2 --nr 1 --duration 600 --rate 1000; \
         echo registry exited with $?; sleep 60",
        port_file.arg()
    );
    let Some(tmux) = Tmux::start("ctrl-c", &command) else {
        return;
    };
    let port = port_of(&port_file.0);
    let _nodes: Vec<Proc> = nodes(2, port, &[]);
    tmux.wait("the bar of a run by time", |s| {
        s.lines()
            .any(|l| l.contains(" packets ") && l.contains("pkt/s") && l.contains("of 600 s"))
    });
    tmux.keys(&["C-c"]);
    let screen = tmux.wait("the report and the exit", |s| {
        s.contains("registry exited with")
    });
    assert!(screen.contains("STOPPED after "), "{screen}");
    assert!(screen.contains(" of 600 s: "), "{screen}");
    assert!(screen.contains("registry exited with 130"), "{screen}");
}
