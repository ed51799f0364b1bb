//! Numbers and durations as the summary and the progress lines print them.

use crate::stats::LatencySummary;

/// `1234567` -> `1,234,567`; `-1234` -> `-1,234`.
pub fn thousands(value: i128) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `count` and `noun`, plural unless one: `1 node`, `0 relays`, `2 hops`.
pub fn counted(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Nanoseconds in the unit that suits them, as wrk prints them: `850ns`, `49.02us`,
/// `12.50ms`, `1.25s`.
pub fn duration(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.2}us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2}ms", ns / 1e6)
    } else {
        format!("{:.2}s", ns / 1e9)
    }
}

pub(super) fn latency_line(latency: &LatencySummary) -> String {
    format!(
        "p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
        duration(latency.p50),
        duration(latency.p90),
        duration(latency.p99),
        duration(latency.p999),
        duration(latency.max)
    )
}
