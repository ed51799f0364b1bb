//! Hints that ask the CPU to bring memory a loop will soon use into its first-level cache.
//! The receive loop of the protocol core (`node/data_plane.rs`) walks a receive buffer the
//! kernel has just filled, up to hundreds of kilobytes, more than that cache holds
//! ([`read_ahead`]); it and origination append frames to link queues whose buffers come back
//! from the driver's sends cold ([`write_ahead`]). Without the hints each line was fetched
//! when the loop reached it. They live here because they need `unsafe`, which only the
//! driver's modules may use; they read and write no memory.

use crate::limits::{READ_AHEAD_BYTES, WRITE_AHEAD_BYTES};

/// Asks the CPU to fetch the cache line that holds `bytes[READ_AHEAD_BYTES]`, if `bytes` is
/// that long. Only a hint: nothing is read or written, and nothing changes if it is ignored
/// (or on a CPU this does not know how to ask).
#[inline(always)]
pub fn read_ahead(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(byte) = bytes.get(READ_AHEAD_BYTES) {
        let line = std::ptr::from_ref(byte).cast::<i8>();
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; a prefetch never
        // faults and has no effect on memory, and `line` points into a live slice anyway.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Asks the CPU to fetch, to be written, the cache line [`WRITE_AHEAD_BYTES`] past the end of
/// `queue`'s bytes, if its buffer reaches that far: where the frames appended next will go.
/// Only a hint, as [`read_ahead`].
#[inline(always)]
#[allow(clippy::ptr_arg)] // The buffer's capacity, which a slice does not have, says how far to ask.
pub fn write_ahead(queue: &Vec<u8>) {
    #[cfg(target_arch = "x86_64")]
    if queue.capacity() - queue.len() > WRITE_AHEAD_BYTES {
        let line = queue
            .as_ptr()
            .wrapping_add(queue.len() + WRITE_AHEAD_BYTES)
            .cast::<i8>();
        // SAFETY: as in `read_ahead`: a prefetch never faults and has no effect on memory
        // (`line` points into the buffer's allocation, past its initialized bytes, which is
        // never read through it). A CPU without PREFETCHW takes it as a plain prefetch.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(line) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = queue;
}

/// Asks the CPU to fetch the cache line `value` starts in: state a loop will use for the next
/// item while it handles this one. Only a hint, as [`read_ahead`].
#[inline(always)]
pub fn fetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let line = std::ptr::from_ref(value).cast::<i8>();
        // SAFETY: as in `read_ahead`: a prefetch never faults and has no effect on memory, and
        // `line` points at a live value.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
