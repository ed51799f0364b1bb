//! Control with the registry: registration, the manifest that sets up the overlay, tasks,
//! summaries and deregistration.

use std::collections::VecDeque;

use super::flow::Flow;
use super::links::{Connection, Role};
use super::originate::Run;
use super::overlay::{Entry, Link, Members, Overlay};
use super::views::Views;
use super::{Node, Phase, Said};
use crate::auth::{self, Binding, Failure, Handshake, Outcome};
use crate::buffer;
use crate::limits::{BACKUP_ENTRIES, NODE_REGISTRY_QUEUED_BYTES_MAX, PAYLOAD_BYTES_MAX};
use crate::machine::{Effect, Nanos};
use crate::routing::Router;
use crate::wire::{
    Codec, Control, Manifest, ManifestAssembly, NodeId, PayloadCrc, Refusal, Status, Targets,
    fits_slot,
};

use rand::RngCore;

impl<C: Codec> Node<C> {
    /// Appends a message for the registry.
    pub(super) fn send_control(&mut self, message: &Control) {
        let Some(connection) = self.connections.get_mut(&self.registry) else {
            return;
        };
        if connection.pending.is_empty() {
            self.effects.push(Effect::Send(self.registry));
        }
        C::encode_control(message, &mut connection.pending);
        let queued = connection.pending.len();
        if queued > NODE_REGISTRY_QUEUED_BYTES_MAX {
            self.registry_failed(format!(
                "the registry does not read what this node sends ({queued} bytes queued for it)"
            ));
        }
    }

    /// Asks the registry to register this node at its listening address.
    pub(super) fn register(&mut self) {
        self.phase = Phase::Registering;
        self.send_control(&Control::Register {
            addr: self.config.listen,
            group: self.config.group,
        });
    }

    pub(super) fn on_registry_bytes(&mut self, now: Nanos, bytes: &[u8]) -> usize {
        let mut offset = 0;
        loop {
            if !self.connections.contains_key(&self.registry) {
                // Closed while handling an earlier message: nothing more is read.
                return bytes.len();
            }
            let len = match C::frame_len(&bytes[offset..]) {
                Ok(Some(len)) => len,
                Ok(None) => return offset,
                Err(error) => {
                    self.registry_failed(format!("bad frame from the registry: {error}"));
                    return bytes.len();
                }
            };
            let frame = &bytes[offset..offset + len];
            offset += len;
            match C::decode_control(frame) {
                Ok(message) if !self.registry_handshake_done() => {
                    self.registry_handshake(now, &message)
                }
                Ok(message) => self.handle_control(now, message),
                Err(error) => {
                    self.registry_failed(format!("bad message from the registry: {error}"));
                    return bytes.len();
                }
            }
        }
    }

    fn registry_failed(&mut self, why: String) {
        self.close(self.registry, format!("{why}; exiting"));
        self.effects.push(Effect::Exit(1));
    }

