//! What the simulator's churn tests share (tests/sim_churn.rs, tests/sim_leaves.rs): tiny
//! links and a small window, set-up under either finger rule, and the check of a run that
//! must lose nothing.

use overlay::registry::RegistryConfig;
use overlay::routing::Fingers;
use overlay::sim::{Sim, SimConfig, Who};
use overlay::summary::RunResult;

/// Steps a stage may take before the test calls it stuck.
pub const STEPS_MAX: u64 = 20_000_000;

/// Tiny links (512 bytes) and a small window (4 KiB); a stage that waits out the stall
/// timeout (600 s) is a failure.
pub fn config(nodes: usize, seed: u64) -> SimConfig {
    let mut config = SimConfig::new(nodes, seed);
    config.registry = RegistryConfig {
        window_bytes: Some(4096),
        stall_timeout: Some(600_000_000_000),
        ..config.registry
    };
    config.capacity_bytes = Some(512);
    config
}

/// Both finger rules over a test's seeds: odd seeds Chord fingers (16-bit IDs, unhashed),
/// even seeds NR 3 by position.
pub fn fingers_by_seed(seed: u64) -> Fingers {
    if seed % 2 == 1 {
        Fingers::Chord {
            bits: 16,
            hashed: false,
        }
    } else {
        Fingers::Positions { nr: 3 }
    }
}

/// Registers every node and sets the overlay up under `fingers`.
pub fn setup(sim: &mut Sim, fingers: Fingers) {
    sim.register_all(STEPS_MAX).expect("registration");
    let command = match fingers {
        Fingers::Positions { nr } => format!("setup-overlay {nr}"),
        Fingers::Chord { bits, .. } => format!("setup-overlay chord {bits}"),
    };
    sim.command(Who::Registry, &command);
    sim.run_until(|sim| sim.is_ready(), STEPS_MAX)
        .expect("setup");
}

/// Every packet sent was received, sums match, nothing corrupted, dropped or unaccounted.
pub fn check(result: &RunResult, context: &str) {
    assert!(result.passed(), "{context}: {}", result.verdict_line());
    assert_eq!(result.corrupted, 0, "{context}");
    assert_eq!(result.dropped, 0, "{context}");
    assert_eq!(result.packets_received, result.packets_sent, "{context}");
    assert_eq!(result.packets_sent, result.packets_expected, "{context}");
    if let Some(accounting) = &result.accounting {
        assert_eq!(accounting.unaccounted, 0, "{context}: {accounting:?}");
    }
}
