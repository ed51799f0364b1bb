//! How `tools/launch.sh` lays out up to 64 nodes: a process each, unless the packets carry 2 KiB
//! of payload or more (`PAYLOAD`), which run in a process per core (docs/PERFORMANCE.md,
//! "Layout by payload"); a `PAYLOAD` that is not a number is refused before anything starts.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{BIN, cores_by};

/// Runs `tools/launch.sh NODES 200` with `PAYLOAD=payload`.
fn launch(name: &str, nodes: usize, payload: &str) -> Output {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("launch-layout-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/launch.sh"))
        .args([&nodes.to_string(), "200"])
        .env("OVERLAY_BIN", BIN)
        .env("OUT", &out)
        .env("PAYLOAD", payload)
        .env_remove("NODES_PER_PROCESS")
        .output()
        .expect("tools/launch.sh runs")
}

#[test]
fn large_payloads_run_in_a_process_per_core_and_small_ones_in_a_process_per_node() {
    // Two nodes a core: spread over the cores they are two a process.
    let cores = cores_by(&["nproc"]);
    let nodes = (2 * cores).min(64);
    let small = launch("small", nodes, "1024");
    let err = String::from_utf8_lossy(&small.stderr);
    assert!(small.status.success(), "{err}");
    assert!(err.contains("launch.sh: PASS"), "{err}");
    // A process each: the launcher names no grouping.
    assert!(!err.contains("Nodes run in"), "{err}");

    let large = launch("large", nodes, "2048");
    let err = String::from_utf8_lossy(&large.stderr);
    assert!(large.status.success(), "{err}");
    assert!(err.contains("launch.sh: PASS"), "{err}");
    let per = nodes.div_ceil(cores);
    let processes = nodes.div_ceil(per);
    // (Only on a machine of 64 cores and more would that be a process per node again.)
    assert_eq!(
        err.contains(&format!(
            "Nodes run in {processes} processes of {per} or fewer"
        )),
        per > 1,
        "{err}"
    );
}

#[test]
fn a_payload_that_is_not_a_number_is_refused_with_a_message() {
    let output = launch("nonsense", 8, "4k");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("PAYLOAD must be a number of bytes, not '4k'"),
        "{err}"
    );
    assert!(!err.contains("Registry on port"), "{err}");
}
