//! `tools/scale.sh --throughput` (docs/SCALE.md, "Throughput at scale"): runs by time at two
//! sizes on the same node processes, and a row per size with its transmissions per second and
//! per CPU second (the node processes' user + system time, sampled from /proc while the run
//! goes) as numbers, each size's ratio to the first size's, and a PASS verdict.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{BIN, said};

#[test]
fn scale_throughput_measures_each_size_by_time_and_per_cpu_second() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("scale-throughput-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/scale.sh"))
        .args(["--throughput", "8", "16"])
        .env("OVERLAY_BIN", BIN)
        .env("OUT", &out)
        // Eight processes of one or two nodes: the CPU sampler reads several at every sample.
        .env("PROCESSES", "8")
        .env("DURATION", "5")
        .env("WARMUP", "1")
        .env("RING", "0")
        .env_remove("WINDOW")
        .output()
        .expect("tools/scale.sh runs");
    let said = said(&output);
    assert!(output.status.success(), "{}\n{said}", output.status);
    let text = std::fs::read_to_string(out.join("throughput.csv"))
        .unwrap_or_else(|e| panic!("throughput.csv: {e}\n{said}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|&c| c == name)
            .unwrap_or_else(|| panic!("no column {name}: {text}"))
    };
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}\n{said}");
    let number = |row: &Vec<&str>, name: &str| -> f64 {
        let value: f64 = row[column(name)]
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
        assert!(value.is_finite(), "{name} is no number\n{text}\n{said}");
        value
    };
    for (row, nodes) in rows.iter().zip(["8", "16"]) {
        assert_eq!(row[column("nodes")], nodes, "{text}");
        assert_eq!(row[column("processes")], "8", "{text}");
        assert_eq!(row[column("verdict")], "PASS", "{text}\n{said}");
        assert!(number(row, "transmissions_per_s") > 0.0, "{text}");
        assert!(number(row, "transmissions_per_cpu_s") > 0.0, "{text}");
        let cores = number(row, "node_cores");
        assert!(cores > 0.0, "the node processes kept no core busy?\n{text}");
        assert!(number(row, "hops_mean") >= 1.0, "{text}");
    }
    assert_eq!(number(&rows[0], "ratio"), 1.0, "{text}");
    assert_eq!(number(&rows[0], "cpu_ratio"), 1.0, "{text}");
    let ratio = number(&rows[1], "ratio");
    let expected =
        number(&rows[1], "transmissions_per_s") / number(&rows[0], "transmissions_per_s");
    assert!((ratio - expected).abs() < 0.001, "{text}");
    // The sampler kept its pace: a sample about every 0.2 s through a run of about 5 s.
    let samples = std::fs::read_to_string(out.join("16/cpu"))
        .unwrap_or_else(|e| panic!("16/cpu: {e}"))
        .lines()
        .count();
    assert!(
        samples >= 10,
        "{samples} CPU samples in the 16-node run\n{said}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
