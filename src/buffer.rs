//! Buffers whose memory is mapped when they are made.
//!
//! A large allocation is mapped lazily: the kernel takes one page fault per 4 KiB at first
//! use. For the buffers a link gets when it opens, first use is the first milliseconds of a
//! run: ten nodes took about 4,500 faults there and their first W1 run was 10-15% slower than
//! the next ones (docs/PERFORMANCE.md). Writing the buffers once when they are made moves
//! that cost to setup.

/// `len` bytes whose pages are mapped; their content (0xA5) means nothing. Callers that
/// want an empty buffer with this capacity `clear` it.
pub fn mapped(len: usize) -> Vec<u8> {
    // `vec![0; len]` would not do: zeroed memory comes from `calloc`, mapped at first use.
    std::hint::black_box(vec![0xA5; len])
}

/// An empty buffer with `capacity` bytes mapped (no allocation for 0).
pub fn mapped_empty(capacity: usize) -> Vec<u8> {
    if capacity == 0 {
        return Vec::new();
    }
    let mut buffer = mapped(capacity);
    buffer.clear();
    buffer
}
