//! What a new user meets first: `tools/*.sh --help` prints the script's usage and starts
//! nothing, `tools/launch.sh --help` names every environment variable the launcher reads, and
//! every duration flag takes seconds alike (decimals, an optional `s`).
//! (`overlay registry --help` naming every CSV column is a unit test of `src/cli`.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Proc, temp_path};

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

/// The scripts a user runs (`lib.sh` is sourced by others, not run, and not executable).
fn scripts() -> Vec<PathBuf> {
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(tools())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sh"))
        .filter(|path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(path).unwrap().permissions().mode() & 0o111 != 0
        })
        .collect();
    scripts.sort();
    scripts
}

/// Processes alive now whose environment holds `marker`: what a run left behind.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|&b| b == 0).any(|v| v == marker.as_bytes()) {
            let command = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(String::from_utf8_lossy(&command).replace('\0', " "));
        }
    }
    found
}

/// `--help` and `-h` of every script: usage naming the script, at once, exit 0, no line of
/// the script's code, nothing started (no process outlives it, `$OUT` is not created, the
/// binary `OVERLAY_BIN` names is not run).
#[test]
fn every_tool_prints_its_usage_and_starts_nothing() {
    let scripts = scripts();
    assert!(scripts.len() >= 7, "{scripts:?}");
    for script in &scripts {
        let name = script.file_name().unwrap().to_str().unwrap();
        for flag in ["--help", "-h"] {
            let out = temp_path(&format!("help-{name}{flag}"));
            let marker = format!("OVERLAY_HELP_TEST={name}{flag}-{}", std::process::id());
            let (key, value) = marker.split_once('=').unwrap();
            let started = Instant::now();
            let output = Command::new(script)
                .arg(flag)
                .env("OUT", &out.0)
                .env("OVERLAY_BIN", "/nonexistent/overlay")
                .env(key, value)
                .output()
                .unwrap();
            let took = started.elapsed();
            let text = String::from_utf8_lossy(&output.stdout);
            let said = format!(
                "{name} {flag}: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(output.status.success(), "{}\n{said}", output.status);
            assert!(took < Duration::from_secs(5), "{took:?}\n{said}");
            assert!(text.contains(&format!("tools/{name}")), "{said}");
            assert!(text.lines().count() >= 3, "{said}");
            for line in text.lines() {
                assert!(
                    !line.starts_with("[[")
                        && !line.contains("sed -n")
                        && !line.starts_with("set -"),
                    "a line of code in the usage: {line}\n{said}"
                );
            }
            assert!(!out.0.exists(), "{name} {flag} created $OUT\n{said}");
            let left = processes_with(&marker);
            assert!(left.is_empty(), "{name} {flag} left {left:?}\n{said}");
        }
    }
}

/// `tools/launch.sh --help` names every environment variable the launcher and its library
/// read (`${NAME:-...}`), but the shell's own.
#[test]
fn launch_help_lists_its_environment_variables() {
    let output = Command::new(tools().join("launch.sh"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let mut read = Vec::new();
    for file in ["launch.sh", "lib.sh"] {
        let text = std::fs::read_to_string(tools().join(file)).unwrap();
        for (at, _) in text.match_indices("${") {
            let name: String = text[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            if text[at + 2 + name.len()..].starts_with(":-") && !name.is_empty() {
                read.push(name);
            }
        }
    }
    read.retain(|name| name != "TMPDIR");
    read.sort();
    read.dedup();
    assert!(read.len() >= 8, "{read:?}");
    for name in &read {
        assert!(
            help.contains(name),
            "launch.sh --help does not name {name}\n{help}"
        );
    }
}

/// Every duration flag takes seconds the same way, as the console's `start 2.5s` does:
/// decimals and an optional `s`; another unit is refused and the refusal says what to give.
#[test]
fn duration_flags_take_decimals_and_an_s() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut node = Proc::spawn(
        "node",
        &["node", "127.0.0.1", &port, "--registry-wait", "0.5s"],
        false,
    );
    let status = node
        .wait_exit_within(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("still trying\n{}", node.dump()));
    assert_eq!(status.code(), Some(1), "{}", node.dump());
    let out = node.out.text();
    assert!(out.contains("(--registry-wait 0.5 s)"), "{out}");

    let mut registry = Proc::spawn(
        "registry",
        &[
            "registry",
            "-b",
            "127.0.0.1",
            "-n",
            "2",
            "-s",
            "10",
            "--ready-timeout",
            "1.5",
        ],
        false,
    );
    let status = registry
        .wait_exit_within(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("still waiting\n{}", registry.dump()));
    assert!(!status.success(), "{}", registry.dump());
    let (line, _) = registry.wait_line_starting("FAIL: ", 0);
    assert!(
        line.contains("not ready within 1.5 s: 0 of 2 nodes registered"),
        "{line}"
    );
    // No run took place: no figures of one.
    assert!(!line.contains("packets"), "{line}");

    for (flag, value) in [
        ("-t", "2.5ms"),
        ("--stall-timeout", "1m"),
        ("--warmup", "0"),
    ] {
        let output = Command::new(BIN)
            .args(["registry", "-n", "2", flag, value])
            .output()
            .unwrap();
        let error = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {error}");
        assert!(
            error.contains(&format!("not '{value}'")) && error.contains("2.5s"),
            "{flag} {value}: {error}"
        );
    }
}
