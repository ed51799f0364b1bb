//! How many DATA bytes a trunk may have outstanding (sent, not yet credited back by its peer).
//!
//! A trunk moves at most its credit per round trip of a credit, and that round trip crosses
//! both processes' loops, whose work is per frame: a credit of few large frames comes back
//! sooner than the receiving process has other work, and both processes wait (W3's 4 KiB
//! frames in two processes with 256 KiB: a quarter of each loop's time in its poll). A credit
//! of many small frames is no better for being larger, and costs the caches what the kernels'
//! buffers hold (W2 in two processes 5-12% slower with 1 MiB). So the credit is counted in
//! frames of the size the trunk carries, within bytes: [`TRUNK_CREDIT_FRAMES`] frames, at
//! least [`TRUNK_CREDIT_BYTES`] and at most [`TRUNK_CREDIT_BYTES_MAX`] (docs/PERFORMANCE.md,
//! "Trunks' credit"). Where links time out on a closed window the credit is fixed
//! ([`TRUNK_CREDIT_BYTES_USER_TIMEOUT`]): that rule is about bytes.
//!
//! [`TRUNK_CREDIT_FRAMES`]: crate::limits::TRUNK_CREDIT_FRAMES
//! [`TRUNK_CREDIT_BYTES`]: crate::limits::TRUNK_CREDIT_BYTES
//! [`TRUNK_CREDIT_BYTES_MAX`]: crate::limits::TRUNK_CREDIT_BYTES_MAX
//! [`TRUNK_CREDIT_BYTES_USER_TIMEOUT`]: crate::limits::TRUNK_CREDIT_BYTES_USER_TIMEOUT

use crate::limits::{
    FRAME_BYTES_MAX, TRUNK_CREDIT_BYTES, TRUNK_CREDIT_BYTES_MAX, TRUNK_CREDIT_FRAMES,
};

/// Weight of the newest sample in the mean frame length: 1 / 2^`MEAN_SHIFT`.
const MEAN_SHIFT: u32 = 4;

/// A mux's credit per trunk, and the frame length it is counted in.
#[derive(Debug, Clone)]
pub struct TrunkCredit {
    least: usize,
    most: usize,
    /// The mean length of the frames sampled, times 2^`MEAN_SHIFT`.
    mean_scaled: usize,
}

impl TrunkCredit {
    /// Counted in frames, within [`TRUNK_CREDIT_BYTES`]..=[`TRUNK_CREDIT_BYTES_MAX`]: a kernel
    /// whose links outlast a closed window (`io::links_outlast_closed_windows`).
    pub fn by_frames() -> TrunkCredit {
        TrunkCredit::within(TRUNK_CREDIT_BYTES, TRUNK_CREDIT_BYTES_MAX)
    }

    /// Always `bytes`, whatever the frames.
    pub fn fixed(bytes: usize) -> TrunkCredit {
        TrunkCredit::within(bytes, bytes)
    }

    fn within(least: usize, most: usize) -> TrunkCredit {
        assert!(0 < least && least <= most);
        TrunkCredit {
            least,
            most,
            mean_scaled: 0,
        }
    }

    /// Bytes a trunk may have outstanding now.
    pub fn bytes(&self) -> usize {
        ((self.mean_scaled >> MEAN_SHIFT) * TRUNK_CREDIT_FRAMES).clamp(self.least, self.most)
    }

    /// A frame of `len` bytes about to go on a trunk (a sample: the first of each stream's
    /// take, which the take reads anyway).
    pub fn sample(&mut self, len: usize) {
        let len = len.min(FRAME_BYTES_MAX);
        self.mean_scaled = self.mean_scaled - (self.mean_scaled >> MEAN_SHIFT) + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::TRUNK_CREDIT_BYTES_USER_TIMEOUT;

    #[test]
    fn small_frames_keep_the_least_credit_and_large_ones_raise_it_to_the_most() {
        let mut credit = TrunkCredit::by_frames();
        assert_eq!(credit.bytes(), TRUNK_CREDIT_BYTES);
        for _ in 0..1_000 {
            credit.sample(34);
        }
        assert_eq!(credit.bytes(), TRUNK_CREDIT_BYTES);
        // 4 KiB frames with an ack of 32 bytes among every eight.
        for i in 0..1_000 {
            credit.sample(if i % 9 == 8 { 32 } else { 4_154 });
        }
        let raised = credit.bytes();
        assert!(raised > 2 * TRUNK_CREDIT_BYTES, "{raised}");
        assert!(raised <= TRUNK_CREDIT_BYTES_MAX);
        for _ in 0..1_000 {
            credit.sample(FRAME_BYTES_MAX * 4);
        }
        assert_eq!(credit.bytes(), TRUNK_CREDIT_BYTES_MAX);
        // Back to small frames: back to the least within a few dozen samples.
        for _ in 0..200 {
            credit.sample(34);
        }
        assert_eq!(credit.bytes(), TRUNK_CREDIT_BYTES);
    }

    #[test]
    fn a_fixed_credit_ignores_the_frames() {
        let mut credit = TrunkCredit::fixed(TRUNK_CREDIT_BYTES_USER_TIMEOUT);
        for _ in 0..1_000 {
            credit.sample(FRAME_BYTES_MAX);
        }
        assert_eq!(credit.bytes(), TRUNK_CREDIT_BYTES_USER_TIMEOUT);
    }
}