    fn handle_control(&mut self, now: Nanos, message: Control) {
        if self.manifest_parts.is_some() {
            return self.on_manifest_more(now, message);
        }
        match message {
            Control::RegisterStatus { status, info } => self.on_register_status(now, status, info),
            Control::DeregisterStatus { status, info } => match (status, self.phase) {
                (Status::Ok(_), Phase::Exiting { .. }) => {
                    self.say(format!("Deregistered: {info}"));
                    self.depart(now);
                }
                (Status::Ok(_), _) => {
                    self.say(format!("Unrequested deregistration status: {info}"))
                }
                (Status::Failed, phase) => {
                    if let Phase::Exiting { id } = phase {
                        self.phase = Phase::Registered { id };
                    }
                    self.say(format!(
                        "Deregistration refused: {}",
                        reason(&info, "deregistration")
                    ));
                }
            },
            Control::Manifest(manifest) => self.on_manifest(now, manifest),
            Control::ManifestStart { manifest, members } => {
                self.manifest_parts = Some(ManifestAssembly::start(manifest, members))
            }
            Control::ManifestMore(_) => self.registry_failed(
                "bad manifest from the registry: a continuation without its start".into(),
            ),
            Control::Membership(change) => self.on_membership(change),
            Control::TaskInitiate {
                run,
                packets,
                extra_payload_bytes,
                rate_per_s,
                targets,
            } => {
                let task = Task {
                    number: run,
                    packets,
                    extra: extra_payload_bytes,
                    rate_per_s,
                    targets,
                };
                self.on_task_initiate(now, task)
            }
            Control::SummaryRequest { reset, links } => self.on_summary_request(now, reset, links),
            Control::Lookup { number, key } => self.lookup(now, &key, Some(number)),
            Control::Refused(refusal) => self.registry_refused(now, Failure::Refused(refusal)),
            other => {
                let why = format!(
                    "registry sent a {} message, which only nodes send; closing the registry \
                     connection",
                    other.name()
                );
                self.close(self.registry, why);
                self.effects.push(Effect::Exit(1));
            }
        }
    }

    /// Connected to the registry: say hello (and, with a secret, wait for its challenge;
    /// without, register at once).
    pub(super) fn greet_registry(&mut self) {
        if C::HELLO {
            let binding = Binding {
                acceptor: auth::Role::Registry,
                acceptor_addr: self.config.registry,
            };
            let (handshake, hello) =
                Handshake::connect(self.config.secret.as_ref(), binding, &mut self.nonces);
            if let Some(connection) = self.connections.get_mut(&self.registry) {
                connection.handshake = handshake;
            }
            self.send_control(&hello);
        }
        if self.registry_handshake_done() {
            self.register();
        }
    }

    fn registry_handshake_done(&self) -> bool {
        self.connections
            .get(&self.registry)
            .is_none_or(|c| c.handshake.is_done())
    }

    /// A message from the registry while the handshake runs: its challenge (we check its
    /// proof, prove ourselves, and register), or its refusal.
    fn registry_handshake(&mut self, now: Nanos, message: &Control) {
        let Some(connection) = self.connections.get_mut(&self.registry) else {
            return;
        };
        let outcome = connection.handshake.on_message(
            self.config.secret.as_ref(),
            Some(message),
            &mut self.nonces,
        );
        match outcome {
            Outcome::Done(response) => {
                if let Some(response) = response {
                    self.send_control(&response);
                }
                self.register();
            }
            Outcome::Failed(failure) => self.registry_refused(now, failure),
            Outcome::Reply(_) | Outcome::PassThrough => {
                self.registry_refused(now, Failure::OutOfTurn)
            }
        }
    }

    /// The registry refused us, or failed our handshake: say why (telling it too, when it
    /// is our side that refuses), close and exit; but a registry too busy to keep our
    /// connection while we join is tried again, as one that did not answer.
    fn registry_refused(&mut self, now: Nanos, failure: Failure) {
        if failure == Failure::Refused(Refusal::Busy) && self.join_busy(now) {
            return;
        }
        let line = failure.describe(&format!("the registry at {}", self.config.registry));
        self.say(format!("{line}; exiting"));
        self.close_telling(self.registry, failure.tell(), line, Said::Already);
        self.joining = None;
        self.effects.push(Effect::Exit(1));
    }

    fn on_register_status(&mut self, now: Nanos, status: Status, info: String) {
        if self.phase != Phase::Registering {
            self.say(format!(
                "Ignoring an unrequested registration status: {info}"
            ));
            return;
        }
        match status {
            Status::Ok(id) => {
                self.joined();
                self.phase = Phase::Registered { id };
                self.say(format!("Registered as node {id}: {info}"));
            }
            Status::Failed if self.join_after_our_own_registration(now, &info) => {}
            Status::Failed => {
                self.say(format!(
                    "Registration refused: {}",
                    reason(&info, "registration")
                ));
                self.effects.push(Effect::Exit(1));
            }
        }
    }

