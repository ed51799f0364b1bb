//! Runs as an operator drives them, through the real binary: `stop` at the console, Ctrl-C
//! (SIGINT) in scripted mode, runs by time, `--interval` lines and a warm-up. Times are
//! asserted loosely (a loaded machine): they prove a run is bounded, not how fast it is.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::{nodes, registry, temp_path, wait_file};

/// The number in `text` after `before` (thousands separators allowed).
fn number_after(text: &str, before: &str) -> u64 {
    let at = text
        .find(before)
        .unwrap_or_else(|| panic!("no {before:?} in {text:?}"))
        + before.len();
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {before:?} in {text:?}"))
}

/// At the console: `start` with an absurd count is refused and names the bound; a long run
/// (a count that would take hours) ends at `stop` with a partial summary that says it stopped
/// and that every packet sent arrived; the overlay then runs again and passes; `stop`
/// without a run says so.
#[test]
fn stop_at_the_console_ends_a_long_run_with_a_partial_summary() {
    let (mut reg, port) = registry(&[], true);
    let _nodes = nodes(4, port, &[]);
    reg.wait_line("(4 nodes)", 0);
    // One of a thing is singular: the first node.
    reg.wait_line("(1 node)", 0);
    let mark = reg.mark();
    reg.send("setup-overlay 2");
    let (line, _) = reg.wait_line("Setting up the overlay", mark);
    // The one relay of 4 nodes with NR 2, and room for one more on a route that changes
    // during a run (TRACE_CHURN_HEADROOM).
    assert!(line.contains("trace of 2 relays,"), "{line}");
    reg.wait_line("Registry now ready to initiate tasks.", mark);

    let mark = reg.mark();
    reg.send("start 18446744073709551615");
    let (line, _) = reg.wait_line("start refused", mark);
    assert!(
        line.contains("500,000,000,000") && line.contains("start 3600s"),
        "{line}"
    );
    let mark = reg.mark();
    reg.send("stop");
    reg.wait_line("stop: no run in progress", mark);

    let mark = reg.mark();
    reg.send("start 1000000000");
    reg.wait_line("Run 1: 4 nodes send 1,000,000,000 packets each", mark);
    std::thread::sleep(Duration::from_millis(1500));
    let mark = reg.mark();
    let stopped = Instant::now();
    reg.send("stop");
    reg.wait_line("Run 1: stopping after", mark);
    let (verdict, _) = reg.wait_line_starting("STOPPED after ", mark);
    let waited = stopped.elapsed();
    assert!(
        waited < Duration::from_secs(15),
        "the stop took {waited:?}\n{}",
        reg.dump()
    );
    assert!(
        verdict.contains("packets sent of 4,000,000,000, every one received and sums match"),
        "{verdict}"
    );
    let sent = number_after(&verdict, "s: ");
    assert!(sent > 0 && sent < 4_000_000_000, "{verdict}");
    let (sum, _) = reg.wait_line_starting("Sum ", mark);
    assert_eq!(number_after(&sum, "Sum"), sent, "{sum}");

    // The overlay is whole: the next run passes.
    let mark = reg.mark();
    reg.send("start 1000");
    let (verdict, _) = reg.wait_line_starting("PASS: ", mark);
    assert!(verdict.contains("4,000 packets"), "{verdict}");
}

/// At the console: `start 1s` runs for about a second and passes; `stop` during a run by time
/// ends it early, STOPPED with its time.
#[test]
fn a_run_by_time_at_the_console() {
    let (mut reg, port) = registry(&[], true);
    let _nodes = nodes(3, port, &[]);
    reg.wait_line("(3 nodes)", 0);
    let mark = reg.mark();
    reg.send("setup-overlay 1");
    reg.wait_line("Registry now ready to initiate tasks.", mark);
    let mark = reg.mark();
    reg.send("start 1s");
    reg.wait_line("Run 1: 3 nodes send for 1 s", mark);
    let (verdict, _) = reg.wait_line_starting("PASS: ", mark);
    let seconds: f64 = verdict
        .split(" packets in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{verdict}"));
    assert!((0.9..15.0).contains(&seconds), "{verdict}");

    let mark = reg.mark();
    reg.send("start 600s");
    reg.wait_line("Run 2: 3 nodes send for 600 s", mark);
    std::thread::sleep(Duration::from_millis(500));
    reg.send("stop");
    let (verdict, _) = reg.wait_line_starting("STOPPED after ", mark);
    assert!(verdict.contains(" of 600 s: "), "{verdict}");
}

