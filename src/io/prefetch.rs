//! Reading ahead: a hint that asks the CPU to bring bytes a loop will read soon into its
//! first-level cache. The receive loop of the protocol core (`node/data_plane.rs`) walks a
//! receive buffer the kernel has just filled, up to hundreds of kilobytes, more than that
//! cache holds, so its frames would otherwise be fetched from the next level one line at a
//! time. The hint lives here because it needs `unsafe`, which only the driver's modules may
//! use; it reads and writes no memory.

use crate::limits::READ_AHEAD_BYTES;

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