    /// The next frame from the registry while a manifest comes in several: it must be the
    /// manifest's next members; the last of them sets the overlay up.
    fn on_manifest_more(&mut self, now: Nanos, message: Control) {
        let Some(parts) = self.manifest_parts.as_mut() else {
            return;
        };
        let done = match message {
            Control::ManifestMore(more) => parts.more(more),
            other => Err(format!("a {} in the middle of a manifest", other.name())),
        };
        match done {
            Ok(None) => {}
            Ok(Some(manifest)) => {
                self.manifest_parts = None;
                self.on_manifest(now, manifest);
            }
            Err(why) => {
                self.manifest_parts = None;
                self.registry_failed(format!("bad manifest from the registry: {why}"));
            }
        }
    }

    fn on_manifest(&mut self, now: Nanos, manifest: Manifest) {
        let Some(id) = self.phase.id() else {
            self.send_control(&Control::SetupStatus {
                status: Status::Failed,
                info: "got a manifest before being registered".into(),
            });
            return;
        };
        // A new setup replaces the old overlay and its connections; the new overlay starts
        // from zero (no run, no counters, a fresh window).
        if let Some(old) = self.overlay.take() {
            for entry in old.entries {
                self.connections.remove(&entry.conn);
                self.effects.push(Effect::Close(entry.conn));
            }
        }
        let nodes = manifest.all_ids.len();
        let nr = manifest.entries.len();
        let members = Members {
            ids: manifest.all_ids.to_vec(),
            chord: manifest.chord,
            nr,
            trace_slots: usize::from(manifest.trace_slots),
        };
        let slot_bytes = usize::from(manifest.trace_slot_bytes);
        // A relay writes its ID's low bytes into a slot, so every ID must fit one (the
        // registry draws them from an ID space whose IDs do: `wire::slot_bytes_for`).
        let too_wide = std::iter::once(id)
            .chain(members.ids.iter().copied())
            .find(|&member| !fits_slot(member, slot_bytes));
        let router = if nr == 0 {
            Err("the manifest has no table entries".to_string())
        } else if !matches!(slot_bytes, 1 | 2 | 4) {
            Err(format!("trace slots of {slot_bytes} bytes (1, 2 or 4)"))
        } else if let Some(member) = too_wide {
            Err(format!(
                "node {member} does not fit the overlay's trace slots of {slot_bytes} bytes"
            ))
        } else {
            members.router(&self.views, id)
        };
        let router = router.and_then(|router| {
            let table = router.entry_ids();
            let ids: Vec<NodeId> = manifest.entries.iter().map(|e| e.id).collect();
            if table != ids {
                return Err(format!(
                    "the manifest's table {ids:?} is not the ring's {table:?}"
                ));
            }
            // Backups are only ever sent on short of a sink (`chord::churn::detour`), so any
            // other member will do; a stranger or this node itself will not.
            if manifest.backups.len() > BACKUP_ENTRIES {
                return Err(format!(
                    "the manifest has {} backup entries, more than {BACKUP_ENTRIES}",
                    manifest.backups.len()
                ));
            }
            if let Some(backup) = manifest.backups.iter().find(|backup| {
                backup.id == id || ids.contains(&backup.id) || router.position(backup.id).is_none()
            }) {
                return Err(format!(
                    "the manifest's backup entry {} is no other member of the overlay outside \
                     the table",
                    backup.id
                ));
            }
            Ok(if C::DETOURS {
                router.with_backup_holders(BACKUP_ENTRIES)
            } else {
                router
            })
        });
        let router = match router {
            Ok(router) => router,
            Err(info) => {
                self.say(format!("Overlay setup failed: {info}"));
                self.send_control(&Control::SetupStatus {
                    status: Status::Failed,
                    info,
                });
                return;
            }
        };
        let mut entries = Vec::with_capacity(nr + manifest.backups.len());
        for (index, entry) in manifest.entries.iter().chain(&manifest.backups).enumerate() {
            let conn = self.conn_ids.next_outbound();
            let role = Role::Entry(entries.len());
            self.connections
                .insert(conn, Connection::new(role, Handshake::Done));
            self.effects.push(Effect::Connect {
                conn,
                addr: entry.addr,
                keepalive: false,
            });
            entries.push(Entry {
                id: entry.id,
                addr: entry.addr,
                distance: router
                    .position(entry.id)
                    .map_or(0, |position| router.distance_to(position)),
                conn,
                link: Link::Connecting,
                // A backup carries packets only around a dead link: its buffer grows then.
                pending: if index < nr {
                    buffer::mapped_empty(self.config.link_buffer_bytes)
                } else {
                    Vec::new()
                },
                with_driver: 0,
                packets_out: 0,
                taken_bytes: 0,
                spans: VecDeque::new(),
                stranded: Vec::new(),
                held: Vec::new(),
                held_bytes: 0,
            });
        }
        let mut flow = Flow::new(nodes, manifest.window_bytes);
        flow.epoch = manifest.epoch;
        // No packet of this epoch's run was sent to this node before it had its manifest.
        flow.epoch_began_at = now;
        self.overlay = Some(Overlay::new(
            id,
            (members, router),
            (
                usize::from(manifest.trace_slots),
                usize::from(manifest.trace_slot_bytes),
            ),
            entries,
            flow,
            self.config.listen,
        ));
    }