/// Ctrl-C in scripted mode: the run ends early with its report and the JSON result, exit
/// status 130; a second Ctrl-C exits at once.
#[test]
fn ctrl_c_ends_a_scripted_run_with_its_report() {
    let json = temp_path("interrupted.json");
    let (mut reg, port) = registry(
        &[
            "--nodes",
            "3",
            "--start",
            "1000000000",
            "--json",
            json.arg(),
        ],
        false,
    );
    let _nodes = nodes(3, port, &[]);
    reg.wait_line("Run 1: 3 nodes send", 0);
    std::thread::sleep(Duration::from_millis(1000));
    reg.signal(libc::SIGINT);
    let status = reg.wait_exit();
    assert_eq!(status.code(), Some(130), "{}", reg.dump());
    let out = reg.dump();
    assert!(out.contains("Interrupted: the run ends early"), "{out}");
    assert!(
        out.contains("STOPPED after ") && out.contains("every one received and sums match"),
        "{out}"
    );
    let result: serde_json::Value = wait_file(&json.0, |text| serde_json::from_str(text).ok());
    assert_eq!(result["verdict"], "STOPPED", "{result}");
    assert_eq!(result["runs"][0]["verdict"], "STOPPED", "{result}");
    assert!(result["runs"][0]["stopped_after_s"].as_f64().unwrap() > 0.5);
    let sent = result["packets_sent"].as_u64().unwrap();
    assert!(sent > 0 && sent == result["packets_received"].as_u64().unwrap());

    // Twice: out at once, without a report. A stopped node keeps the run from ending by
    // itself, so only the second Ctrl-C can end it.
    let (mut reg, port) = registry(&["--nodes", "2", "--start", "1000000000"], false);
    let nodes = nodes(2, port, &[]);
    reg.wait_line("Run 1: 2 nodes send", 0);
    nodes[1].signal(libc::SIGSTOP);
    reg.signal(libc::SIGINT);
    reg.wait_line("Interrupted: the run ends early", 0);
    reg.signal(libc::SIGINT);
    let status = reg
        .wait_exit_within(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("a second Ctrl-C did not exit\n{}", reg.dump()));
    assert_eq!(status.code(), Some(130), "{}", reg.dump());
    assert_eq!(status.signal(), None);
    let out = reg.dump();
    assert!(out.contains("Interrupted again: exiting at once"), "{out}");
    assert!(!out.contains("summary"), "{out}");
    nodes[1].signal(libc::SIGCONT);
}

/// `--duration 2`: the run lasts about that long and passes, with a line per `--interval`
/// and a warm-up left out of the figures, said in the summary and the JSON.
#[test]
fn a_scripted_run_by_time_with_interval_lines_and_a_warm_up() {
    let json = temp_path("by-time.json");
    let started = Instant::now();
    let (mut reg, port) = registry(
        &[
            "--nodes",
            "3",
            "--duration",
            "2",
            "--interval",
            "0.5",
            "--warmup",
            "0.5",
            "--json",
            json.arg(),
        ],
        false,
    );
    let _nodes = nodes(3, port, &[]);
    let status = reg.wait_exit();
    let took = started.elapsed();
    let out = reg.dump();
    assert!(status.success(), "{status}\n{out}");
    assert!(
        (Duration::from_millis(1500)..Duration::from_secs(15)).contains(&took),
        "{took:?}\n{out}"
    );
    let intervals: Vec<&str> = out.lines().filter(|l| l.starts_with("Run 1 [")).collect();
    assert!(intervals.len() >= 3, "{out}");
    assert!(intervals[0].ends_with("(warm-up)"), "{out}");
    for line in &intervals {
        assert!(line.contains(" packets/s  latency "), "{line}");
        assert!(line.contains(" of 2 s"), "{line}");
        // An interval that delivered packets has their latency, the first one included
        // (it once showed the round before's, so the first line had none).
        if number_after(line, "s]") > 0 {
            assert!(line.contains("latency p50 "), "{line}\n{out}");
        }
    }
    let (verdict, _) = reg.wait_line_starting("PASS: ", 0);
    assert!(verdict.contains("s warm-up excluded"), "{verdict}");
    let result: serde_json::Value = wait_file(&json.0, |text| serde_json::from_str(text).ok());
    let run = &result["runs"][0];
    assert_eq!(run["duration_goal_s"], 2.0, "{run}");
    assert_eq!(run["packets_per_node"], 0, "{run}");
    let (duration, measured) = (
        run["duration_s"].as_f64().unwrap(),
        run["measured_s"].as_f64().unwrap(),
    );
    assert!(measured < duration - 0.3, "{run}");
    assert!(
        run["excluded"].as_str().unwrap().contains("warm-up"),
        "{run}"
    );
}
