//! Every bound in the system, in one place, with the checks of how they relate.

use crate::machine::Nanos;

/// Bits of the default ID space: IDs 0..=127, as in the reference.
pub const ID_BITS_DEFAULT: u32 = 7;
/// The widest ID space the registry accepts (`--id-bits`); the native header's IDs are 32 bits.
pub const ID_BITS_MAX: u32 = 32;

/// Most bytes of an HTTP request the registry's metrics endpoint reads (`--metrics`): a scrape
/// is a request line and a few headers; anything longer is answered 431 and closed.
pub const METRICS_REQUEST_BYTES_MAX: usize = 8 * 1024;
/// How long the metrics endpoint waits for a request to arrive, and for its answer to be taken.
/// It serves one connection at a time (scrapes are rare and each takes microseconds), so this
/// bounds how long a peer that sends nothing can keep the next scrape waiting.
pub const METRICS_IO_TIMEOUT_MS: u64 = 2_000;

/// Most routing-table entries a node can have.
pub const NR_MAX: usize = 32;

/// Most registered nodes (the registry's connection slab is sized from this). Every manifest
/// lists every node: 4 bytes of ID each, and in Chord mode up to 20 of identifier, in as many
/// frames as that takes ([`MANIFEST_BYTES_MAX`]; 16,000 IDs alone fill one frame to 98%). The
/// registry keeps one connection per node (its descriptors, checked by `tools/launch.sh`
/// through `ulimit -n`), an ID space of at least twice this is still listed
/// ([`ID_SPACE_LISTED_MAX`]), and manifests to every node are `4 x NODES_MAX^2` bytes in all
/// (1 GB at the bound, 6 GB with 160-bit identifiers, sent once per setup, at most
/// [`MANIFESTS_OUTSTANDING_MAX`] at a time).
pub const NODES_MAX: usize = 16_000;
/// Groups (processes of several nodes) whose next node's place on the ring the registry keeps
/// (`registry::placement`): an entry of 16 bytes and a control byte, 19 to 34 bytes with the
/// map's load, at most about 540 KiB at this bound, whatever
/// group tokens peers make up; as many as the overlay can have nodes, so honest groups never
/// reach it. When full, the map starts again empty (a group's later nodes then land less
/// evenly; nothing else changes).
pub const PLACEMENT_GROUPS_MAX: usize = NODES_MAX;
/// Largest process (nodes) whose nodes the registry places apart on the ring
/// (`registry::placement`); larger ones get IDs at random. Placed, a process's hops stay in
/// its memory, and in a process of hundreds of nodes the in-memory hand-over between its
/// nodes, a segment per link and pump with a few frames each, costs more than the trunks it
/// saves: 1,024 nodes (`PROCESSES=P RING=0 DURATION=10 WARMUP=3 tools/scale.sh --throughput
/// 1024`, placed against `--placement random`, 2026-12-04 09:58) in 8 processes of 128 ran
/// 11.5 M transmissions/s against 10.6 M, in 4 of 256 8.6 M against 8.7 M, in 2 of 512 5.8 M
/// against 12.3 M; `tools/launch.sh 1000` (2 of 500) took 69.3 s against 38.7 s.
pub const PLACEMENT_GROUP_NODES_MAX: u32 = 128;

/// Manifests the registry has sent whose node has not reported its setup status yet; the next
/// goes out as a status comes in (`registry/setup.rs`). Sending all N at once queued N
/// manifests of 4 x N bytes each (0.4 GB at 10,000 nodes) and had every node build its overlay
/// at the same moment, so that processes of thousands of nodes stopped reading their sockets
/// for longer than the link timeout. With this bound the registry holds at most
/// 32 x [`MANIFEST_BYTES_MAX`] = 12.6 MB of manifests, and at most 32 nodes open their table
/// links at once (at most 32 x [`NR_MAX`] = 1,024 connects, a burst of about 3,000 packets:
/// loopback drops what its backlog, `net.core.netdev_max_backlog`, 1,000 by default, cannot
/// hold, and every drop costs a retransmission). Setup still overlaps: a node's status comes
/// back within milliseconds on one machine, so 32 in flight keep the nodes busy (10,000 nodes
/// set up in about 15 s on 2 loaded cores, docs/SCALE.md); a node that never answers holds
/// one slot, and the overlay would not have become ready without it anyway.
pub const MANIFESTS_OUTSTANDING_MAX: usize = 32;

/// Most relay slots a data frame's hop trace may have. The registry sets the trace capacity of
/// an overlay to its longest path and refuses a setup that would need more.
pub const TRACE_SLOTS_MAX: usize = 64;

/// Signals one receive of a signal's socket counts (`io::signals`: a byte per signal); more
/// wait in the socket for the next receive. What waits unread is bounded by the socket's own
/// buffer: a signal that finds it full is dropped by the handler, as the kernel merges a
/// signal that comes while one is pending.
pub const SIGNAL_READ_BYTES: usize = 64;

/// How long a node that left the overlay waits for its table links to hand what is queued
/// for them to the kernel before it exits anyway (a peer that stopped reading).
pub const LEAVE_FLUSH_TIMEOUT_NS: Nanos = 5_000_000_000;

/// Relay slots a native overlay's traces have beyond its longest route (within
/// [`TRACE_SLOTS_MAX`]): while the membership changes, a packet routed partly by tables from
/// before a change and partly by tables from after it may pass more relays than any route of
/// either (docs/ARCHITECTURE.md, "Membership that changes"). A change that would leave less
/// room than this is refused during a run (and sets the overlay up again between runs).
pub const TRACE_CHURN_HEADROOM: usize = 1;

/// The smallest native data frame: its 24-byte header, a trace of [`TRACE_CHURN_HEADROOM`]
/// 1-byte slot, the 4-byte value (`wire::native` checks it against the header).
pub const DATA_FRAME_BYTES_MIN: usize = 29;
/// A native ack's bytes (`wire::native::ACK_FRAME_BYTES`).
pub const ACK_BYTES: usize = 32;

/// Largest frame (length prefix included) either side accepts. A declared length above this is
/// refused before anything is buffered.
pub const FRAME_BYTES_MAX: usize = 64 * 1024;

/// Largest data payload (the 4-byte value plus the optional extra bytes of `start`).
pub const PAYLOAD_BYTES_MAX: usize = 32 * 1024;

/// Bytes a connection's receive buffer holds (the driver's; a whole frame always fits).
pub const RECV_BUFFER_BYTES: usize = 256 * 1024;

/// Bytes each node link's send buffers start with, mapped when the link opens (the driver's
/// per connection the node opens, the node's per table entry; `buffer::mapped`). W1's largest
/// sends are about 250 KB; a buffer grows beyond this when it must.
pub const SEND_BUFFER_BYTES: usize = 256 * 1024;

/// Receive buffers a process with thousands of connections (a group of nodes, the registry)
/// shares between them (`io::SharedRecv`, an io_uring provided buffer ring), and the bytes of
/// each: 16 MiB in all, mapped as they are first used, whatever the number of connections. A
/// receive takes one buffer, which is given back as soon as the machine has read it, so the
/// ring runs dry only when more than this many receives complete in one batch; those are armed
/// again as buffers come back.
pub const SHARED_RECV_BUFFERS: u16 = 1024;
/// See [`SHARED_RECV_BUFFERS`]: a receive takes at most this many bytes.
pub const SHARED_RECV_BUFFER_BYTES: usize = 16 * 1024;
/// A connection receiving into shared buffers keeps the partial frame a receive ended with;
/// once that is consumed, a buffer that grew beyond this (a large frame) is freed.
pub const LEFTOVER_KEPT_BYTES: usize = 4 * 1024;

/// Most receive buffers a node maps up front for connections it accepted (the links of its
/// predecessors, about NR of them); further accepted connections get buffers mapped at first
/// use. Any peer can open connections, and this bounds what those can make a node map
/// (32 x 256 KiB = 8 MiB).
pub const MAPPED_INBOUND_RECV_BUFFERS: usize = NR_MAX;

