//! How `tools/launch.sh` lays out up to 64 nodes: a process each, unless the packets carry 2 KiB
//! of payload or more (`PAYLOAD`), which run in a process per core (docs/PERFORMANCE.md,
//! "Layout by payload"); a `PAYLOAD` that is not a number is refused before anything starts.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::BIN;

/// Runs `tools/launch.sh 8 200` with `PAYLOAD=payload`.
fn launch(name: &str, payload: &str) -> Output {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("launch-layout-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/launch.sh"))
        .args(["8", "200"])
        .env("OVERLAY_BIN", BIN)
        .env("OUT", &out)
        .env("PAYLOAD", payload)
        .env_remove("NODES_PER_PROCESS")
        .output()
        .expect("tools/launch.sh runs")
}

fn cores() -> usize {
    let output = Command::new("getconf")
        .arg("_NPROCESSORS_ONLN")
        .output()
        .expect("getconf runs");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn large_payloads_run_in_a_process_per_core_and_small_ones_in_a_process_per_node() {
    let small = launch("small", "1024");
    let err = String::from_utf8_lossy(&small.stderr);
    assert!(small.status.success(), "{err}");
    assert!(err.contains("launch.sh: PASS"), "{err}");
    // A process each: the launcher names no grouping.
    assert!(!err.contains("Nodes run in"), "{err}");

    let large = launch("large", "2048");
    let err = String::from_utf8_lossy(&large.stderr);
    assert!(large.status.success(), "{err}");
    assert!(err.contains("launch.sh: PASS"), "{err}");
    let per = 8usize.div_ceil(cores());
    if per > 1 {
        let processes = 8usize.div_ceil(per);
        assert!(
            err.contains(&format!(
                "Nodes run in {processes} processes of {per} or fewer"
            )),
            "{err}"
        );
    }
}

#[test]
fn a_payload_that_is_not_a_number_is_refused_with_a_message() {
    let output = launch("nonsense", "4k");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("PAYLOAD must be a number of bytes, not '4k'"),
        "{err}"
    );
    assert!(!err.contains("Registry on port"), "{err}");
}
