//! The hop-count histogram summed up: mean, p99 and max hops per packet.

/// Hops (transmissions) per packet over a run, from the packets counted by relays passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct HopSpread {
    pub(super) mean: f64,
    pub(super) p99: usize,
    pub(super) max: usize,
}

impl HopSpread {
    /// `None` when no packet was counted.
    pub(super) fn of(by_relays: &[u64]) -> Option<HopSpread> {
        let total: u64 = by_relays.iter().sum();
        if total == 0 {
            return None;
        }
        let weighted: f64 = by_relays
            .iter()
            .enumerate()
            .map(|(relays, count)| (relays + 1) as f64 * *count as f64)
            .sum();
        // The smallest hop count at or below which 99% of the packets lie.
        let mut below = 0u64;
        let p99 = by_relays
            .iter()
            .position(|count| {
                below += count;
                below * 100 >= total * 99
            })
            .unwrap_or(0)
            + 1;
        let max = by_relays.iter().rposition(|count| *count > 0).unwrap_or(0) + 1;
        Some(HopSpread {
            mean: weighted / total as f64,
            p99,
            max,
        })
    }
}