    fn on_task_initiate(&mut self, now: Nanos, task: Task) {
        let Task {
            number,
            packets,
            extra,
            rate_per_s,
            targets,
        } = task;
        let Some(overlay) = self.overlay.as_mut() else {
            // The stop reaches a node that joined after the run started, before its table was
            // set up: it has nothing to stop.
            if packets > 0 {
                self.say("Task initiate refused: the overlay is not set up");
            }
            return;
        };
        if packets == 0 {
            // A task of no packets is the registry's stop (docs/PROTOCOL.md): the current run
            // originates nothing more and is reported finished; nothing else of it changes.
            let run = overlay.run.get_or_insert_with(|| Run {
                number,
                remaining: 0,
                originated: 0,
                rate_per_s: 0,
                started_at: now,
                payload: Vec::new(),
                keys: None,
            });
            run.remaining = 0;
            self.finish_run();
            return;
        }
        let extra = extra as usize;
        if extra > PAYLOAD_BYTES_MAX - 4 {
            let line = format!(
                "Task initiate refused: {extra} bytes of extra payload exceed {}",
                PAYLOAD_BYTES_MAX - 4
            );
            tracing::warn!("registry {}: {line}", self.config.registry);
            self.say(line);
            return;
        }
        let keys = match targets {
            Targets::Nodes => None,
            Targets::Keys { bits } => match overlay.router.key_draw(bits) {
                Ok(draw) => Some(draw),
                Err(why) => {
                    let line = format!("Task initiate refused: {why}");
                    tracing::warn!("registry {}: {line}", self.config.registry);
                    self.say(line);
                    return;
                }
            },
        };
        overlay.shape.extra_payload_bytes = extra;
        let mut payload = vec![0u8; 4 + extra];
        self.rng.fill_bytes(&mut payload[4..]);
        match &mut self.payload_crc {
            Some(payload_crc) => payload_crc.retarget(&payload),
            None => self.payload_crc = Some(PayloadCrc::new(&payload)),
        }
        // `TASK_UNTIL_STOPPED` packets (a run by time) count down like any other number: at
        // a billion packets a second they would last 584 years; the registry's stop comes first.
        overlay.run = Some(Run {
            number,
            remaining: packets,
            originated: 0,
            rate_per_s,
            // Drawn only at a rate: a run as fast as the window allows leaves the node's
            // random sequence as it was (seeded simulations replay it).
            started_at: match rate_per_s {
                0 => now,
                rate => Run::phased_start(now, rate, self.rng.next_u64()),
            },
            payload,
            keys,
        });
    }

