//! Control messages between nodes and the registry, independent of any encoding.

use std::net::SocketAddr;

use super::NodeId;
use crate::auth::{NONCE_BYTES, PROOF_BYTES};
use crate::chord::Id;
use crate::stats::RunStats;

/// The status field of a reply: the reference sends an ID (or the node's own ID) for success and
/// -1 for failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok(NodeId),
    Failed,
}

/// What a registration refused because its address is registered already says after the
/// address (the registry's wording, which a node that gave up on an earlier attempt reads:
/// that attempt's registration may be what the registry still holds).
pub const ALREADY_REGISTERED: &str = "is already registered as node";

/// One routing-table entry as the manifest carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub id: NodeId,
    pub addr: SocketAddr,
}

/// What the registry tells a node at setup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The node's table, in hop order: entry i is 2^i positions ahead (the position rule), or
    /// the distinct Chord fingers by increasing distance.
    pub entries: Vec<ManifestEntry>,
    /// Every node ID in the overlay. Shared: every node's manifest carries the same IDs, so
    /// the registry holds them once however many manifests it has.
    pub all_ids: std::sync::Arc<[NodeId]>,
    /// Chord fingers (native only): the overlay's identifiers; `None` for the position rule.
    /// Shared: every node's manifest carries the same identifiers.
    pub chord: Option<std::sync::Arc<ChordIds>>,
    /// Relay slots of every data frame's trace in this overlay (native only; the classic
    /// format's traces grow with each relay, and decode as 0).
    pub trace_slots: u8,
    /// Bytes of each trace slot in this overlay's data frames: 1, 2 or 4, the fewest that hold
    /// every ID of the registry's ID space (`wire::slot_bytes_for`; native only: the classic
    /// format decodes as 4, its trace IDs' width).
    pub trace_slot_bytes: u8,
    /// Bytes of data frames a source may have unacknowledged (native only; 0 = no window,
    /// which is what the classic format decodes as).
    pub window_bytes: u64,
    /// The node's backup entries (native only): its first `limits::BACKUP_ENTRIES` successors
    /// on the ring (by identifier in Chord mode) that are not table entries already, in ring
    /// order. A node links to them at setup and sends on them only to route around a dead
    /// table link (`chord::churn`).
    pub backups: Vec<ManifestEntry>,
    /// The window's epoch at the other nodes (final reports since the overlay was set up):
    /// 0 at setup, the current one for a node that joins a running overlay (native only).
    pub epoch: u32,
}

/// A change of the overlay's membership, as the registry tells it to a node
/// ([`Control::Membership`]; docs/ARCHITECTURE.md, "Membership that changes").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    /// The membership's version after the change (one more per change since setup).
    pub version: u32,
    pub change: Change,
    /// The receiver's new routing table, in hop order, and its backup entries, when the
    /// change alters either (only the nodes whose tables or backups change get one).
    pub table: Option<NewTable>,
}

/// A node's links after a membership change: its routing table, in hop order, then its
/// backup entries (as a manifest's: native only, at most `limits::BACKUP_ENTRIES`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewTable {
    pub entries: Vec<ManifestEntry>,
    pub backups: Vec<ManifestEntry>,
}

/// What changed, and what the receiver does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Node `id` joins at `addr` (with its Chord identifier in Chord mode): a trace may name
    /// it from now on; connect to the new table's entries (if any), and acknowledge once they
    /// are up. The tables in use stay until [`Change::Commit`].
    Join {
        id: NodeId,
        addr: SocketAddr,
        identifier: Option<Id>,
    },
    /// Every node knows of joining node `id`: switch to the tables with it, and acknowledge.
    Commit { id: NodeId },
    /// Every node routes to `id` now: it may be picked as a sink. Not acknowledged.
    Open { id: NodeId },
    /// Node `id` is leaving: pick it no more as a sink (the leaver itself stops
    /// originating), then acknowledge with the packets originated toward it since setup.
    Leave { id: NodeId },
    /// To the leaver `id`: acknowledge once `expected` packets in all have reached it as
    /// their sink since setup.
    Drain { id: NodeId, expected: u64 },
    /// Node `id` is out of the overlay: route around it (the new table, if any, once its
    /// links are up), then acknowledge.
    Gone { id: NodeId },
    /// To the leaver `id`: it is in nobody's table any more; acknowledge once every link
    /// other nodes opened to it has been closed by them.
    Close { id: NodeId },
    /// Nodes `ids` were lost (their registry connections closed: crashed), together: pick
    /// none of them as a sink any more, then acknowledge. Sent again, with a newer version,
    /// when more are lost before their repair begins (at most `limits::REPAIR_NODES_MAX`).
    Lost { ids: Vec<NodeId> },
    /// Nodes `ids`, lost together, are out of the overlay: switch to the tables without all
    /// of them (the new table, if any, once its links are up), then acknowledge.
    Repair { ids: Vec<NodeId> },
}

