//! Fixtures for tests and benches that drive one node directly, without a simulation.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::REGISTRY_ADDR;
use crate::machine::{ConnId, Effect, Machine};
use crate::node::{Node, NodeConfig};
use crate::wire::native::Native;
use crate::wire::{Codec, Control, NodeId, Targets};

/// The registry's `TaskInitiate` for run 1 (`packets` each, no extra payload, no rate) in
/// the native format: what a [`ReadyNode`]'s registry connection receives to start a run.
pub fn task_initiate(packets: u64) -> Vec<u8> {
    task_initiate_to(packets, Targets::Nodes)
}

/// [`task_initiate`] for packets to `targets`.
pub fn task_initiate_to(packets: u64, targets: Targets) -> Vec<u8> {
    let mut bytes = Vec::new();
    Native::encode_control(
        &Control::TaskInitiate {
            run: 1,
            packets,
            extra_payload_bytes: 0,
            rate_per_s: 0,
            targets,
        },
        &mut bytes,
    );
    bytes
}

/// A lone `Node<Native>` brought, through its `Machine` interface alone, to the state a run
/// finds it in: registered as `self_id`, given the manifest of the ring `ids` with `nr`
/// entries, every entry link up. For tests and benches that feed one node bytes directly.
pub struct ReadyNode {
    pub node: Node<Native>,
    /// The connection to the (absent) registry: feed it control frames.
    pub registry: ConnId,
    /// The connections to the node's table entries, in hop order.
    pub entries: Vec<ConnId>,
}

impl ReadyNode {
    /// Bytes of the trace slots of an overlay of `ids`: the fewest of 1, 2 or 4 that hold the
    /// largest.
    pub fn slot_bytes(ids: &[NodeId]) -> usize {
        let largest = ids.iter().copied().max().unwrap_or(0);
        [1, 2, 4]
            .into_iter()
            .find(|&bytes| crate::wire::fits_slot(largest, bytes))
            .expect("every ID fits 4 bytes")
    }

    /// Node `self_id` (one of `ids`) listens on 127.0.0.1:`port(self_id)`, where each entry
    /// is too; `trace_slots` and `window_bytes` are the manifest's, its trace slots as wide as
    /// the largest of `ids` needs ([`ReadyNode::slot_bytes`]).
    pub fn new(
        self_id: NodeId,
        ids: &[NodeId],
        nr: usize,
        trace_slots: u8,
        window_bytes: u64,
    ) -> ReadyNode {
        let addr = |id: NodeId| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port(id));
        let ring = crate::routing::Ring::new(ids.to_vec());
        let position = ring.position(self_id).expect("self_id is in the ring");
        let mut node = Node::<Native>::new(NodeConfig {
            listen: addr(self_id),
            registry: REGISTRY_ADDR,
            seed: 1,
            secret: None,
            link_buffer_bytes: 0,
            registry_wait: 0,
            group: None,
        });
        let mut effects = Vec::new();
        node.on_start(0);
        node.take_effects(&mut effects);
        // Only the registry connection asks for keepalive probes
        // (`limits::KEEPALIVE_CONNECTIONS_PER_NODE`).
        let Some(Effect::Connect {
            conn: registry,
            keepalive: true,
            ..
        }) = effects.first().cloned()
        else {
            panic!("a node connects to the registry first, with keepalive: {effects:?}");
        };
        node.on_connected(0, registry);
        let mut bytes = Vec::new();
        Native::encode_control(
            &Control::RegisterStatus {
                status: crate::wire::Status::Ok(self_id),
                info: String::new(),
            },
            &mut bytes,
        );
        Native::encode_control(
            &Control::Manifest(crate::wire::Manifest {
                entries: ring
                    .table(position, nr)
                    .into_iter()
                    .map(|id| crate::wire::ManifestEntry { id, addr: addr(id) })
                    .collect(),
                all_ids: ring.ids().into(),
                chord: None,
                trace_slots,
                trace_slot_bytes: ReadyNode::slot_bytes(ids) as u8,
                window_bytes,
                backups: Vec::new(),
                epoch: 0,
            }),
            &mut bytes,
        );
        assert_eq!(node.on_received(0, registry, &bytes), bytes.len());
        effects.clear();
        node.take_effects(&mut effects);
        let entries: Vec<ConnId> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Connect {
                    conn,
                    keepalive: false,
                    ..
                } => Some(*conn),
                _ => None,
            })
            .collect();
        assert_eq!(
            entries.len(),
            nr,
            "one link per entry, none with keepalive: {effects:?}"
        );
        for conn in &entries {
            node.on_connected(0, *conn);
        }
        effects.clear();
        node.take_effects(&mut effects);
        ReadyNode {
            node,
            registry,
            entries,
        }
    }
}

/// The port a [`ReadyNode`] gives node `id`.
fn port(id: NodeId) -> u16 {
    20_000 + (id % 40_000) as u16
}
