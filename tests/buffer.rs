//! `buffer::mapped` maps its pages when called, where a zeroed allocation would not: measured
//! by this process's resident memory (a test file of its own, so no other test allocates or
//! frees meanwhile).

const LEN: usize = 64 * 1024 * 1024;

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

#[test]
fn mapped_buffers_are_resident_when_made_and_zeroed_ones_are_not() {
    let before = resident_bytes();
    let lazy = vec![0u8; LEN];
    let after_lazy = resident_bytes();
    assert!(
        after_lazy - before < LEN / 4,
        "a zeroed allocation became resident at once ({} bytes): the comparison below means nothing here",
        after_lazy - before
    );
    let mapped = overlay::buffer::mapped_empty(LEN);
    let after_mapped = resident_bytes();
    assert!(mapped.is_empty() && mapped.capacity() >= LEN);
    assert!(
        after_mapped - after_lazy >= LEN * 9 / 10,
        "mapped_empty({LEN}) made only {} bytes resident",
        after_mapped.saturating_sub(after_lazy)
    );
    assert_eq!(overlay::buffer::mapped_empty(0).capacity(), 0);
    drop((lazy, mapped));
}