    /// Starts a lookup of `key` (for the registry's lookup `for_registry`, if it asked).
    pub(super) fn lookup(&mut self, now: Nanos, key: &str, for_registry: Option<u32>) {
        match self.overlay.as_mut() {
            Some(overlay) => overlay.lookup(&mut self.effects, now, key, for_registry),
            None => {
                let why = "the overlay is not set up".to_string();
                self.say(format!("Lookup {key} failed: {why}"));
                if let Some(number) = for_registry {
                    self.send_control(&Control::LookupResult {
                        number,
                        result: Err(why),
                    });
                }
            }
        }
        self.report_lookups();
    }

    /// Tells the registry how the lookups it asked for ended.
    pub(super) fn report_lookups(&mut self) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        if overlay.lookups.for_registry.is_empty() {
            return;
        }
        for (number, result) in std::mem::take(&mut overlay.lookups.for_registry) {
            self.send_control(&Control::LookupResult { number, result });
        }
    }

    /// The run has originated its last packet: tell the registry.
    pub(super) fn finish_run(&mut self) {
        let Some(overlay) = self.overlay.as_mut() else {
            return;
        };
        if let Some(run) = overlay.run.take() {
            tracing::debug!("run {} originated", run.number);
            let id = overlay.id;
            self.send_control(&Control::TaskFinished {
                addr: self.config.listen,
                id,
            });
        }
    }

    fn on_summary_request(&mut self, now: Nanos, reset: bool, links: bool) {
        let Some(id) = self.phase.id() else {
            tracing::warn!("a summary request before this node registered: ignored");
            return;
        };
        let (counters, stats, links) = match self.overlay.as_mut() {
            Some(overlay) => {
                // A final report carries the run's histograms, a progress report those since
                // the previous one (small: only what arrived in between). Packets are
                // recorded once, in `stats_since_poll`, which joins the run's `stats` at each
                // report.
                let since_poll = std::mem::take(&mut overlay.stats_since_poll);
                overlay.stats.add(&since_poll);
                let stats = C::HAS_STATS.then(|| {
                    if reset {
                        overlay.stats.to_run_stats()
                    } else {
                        since_poll.to_run_stats()
                    }
                });
                let links = if reset || links {
                    overlay.link_counts()
                } else {
                    Vec::new()
                };
                if reset {
                    // Packets still held will never go on: dropped in this run's count.
                    overlay.drop_stuck();
                }
                let counters = overlay.counters;
                if reset {
                    overlay.reset_counts(now);
                }
                (counters, stats, links)
            }
            None => (
                Default::default(),
                C::HAS_STATS.then(Default::default),
                Vec::new(),
            ),
        };
        self.send_control(&Control::Summary {
            id,
            reset,
            counters,
            stats,
            links,
        });
        if reset {
            // A leaver's drain under way waits for no packet any more (`Leaving::reported`).
            self.check_leaving();
        }
    }
}

/// A task initiate's fields.
struct Task {
    number: u32,
    packets: u64,
    extra: u32,
    rate_per_s: u32,
    targets: Targets,
}

impl Members {
    /// The router of node `id` in this membership, by the process's shared view of it.
    pub(super) fn router(&self, views: &Views, id: NodeId) -> Result<Router, String> {
        views
            .view(&self.ids, self.chord.as_deref(), self.nr, self.trace_slots)
            .and_then(|view| Router::of(view, id))
    }
}

/// A refusal's reason: the registry's text without a leading "WHAT refused:" of its own (ours
/// says "registration refused: ...", a reference registry may not), so a line says it once.
fn reason<'a>(info: &'a str, what: &str) -> &'a str {
    let prefix = format!("{what} refused:");
    match info.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(&prefix) => info[prefix.len()..].trim_start(),
        _ => info,
    }
}