/// Runs a registry keeps in full (their summaries, node rows and per-link accounts) for its
/// result file; older runs live on only in the session's total. Without a bound a console
/// session of many `start`s grew by 92-180 KiB per run. A run kept costs about 200 bytes per
/// node row once its histograms are merged into the total.
pub const RESULTS_KEPT_RUNS_MAX: usize = 64;
/// Node rows the kept runs may hold together (about 40 MB): large overlays keep fewer runs,
/// and always the last one.
pub const RESULTS_KEPT_NODE_ROWS_MAX: usize = 200_000;

/// A node gives up on an attempt to register that is not answered this long after it
/// connected (something accepts but never answers, or a registry lost the registration), and
/// tries again on a fresh connection.
pub const JOIN_ATTEMPT_TIMEOUT_NS: u64 = 5_000_000_000;
/// A node gives up on an attempt whose connection to the registry is not established this
/// long after it asked for it (and tries again): long enough for the kernel's retransmitted
/// connection requests (after 1, 3 and 7 s) when thousands of nodes dial one registry at once
/// and its listen queue overflows.
pub const JOIN_CONNECT_TIMEOUT_NS: u64 = 15_000_000_000;
/// The pause after a node's first failed attempt to reach the registry; it doubles with each
/// further failure, up to [`JOIN_BACKOFF_MAX_NS`].
pub const JOIN_BACKOFF_MIN_NS: u64 = 100_000_000;
/// The longest pause between attempts to reach the registry.
pub const JOIN_BACKOFF_MAX_NS: u64 = 2_000_000_000;
/// How long a node keeps trying to reach its registry by default (`--registry-wait`).
pub const JOIN_WAIT_DEFAULT_SECS: u64 = 60;

/// Bytes the registry may have queued for one connection when a request arrives on it; past
/// this, the peer is cut. An honest node reads everything the registry sends (one manifest,
/// a task, a summary request per second of a run, replies to its own few requests): the
/// largest is a manifest, at most [`MANIFEST_BYTES_MAX`] (0.4 MB), far below this. A peer that sends
/// requests and never reads would otherwise grow the registry without limit.
pub const REGISTRY_QUEUED_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Bytes a node may have queued for its registry; past this the registry does not read, and
/// the node gives up on it as when its connection closes. A node sends its registry at most
/// one message for each one it gets from it (a summary per summary request, a setup status per
/// manifest, a task-finished per task), each one frame of at most [`FRAME_BYTES_MAX`], and an
/// honest registry reads everything and sends the next counter poll only once the previous
/// one is answered (or given up on), so only a few are ever waiting. A peer that poses as the
/// registry (a typo in its port) and sends requests without reading would otherwise grow the
/// node without limit.
pub const NODE_REGISTRY_QUEUED_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Warnings one connection may cause in the log; the rest are counted and reported once
/// when it closes (a peer repeating a bad request must not fill the log).
pub const CONNECTION_WARNINGS_MAX: u32 = 10;
/// Closed connections whose last message (why they were refused) a machine keeps until the
/// driver sends it (`machine::Farewells`). The driver takes one as soon as the machine's call
/// returns, unless a send is still in flight on that connection; so only connections that
/// fail before it can be taken are ever dropped from here, and a few hundred is plenty.
pub const FAREWELLS_MAX: usize = 256;

/// The longest timeout or wait an operator may set, in seconds (a day): longer ones are typos,
/// and nanosecond deadlines computed from them stay far from overflow.
pub const OPERATOR_WAIT_SECS_MAX: u64 = 86_400;
/// The longest `--busy-poll-us` (a second: beyond it a node would never sleep between runs
/// of light traffic).
pub const BUSY_POLL_US_MAX: u64 = 1_000_000;
/// The adaptive busy poll (`--busy-poll-us auto`, the default; `io::busy_poll`) polls at most
/// this long after work. At light load (10 nodes, 500 packets/s each) a node finds work
/// every 0.5-2 ms, so a poll of 1 ms catches most of it without a vCPU wake-up; an idle
/// node stops polling 1 ms after its last work.
pub const AUTO_POLL_NS: Nanos = 1_000_000;
/// ... and only when the last idle gap ended within this (traffic is recent).
pub const AUTO_POLL_RECENT_NS: Nanos = 2_000_000;
/// ... and only when that gap ended with at most this many completions (light load: a
/// packet's receive and a send's completion; a saturated node finds dozens).
pub const AUTO_POLL_BATCH_MAX: usize = 4;
/// A yield that keeps the core away from the polling node longer than this means other
/// processes have work for it (the core will not halt): the poll ends and the node sleeps.
/// Other nodes polling, or handling a packet at light load, give the core back within tens
/// of microseconds; at saturation each runnable node holds it for hundreds.
pub const AUTO_POLL_YIELD_NS: Nanos = 200_000;
/// After such a yield the adaptive poll pauses this long: on a core shared with busy programs
/// a yielding node waits out their time slices, where a sleeping one woken by a packet runs
/// at once (a 5 s light-load run at load 10 had p99 per hop of 5-10 ms with polls, 0.3-0.6 ms
/// without); a node pays at most one slow yield per pause. Short, because most slow yields on
/// a quiet machine are its housekeeping (a kernel thread such as `kdamond`, or the VM's
/// agent, taking the core 0.2-5 ms about once a second: `perf record -e
/// sched:sched_switch`, docs/PERFORMANCE.md, W4), after which the core is free again; a first
/// pause of a second there left a poller unpolled most of a light run.
pub const AUTO_POLL_PAUSE_NS: Nanos = 10_000_000;
/// Each slow yield within one pause of the last pause's end doubles the next pause, up to this
/// (steady outside load takes the pause to a second after 7 slow yields in 1.3 s, and a machine
/// busy with other programs for a long time costs each node a slow yield per minute); a slow
/// yield after a longer spell without one pauses `AUTO_POLL_PAUSE_NS` again.
pub const AUTO_POLL_PAUSE_MAX_NS: Nanos = 64_000_000_000;

/// Largest latency a histogram records (longer ones are recorded as this): a minute, far past
/// any run's stall timeout.
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// Largest overlay whose nodes keep their counts per other node (`node::flow`: the window's
/// counts and the packets originated toward it and taken from it, which a leave's hand-over
/// needs) in a slot per node of the overlay: a record of 64 bytes, one cache line (64 KiB at
/// this bound), read with one miss per packet. Larger overlays keep them only for the nodes a
/// node exchanged packets or acks with in the current epoch, in a hash map (at most one entry
/// per node of the overlay, its keys being ring positions; about 1,900 entries, 160-280 KB,
/// for a 1,000-packet run at 10,000 nodes, where the slots take 640 KB), at the cost of
/// hashing each delivered packet's source and each ack's sink.
pub const FLOW_DENSE_NODES_MAX: usize = 1024;
/// A large overlay's per-node map (`node::per_node::PerNode`) turns into a slot per node once
/// it holds more than one value per this many nodes. A `HashMap<u32, Peer>` entry takes 72
/// bytes and a control byte, and the map keeps from 1/2 to 7/8 of its entries full: 83 to 146
/// bytes a value, against 64 a slot; so at a quarter of the nodes the map holds 21 to 37
/// bytes per node of the overlay where slots hold 64, and the counts of a node never take
/// more than the slots would, however many nodes it exchanged with since setup.
pub const SPARSE_ENTRIES_PER_DENSE_NODES: usize = 4;
/// From this many nodes on, the receive loop and origination ask for the counts a node keeps
/// per other node (`node::per_node`, in slots) for the next frame's source or the next
/// packet's sink while they handle the current one: with a slot per node of an overlay that
/// large the counts are cold (docs/SCALE.md, "Where a transmission's time goes"). In a small
/// overlay they stay in the cache and the look ahead only costs. Measured 2026-12-04 with
/// alternating builds (`PROCESSES=20 RING=0 DURATION=12 WARMUP=4 tools/scale.sh --throughput
/// N`, transmissions per CPU second): from 1,024 nodes +4.5% (3 pairs), from 512 +2.0% and
/// +2.9%, from 256 -1.1% and -0.6%; W2 (64 nodes) 4.3% fewer packets/s when it was done at
/// every size.
pub const PREFETCH_SLOTS_MIN_NODES: usize = 512;
/// Packets a sink's record keeps one by one (`stats::SinkStats`, 8 bytes each: 32 KiB) before
/// it counts them in the buckets of HDR histograms, about 30 KiB per relay count (2 significant
/// digits up to [`LATENCY_NS_MAX`]: 3,808 counters of 8 bytes). A node keeps two
/// records (its run's and the packets since the last poll), so a sink holds at most 64 KiB of
/// samples, or the histograms it held for every packet before; at 10,000 nodes a node takes
/// about a thousand packets in a 1,000-packet run, a handful between two polls, and its
/// records stay under 10 KiB where its histograms took 2 x 13 x 30 KiB.
pub const SINK_SAMPLES_MAX: usize = 4096;
/// Largest dense position index (entries, 4 bytes each: 4 MiB) a node's router builds over
/// the ID space; wider ID spaces use a binary search over the ring instead.
pub const DENSE_INDEX_MAX: u64 = 1 << 20;
/// Most failure lines a session's total keeps (the first ones; the rest are counted).
pub const TOTAL_FAILURES_MAX: usize = 100;
/// A secret shorter than this is refused (it would be guessable).
pub const SECRET_BYTES_MIN: usize = 16;

