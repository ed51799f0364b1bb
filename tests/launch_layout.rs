//! How `tools/launch.sh` lays out its nodes: in a process per core at every payload, the
//! nodes of a process placed apart on the ring by the registry (docs/PERFORMANCE.md,
//! "Layout"), unless `NODES_PER_PROCESS` says otherwise; a `PAYLOAD` that is not a number is
//! refused before anything starts.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{BIN, cores_by};

/// Runs `tools/launch.sh NODES 200` with `PAYLOAD=payload` (and `NODES_PER_PROCESS=per`).
fn launch(name: &str, nodes: usize, payload: &str, per: Option<&str>) -> Output {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("launch-layout-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut command = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/launch.sh"));
    command
        .args([&nodes.to_string(), "200"])
        .env("OVERLAY_BIN", BIN)
        .env("OUT", &out)
        .env("PAYLOAD", payload)
        .env_remove("NODES_PER_PROCESS");
    if let Some(per) = per {
        command.env("NODES_PER_PROCESS", per);
    }
    command.output().expect("tools/launch.sh runs")
}

#[test]
fn nodes_run_in_a_process_per_core_at_any_payload_unless_told_otherwise() {
    // Two nodes a core: spread over the cores they are two a process.
    let cores = cores_by(&["nproc"]);
    let nodes = (2 * cores).min(64);
    let per = nodes.div_ceil(cores);
    let processes = nodes.div_ceil(per);
    for payload in ["0", "4096"] {
        let output = launch(&format!("core-{payload}"), nodes, payload, None);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{err}");
        assert!(err.contains("launch.sh: PASS"), "{err}");
        // (Only on a machine of 64 cores and more would that be a process per node.)
        assert_eq!(
            err.contains(&format!(
                "Nodes run in {processes} processes of {per} or fewer"
            )),
            per > 1,
            "{err}"
        );
    }
    // A process each when asked: the launcher names no grouping.
    let alone = launch("alone", nodes, "0", Some("1"));
    let err = String::from_utf8_lossy(&alone.stderr);
    assert!(alone.status.success(), "{err}");
    assert!(err.contains("launch.sh: PASS"), "{err}");
    assert!(!err.contains("Nodes run in"), "{err}");
}

#[test]
fn a_payload_that_is_not_a_number_is_refused_with_a_message() {
    let output = launch("nonsense", 8, "4k", None);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("PAYLOAD must be a number of bytes, not '4k'"),
        "{err}"
    );
    assert!(!err.contains("Registry on port"), "{err}");
}
