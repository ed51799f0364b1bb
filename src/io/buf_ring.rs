//! Receive buffers shared by every connection of a process: an io_uring provided buffer ring.
//!
//! A receive submitted with `BUFFER_SELECT` names no memory; when data arrives the kernel
//! takes the next buffer of the ring, writes into it and says which in the completion. So a
//! connection holds no receive buffer while it waits, and the memory for receiving is the
//! ring's, fixed at start-up: `count x buffer_bytes`, whatever the number of connections.
//! A driver with thousands of mostly idle connections (a group of nodes, the registry) uses
//! this; a node alone keeps a buffer per connection (`conn.rs`), as large receives are what
//! its throughput is made of.
//!
//! # Buffer-lifetime invariant
//!
//! A buffer is the kernel's from the moment it is in the ring (provided at start-up or given
//! back with [`BufRing::recycle`]) until a completion names it; then it is the driver's, read
//! only, until the driver recycles it, which it does exactly once per completion that named
//! it, after the machine has seen its bytes. The ring's memory and the buffers' memory are
//! allocated once and never moved or freed while the ring is registered: [`BufRing::release`]
//! unregisters the ring before it frees them, and a ring never released (the driver exits
//! with operations in flight) is leaked, never freed (`BufRing` has no `Drop`).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

/// The provided buffer ring of one io_uring.
pub(crate) struct BufRing {
    /// `count` ring entries, page-aligned as the kernel requires.
    entries: *mut BufRingEntry,
    entries_layout: Layout,
    /// `count x buffer_bytes` bytes; buffer `id` starts at `id x buffer_bytes`. Its pages are
    /// mapped as they are first written (a zeroed allocation this large is mapped lazily).
    memory: *mut u8,
    memory_layout: Layout,
    count: u16,
    buffer_bytes: usize,
    /// The buffer group ID the receives name.
    group: u16,
    /// The tail as we have published it (the kernel owns the head).
    tail: u16,
    /// Buffers in the ring (the kernel's), for the driver's decision to re-arm receives that
    /// found the ring empty.
    provided: usize,
}

