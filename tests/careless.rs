//! A careless operator: flags that make no sense, files that cannot be written, secret files
//! that are unsafe or absurd, and a standard output nobody reads. Each mistake is refused at
//! start with a line that names it (before the registry listens, so nobody registers for
//! nothing), and no write to a closed output panics a process. docs/RELIABILITY.md.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, temp_path};

/// Runs `overlay ARGS` with nothing on standard input and returns (exit success, standard
/// output, standard error, how long it took).
fn run(args: &[&str]) -> (bool, String, String, Duration) {
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run overlay");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

/// `args` are refused: non-zero exit, `needle` on standard error, nothing listened.
fn refused(args: &[&str], needle: &str) {
    let (ok, out, err, took) = run(args);
    assert!(!ok, "{args:?} was accepted\n{out}\n{err}");
    assert!(err.contains(needle), "{args:?}: no {needle:?} in\n{err}");
    assert!(
        !out.contains("listening"),
        "{args:?} listened before refusing\n{out}"
    );
    // Refusals come from checks, not timeouts: well under the shortest timeout anyone set.
    assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
}

#[test]
fn nonsense_flags_are_refused_before_anything_listens() {
    let script = ["registry", "--start", "10", "--nodes"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut args = script.to_vec();
        args.extend_from_slice(extra);
        args
    };
    refused(&with(&["0"]), "at least 2");
    refused(&with(&["1"]), "at least 2");
    refused(&with(&["10", "--nr", "0"]), "between 1 and");
    refused(&with(&["10", "--nr", "5"]), "use at most 4");
    refused(&with(&["200", "--id-bits", "7"]), "use --id-bits 8 or more");
    refused(&with(&["300", "--nr", "3"]), "use NR 4 or more");
    refused(&with(&["10", "--runs", "0"]), "--runs");
    refused(&["registry", "--window-bytes", "0"], "--window-bytes");
    refused(&["registry", "--window-bytes", "1"], "--window-bytes");
    refused(&["registry", "--stall-timeout", "0"], "--stall-timeout");
    refused(&["registry", "--ready-timeout", "0"], "--ready-timeout");
    refused(&["registry", "--payload", "40000"], "--payload");
    // A result that could not be written would be lost after the run: refused at start.
    refused(
        &with(&["4", "--nr", "2", "--json", "/no/such/dir/result.json"]),
        "cannot write /no/such/dir/result.json",
    );
    refused(
        &["registry", "--csv", "/no/such/dir/progress.csv"],
        "cannot write /no/such/dir/progress.csv",
    );
    refused(
        &[
            "node",
            "127.0.0.1",
            "9",
            "--count",
            "4",
            "--trunks",
            "--no-trunks",
        ],
        "'--trunks' cannot be used with '--no-trunks'",
    );
}

fn secret_file(name: &str, contents: &[u8], mode: u32) -> common::TempFile {
    let file = temp_path(name);
    std::fs::write(&file.0, contents).unwrap();
    std::fs::set_permissions(&file.0, std::fs::Permissions::from_mode(mode)).unwrap();
    file
}

#[test]
fn unsafe_or_absurd_secret_files_are_refused_before_anything_listens() {
    let open = secret_file("secret-open", b"a shared secret of enough bytes\n", 0o644);
    let spaces = secret_file("secret-spaces", b"                        \n", 0o600);
    let long = secret_file("secret-long", &[b'x'; 10_000], 0o600);
    for role in [&["registry"][..], &["node", "127.0.0.1", "9"][..]] {
        let with = |path: &str| -> Vec<String> {
            let mut args: Vec<String> = role.iter().map(|s| s.to_string()).collect();
            args.extend(["--secret-file".to_string(), path.to_string()]);
            args
        };
        let check = |path: &str, needle: &str| {
            let args = with(path);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            refused(&args, needle);
        };
        check(open.arg(), "chmod 600");
        check(spaces.arg(), "only white space");
        check(long.arg(), "longer than");
        // A device that never ends is refused without reading it.
        check("/dev/zero", "not a regular file");
        check("/no/such/secret", "cannot read /no/such/secret");
    }
}

/// A node whose standard output was closed by its reader (`overlay node ... | head -1`) keeps
/// running and exits without a panic when it prints.
#[test]
fn a_closed_standard_output_panics_nothing() {
    let (reg, port) = common::registry(&[], true);
    let port = port.to_string();
    let mut child = Command::new(BIN)
        .args(["node", "127.0.0.1", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a node");
    // Read the first line, then close the pipe: every later print hits a broken pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    reg.wait_line("Registered node", 0);
    // Prints on demand, then exits (printing again on the way out).
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(
        &mut stdin,
        b"print-counters-and-diagnostics\nexit-overlay\n",
    )
    .unwrap();
    let status = common::poll(Duration::from_secs(30), || child.try_wait().ok().flatten())
        .expect("the node exits");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "{status}\n{err}");
    drop(reg);
}
