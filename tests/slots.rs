//! Trace slots as wide as the registry's ID space (issue 16, docs/PROTOCOL.md "Data frame"):
//! overlays of 1-, 2- and 4-byte slots, each a real run of processes whose every trace the
//! sinks check, and the width the nodes were told.

mod common;

use common::{node, nodes, registered, registry, run_verifies};

/// An overlay of 8 nodes with IDs of `id_bits` bits: its nodes are told slots of `bytes`
/// bytes, and a run passes (every packet's trace checked at its sink as a route).
fn a_run_passes_with_slots_of(id_bits: u32, bytes: usize) {
    let bits = id_bits.to_string();
    let (mut reg, port) = registry(&["--id-bits", &bits], true);
    let mut typed = node("typed", port, &[], true);
    let others = nodes(7, port, &[]);
    let mut ids: Vec<u32> = others.iter().map(|n| registered(n).id).collect();
    ids.push(registered(&typed).id);
    assert!(
        ids.iter().all(|&id| u64::from(id) < 1 << id_bits),
        "{ids:?}"
    );
    reg.wait_line("(8 nodes)", 0);
    run_verifies(&mut reg, 8, 20_000, 3);
    let mark = typed.mark();
    typed.send("print-counters-and-diagnostics");
    let (line, _) = typed.wait_line("trace slots", mark);
    assert!(
        line.contains(&format!(" of {bytes} bytes,")),
        "{line}\n{}",
        typed.dump()
    );
    // A second run on the same overlay.
    let mark = reg.mark();
    reg.send("start 10000");
    let (verdict, _) = reg.wait_line(" packets in ", mark);
    assert!(verdict.starts_with("PASS"), "{verdict}\n{}", reg.dump());
    drop(others);
    drop(typed);
}

#[test]
fn an_id_space_of_7_bits_has_1_byte_slots() {
    a_run_passes_with_slots_of(7, 1);
}

#[test]
fn an_id_space_of_12_bits_has_2_byte_slots() {
    a_run_passes_with_slots_of(12, 2);
}

#[test]
fn an_id_space_of_20_bits_has_4_byte_slots() {
    a_run_passes_with_slots_of(20, 4);
}