/// Longest `--secret-file` read (a secret is one line; anything longer is a mistake, such as
/// `/dev/zero` or a log file, refused without reading on).
pub const SECRET_FILE_BYTES_MAX: usize = 4096;

/// Bytes of console line the driver buffers before giving up on a line.
pub const COMMAND_LINE_BYTES_MAX: usize = 4096;

/// Most connections a node keeps (table entries, their reverse links, the registry, strays).
pub const NODE_CONNECTIONS_MAX: usize = 512;
/// Connections a node opens itself, reserved: its table entries, its backup entries and the
/// registry, and as many again for those of a previous overlay still closing. Accepted
/// connections never take them.
pub const NODE_OUTBOUND_RESERVED: usize = 2 * (NR_MAX + BACKUP_ENTRIES + 1);
/// Accepted connections that have not finished their handshake, a node keeps at once
/// (`crate::strangers`; past it a newer one pushes out an older one).
pub const NODE_STRANGERS_MAX: usize = 4 * NR_MAX;
/// Of those, the most from one address: room for every predecessor of a table of
/// [`NR_MAX`] entries on one host, twice.
pub const NODE_STRANGERS_PER_ADDRESS_MAX: usize = 2 * NR_MAX;
/// How long an accepted connection has to finish its handshake at a node (an honest peer
/// needs one round trip; without a secret, its hello comes at once).
pub const NODE_HANDSHAKE_TIMEOUT_NS: Nanos = 5_000_000_000;
/// How long a node that registers while the overlay is live has to connect to its table
/// entries and say so (`registry::changes`). An honest newcomer connects to all of them at once
/// and each handshake has [`NODE_HANDSHAKE_TIMEOUT_NS`]; one past this is not coming, its join
/// is abandoned (it is never polled), and the membership changes queued behind it go on.
pub const JOIN_SETUP_TIMEOUT_NS: Nanos = NODE_HANDSHAKE_TIMEOUT_NS;
/// How many set-ups a join gets before the newcomer is let go: a set-up fails when the
/// newcomer cannot reach a table entry, most often a member that crashed while it connected
/// (the join then waits behind that member's repair and is set up again with live members);
/// one that fails this often is kept from holding the membership changes up.
pub const JOIN_SETUPS_MAX: u32 = 3;
/// How long a join whose set-up failed waits before it is queued again when the registry
/// knows of no lost node yet (a crashed entry refuses the newcomer's connection at once, and
/// its registry connection, closed by the same kernel, may be read just after the newcomer's
/// report): the loss, once learned, queues the join again at once behind its repair; this
/// pause only bounds the wait when the failure had another cause.
pub const JOIN_RETRY_PAUSE_NS: Nanos = 1_000_000_000;
/// Links other nodes opened to this one (handshake done) a node keeps: the rest of its slots.
/// A table of NR entries brings NR of them (more with Chord fingers); past this bound a new one
/// is refused as busy.
pub const NODE_INBOUND_LINKS_MAX: usize =
    NODE_CONNECTIONS_MAX - NODE_OUTBOUND_RESERVED - NODE_STRANGERS_MAX;
/// Closed strangers (pushed out, timed out) are logged at most once per this interval, with
/// the count of the others.
pub const STRANGER_WARNING_INTERVAL_NS: Nanos = 5_000_000_000;

/// Most per-link rows in a node's summary. A node has rows for its table entries, for the
/// nodes that hold it in their table, and one for the packets of links that are no node's:
/// at most `2 x NR_MAX + 1`; the registry refuses a summary with more.
pub const SUMMARY_LINKS_MAX: usize = NODE_CONNECTIONS_MAX;
/// Connections the registry keeps that have not registered a node (`crate::strangers`): nodes
/// that are joining, and whatever else connects. Past it a newer connection pushes out an
/// older one. Room for a whole overlay of the largest size joining at once.
pub const REGISTRY_STRANGERS_MAX: usize = NODES_MAX;
/// Of those, the most from one address: half, so that a host that floods the registry with
/// connections pushes out only its own beyond it, and leaves the other half to everyone else.
/// Nodes of one host that all start at once beyond it (a group of thousands) are pushed out as
/// busy and try again after their pause; a node registers one round trip after it connects.
pub const REGISTRY_STRANGERS_PER_ADDRESS_MAX: usize = REGISTRY_STRANGERS_MAX / 2;
/// Most connections the registry keeps: every node, the strangers, and as many again for
/// connections it closed whose sockets are still shutting down. The registry's own rules
/// (above) keep it below this, so the driver never has to drop a connection silently.
pub const REGISTRY_CONNECTIONS_MAX: usize = NODES_MAX + 2 * REGISTRY_STRANGERS_MAX;

/// The registry lists the free IDs of an ID space up to this size and draws one of them; in a
/// wider space it draws IDs until one is free (at most half of the space is ever taken, so
/// each draw is free with a probability of at least one half).
pub const ID_SPACE_LISTED_MAX: u64 = 1 << 16;
/// A connection that has not registered a node this long after the registry accepted it is
/// closed: a peer that connects and says nothing must not hold a slot forever.
pub const STRANGER_TIMEOUT_NS: Nanos = 10_000_000_000;
/// Between the registry's counter polls while the nodes of a run are sending: progress for the
/// operator, and a hung node is noticed.
pub const PROGRESS_POLL_INTERVAL_NS: Nanos = 1_000_000_000;
/// The first pause between counter polls once every node finished sending; it doubles while
/// the totals do not change, up to [`DRAIN_POLL_BACKOFF_MAX`] times this.
pub const DRAIN_POLL_INTERVAL_NS: Nanos = 1_000_000;
/// The longest pause between drain polls, in first pauses.
pub const DRAIN_POLL_BACKOFF_MAX: Nanos = 64;
/// `--stall-timeout` unless given, with [`STALL_TIMEOUT_PER_NODE_NS`] per node on top
/// ([`stall_timeout_for`]): totals that do not change, a poll round some node does not answer,
/// or final summaries missing for this long fail a run.
pub const STALL_TIMEOUT_DEFAULT_NS: Nanos = 10_000_000_000;
/// What the default stall timeout grows by per node of the run. Every poll round is N summary
/// requests and N summaries (the final ones with histograms of a few KiB), answered by node
/// processes that share the machine's cores with the relays of the run: on a machine of fixed
/// cores, running all N nodes, a round's time grows linearly with N. Measured at 4,096 nodes on
/// 2 cores with a load average of 10-13 (docs/SCALE.md): 10 s failed, 60 s passed. 10 ms a node
/// gives 10.6 s at 64 nodes, 51 s at 4,096 and 110 s at 10,000; a hung node is then named
/// within two minutes at the largest size, and `--stall-timeout` still sets any value.
pub const STALL_TIMEOUT_PER_NODE_NS: Nanos = 10_000_000;

