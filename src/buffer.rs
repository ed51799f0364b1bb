//! Buffers whose memory is mapped when they are made.
//!
//! A large allocation is mapped lazily: the kernel takes one page fault per 4 KiB at first
//! use. For the buffers a link gets when it opens, first use is the first milliseconds of a
//! run, where ten nodes' faults cost about 8% of W1 (docs/PERFORMANCE.md). Writing them once
//! when they are made moves that cost to setup.

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

#[cfg(test)]
mod tests {
    #[test]
    fn mapped_buffers_have_the_length_or_capacity_asked_for() {
        let buffer = super::mapped(300_000);
        assert_eq!(buffer.len(), 300_000);
        let empty = super::mapped_empty(300_000);
        assert!(empty.is_empty() && empty.capacity() >= 300_000);
        assert_eq!(super::mapped_empty(0).capacity(), 0);
    }
}
