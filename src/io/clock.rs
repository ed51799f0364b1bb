//! The driver's clock: `CLOCK_MONOTONIC`, the same clock every process on one machine reads.

use crate::machine::Nanos;

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub fn now() -> Nanos {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable `timespec` that lives across the call, and
    // CLOCK_MONOTONIC is a clock every Linux kernel provides.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut time) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    let seconds = u64::try_from(time.tv_sec).expect("monotonic seconds are never negative");
    let nanoseconds =
        u64::try_from(time.tv_nsec).expect("monotonic nanoseconds are never negative");
    seconds * 1_000_000_000 + nanoseconds
}
