//! Output for programs, through the real binary: `--format json` at the console (one line of
//! JSON per run on standard output and nothing else), `--json PATH` rewritten as each console
//! run ends.

mod common;

use common::{Proc, node, registry_port_file, temp_path, wait_file};
use serde_json::Value;

/// At the console, `--format json` prints each run as one line of JSON as it ends (with its
/// number and settings), every other line on standard error; `--json PATH` is honoured there
/// too: rewritten after each run with every run so far.
#[test]
fn console_json_lines_and_result_file() {
    let json = temp_path("console.json");
    let (mut reg, port) = registry_port_file(&["--format", "json", "--json", json.arg()], true);
    let _nodes: Vec<Proc> = (0..4)
        .map(|i| node(&format!("node{i}"), port, &[], false))
        .collect();
    reg.wait_err_line("(4 nodes)");
    reg.send("setup-overlay 2");
    reg.wait_err_line("Registry now ready to initiate tasks.");
    let mut lines = Vec::new();
    for (run, packets) in [(1u64, 1000u64), (2, 500)] {
        reg.send(&format!("start {packets}"));
        let line = reg.wait_until(&format!("run {run} as JSON"), 0, |text| {
            let complete: Vec<&str> = text.lines().collect();
            (complete.len() as u64 >= run && text.ends_with('\n'))
                .then(|| complete[run as usize - 1].to_string())
        });
        let report: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one line of JSON ({e}): {line}\n{}", reg.dump()));
        assert_eq!(report["run"], run, "{report}");
        assert_eq!(report["verdict"], "PASS", "{report}");
        assert_eq!(report["packets_received"], 4 * packets, "{report}");
        assert_eq!(report["settings"]["nr"], 2, "{report}");
        assert_eq!(report["settings"]["finger_rule"], "positions", "{report}");
        lines.push(report);
        let file: Value = wait_file(&json.0, |text| {
            serde_json::from_str::<Value>(text)
                .ok()
                .filter(|file| file["runs_completed"] == run)
        });
        assert_eq!(file["runs"].as_array().unwrap().len() as u64, run, "{file}");
        assert_eq!(
            file["runs"][run as usize - 1]["packets_received"],
            4 * packets
        );
        assert_eq!(file["settings"]["id_bits"], 7, "{file}");
    }
    // Standard output holds those two lines and nothing else; the table went to stderr.
    let out = reg.out.text();
    assert_eq!(out.lines().count(), 2, "{out}");
    for (line, report) in out.lines().zip(&lines) {
        assert_eq!(&serde_json::from_str::<Value>(line).unwrap(), report);
    }
    assert!(reg.err.text().contains("Run 2 summary:"), "{}", reg.dump());
}
