//! Churn under `tools/launch.sh` (issue 15: the console, scripted mode and launch.sh): while a
//! launch.sh run flows, one of its node processes leaves gracefully (SIGTERM), another crashes
//! (SIGKILL) and a node started by hand joins; launch.sh reports PASS with crashes, every
//! packet accounted for, and the registry carried out all three changes.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{BIN, Proc, poll};

/// PIDs of the node processes launch.sh started against the registry on `port`, oldest first.
fn node_pids(port: &str) -> Vec<u32> {
    let needle = format!("\0node\x00127.0.0.1\0{port}\0--core\0");
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
        })
        .collect();
    pids.sort_unstable();
    pids
}

#[test]
fn a_launch_sh_run_goes_on_through_a_leave_a_crash_and_a_join() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("launch-churn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/launch.sh");
    let settings = [
        format!("OVERLAY_BIN={BIN}"),
        format!("OUT={}", out.display()),
        "DURATION=8".to_string(),
        // A process per node: the leave and the crash are of one node each.
        "NODES_PER_PROCESS=1".to_string(),
    ];
    let mut args: Vec<&str> = settings.iter().map(String::as_str).collect();
    args.extend([script, "8", "1", "3"]);
    let mut launch = Proc::spawn_program("launch.sh", "env", &args, false);

    let line = launch.wait_err_line("Registry on port ");
    let port = line["Registry on port ".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    launch.wait_line("Run 1: 8 nodes send for 8 s", 0);
    let pids = poll(Duration::from_secs(10), || {
        let pids = node_pids(&port);
        (pids.len() == 8).then_some(pids)
    })
    .unwrap_or_else(|| {
        panic!(
            "8 node processes: {:?}\n{}",
            node_pids(&port),
            launch.dump()
        )
    });

    let mut joiner = Proc::spawn("joiner", &["node", "127.0.0.1", &port], false);
    launch.wait_line("(9 nodes)", 0);
    // The join is carried out before the leave and the crash: a join whose set-up is under
    // way when one of the newcomer's table entries crashes is let go today (the registry says
    // "could not join: could not connect to node V"; docs/CHURN.md), which is not what this
    // test is about.
    launch.wait_line(" joined: ", 0);
    for (pid, signal) in [(pids[2], "-TERM"), (pids[5], "-KILL")] {
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    let status = launch
        .wait_exit_within(Duration::from_secs(90))
        .unwrap_or_else(|| panic!("launch.sh did not end\n{}", launch.dump()));
    let text = launch.out.text();
    let err = launch.err.text();
    assert_eq!(status.code(), Some(3), "{}", launch.dump());
    assert!(
        err.contains("launch.sh: PASS with crashes"),
        "{}",
        launch.dump()
    );
    for needle in [
        " joined: ",
        " left (",
        " is out of every table: ",
        "0 unaccounted",
    ] {
        assert!(text.contains(needle), "no {needle:?}\n{}", launch.dump());
    }
    assert!(!text.contains("FAIL"), "{}", launch.dump());
    assert!(
        joiner.wait_exit_within(Duration::from_secs(30)).is_some(),
        "the joiner did not exit with the overlay\n{}",
        joiner.dump()
    );
    let _ = std::fs::remove_dir_all(&out);
}
