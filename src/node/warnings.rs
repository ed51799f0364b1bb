//! How often a node warns about the connections it closes: anyone may connect to a node and
//! send it something it refuses, again and again, so at most
//! [`NODE_WARNINGS_PER_INTERVAL_MAX`] warnings per [`NODE_WARNING_INTERVAL_NS`] reach the log;
//! the rest go to the debug level and are counted in the next warning shown.

use crate::limits::{NODE_WARNING_INTERVAL_NS, NODE_WARNINGS_PER_INTERVAL_MAX};
use crate::machine::Nanos;

#[derive(Debug, Default)]
pub(super) struct WarningGate {
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
    pub(super) fn admit(&mut self, now: Nanos) -> Option<u64> {
        if now.saturating_sub(self.interval_start) >= NODE_WARNING_INTERVAL_NS {
            self.interval_start = now;
            self.shown = 0;
        }
        if self.shown < NODE_WARNINGS_PER_INTERVAL_MAX {
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
        for _ in 0..NODE_WARNINGS_PER_INTERVAL_MAX {
            assert_eq!(gate.admit(1), Some(0));
        }
        assert_eq!(gate.admit(2), None);
        assert_eq!(gate.admit(3), None);
        assert_eq!(gate.admit(1 + NODE_WARNING_INTERVAL_NS), Some(2));
    }
}