/// The identifiers of a Chord overlay, as a manifest carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChordIds {
    /// m: identifiers lie in 0..2^m, 1..=160.
    pub bits: u32,
    /// The identifier of each node of [`Manifest::all_ids`], in that order.
    pub ids: Vec<Id>,
}

/// Members of an overlay as a manifest's continuation carries them (native only): the next
/// node IDs of [`Manifest::all_ids`] and, in Chord mode, their identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    pub ids: Vec<NodeId>,
    /// Chord mode: the identifier of each of `ids`, in that order.
    pub chord: Option<ChordIds>,
}

/// A manifest whose members come in several frames ([`Control::ManifestStart`], then
/// [`Control::ManifestMore`] until every member is there), put back together by its node.
/// It never holds more than the `members` the start announced, which the decoder bounds by
/// [`crate::limits::MANIFEST_MEMBERS_MAX`].
#[derive(Debug)]
pub struct ManifestAssembly {
    manifest: Manifest,
    ids: Vec<NodeId>,
    chord: Option<ChordIds>,
    members: usize,
}

impl ManifestAssembly {
    /// A manifest's first frame: `manifest` with its first members, of `members` in all.
    pub fn start(manifest: Manifest, members: usize) -> ManifestAssembly {
        let ids = manifest.all_ids.to_vec();
        let chord = manifest.chord.as_deref().cloned();
        ManifestAssembly {
            manifest,
            ids,
            chord,
            members,
        }
    }

    /// The next members: the whole manifest once the last of them came, or why they do not
    /// belong to it (more members than announced, identifiers of another width or missing).
    pub fn more(&mut self, more: Members) -> Result<Option<Manifest>, String> {
        if more.ids.is_empty() || more.ids.len() > self.members - self.ids.len() {
            return Err(format!(
                "a manifest continuation of {} members after {} of {}",
                more.ids.len(),
                self.ids.len(),
                self.members
            ));
        }
        match (&mut self.chord, more.chord) {
            (None, None) => {}
            (Some(chord), Some(next)) if next.bits == chord.bits => chord.ids.extend(next.ids),
            (mine, theirs) => {
                return Err(format!(
                    "a manifest continuation with {}-bit identifiers in a manifest of {}-bit ones \
                     (0: none)",
                    theirs.map_or(0, |chord| chord.bits),
                    mine.as_ref().map_or(0, |chord| chord.bits)
                ));
            }
        }
        self.ids.extend(more.ids);
        if self.ids.len() < self.members {
            return Ok(None);
        }
        Ok(Some(Manifest {
            all_ids: std::mem::take(&mut self.ids).into(),
            chord: self.chord.take().map(std::sync::Arc::new),
            ..std::mem::take(&mut self.manifest)
        }))
    }
}

/// What a run's packets are addressed to (`start N keys`, `--targets keys`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Targets {
    /// Each packet to a random other node, routed by its sink's ID.
    #[default]
    Nodes,
    /// Each packet to a random key of 0..2^bits that another node owns, routed by the key at
    /// every hop and delivered at its owner (native only: the keyed data frame).
    Keys { bits: u32 },
}

impl Targets {
    /// "nodes" or "keys", as the result JSON records it.
    pub fn name(self) -> &'static str {
        match self {
            Targets::Nodes => "nodes",
            Targets::Keys { .. } => "keys",
        }
    }
}

/// A node's traffic counters. Sums are 64-bit like the reference's longs, added with
/// wrapping arithmetic (the registry totals them in i128).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets this node originated.
    pub sent: u64,
    /// Packets for which this node was the sink and that passed every check.
    pub received: u64,
    /// Packets this node forwarded.
    pub relayed: u64,
    pub sum_sent: i64,
    pub sum_received: i64,
    /// Packets that reached this node as sink but failed a check (CRC, layout, trace).
    pub corrupted: u64,
    /// Packets this node held but could not forward (its next hop's link was gone, or the
    /// bound on what links may have queued was reached).
    pub dropped: u64,
    /// Packets of an earlier run that reached this node as sink (their run tag is another
    /// run's: `DataShape::run_tag`), dropped uncounted otherwise (native only).
    pub stale: u64,
    /// Inbound links this node cut for asking it alone to queue more than the bound on what
    /// links may have queued (`limits::relay_queued_bytes_max`; native only).
    pub links_cut: u64,
    /// Frames (data and acks) this node dropped because its inbound links together had that
    /// bound queued (native only).
    pub relay_bound_drops: u64,
}

