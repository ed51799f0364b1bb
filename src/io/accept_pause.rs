//! The accept's pause while the process is out of descriptors or kernel memory.
//!
//! An accept that fails for want of a descriptor (EMFILE, ENFILE) or of kernel memory
//! (ENOBUFS, ENOMEM) leaves the connection in the listen queue, so an accept armed again at
//! once fails again at once: a node at its limit spun a whole core and logged 1.6 million
//! failures in 5 s. The driver arms it again [`ACCEPT_RETRY_NS`] later instead, and warns at
//! most once per [`ACCEPT_WARNING_INTERVAL_NS`] with the count of failures in between; the
//! links already open keep working meanwhile.

use crate::limits::{ACCEPT_RETRY_NS, ACCEPT_WARNING_INTERVAL_NS};
use crate::machine::{LinkError, Nanos};

/// True if an accept that failed with `error` would fail again at once while the shortage
/// lasts (other failures, such as a connection aborted in the queue, take it off the queue).
pub(crate) fn is_shortage(error: LinkError) -> bool {
    matches!(
        error,
        LinkError::TooManyFiles
            | LinkError::SystemTooManyFiles
            | LinkError::NoBuffers
            | LinkError::OutOfMemory
    )
}

/// When the paused accept is armed again, and what has not been warned about yet.
#[derive(Debug, Default)]
pub(crate) struct AcceptPause {
    /// When the accept is to be armed again; `None` while it is not paused.
    resume_at: Option<Nanos>,
    /// Failures since the last warning.
    unreported: u64,
    /// No warning before this time.
    quiet_until: Nanos,
}

impl AcceptPause {
    /// Records a shortage at `now` (the accept is paused until [`ACCEPT_RETRY_NS`] later);
    /// returns the failures to warn about if a warning is due (this one included).
    pub(crate) fn failed(&mut self, now: Nanos) -> Option<u64> {
        self.resume_at = Some(now.saturating_add(ACCEPT_RETRY_NS));
        self.unreported += 1;
        if now < self.quiet_until {
            return None;
        }
        self.quiet_until = now.saturating_add(ACCEPT_WARNING_INTERVAL_NS);
        Some(std::mem::take(&mut self.unreported))
    }

    /// When the loop must wake to arm the accept again, if it is paused.
    pub(crate) fn resume_at(&self) -> Option<Nanos> {
        self.resume_at
    }

    /// True, once, when the paused accept is due to be armed again at `now`.
    pub(crate) fn take_due(&mut self, now: Nanos) -> bool {
        let due = self.resume_at.is_some_and(|at| at <= now);
        if due {
            self.resume_at = None;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortage_pauses_the_accept_and_warns_once_per_interval() {
        let mut pause = AcceptPause::default();
        let start = 1_000;
        assert_eq!(
            pause.failed(start),
            Some(1),
            "the first failure is reported"
        );
        assert!(!pause.take_due(start + ACCEPT_RETRY_NS - 1));
        assert!(pause.take_due(start + ACCEPT_RETRY_NS));
        assert!(!pause.take_due(start + ACCEPT_RETRY_NS), "due once");
        // A failure every retry for one interval: no warning until it has passed, then one
        // with every failure since the first.
        let mut now = start;
        let mut warnings = Vec::new();
        while now < start + ACCEPT_WARNING_INTERVAL_NS {
            now += ACCEPT_RETRY_NS;
            warnings.extend(pause.failed(now));
        }
        let failures = ACCEPT_WARNING_INTERVAL_NS / ACCEPT_RETRY_NS;
        assert_eq!(warnings, vec![failures]);
        assert_eq!(pause.resume_at(), Some(now + ACCEPT_RETRY_NS));
    }

    #[test]
    fn only_shortages_pause() {
        assert!(is_shortage(LinkError::TooManyFiles));
        assert!(is_shortage(LinkError::SystemTooManyFiles));
        assert!(is_shortage(LinkError::NoBuffers));
        assert!(is_shortage(LinkError::OutOfMemory));
        assert!(!is_shortage(LinkError::Aborted));
    }
}
