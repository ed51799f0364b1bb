//! Hints that ask the CPU to bring memory a loop will soon use into its first-level cache.
//! The receive loop of the protocol core (`node/data_plane.rs`) walks a receive buffer the
//! kernel has just filled, up to hundreds of kilobytes, more than that cache holds
//! ([`read_ahead`]); it and origination append frames to link queues whose buffers come back
//! from the driver's sends cold ([`write_ahead`]), and in a large overlay they ask for the
//! next item's per-node counts ([`fetch`]). Without the hints each line was fetched when the
//! loop reached it. They live here because they need `unsafe`, which only the driver's
//! modules may use; they read and write no memory.

use crate::limits::{READ_AHEAD_BYTES, WRITE_AHEAD_BYTES};

/// Asks the CPU to fetch the cache line that holds `bytes[READ_AHEAD_BYTES]`, if `bytes` is
/// that long.
#[inline(always)]
pub fn read_ahead(bytes: &[u8]) {
    if let Some(byte) = bytes.get(READ_AHEAD_BYTES) {
        fetch(byte);
    }
}

/// Asks the CPU to fetch, to be written, the cache line [`WRITE_AHEAD_BYTES`] past the end of
/// `queue`'s bytes, if its buffer reaches that far: where the frames appended next will go.
#[inline(always)]
#[allow(clippy::ptr_arg)] // The buffer's capacity, which a slice does not have, says how far to ask.
pub fn write_ahead(queue: &Vec<u8>) {
    if queue.capacity() - queue.len() > WRITE_AHEAD_BYTES {
        // Within the buffer's allocation, past its initialized bytes: never read through.
        let line = queue.as_ptr().wrapping_add(queue.len() + WRITE_AHEAD_BYTES);
        hint::<FOR_WRITING>(line);
    }
}

/// Asks the CPU to fetch the cache line `value` starts in: state a loop will use for the next
/// item while it handles this one.
#[inline(always)]
pub fn fetch<T>(value: &T) {
    hint::<FOR_READING>(std::ptr::from_ref(value).cast());
}

#[cfg(target_arch = "x86_64")]
const FOR_READING: i32 = std::arch::x86_64::_MM_HINT_T0;
#[cfg(target_arch = "x86_64")]
const FOR_WRITING: i32 = std::arch::x86_64::_MM_HINT_ET0;
#[cfg(not(target_arch = "x86_64"))]
const FOR_READING: i32 = 0;
#[cfg(not(target_arch = "x86_64"))]
const FOR_WRITING: i32 = 0;

/// The hint itself: nothing is read or written, and nothing changes if the CPU ignores it (a
/// CPU without PREFETCHW takes `FOR_WRITING` as a plain prefetch; off x86_64 it is no hint).
#[inline(always)]
fn hint<const KIND: i32>(line: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; a prefetch never faults,
    // whatever the address, and has no effect on memory.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<KIND>(line.cast::<i8>())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = line;
}
