//! How often a process warns about something anyone can make happen again and again (a
//! connection it closes, a stranger pushed out, an accept over the connection limit): anyone
//! may connect to a node or the registry and be refused as often as they like, and the log
//! must not grow with them. A [`WarningLimit`] lets so many warnings through per interval; the
//! rest go to the debug level (or nowhere) and are counted in the next warning shown. No
//! clock: time arrives as an argument.

use crate::limits::{
    CLOSE_WARNING_INTERVAL_NS, CLOSE_WARNINGS_PER_INTERVAL_MAX, STRANGER_WARNING_INTERVAL_NS,
};
use crate::machine::Nanos;

/// At most `per_interval` warnings of one kind per `interval`; an interval starts with the
/// first warning after the previous one ended.
#[derive(Debug)]
pub struct WarningLimit {
    per_interval: u32,
    interval: Nanos,
    /// When the current interval began (`None`: no warning yet).
    since: Option<Nanos>,
    /// Warnings shown in it.
    shown: u32,
    /// Warnings not shown since the last one that was.
    held: u64,
}

impl WarningLimit {
    pub const fn new(per_interval: u32, interval: Nanos) -> WarningLimit {
        WarningLimit {
            per_interval,
            interval,
            since: None,
            shown: 0,
            held: 0,
        }
    }

    /// Connections closed for something the peer did: [`CLOSE_WARNINGS_PER_INTERVAL_MAX`]
    /// per [`CLOSE_WARNING_INTERVAL_NS`].
    pub const fn for_closed_connections() -> WarningLimit {
        WarningLimit::new(CLOSE_WARNINGS_PER_INTERVAL_MAX, CLOSE_WARNING_INTERVAL_NS)
    }

    /// Accepted connections that never became links or nodes (pushed out, timed out, over the
    /// connection limit): one per [`STRANGER_WARNING_INTERVAL_NS`].
    pub const fn for_strangers() -> WarningLimit {
        WarningLimit::new(1, STRANGER_WARNING_INTERVAL_NS)
    }

    /// A warning at `now`: `Some(held)` to show it, and say that `held` were not shown before
    /// it; `None` not to show it (it is counted).
    pub fn admit(&mut self, now: Nanos) -> Option<u64> {
        if self
            .since
            .is_none_or(|since| now.saturating_sub(since) >= self.interval)
        {
            self.since = Some(now);
            self.shown = 0;
        }
        if self.shown < self.per_interval {
            self.shown += 1;
            Some(std::mem::take(&mut self.held))
        } else {
            self.held += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_so_many_per_interval_and_the_rest_counted() {
        let mut limit = WarningLimit::for_closed_connections();
        for _ in 0..CLOSE_WARNINGS_PER_INTERVAL_MAX {
            assert_eq!(limit.admit(1), Some(0));
        }
        assert_eq!(limit.admit(2), None);
        assert_eq!(limit.admit(3), None);
        assert_eq!(limit.admit(1 + CLOSE_WARNING_INTERVAL_NS), Some(2));
    }

    #[test]
    fn one_per_interval_counts_the_rest() {
        let mut limit = WarningLimit::new(1, 10);
        assert_eq!(limit.admit(0), Some(0));
        assert_eq!(limit.admit(3), None);
        assert_eq!(limit.admit(9), None);
        assert_eq!(limit.admit(10), Some(2));
        assert_eq!(limit.admit(25), Some(0));
    }
}
