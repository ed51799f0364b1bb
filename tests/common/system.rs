//! What the operating system says about a process (/proc: resident memory, CPU time, sleeps),
//! and the open-files limit.

/// Resident memory of `pid` in KiB (VmRSS), `None` once it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user + system) of `pid` in clock ticks, `None` once it is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the command.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Times the threads of `pid` went to sleep (voluntary context switches, summed over
/// /proc/PID/task), `None` once it is gone: an idle process that nothing wakes adds none.
pub fn sleeps(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
            continue; // a thread that just ended
        };
        total += status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))?
            .trim()
            .parse::<u64>()
            .ok()?;
    }
    Some(total)
}

/// Raises the soft limit on open files to `want` (or the hard limit if lower); returns the
/// limit now in force. Children inherit it.
pub fn raise_nofile(want: u64) -> u64 {
    rlimit::increase_nofile_limit(want).expect("getrlimit/setrlimit")
}

/// The cores `tools/lib.sh` spreads a host's nodes over, as `command` counts them (`nproc` for
/// a local launch, `getconf _NPROCESSORS_ONLN` on a host reached over ssh).
pub fn cores_by(command: &[&str]) -> usize {
    let output = std::process::Command::new(command[0])
        .args(&command[1..])
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"))
}
