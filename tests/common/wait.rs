//! Waiting for a condition to come true, bounded: the deadline every wait shares, polling a
//! check, polling a file.

use std::time::{Duration, Instant};

/// How long any condition may take to come true (a busy 2-core machine runs tests in parallel).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` every 20 ms until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `path` holds text that `check` accepts.
pub fn wait_file<T>(path: &std::path::Path, mut check: impl FnMut(&str) -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(found) = check(&text)
        {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held what was expected",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
