//! Micro-benchmarks of the data plane's user-space work: CRC per payload size, building a
//! frame, the relay path (peek + copy + trace patch), the sink's checks, the next-hop lookup,
//! a node's whole receive loop relaying or delivering a 256 KiB batch of frames, and one
//! origination tick (4,096 packets).
//!
//! `cargo bench --bench dataplane`

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use overlay::limits::ORIGINATE_BATCH_FRAMES;
use overlay::machine::{ConnId, Machine};
use overlay::node::Node;
use overlay::routing::{Ring, Router, longest_path_relays};
use overlay::sim::{ReadyNode, task_initiate};
use overlay::wire::native::{Native, data_frame_bytes};
use overlay::wire::{Codec, DataShape, NodeId, Peek};

/// 64 IDs spread over 0..128, the W2 overlay's shape (NR 6, 1-byte trace slots).
fn ids() -> Vec<NodeId> {
    (0..64).map(|i| i * 2).collect()
}
const NR: usize = 6;

fn shape() -> DataShape {
    DataShape {
        trace_slots: longest_path_relays(64, NR),
        slot_bytes: 1,
        extra_payload_bytes: 0,
        run_tag: 0,
    }
}

fn crc(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc32");
    for size in [4usize, 64, 1024, 4096, 32 * 1024] {
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{size} bytes"), |b| {
            b.iter(|| crc32fast::hash(black_box(&data)))
        });
    }
    // What the node uses: a 4-byte payload through the tables, and origination's CRC from
    // the value whatever the payload's length (`PayloadCrc`).
    group.bench_function("4 bytes, native::crc32", |b| {
        b.iter(|| overlay::wire::native::crc32(black_box(&[1, 2, 3, 4])))
    });
    let payload_crc = overlay::wire::PayloadCrc::new(&[7; 4100]);
    group.bench_function("4100-byte payload from its value, PayloadCrc::of", |b| {
        b.iter(|| payload_crc.of(black_box([1, 2, 3, 4])))
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    let shape = shape();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(1 << 20);
    group.bench_function("append_data (build + CRC)", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 256 {
                out.clear();
            }
            Native::append_data(&mut out, 2, 40, shape, 7, black_box(&[1, 2, 3, 4]))
        })
    });
    let mut frame = Vec::new();
    Native::append_data(&mut frame, 2, 40, shape, 7, &[1, 2, 3, 4]);
    out.clear();
    group.bench_function("peek + append_relayed", |b| {
        b.iter(|| {
            if out.len() > (1 << 20) - 256 {
                out.clear();
            }
            let Ok(Peek::Data(data)) = Native::peek(black_box(&frame)) else {
                unreachable!("a data frame");
            };
            Native::append_relayed(&data, 9, &mut out);
        })
    });
    group.bench_function("peek + check_delivered", |b| {
        b.iter(|| {
            let Ok(Peek::Data(data)) = Native::peek(black_box(&frame)) else {
                unreachable!("a data frame");
            };
            Native::check_delivered(&data, shape).unwrap()
        })
    });
    let router = Router::new(Ring::new(ids()), NR, 0).unwrap();
    let sinks: Vec<NodeId> = ids().into_iter().skip(1).collect();
    let mut next = 0;
    group.bench_function("Router::next_hop", |b| {
        b.iter(|| {
            next = (next + 1) % sinks.len();
            router.next_hop(black_box(sinks[next]))
        })
    });
    group.finish();
}

/// A node at position 0 of the 64-node ring, set up through its state machine, with one
/// inbound link: frames fed to it exercise the real receive loop.
struct Bench {
    node: Node<Native>,
    registry: ConnId,
    inbound: ConnId,
    entries: Vec<ConnId>,
    spare: Vec<u8>,
}

fn set_up() -> Bench {
    let ready = ReadyNode::new(ids()[0], &ids(), NR, shape().trace_slots as u8, 0);
    let mut node = ready.node;
    let inbound = ConnId::inbound(1);
    node.on_accepted(
        0,
        inbound,
        SocketAddr::from(([127, 0, 0, 1], 30000)),
        SocketAddr::from(([127, 0, 0, 1], 30001)),
    );
    let mut effects = Vec::new();
    node.take_effects(&mut effects);
    Bench {
        node,
        registry: ready.registry,
        inbound,
        entries: ready.entries,
        spare: Vec::new(),
    }
}

/// When the batches' frames were sent (CLOCK_MONOTONIC nanoseconds), and when they arrive: a
/// sink records a latency per delivery, as in a run.
const SENT_NS: u64 = 1_000_000_000;
const RECEIVED_NS: u64 = SENT_NS + 20_000;

impl Bench {
    /// Feeds one batch and empties what the node queued, as the driver would.
    fn feed(&mut self, batch: &[u8]) -> usize {
        let consumed = self.node.on_received(RECEIVED_NS, self.inbound, batch);
        self.drain();
        consumed
    }

    /// One origination tick, then empties what the node queued.
    fn tick(&mut self) {
        self.node.on_tick(RECEIVED_NS);
        self.drain();
    }

    fn drain(&mut self) {
        for conn in &self.entries {
            self.node.swap_outgoing(*conn, &mut self.spare);
            self.spare.clear();
        }
        let mut effects = Vec::new();
        self.node.take_effects(&mut effects);
    }
}

/// 256 KiB of frames from `source` to the sinks `sinks` cycles through.
fn batch(source: NodeId, sinks: &[NodeId], hops_done: usize) -> (Vec<u8>, u64) {
    let shape = shape();
    let frame_bytes = data_frame_bytes(shape);
    let count = 256 * 1024 / frame_bytes;
    let mut bytes = Vec::with_capacity(count * frame_bytes);
    for i in 0..count {
        let start = bytes.len();
        Native::append_data(
            &mut bytes,
            source,
            sinks[i % sinks.len()],
            shape,
            SENT_NS,
            &(i as i32).to_le_bytes(),
        );
        // Pretend earlier relays filled part of the trace.
        bytes[start + 6] = hops_done as u8;
    }
    (bytes, count as u64)
}

fn node_loop(c: &mut Criterion) {
    let mut group = c.benchmark_group("node receive loop (256 KiB batch)");
    let ids = ids();
    // Relay: frames from position 63 (just behind us) to sinks ahead that are not ours.
    let (relay_batch, count) = batch(ids[63], &ids[1..40], 0);
    group.throughput(Throughput::Elements(count));
    // One node for all iterations, as in a run: its buffers are warm after the first batch.
    let mut bench = set_up();
    group.bench_function("relay", |b| b.iter(|| bench.feed(black_box(&relay_batch))));
    // Deliver: frames from our predecessor (one hop, no relays) to us.
    let (deliver_batch, count) = batch(ids[63], &[ids[0]], 0);
    group.throughput(Throughput::Elements(count));
    group.bench_function("deliver", |b| {
        b.iter(|| bench.feed(black_box(&deliver_batch)))
    });
    group.finish();
}

/// A node's origination: one tick originates a batch of `ORIGINATE_BATCH_FRAMES` packets
/// (random sink, random value, header, CRC, queued for the entry), no window.
fn originate(c: &mut Criterion) {
    let mut group = c.benchmark_group("node origination (one tick)");
    let mut bench = set_up();
    bench
        .node
        .on_received(1, bench.registry, &task_initiate(u64::MAX));
    group.throughput(Throughput::Elements(ORIGINATE_BATCH_FRAMES as u64));
    group.bench_function("originate", |b| b.iter(|| bench.tick()));
    group.finish();
}

criterion_group!(benches, crc, codec, node_loop, originate);
criterion_main!(benches);
