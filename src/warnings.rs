//! How often a process warns about the connections it closes: anyone may connect to a node or
//! the registry and send it something it refuses, again and again, so at most
//! [`CLOSE_WARNINGS_PER_INTERVAL_MAX`] warnings per [`CLOSE_WARNING_INTERVAL_NS`] reach the
//! log; the rest go to the debug level and are counted in the next warning shown.

use crate::limits::{CLOSE_WARNING_INTERVAL_NS, CLOSE_WARNINGS_PER_INTERVAL_MAX};
use crate::machine::Nanos;

#[derive(Debug, Default)]
pub struct WarningGate {
    /// When the current interval began.
    interval_start: Nanos,
    /// Warnings shown in it.
    shown: u32,
    /// Warnings not shown since the last one that was.
    hidden: u64,
}

impl WarningGate {
    /// `Some(hidden)`: show this warning, and say that `hidden` were not shown before it;
    /// `None`: do not show it.
    pub fn admit(&mut self, now: Nanos) -> Option<u64> {
        if now.saturating_sub(self.interval_start) >= CLOSE_WARNING_INTERVAL_NS {
            self.interval_start = now;
            self.shown = 0;
        }
        if self.shown < CLOSE_WARNINGS_PER_INTERVAL_MAX {
            self.shown += 1;
            Some(std::mem::take(&mut self.hidden))
        } else {
            self.hidden += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_so_many_per_interval_and_the_rest_counted() {
        let mut gate = WarningGate::default();
        for _ in 0..CLOSE_WARNINGS_PER_INTERVAL_MAX {
            assert_eq!(gate.admit(1), Some(0));
        }
        assert_eq!(gate.admit(2), None);
        assert_eq!(gate.admit(3), None);
        assert_eq!(gate.admit(1 + CLOSE_WARNING_INTERVAL_NS), Some(2));
    }
}