impl BufRing {
    /// Registers a ring of `count` (a power of two, at most 32,768) buffers of
    /// `buffer_bytes` each with `ring` as buffer group `group`, every buffer provided.
    pub(crate) fn new(
        ring: &IoUring,
        group: u16,
        count: u16,
        buffer_bytes: usize,
    ) -> std::io::Result<BufRing> {
        assert!(count.is_power_of_two() && count <= 1 << 15);
        assert!(buffer_bytes > 0 && u32::try_from(buffer_bytes).is_ok());
        let entries_layout = Layout::array::<BufRingEntry>(usize::from(count))
            .and_then(|layout| layout.align_to(4096))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let memory_layout = Layout::from_size_align(usize::from(count) * buffer_bytes, 4096)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: both layouts have a nonzero size (count and buffer_bytes are positive).
        let entries = unsafe { alloc_zeroed(entries_layout) }.cast::<BufRingEntry>();
        // SAFETY: as above.
        let memory = unsafe { alloc_zeroed(memory_layout) };
        if entries.is_null() || memory.is_null() {
            // SAFETY: whichever was allocated is freed with its own layout, once.
            unsafe { free(entries, entries_layout, memory, memory_layout) };
            return Err(std::io::Error::from(std::io::ErrorKind::OutOfMemory));
        }
        let mut buffers = BufRing {
            entries,
            entries_layout,
            memory,
            memory_layout,
            count,
            buffer_bytes,
            group,
            tail: 0,
            provided: 0,
        };
        // SAFETY: the entries are page-aligned, zeroed (tail 0) and stay allocated, unmoved,
        // until `Drop`, which unregisters the ring first.
        let registered = unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, count, group, 0)
        };
        if let Err(error) = registered {
            // SAFETY: not registered: nothing else refers to the memory.
            unsafe { free(entries, entries_layout, memory, memory_layout) };
            return Err(error);
        }
        for id in 0..count {
            buffers.push(id);
        }
        buffers.publish();
        Ok(buffers)
    }

    pub(crate) fn group(&self) -> u16 {
        self.group
    }

    pub(crate) fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    /// Buffers the kernel can fill now.
    pub(crate) fn provided(&self) -> usize {
        self.provided
    }

    /// A completion named buffer `id`: it is the driver's until recycled.
    pub(crate) fn taken(&mut self, id: u16) {
        assert!(id < self.count, "buffer {id} is not in the ring");
        assert!(self.provided > 0, "a buffer was taken from an empty ring");
        self.provided -= 1;
    }

    /// The first `len` bytes the kernel wrote into buffer `id`.
    ///
    /// The caller holds the buffer (`taken`, not yet recycled), so the kernel does not write
    /// into it while the slice lives.
    pub(crate) fn bytes(&self, id: u16, len: usize) -> &[u8] {
        assert!(id < self.count && len <= self.buffer_bytes);
        let start = self
            .memory
            .wrapping_add(usize::from(id) * self.buffer_bytes);
        // SAFETY: buffer `id` lies inside `memory` (id < count), `len` is within it, the memory
        // is initialized (zeroed at allocation, then written by the kernel), and the kernel no
        // longer writes to it (the caller holds it, see above).
        unsafe { std::slice::from_raw_parts(start, len) }
    }

    /// Gives buffer `id` back to the kernel.
    pub(crate) fn recycle(&mut self, id: u16) {
        self.push(id);
        self.publish();
    }

    fn push(&mut self, id: u16) {
        assert!(id < self.count);
        assert!(
            self.provided < usize::from(self.count),
            "more buffers given back than taken"
        );
        let index = usize::from(self.tail & (self.count - 1));
        // SAFETY: `index` < count: the entry lies inside the ring's allocation; the kernel
        // reads entries only between its head and the published tail, and this one is past
        // the tail until `publish`.
        let entry = unsafe { &mut *self.entries.wrapping_add(index) };
        let address = self
            .memory
            .wrapping_add(usize::from(id) * self.buffer_bytes);
        entry.set_addr(address as u64);
        entry.set_len(self.buffer_bytes as u32);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
        self.provided += 1;
    }

    /// Makes the entries pushed so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: `entries` is the ring's first entry; the tail field shares its memory with
        // entry 0's reserved field, which the kernel reads as the tail, and is only ever
        // written through this atomic.
        let tail = unsafe { BufRingEntry::tail(self.entries) };
        // SAFETY: the tail is a u16 of the live, page-aligned ring memory, so aligned for an
        // AtomicU16 of the same size.
        let tail = unsafe { &*tail.cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

/// Frees the ring's allocations (either may be null).
///
/// # Safety
/// Each pointer was allocated with its layout and is not registered with a ring.
unsafe fn free(
    entries: *mut BufRingEntry,
    entries_layout: Layout,
    memory: *mut u8,
    layout: Layout,
) {
    if !entries.is_null() {
        // SAFETY: allocated with this layout (the caller's promise).
        unsafe { dealloc(entries.cast(), entries_layout) };
    }
    if !memory.is_null() {
        // SAFETY: as above.
        unsafe { dealloc(memory, layout) };
    }
}

impl BufRing {
    /// Unregisters the ring from `ring` and frees its memory; if unregistering fails the
    /// memory is leaked (the kernel may still use it).
    pub(crate) fn release(self, ring: &IoUring) {
        let this = std::mem::ManuallyDrop::new(self);
        if ring.submitter().unregister_buf_ring(this.group).is_ok() {
            // SAFETY: no longer registered; allocated with these layouts.
            unsafe {
                free(
                    this.entries,
                    this.entries_layout,
                    this.memory,
                    this.memory_layout,
                )
            };
        }
    }
}