impl Counters {
    /// Adds `other` field by field (wrapping sums, like the reference's longs).
    pub fn add(&mut self, other: &Counters) {
        self.sent += other.sent;
        self.received += other.received;
        self.relayed += other.relayed;
        self.sum_sent = self.sum_sent.wrapping_add(other.sum_sent);
        self.sum_received = self.sum_received.wrapping_add(other.sum_received);
        self.corrupted += other.corrupted;
        self.dropped += other.dropped;
        self.stale += other.stale;
        self.links_cut += other.links_cut;
        self.relay_bound_drops += other.relay_bound_drops;
    }
}

/// Data packets that crossed one link of a node, counted at that node: the per-link view
/// that lets the registry account for every packet when a node is lost (it holds whatever it
/// was handed) and check every link when none is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkCount {
    /// The node at the other end. The row for the reporting node's own ID counts the data
    /// packets it took on links that are no node's (their first packet named no node that
    /// holds it in its table): foreign traffic.
    pub peer: NodeId,
    /// Data packets this node queued for its link to `peer` (queued ones that never left
    /// when the link died are counted as dropped instead).
    pub sent: u64,
    /// Data packets this node took from the link `peer` opened to it.
    pub received: u64,
}

/// What a lookup found (`lookup KEY`): the key's owner and the path there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupAnswer {
    /// The key looked up, in hex.
    pub key: String,
    /// The node that owns it.
    pub owner: NodeId,
    /// The nodes the lookup went through: the asker, the relays, the owner (the asker alone
    /// when it owns the key).
    pub path: Vec<NodeId>,
    /// From asking to the reply, at the asker (0 when it owns the key).
    pub round_trip_ns: u64,
}

/// Why a peer closes a connection, told before it closes ([`Control::Refused`]), so that the
/// other side can say what is wrong instead of "closed by peer".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many connections wait to register or authenticate (from the peer's address, or in
    /// all); a newer one pushed this one out. Trying again later may work.
    Busy,
    /// This side requires the shared secret (`--secret-file`) and the peer has none.
    SecretRequired,
    /// The peer offered a shared secret and this side has none.
    NoSecret,
    /// The peer's proof does not match this side's secret (another secret, or an impostor).
    WrongSecret,
    /// This side speaks the classic wire format: it read the peer's first frame as one of the
    /// other byte order. The only native frame a classic-format side sends, so that a native
    /// peer learns why it is closed ([`Codec::farewell_to_the_other_format`]).
    ///
    /// [`Codec::farewell_to_the_other_format`]: super::Codec::farewell_to_the_other_format
    ClassicWire,
    /// The peer's hello named another native protocol version than this side's, `ours`
    /// (another build: their data frames do not read alike).
    Version { ours: u16 },
}

impl Refusal {
    /// What it means, said of `peer` (for example "the registry at 10.0.0.1:5000").
    pub fn describe(&self, peer: &str) -> String {
        match self {
            Refusal::Busy => {
                format!("{peer} is busy: too many connections wait to register or authenticate")
            }
            Refusal::SecretRequired => {
                format!("{peer} requires a shared secret (--secret-file) and this side has none")
            }
            Refusal::NoSecret => format!(
                "{peer} has no shared secret: start both sides with the same --secret-file, \
                 or neither"
            ),
            Refusal::WrongSecret => format!(
                "{peer} does not share this side's secret (its proof or ours did not match): \
                 do both use the same --secret-file?"
            ),
            Refusal::ClassicWire => format!(
                "{peer} speaks the classic wire format, not the native one: start both sides \
                 with the same --wire"
            ),
            Refusal::Version { ours } => format!(
                "{peer} speaks native protocol version {ours}, this side {}: run the same \
                 build of overlay everywhere (their data frames do not read alike)",
                super::native::PROTOCOL_VERSION
            ),
        }
    }
}

/// The process a registering node runs in, shared by every node of that process
/// (`overlay node --count K`): the registry places a group's nodes apart on the ring, so that
/// most of a route's hops stay within a process (docs/ARCHITECTURE.md, "Placement").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupTag {
    /// Drawn at random by the process, the same for all its nodes.
    pub token: u64,
    /// How many nodes the process runs (1..=`limits::NODES_MAX`).
    pub size: u32,
}