/// The stall timeout of a run of `nodes` nodes when the operator gives none.
pub fn stall_timeout_for(nodes: usize) -> Nanos {
    STALL_TIMEOUT_DEFAULT_NS + nodes as Nanos * STALL_TIMEOUT_PER_NODE_NS
}
/// The registry entering a run more than this after the tick the run asked for was not
/// running (stopped, as by SIGSTOP or Ctrl-Z, or starved): the run then moves its deadlines by
/// the time since its previous call, so that no node is blamed for it (`registry/run.rs`). Its
/// loop wakes for a tick within a millisecond or so, and within tens of milliseconds on a
/// loaded machine; a quarter of a second late is not scheduling noise. A smaller bound would
/// also discount a pause that ends just after a deadline, but a registry that is late by more
/// than it every time would judge no one. (Such a pause cannot blame a node that answered: the
/// driver reads what arrived before a tick before it delivers the tick, and a round's deadline
/// counts from when its request reached the kernel: `Machine::on_handed_over`.)
pub const REGISTRY_LATE_NS_MAX: Nanos = 250_000_000;
/// After a failure, totals unchanged for this long mean nothing of the run is in flight any
/// more (so nothing of it leaks into the next run).
pub const QUIET_AFTER_FAILURE_NS: Nanos = 100_000_000;
/// `--settle-ms` unless given (classic wire, no polls): the wait between the last task-finished
/// and the final summary requests, for packets still in flight.
pub const SETTLE_DEFAULT_NS: Nanos = 1_000_000_000;
/// Bytes of the registry's receive buffer per connection: it receives control messages only
/// (the largest, a final summary with its histograms and per-link counts, is one frame).
pub const REGISTRY_RECV_BUFFER_BYTES: usize = 64 * 1024;
/// The operator sees a run's progress (bar, CSV row) at most this often.
pub const PROGRESS_SHOWN_GAP_NS_MIN: Nanos = 500_000_000;
/// Without a terminal, a plain progress line at most this often.
pub const PROGRESS_LINE_GAP_NS_MIN: Nanos = 5_000_000_000;
/// Packets one node may be told to send in a run (`start N`, `--start`): 5 x 10^11. At ten
/// million packets a second per node, several times what one node originates
/// (docs/PERFORMANCE.md), that takes more than half a day; a larger count is a typing mistake (`start
/// 18446744073709551615`) or a run that wants a duration (`start 10s`, `--duration`). With
/// [`NODES_MAX`] nodes a run's total stays below 2^53, so totals in u64 and rates in f64 are
/// exact.
pub const PACKETS_PER_NODE_MAX: u64 = 500_000_000_000;
/// The packet count of the task of a run by time: the node originates until the registry tells
/// it to stop (a task of 0 packets). Never a count anyone could ask for.
pub const TASK_UNTIL_STOPPED: u64 = u64::MAX;
/// The longest run by time, warm-up and `--interval` (seconds): a day, as every wait an
/// operator sets ([`OPERATOR_WAIT_SECS_MAX`]).
pub const RUN_SECS_MAX: f64 = OPERATOR_WAIT_SECS_MAX as f64;
/// The shortest `--interval`: each interval line needs at least one counter poll of every node,
/// and polls more often than ten a second would cost 4,096 nodes more messages than the run.
pub const INTERVAL_NS_MIN: Nanos = 100_000_000;
/// `--ready-timeout` unless given: a scripted registry gives up when the overlay is not
/// registered and set up this long after it started.
pub const READY_TIMEOUT_DEFAULT_NS: Nanos = 120_000_000_000;

