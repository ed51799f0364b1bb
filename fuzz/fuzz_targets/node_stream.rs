//! A messaging node (`Node<Native>`) fed arbitrary byte streams on its connections (the
//! registry's, its table entries', inbound links'), console lines, closes and ticks. The
//! first input byte picks how far the node is brought first (fresh, registered, overlay set
//! up, run in progress), so the fuzzer starts from every phase. Nothing may panic, and every
//! byte the node sends must be frames its peers accept.
#![no_main]

#[path = "harness.rs"]
mod harness;

use std::net::SocketAddr;

use harness::Driver;
use libfuzzer_sys::fuzz_target;
use overlay::node::{Node, NodeConfig};
use overlay::routing::longest_path_relays;
use overlay::wire::native::Native;
use overlay::wire::{Codec, Control, Manifest, ManifestEntry, Status};

const SELF_ID: u32 = 20;
const RING: [u32; 6] = [5, 20, 40, 60, 90, 127];
const NR: usize = 2;

fn control(message: &Control) -> Vec<u8> {
    let mut out = Vec::new();
    Native::encode_control(message, &mut out);
    out
}

fn node_addr(id: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + id as u16))
}

fuzz_target!(|data: &[u8]| {
    let Some((&phase, script)) = data.split_first() else {
        return;
    };
    let mut driver = Driver::new(Node::<Native>::new(NodeConfig {
        listen: node_addr(SELF_ID),
        registry: "127.0.0.1:9000".parse().unwrap(),
        seed: 1,
        secret: None,
        link_buffer_bytes: 0,
        registry_wait: 0,
    }));
    let registry = driver.conns[0];
    if phase & 3 >= 1 {
        driver.feed(
            registry,
            &control(&Control::RegisterStatus {
                status: Status::Ok(SELF_ID),
                info: "ok".into(),
            }),
        );
    }
    if phase & 3 >= 2 {
        let position = RING.iter().position(|&id| id == SELF_ID).unwrap();
        let entries = (0..NR)
            .map(|i| {
                let id = RING[(position + (1 << i)) % RING.len()];
                ManifestEntry {
                    id,
                    addr: node_addr(id),
                }
            })
            .collect();
        let manifest = Control::Manifest(Manifest {
            entries,
            all_ids: RING.as_slice().into(),
            chord: None,
            trace_slots: longest_path_relays(RING.len(), NR) as u8,
            // IDs up to 127.
            trace_slot_bytes: 1,
            window_bytes: u64::from(phase >> 2) * 1024,
            backups: Vec::new(),
            epoch: 0,
        });
        driver.feed(registry, &control(&manifest));
        // Two peers link to us, as the nodes whose tables hold us would.
        driver.accept(node_addr(5));
        driver.accept(node_addr(127));
    }
    if phase & 3 == 3 {
        driver.feed(
            registry,
            &control(&Control::TaskInitiate {
                run: 1,
                packets: 100,
                extra_payload_bytes: 8,
                rate_per_s: 0,
                targets: overlay::wire::Targets::Nodes,
            }),
        );
        driver.tick(1, 4);
    }
    let mut peer = 1u8;
    harness::play(&mut driver, script, |driver, _| {
        peer = peer.wrapping_add(1);
        driver.accept(SocketAddr::from(([127, 0, 0, peer], 30_000)));
    });
});
