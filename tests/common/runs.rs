//! Runs checked end to end: a run at the registry's console that must pass, a scripted
//! session's result file, and what a result says (mean hops).

use serde_json::Value;

use super::{Proc, TempFile, nodes, registry, temp_path, wait_file};

/// `setup-overlay NR` at the registry's console, then `start PACKETS`: the run must pass with
/// every node's packets (`nodes` x `packets`) counted.
pub fn run_verifies(reg: &mut Proc, nodes: usize, packets: u64, nr: usize) {
    let mark = reg.mark();
    reg.send(&format!("setup-overlay {nr}"));
    reg.wait_line("Registry now ready to initiate tasks.", mark);
    reg.send(&format!("start {packets}"));
    let (_, after) = reg.wait_line("summary:", mark);
    let (verdict, _) = reg.wait_line(" packets in ", after);
    assert!(verdict.starts_with("PASS"), "{verdict}\n{}", reg.dump());
    let total = thousands(nodes as u64 * packets);
    assert!(verdict.contains(&format!("{total} packets")), "{verdict}");
}

/// `n` with thousands separators, as the summary writes counts (written here again so that a
/// test does not check the product's formatting with the product's own code).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The scripted registry's JSON result, once it is complete.
pub fn read_json(path: &TempFile) -> Value {
    wait_file(&path.0, |text| serde_json::from_str::<Value>(text).ok())
}

/// A scripted registry of `count` nodes with `extra` flags and `--json`, run to its end,
/// which must be a success: the result file and the registry (for its output).
pub fn scripted_session(name: &str, count: usize, extra: &[&str]) -> (Value, Proc) {
    let json = temp_path(&format!("{name}.json"));
    let count_arg = count.to_string();
    let mut args = vec!["--nodes", count_arg.as_str(), "--json", json.arg()];
    args.extend_from_slice(extra);
    let (mut reg, port) = registry(&args, false);
    let _nodes = nodes(count, port, &[]);
    let status = reg.wait_exit();
    assert!(status.success(), "registry: {status}\n{}", reg.dump());
    (read_json(&json), reg)
}

/// Mean transmissions per packet of a run, from the sinks' counts by relays passed.
pub fn mean_hops(run: &Value) -> f64 {
    let by_relays: Vec<u64> = run["stats"]["packets_by_relays"]
        .as_array()
        .unwrap_or_else(|| panic!("no packets_by_relays in {run:#}"))
        .iter()
        .map(|count| count.as_u64().unwrap())
        .collect();
    let total: u64 = by_relays.iter().sum();
    let weighted: u64 = by_relays
        .iter()
        .enumerate()
        .map(|(relays, &count)| (relays as u64 + 1) * count)
        .sum();
    weighted as f64 / total as f64
}