/// Bytes of data frames that may be in flight in the whole overlay at once, summed over every
/// source's window, when the registry picks the window: each source gets
/// `nodes x WINDOW_BYTES_PER_NODE`, at most `IN_FLIGHT_BUDGET_BYTES / nodes`, within
/// [`WINDOW_BYTES_MIN`]..=[`WINDOW_BYTES_MAX`] ([`default_window_bytes`]). No node ever holds
/// more than `nodes x window` in its queues (at most this budget up to 1,024 nodes; beyond,
/// the floor makes it `nodes x 256 KiB`).
///
/// The window sets how much each process finds to do when it runs, so it sets the batch sizes
/// and with them the throughput, and at saturation it is the queueing latency (Little's law):
/// both measured in docs/PERFORMANCE.md ("Window: throughput against latency").
pub const IN_FLIGHT_BUDGET_BYTES: u64 = 256 * 1024 * 1024;
/// The default window grows with the overlay up to 32 nodes (where it reaches the 4 MiB
/// ceiling): the more processes share the cores, the longer each waits for its turn and the
/// more a source must have in flight to keep them busy. At 10 nodes 4 MiB ran W1 no faster
/// than 1.25 MiB and queued 4-6 times longer (p50 52-66 ms against 8-16 ms); at 64 nodes
/// W2 needs the full 4 MiB (1 MiB ran it at 0.72 x).
pub const WINDOW_BYTES_PER_NODE: u64 = 128 * 1024;
/// The smallest per-source window: room for a few of the largest frames.
pub const WINDOW_BYTES_MIN: u64 = 4 * FRAME_BYTES_MAX as u64;
/// The largest per-source window the registry picks by itself (beyond it throughput no longer
/// grows, only latency under load).
pub const WINDOW_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// The per-source window of an overlay of `nodes` nodes, unless `--window-bytes` says otherwise.
pub fn default_window_bytes(nodes: usize) -> u64 {
    let nodes = nodes.max(1) as u64;
    (nodes * WINDOW_BYTES_PER_NODE)
        .min(IN_FLIGHT_BUDGET_BYTES / nodes)
        .clamp(WINDOW_BYTES_MIN, WINDOW_BYTES_MAX)
}
/// The most bytes a node queues for its table entries on behalf of its inbound links (the
/// frames it relays for them, and the acks it answers their packets with), in an overlay of
/// `nodes` nodes whose sources have a window of `window_bytes`: no honest traffic queues more.
///
/// Every data byte queued anywhere is in its source's window, and a source has at most
/// `window_bytes + FRAME_BYTES_MAX` originated and unacknowledged (it originates while below
/// its window). An ack on its way to a source covers at least one whole data frame of that
/// window ([`DATA_FRAME_BYTES_MIN`] bytes or more: a native trace has at least
/// [`TRACE_CHURN_HEADROOM`] slot, of 1 byte in the smallest ID spaces) that has arrived and is
/// queued nowhere, so its [`ACK_BYTES`] stand in for at most `ACK_BYTES /
/// DATA_FRAME_BYTES_MIN` of the window bytes. The data and acks queued in the whole overlay,
/// and so at one node, are therefore at most `nodes x (window_bytes + FRAME_BYTES_MAX)` times
/// that ratio, once for each window epoch: acks of the previous run may still be on their way
/// when the next one starts (the registry waits for the data to arrive, not for the acks),
/// hence the factor 2.
/// A run that failed with packets still queued (a hung node) can leave more. After nodes were
/// lost, a source may have more than a window on its way (what it had in flight was given
/// back: `Flow::forgive`), and the nodes pass `Flow::bound_window_bytes` as `window_bytes`.
///
/// The same bounds the data frames a node holds when no live entry or backup lies short of
/// their sink, until the registry's repair (one membership change, 0.5 to 2.2 s after a
/// massive failure, docs/CHURN.md) changes its table (`overlay::Stuck`): they are in flight
/// too, unacknowledged. A massive failure at 64 nodes had one node hold about 100,000 frames
/// (7 MB) before its repair, more than a fixed few hundred KiB.
///
/// Only the bytes a node still holds count, not those its driver took to send: each link's
/// driver holds at most one earlier batch of them on top (docs/ARCHITECTURE.md, "Flow
/// control"). Without a window (the classic wire) nothing bounds honest traffic, and
/// [`RELAY_QUEUED_BYTES_NO_WINDOW_MAX`] applies.
pub fn relay_queued_bytes_max(nodes: usize, window_bytes: u64) -> usize {
    if window_bytes == 0 {
        return RELAY_QUEUED_BYTES_NO_WINDOW_MAX;
    }
    let bytes = 2u64
        .saturating_mul(nodes as u64)
        .saturating_mul(window_bytes.saturating_add(FRAME_BYTES_MAX as u64))
        .saturating_mul(ACK_BYTES as u64)
        .div_ceil(DATA_FRAME_BYTES_MIN as u64);
    usize::try_from(bytes).unwrap_or(usize::MAX)
}
/// The most bytes of its own data frames a source with a window of `window_bytes` (not 0)
/// queues for its table entries (those its driver took to send not counted): it originates
/// only while they are at most this minus one frame, so they never pass it.
///
/// No honest traffic reaches it: a frame is acknowledged only after it arrived at its sink,
/// so after the driver took it, and a source originates only while its unacknowledged bytes
/// are below `window_bytes`; its queued bytes are some of those. Forged acks (an outsider
/// without the secret naming a sink) can make the window say open while the first hop is
/// stalled; this bound then holds origination until the driver takes the bytes (the node is
/// told through `swap_outgoing`, and the loop asks for its next tick after every event, so
/// the held source is woken without a spin; docs/ARCHITECTURE.md, "Flow control").
pub fn own_queued_bytes_max(window_bytes: u64) -> usize {
    let bytes = window_bytes.saturating_add(FRAME_BYTES_MAX as u64);
    usize::try_from(bytes).unwrap_or(usize::MAX)
}
/// [`relay_queued_bytes_max`] of an overlay without windows (the classic wire, whose sources
/// send as fast as they can): a gibibyte, more than the reference's own runs queue, so that a
/// flood cannot grow a node without limit.
pub const RELAY_QUEUED_BYTES_NO_WINDOW_MAX: usize = 1 << 30;
/// A node or the registry shows at most [`CLOSE_WARNINGS_PER_INTERVAL_MAX`] warnings about
/// connections it closes (bad frames, failed handshakes, strangers, links cut for queuing too
/// much) per this interval; the rest are counted and the count is shown with the next warning
/// (`crate::warnings`). Anyone may connect and be refused again and again: without a limit
/// each refusal was a line in the log.
pub const CLOSE_WARNING_INTERVAL_NS: Nanos = 5_000_000_000;
/// See [`CLOSE_WARNING_INTERVAL_NS`]: enough to see what is going on, a few lines a second.
pub const CLOSE_WARNINGS_PER_INTERVAL_MAX: u32 = 10;
/// Most problem lines (corrupted packets, unknown sinks, lost links) a node prints between two
/// final reports; its counters keep counting after that.
pub const PROBLEM_LINES_MAX: u64 = 20;
/// Frames a node originates per tick before it lets the loop look at its completions.
pub const ORIGINATE_BATCH_FRAMES: usize = 4096;
/// Nodes of a group (`overlay node --count`) that run their tick in one tick of the group,
/// longest waiting first: the loop looks at its completions at least every this many batches
/// of origination, as a single node does after each.
pub const GROUP_TICK_NODES_MAX: usize = 8;
/// The nodes of a group start this far apart, so that a thousand of them do not dial their
/// registry in the same instant (its listen queue overflows, and a dropped connection request
/// is retransmitted only a second later): 600 nodes start within 1.2 s.
pub const GROUP_JOIN_GAP_NS: u64 = 2_000_000;
/// Most nodes one process runs (`overlay node --count`): each has its own listener, about
/// 2 x (NR + backup entries) + 2 descriptors and its share of the loop.
pub const GROUP_NODES_MAX: usize = 4096;

/// Trunks (`node::mux`: one connection between two processes of several nodes, carrying all
/// their links) a process keeps up at once. One per other process of the overlay, two when both
/// dialed at the same moment: an overlay of [`NODES_MAX`] nodes in groups of two at least has
/// fewer than 8,000 other processes; honest launches have tens. Past it a trunk that comes up
/// is closed, and links toward its process go on connections of their own, as between
/// processes of one node.
pub const TRUNKS_MAX: usize = NODES_MAX / 2;
/// Accepted trunks that have not finished their handshake, and trunks this process dialed that
/// have not come up, each kept at once (the first pool like a node's strangers,
/// `crate::strangers`: a newer one pushes out an older one, a share per address; each has
/// [`NODE_HANDSHAKE_TIMEOUT_NS`]). A dial past it is not made: the link goes on a connection of
/// its own.
pub const TRUNK_STRANGERS_MAX: usize = NODE_STRANGERS_MAX;
/// Streams (links) open on one trunk: each node of either side opens at most
/// [`NODE_OUTBOUND_RESERVED`] connections, and a group has at most [`GROUP_NODES_MAX`] nodes.
/// The peer's open past it is refused (the stream is closed at once, as a node refuses a
/// connection past its bounds). A stream costs its record (tens of bytes) and what it keeps (below);
/// the nodes' own bounds on accepted connections (strangers, inbound links) close streams long
/// before a hostile peer gets here.
pub const TRUNK_STREAMS_MAX: usize = 2 * GROUP_NODES_MAX * NODE_OUTBOUND_RESERVED;
/// Bytes of a stream its node did not consume, kept until more arrive: a partial frame (less
/// than [`FRAME_BYTES_MAX`]), or what a connector sent behind its hello before it was
/// answered, which an honest one does not (it waits for the challenge). Past it the stream
/// is closed, as a TCP link whose frame outgrows the receive buffer.
pub const TRUNK_STREAM_KEPT_BYTES_MAX: usize = 2 * FRAME_BYTES_MAX;
/// DATA bytes a trunk has sent and its peer has not yet credited back as consumed
/// (`node::mux`), on a kernel whose links outlast a closed window (`TCP_RTO_MAX_MS`, Linux
/// 6.15: `io::links_outlast_closed_windows`): streams' bytes are taken from their nodes only
/// below it (the last batch may pass it by less than a frame; a closing stream's last bytes
/// go whatever it says). Why a bound: without it the bytes of hundreds of links pile up in the
/// receiving kernel's buffer of one connection whenever the receiving process reads slower
/// than the others send; with it what waits, waits in its node's queue, where the
/// flow-control windows bound it as on a connection of its own. Why this much: a trunk's
/// throughput is at most its credit per round trip of a credit, and a round trip crosses both
/// processes' loops. W2 in two processes of 32 nodes with trunks (docs/PERFORMANCE.md,
/// "Trunks' credit"): 11.5-11.9 M packets/s with 64 KiB, 16.0-16.6 M with 256 KiB, 15.2-16.2 M
/// with 1 MiB; at 1,024 nodes in 20 processes the rate is the same with 64 KiB and 256 KiB. At
/// most 256 KiB in the kernels' buffers per trunk: 100 MiB for the 380 trunks of 20 processes.
/// The least a trunk's credit is: it grows with the frames a trunk carries
/// ([`TRUNK_CREDIT_FRAMES`], `node::mux::TrunkCredit`) up to [`TRUNK_CREDIT_BYTES_MAX`].
pub const TRUNK_CREDIT_BYTES: usize = 256 * 1024;
/// Frames of the mean length a trunk carries that its credit allows (within
/// [`TRUNK_CREDIT_BYTES`] and [`TRUNK_CREDIT_BYTES_MAX`]): a round trip of a credit crosses
/// both processes' loops, whose work is per frame. At W2's 34-byte frames the credit stays at
/// its least (7,700 frames); W3's 4 KiB frames in two processes of 32 nodes left each loop
/// waiting for credit a quarter of its time with 256 KiB (62 frames) and ran 1.28 x faster with
/// 1 MiB (docs/PERFORMANCE.md, "Trunks' credit").
pub const TRUNK_CREDIT_FRAMES: usize = 256;
/// The most a trunk's credit grows to with large frames: W3 in two processes (4 KiB frames)
/// measured 322-325 K packets/s at 256 KiB, 334-376 K at 512 KiB, 415-437 K at 1 MiB and
/// 292-424 K at 2 MiB (the caches hold less of what is in flight). At most 1 MiB in the
/// kernels' buffers per trunk: 380 MiB for the 380 trunks of 20 processes, 1 MiB for two.
pub const TRUNK_CREDIT_BYTES_MAX: usize = 1024 * 1024;
/// [`TRUNK_CREDIT_BYTES`] on a kernel without `TCP_RTO_MAX_MS`, where links fall back to
/// `TCP_USER_TIMEOUT`: Linux counts a closed receive window against it, and closed links whose
/// peer read nothing for [`LINK_TIMEOUT_SECS`] (a 10,000-node run lost every trunk so).
/// Measured on loopback (docs/SCALE.md, "Trunks"): a reader taking 4 KiB a second kept a
/// connection with 64 KiB outstanding alive, one with 128 KiB was closed after 10 s; the
/// receiving kernel's buffer starts at 128 KiB (`tcp_rmem`), half of it advertised, so 64 KiB
/// outstanding never closes the window.
pub const TRUNK_CREDIT_BYTES_USER_TIMEOUT: usize = 64 * 1024;
/// Addresses a process remembers as no trunk's (a node alone in its process, or a process
/// that refused or failed a trunk): links to them go on connections of their own without
/// another try. At most every node of an overlay; past it the memory starts over (one more
/// try each).
pub const TRUNK_PLAIN_ADDRESSES_MAX: usize = NODES_MAX;