/// Every control message of the system. The data plane (data packets, acks) is not here: it
/// goes through the codec's in-place functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Node -> registry: register me at this listening address; `group`: the nodes of my
    /// process, which the registry places apart on the ring (native only).
    Register {
        addr: SocketAddr,
        group: Option<GroupTag>,
    },
    /// Registry -> node: the ID given, or a refusal; `info` says which.
    RegisterStatus { status: Status, info: String },
    /// Node -> registry: remove me.
    Deregister { addr: SocketAddr, id: NodeId },
    /// Registry -> node.
    DeregisterStatus { status: Status, info: String },
    /// Registry -> node: your routing table and the overlay's node IDs. A native manifest
    /// whose members do not fit one frame is sent in several, and decoded as a
    /// [`Control::ManifestStart`] and its [`Control::ManifestMore`]s.
    Manifest(Manifest),
    /// Registry -> node, native only: the first frame of a manifest of `members` members,
    /// `manifest` holding the first of them.
    ManifestStart { manifest: Manifest, members: usize },
    /// Registry -> node, native only: the next members of the manifest being sent.
    ManifestMore(Members),
    /// Node -> registry: my table's connections are up (my ID) or failed (-1).
    SetupStatus { status: Status, info: String },
    /// Registry -> node: originate `packets` packets (run number `run` and extra payload:
    /// native only; the classic format decodes them as 0 and cannot carry extra payload).
    TaskInitiate {
        run: u32,
        packets: u64,
        extra_payload_bytes: u32,
        /// Packets per second to originate at most (0 = as fast as the window allows; native
        /// only).
        rate_per_s: u32,
        /// Node IDs or keys (native only; the classic format decodes nodes).
        targets: Targets,
    },
    /// Node -> registry: I have originated every packet of the run.
    TaskFinished { addr: SocketAddr, id: NodeId },
    /// Registry -> node: report counters; `reset` = final report (counters restart after it).
    /// The classic encoding only knows the final report (`Codec::PROGRESS_POLLS`). `links`: a
    /// progress report carries the per-link counts too, as a final one always does (the
    /// registry asks for them once a node crashed during the run, to know when it is over).
    SummaryRequest { reset: bool, links: bool },
    /// Connector -> acceptor, the first frame of every native connection: whether the
    /// connector holds a shared secret (`--secret-file`) and, if it does, its fresh nonce
    /// (`crate::auth`; native only); and the native protocol version it speaks
    /// ([`PROTOCOL_VERSION`]: an acceptor of another version refuses it,
    /// [`Refusal::Version`]).
    ///
    /// [`PROTOCOL_VERSION`]: super::native::PROTOCOL_VERSION
    Hello {
        nonce: Option<[u8; NONCE_BYTES]>,
        version: u16,
    },
    /// Acceptor -> connector, the answer to a hello with a nonce: the acceptor's fresh nonce
    /// and its proof of the secret over both nonces, both roles and its address.
    Challenge {
        nonce: [u8; NONCE_BYTES],
        proof: [u8; PROOF_BYTES],
    },
    /// Connector -> acceptor, once the acceptor's proof checked out: the connector's proof
    /// over the same transcript, before anything else.
    Response { proof: [u8; PROOF_BYTES] },
    /// Either side, just before it closes the connection: why (native only).
    Refused(Refusal),
    /// Registry -> node: look `key` up through the overlay (`lookup KEY` at the registry's
    /// console; the key in the operator's words; native only).
    Lookup { number: u32, key: String },
    /// Node -> registry: what the registry's lookup `number` found, or why it failed.
    LookupResult {
        number: u32,
        result: Result<LookupAnswer, String>,
    },
    /// Registry -> node: the membership changed (native only: the classic format's overlays
    /// stay as set up).
    Membership(MembershipChange),
    /// Node -> registry: change `version` is done here; `count` is what the change asks for
    /// (packets originated toward a leaving node), 0 otherwise.
    MembershipAck { version: u32, count: u64 },
    /// Node -> registry: my counters; `reset` echoes the request.
    Summary {
        id: NodeId,
        reset: bool,
        counters: Counters,
        /// Hop counts and latency histograms of the packets this node received (native only).
        stats: Option<RunStats>,
        /// Data packets per link since the last final report (native only; empty otherwise).
        links: Vec<LinkCount>,
    },
}

impl Control {
    /// The message's name in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Control::Register { .. } => "registration",
            Control::RegisterStatus { .. } => "registration status",
            Control::Deregister { .. } => "deregistration",
            Control::DeregisterStatus { .. } => "deregistration status",
            Control::Manifest(_) | Control::ManifestStart { .. } => "manifest",
            Control::ManifestMore(_) => "manifest continuation",
            Control::SetupStatus { .. } => "setup status",
            Control::TaskInitiate { .. } => "task initiate",
            Control::TaskFinished { .. } => "task finished",
            Control::SummaryRequest { .. } => "summary request",
            Control::Summary { .. } => "traffic summary",
            Control::Hello { .. } => "hello",
            Control::Challenge { .. } => "authentication challenge",
            Control::Response { .. } => "authentication response",
            Control::Refused(_) => "refusal",
            Control::Lookup { .. } => "lookup request",
            Control::LookupResult { .. } => "lookup result",
            Control::Membership(_) => "membership change",
            Control::MembershipAck { .. } => "membership acknowledgement",
        }
    }
}
