//! Without io_uring (blocked by a seccomp filter, as container sandboxes do), both commands
//! stop with one clear line instead of a panic.

use std::process::Command;

fn run_without_io_uring(args: &[&str]) -> std::process::Output {
    let wrapper = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/without_io_uring.py"
    );
    Command::new("python3")
        .arg(wrapper)
        .arg(env!("CARGO_BIN_EXE_overlay"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("python3 runs the seccomp wrapper")
}

#[test]
fn registry_and_node_say_io_uring_is_unavailable() {
    for args in [&["registry", "0"][..], &["node", "127.0.0.1", "9"][..]] {
        let output = run_without_io_uring(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line expected: {stderr}");
        assert!(
            lines[0].contains("io_uring is unavailable") && lines[0].contains("Linux 5.19"),
            "{args:?}: {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "{args:?}: nothing may start before the check"
        );
    }
}