/// Most members a node takes in a manifest: the registry never has more than [`NODES_MAX`].
/// A manifest whose members do not fit one frame comes in several (a start, then
/// continuations: docs/PROTOCOL.md), and its node puts them back together
/// (`wire::ManifestAssembly`), announced count first: the node holds at most this many IDs and
/// identifiers (16,000 x (4 + 32) bytes = 0.6 MB) and refuses a manifest that announces more,
/// or a continuation past what was announced.
pub const MANIFEST_MEMBERS_MAX: usize = NODES_MAX;
/// Bytes of one member in a manifest, at most: its ID and its identifier (ceil(m / 8) bytes,
/// 20 at m = 160; none under position fingers).
pub const MANIFEST_MEMBER_BYTES_MAX: usize = 4 + 20;
/// A manifest's first frame without its members, at most: length prefix, kind, entry count,
/// trace slots, their width, window, up to 255 entries (the count is one byte) of an ID and an
/// IPv6 address and port, the member count, the count carried, the identifier width, the
/// window epoch, the backup count and up to 255 backups.
pub const MANIFEST_HEAD_BYTES_MAX: usize =
    4 + 1 + 1 + 1 + 1 + 8 + 255 * (4 + 1 + 16 + 2) + 4 + 4 + 1 + 4 + 1 + 255 * (4 + 1 + 16 + 2);
/// A manifest continuation's frame without its members: length prefix, kind, count, width.
pub const MANIFEST_MORE_HEAD_BYTES: usize = 4 + 1 + 4 + 1;
/// Members one continuation frame holds, at the widest.
const MANIFEST_MORE_MEMBERS_MIN: usize =
    (FRAME_BYTES_MAX - MANIFEST_MORE_HEAD_BYTES) / MANIFEST_MEMBER_BYTES_MAX;
/// The largest manifest a native registry sends, all its frames: the first frame's head, every
/// member at its widest, and a continuation head for every frame the members may need beyond
/// the first (the first holds at least (FRAME_BYTES_MAX - MANIFEST_HEAD_BYTES_MAX) / 24 = 2,240
/// of them, each continuation 2,730): 396 KB, 7 frames, at 16,000 members of 160 bits.
pub const MANIFEST_BYTES_MAX: usize = MANIFEST_HEAD_BYTES_MAX
    + MANIFEST_MEMBERS_MAX * MANIFEST_MEMBER_BYTES_MAX
    + MANIFEST_MEMBERS_MAX.div_ceil(MANIFEST_MORE_MEMBERS_MIN) * MANIFEST_MORE_HEAD_BYTES;

const _: () = assert!(FRAME_BYTES_MAX <= RECV_BUFFER_BYTES);
const _: () = assert!(2 * NR_MAX < SUMMARY_LINKS_MAX);
const _: () = assert!(MANIFEST_HEAD_BYTES_MAX + MANIFEST_MEMBER_BYTES_MAX <= FRAME_BYTES_MAX);
const _: () = assert!(MANIFEST_BYTES_MAX <= REGISTRY_QUEUED_BYTES_MAX / 4);
const _: () = assert!(PAYLOAD_BYTES_MAX + 32 + 4 * TRACE_SLOTS_MAX <= FRAME_BYTES_MAX);
const _: () = assert!(TRACE_SLOTS_MAX <= u8::MAX as usize);
const _: () = assert!(NR_MAX <= u8::MAX as usize);
const _: () = assert!(ID_SPACE_LISTED_MAX <= u32::MAX as u64 + 1);
const _: () = assert!(NODES_MAX as u64 <= ID_SPACE_LISTED_MAX / 2);
const _: () = assert!(DRAIN_POLL_INTERVAL_NS * DRAIN_POLL_BACKOFF_MAX < PROGRESS_POLL_INTERVAL_NS);
const _: () = assert!(QUIET_AFTER_FAILURE_NS < STALL_TIMEOUT_DEFAULT_NS);
const _: () = assert!(PACKETS_PER_NODE_MAX < TASK_UNTIL_STOPPED);
const _: () = assert!((PACKETS_PER_NODE_MAX as u128) * (NODES_MAX as u128) < 1 << 53);
const _: () = assert!(INTERVAL_NS_MIN <= PROGRESS_POLL_INTERVAL_NS);
const _: () = assert!(REGISTRY_LATE_NS_MAX < STALL_TIMEOUT_DEFAULT_NS);
const _: () = assert!(FRAME_BYTES_MAX <= REGISTRY_RECV_BUFFER_BYTES);
const _: () = assert!(PROGRESS_SHOWN_GAP_NS_MIN <= PROGRESS_LINE_GAP_NS_MIN);
const _: () = assert!(NODE_INBOUND_LINKS_MAX >= 4 * NR_MAX);
const _: () = assert!(NODE_STRANGERS_PER_ADDRESS_MAX <= NODE_STRANGERS_MAX);
const _: () = assert!(REGISTRY_STRANGERS_PER_ADDRESS_MAX <= REGISTRY_STRANGERS_MAX);
const _: () = assert!(NODE_HANDSHAKE_TIMEOUT_NS <= JOIN_ATTEMPT_TIMEOUT_NS);
const _: () = assert!(GROUP_NODES_MAX <= crate::machine::ConnId::GROUPS_MAX);

/// The ceiling on every connection's TCP retransmission timeout (`TCP_RTO_MAX_MS`, the
/// kernel's minimum; Linux's default is 120 s), and so on the gap between its retransmissions
/// and its zero-window probes. It is what makes a dead peer noticed in bounded time without
/// `TCP_USER_TIMEOUT` (`io::event_loop::set_link_timeouts`, docs/RELIABILITY.md, "Link
/// liveness"): the kernel closes a connection after `net.ipv4.tcp_retries2` (15) tries
/// without an answer, and with the timeout growing 0.2, 0.4, 0.8 s and then at most this, 15
/// tries take about 15 s instead of 15 minutes; and a live peer whose receive window stays
/// closed answers a probe at least this often. The price: after a loss, retransmissions are
/// at most this far apart instead of backing off further, which suits a data centre or a LAN
/// (round trips far below a second), not a path whose round trip nears a second.
pub const LINK_RTO_MAX_MS: u32 = 1_000;
/// About how long a connection lives after its peer's kernel last answered, while data waits
/// for it (unacknowledged, or held back by a closed receive window): the kernel's 15 tries
/// (`net.ipv4.tcp_retries2`'s default) under [`LINK_RTO_MAX_MS`] take 14.4 s from the first
/// retransmission (`tcp_model_timeout`: 7 x 0.2 s + 13 x 1 s), 15-16 s of unanswered
/// zero-window probes; measured on Linux 6.18 with a peer cut by iptables: 14.8 s and 16.0 s.
/// A peer that answers is never timed out, however long its process does not read: a node
/// stopped, descheduled or swapping keeps its links (test
/// `a_node_stopped_longer_than_the_link_timeout_keeps_its_links`). On a kernel without
/// `TCP_RTO_MAX_MS` (before 6.15) every connection gets `TCP_USER_TIMEOUT` of this instead,
/// which also closes a link whose peer keeps its window closed this long.
pub const LINK_TIMEOUT_SECS: u64 = 16;
/// A connection with keepalive probes sends its first probe after this long without
/// receiving anything, then one a second, and is closed after [`KEEPALIVE_PROBES`]
/// unanswered ones: an idle peer that vanished is noticed within 10 s.
pub const KEEPALIVE_IDLE_SECS: u64 = 5;
/// Unanswered keepalive probes (a second apart) that close a connection.
pub const KEEPALIVE_PROBES: u32 = 5;
const _: () = assert!(KEEPALIVE_IDLE_SECS + KEEPALIVE_PROBES as u64 <= LINK_TIMEOUT_SECS);
/// Connections of a node that send keepalive probes: its registry connection only, so that a
/// node notices while idle that its registry's machine is gone. Table links and every
/// accepted connection (a node's predecessors, the registry's side) have none.
///
/// Why not every link: probes do not scale on one machine. The kernel runs keepalive timers in
/// batches (its timer wheel rounds a timer of 5 s to a quarter or half a second, by `HZ`), and
/// loopback queues a whole batch of probes in one CPU's backlog before it delivers any of them;
/// what passes `net.core.netdev_max_backlog` (1,000 packets by default) is dropped. With
/// probes on both ends of every link, an idle overlay of N nodes at NR 12 has 2 x N x (NR + 3
/// backups) + 2 x N of them, a probe each every [`KEEPALIVE_IDLE_SECS`]: at 4,096 nodes 120,000
/// sockets sent 16,000 probes a second during set-up, loopback dropped 280,000 packets, and
/// links whose probes were dropped five times in a row were cut (docs/SCALE.md). One socket a
/// node makes it N / 5 s, 2,000 probes a second at 10,000 nodes. Those can still come in one
/// burst (every node's registry connection goes idle after the same poll round), but a probe
/// dropped is sent again a second later, with only the other dropped ones: two runs of 10,000
/// nodes on the default backlog dropped 475 and 172 packets in all, and lost no connection.
///
/// Nothing is lost by it: a table link carries every run's data and acks, and data its peer's
/// kernel does not answer for about [`LINK_TIMEOUT_SECS`] closes it, so a link to a machine that
/// vanished between runs is closed within that of the next run's first packet on it, which then
/// goes around it as around a crash; the registry notices a vanished node at its next message to
/// it (a task, a counter poll, a manifest) the same way. A link from a predecessor whose machine
/// vanished without a reset stays open at the node (inbound links send nothing) until it is closed
/// from the other side or the node exits; [`NODE_INBOUND_LINKS_MAX`] bounds them.
pub const KEEPALIVE_CONNECTIONS_PER_NODE: usize = 1;

/// The widest identifier space of the Chord finger rule (`src/chord/`): 160 bits, as SHA-1 in
/// the Chord paper.
pub const CHORD_ID_BITS_MAX: u32 = 160;
/// The most nodes `overlay simulate` builds tables for (about 1 KiB each with 160-bit IDs).
pub const SIMULATE_NODES_MAX: usize = 1 << 18;
/// Backup entries every node keeps besides its table (its successors on the ring, as Chord's
/// successor lists): used only when a link dies, to route around the dead node at once
/// without waiting for the registry (`chord/churn.rs` has the argument for 3: any two crashes,
/// and any crashes without 3 consecutive members, are routed around; positions tables already
/// hold successors 1 and 2, so this costs them one more link). Not Chord's log2 N: the
/// registry repairs all the nodes lost at once in one change (within 0.5 to 2.2 s of a
/// massive failure on a loaded machine, docs/CHURN.md), so the backups only bridge that
/// change, and each one more is a link every node keeps open for the overlay's life (30,000
/// more at 10,000 nodes for r = 6). The price: when a third or more of the overlay dies in one
/// instant, packets that meet 3 dead successors in a row before the repair wait for it
/// (`overlay::Stuck`, bounded by [`relay_queued_bytes_max`]).
pub const BACKUP_ENTRIES: usize = 3;
/// Most nodes one repair takes out of the tables (nodes lost together: `Change::Lost`,
/// `Change::Repair`, 4 bytes each on the wire, 32 KiB within a [`FRAME_BYTES_MAX`] frame with
/// the receiver's new table). Half the overlay at 16,000 nodes ([`NODES_MAX`]) is one repair;
/// more lost at once are repaired in as many changes as they need.
pub const REPAIR_NODES_MAX: usize = 8192;
const _: () = assert!(REPAIR_NODES_MAX * 4 + 1024 <= FRAME_BYTES_MAX);
const _: () = assert!(REPAIR_NODES_MAX <= u16::MAX as usize);
/// Most joins (and as many leaves) `overlay simulate --churn` samples: each rebuilds every
/// table twice, about 50 ms at 10,000 nodes, so this bounds a run to a couple of minutes.
pub const SIMULATE_CHURN_SAMPLES_MAX: u64 = 1000;
/// The most nodes `overlay simulate --all-pairs` takes: N x (N - 1) lookups.
pub const SIMULATE_ALL_PAIRS_NODES_MAX: usize = 4096;

// ----- The io_uring driver (src/io/) -----

/// Submission queue entries: operations pushed between two submits (a full queue is submitted
/// and the push retried, so this bounds batching, not connections).
pub const RING_SUBMISSION_ENTRIES: u32 = 1024;
/// The largest completion queue the kernel accepts (the driver asks for room for a receive and
/// a send per connection, within `2 x RING_SUBMISSION_ENTRIES..=` this).
pub const RING_COMPLETION_ENTRIES_MAX: u32 = 65536;
/// Descriptors a process needs besides one per connection slot (the ring, listeners, the
/// console's socket pair, the signals' socket pairs, the core's poll token, standard streams,
/// files it writes).
pub const DESCRIPTORS_BESIDES_CONNECTIONS: u64 = 64;
/// Connections the kernel queues on a listener before the loop accepts them (the kernel caps it at net.core.somaxconn, 4096 by default): thousands of nodes dial one
/// registry at once, and a request that finds the queue full is retransmitted only a second
/// later.
pub const LISTEN_BACKLOG_CONNECTIONS: i32 = 4096;
/// While completions keep arriving, the driver holds a link's bytes back until there are this
/// many...
pub const SEND_BATCH_BYTES: usize = 64 * 1024;
/// ...or until they have waited this long. When the loop has nothing else to do it sends
/// everything at once, so batching costs no latency at light load.
pub const SEND_HOLD_NS: u64 = 200_000;
/// A relay sends the part of a data frame at least this long that it does not change (all but
/// the header and trace) from the receive buffer it arrived in, instead of copying it into the
/// next hop's queue (`Lent`, in a process with a receive buffer per connection). Below it the
/// copy costs less than the bookkeeping: an iovec more in the send, a reference held.
pub const HELD_FRAME_BYTES_MIN: usize = 2048;
/// How far ahead of the frame it is at the receive loop asks for the received bytes to be
/// brought into the first-level cache (`io::prefetch::read_ahead`, once per frame). The kernel
/// copies a receive of up to [`RECV_BUFFER_BYTES`] at once, more than that cache holds, so
/// without it each line of frames came from the next level as the loop reached it. Measured
/// in W2 (`tools/launch.sh 64 1000000 6`, alternating builds, 2026-12-04; means of three
/// rounds against none in the same set): 256 bytes ahead +1.9%, 1 KiB +3.2% and +4.1% (higher
/// in 6 of 6 rounds), 4 KiB +4.5% packets/s.
pub const READ_AHEAD_BYTES: usize = 1024;
/// How far past the end of a link's queue the receive loop and origination ask for its buffer
/// to be brought into the first-level cache, to be written (`io::prefetch::write_ahead`, once
/// per frame appended): a queue's buffer comes back from the driver's last send of it cold.
/// Measured in W2 (`tools/launch.sh 64 1000000 6`, alternating builds, 2026-12-04): 21.0-21.2
/// -> 23.3-23.6 M packets/s at 512 bytes; 256, 1,024 and 2,048 bytes alike within the runs'
/// spread (21.6-23.0 M).
pub const WRITE_AHEAD_BYTES: usize = 512;
/// Receive buffers a process keeps alive for the frames queued from them (see
/// [`HELD_FRAME_BYTES_MIN`]) beyond each connection's own: once this many are held, receives
/// go on with copying relays until some buffer's last held frame has been sent, so the memory
/// they add stays within `HELD_RECV_BUFFERS_MAX x RECV_BUFFER_BYTES` (8 MiB). Never waiting
/// for them keeps rule 1 (always read, always relay): the fallback is the copy.
pub const HELD_RECV_BUFFERS_MAX: usize = 32;
/// In processes whose send buffers grow on demand (a group of nodes, the registry), a send
/// buffer larger than this is freed once a burst is over: when a send used a quarter of it at
/// most, or when the connection has nothing more to send (both its buffers then). A batched
/// send at light load is at most [`SEND_BATCH_BYTES`], so buffers of that size are kept and
/// reused; only what a burst grew is given back, and a burst grows a fresh one again.
pub const SEND_BUFFER_KEPT_BYTES: usize = SEND_BATCH_BYTES;
/// A trunk's take frees a stream's queue buffer (in its node) larger than this once a take
/// finds a quarter of it at most. Smaller than [`SEND_BUFFER_KEPT_BYTES`]: a process has a
/// stream per remote link (up to 140,000 at 10,000 nodes), and what waits for a trunk's
/// credit waits in those queues, so each kept buffer counts; buffers this small come from the
/// allocator's free lists (below glibc's 128 KiB mmap threshold), so growing one again costs
/// no page clearing. At most 140,000 x 8 KiB = 1.1 GB kept at 10,000 nodes; measured there
/// with 64 KiB windows: peak 5.1 GB against 6.7 GB with the 64 KiB rule, the rate unchanged
/// at 1,024 nodes (docs/SCALE.md, "Memory with trunks").
pub const STREAM_QUEUE_KEPT_BYTES: usize = 8 * 1024;
/// A stream's queue buffer that a burst grew past [`STREAM_QUEUE_KEPT_BYTES`] is kept while
/// bursts recur: until this long after the last take that found more than a quarter of it
/// (`node::mux::grown`). Then the next take that finds a quarter at most frees it, or, if no
/// take comes, the mux's sweep within as long again. Without it a busy stream's queue was
/// freed between bursts and grown again by doubling, each growth a copy: in W2 in two
/// processes of 32 nodes with trunks the growths copied 2.3-2.5 GB per process, 0.25-0.36 GB
/// with buffers never freed, and the run went from 16.1-16.7 to 17.8-18.7 M packets/s
/// (docs/PERFORMANCE.md, "Trunks' credit"). Memory: a stream keeps its largest burst at most
/// two of these after its bursts stop; a burst is bounded by the flow-control windows as before.
pub const STREAM_BURST_GAP_NS: u64 = 1_000_000_000;
/// Emptied buffers a mux keeps for batches that pass a trunk's credit (`node::mux`): such a
/// batch is held as it is and its node queues into a spare, instead of the batch's rest being
/// copied aside (a copy of most of W3's bytes in two processes: 9.6% of a process's samples).
/// One batch per take passes the credit and one held batch empties, so a few suffice; each
/// is a batch's size, bounded by the flow-control windows like the queue it came from, and
/// the mux's sweep frees them. Held batches all sent that a driver's gathered send still names
/// wait to become spares, as many at most (past that they are freed by the last holder).
pub const SPARE_QUEUE_BUFFERS_MAX: usize = 4;
/// How long the loop waits at exit for the kernel to finish with its buffers (what is still in
/// flight after that is leaked, never freed).
pub const EXIT_DRAIN_TIMEOUT_MS: u64 = 2_000;
/// After an accept fails for want of a descriptor (EMFILE, ENFILE) or of kernel memory (ENOBUFS,
/// ENOMEM), the driver arms it again this much later, not at once: the connection stays in the
/// listen queue, so an accept armed at once fails at once, and the loop spun a whole core (1.6
/// million failures in 5 s). Ten tries a second cost nothing measurable, and a descriptor that a
/// closing link frees is taken within 0.1 s, far inside a join attempt's
/// [`JOIN_ATTEMPT_TIMEOUT_NS`] and the link timeout, so peers see at most a short delay.
pub const ACCEPT_RETRY_NS: u64 = 100_000_000;
/// While accepts fail for want of a resource, the driver warns at most this often, with the
/// count of failures since its last warning: the operator learns of the shortage at once and
/// that it lasts, and the log stays a few lines a minute however long it lasts.
pub const ACCEPT_WARNING_INTERVAL_NS: u64 = 5_000_000_000;
/// Bytes of the loop's console receive buffer: room for several whole lines.
pub const CONSOLE_BUFFER_BYTES: usize = 4 * (COMMAND_LINE_BYTES_MAX + 1);

const _: () = assert!(2 * RING_SUBMISSION_ENTRIES <= RING_COMPLETION_ENTRIES_MAX);
const _: () = assert!(SEND_BATCH_BYTES <= SEND_BUFFER_BYTES);
const _: () = assert!(ACCEPT_RETRY_NS < JOIN_ATTEMPT_TIMEOUT_NS);
const _: () = assert!(ACCEPT_RETRY_NS < ACCEPT_WARNING_INTERVAL_NS);
const _: () = assert!(TRUNK_STREAM_KEPT_BYTES_MAX >= FRAME_BYTES_MAX);
const _: () = assert!(TRUNK_CREDIT_BYTES <= TRUNK_CREDIT_BYTES_MAX);
const _: () = assert!(TRUNK_STREAMS_MAX < u32::MAX as usize / 2);

/// Lookups a node (or the registry) waits for at once. A lookup is asked by an operator, or
/// by the registry for one: more waiting at once means replies are being lost, and each is a
/// few dozen bytes.
pub const LOOKUPS_PENDING_MAX: usize = 64;

/// How long a node waits for a lookup's reply before it reports the lookup failed.
pub const LOOKUP_TIMEOUT_NS: Nanos = 5_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_window_grows_to_32_nodes_and_shrinks_past_64() {
        const KIB: u64 = 1024;
        for (nodes, window) in [
            (2, 256 * KIB),
            (4, 512 * KIB),
            (10, 1280 * KIB),
            (32, 4096 * KIB),
            (64, 4096 * KIB),
            (128, 2048 * KIB),
            (1024, 256 * KIB),
            (NODES_MAX, 256 * KIB),
        ] {
            assert_eq!(default_window_bytes(nodes), window, "{nodes} nodes");
        }
    }
}
