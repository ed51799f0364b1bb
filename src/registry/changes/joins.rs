//! Joins: who is a joiner (outside the run until its links are up), and a join's start: the
//! tables with the newcomer and its manifest (its stages are in `stages.rs`).

use super::*;

impl<C: Codec> Registry<C> {
    /// Node `id` registered while the overlay is live: it joins, and until its links are up
    /// it is outside the run ([`Changes::joiners`]).
    pub(in crate::registry) fn queue_join(&mut self, now: Nanos, id: NodeId) {
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.changes.joiners.insert(id);
        }
        self.queue_change(now, Queued::Join(id));
    }

    /// Whether node `id` is registered but outside the run for now (joining).
    pub(in crate::registry) fn is_joiner(&self, id: NodeId) -> bool {
        self.overlay
            .as_ref()
            .is_some_and(|o| o.changes.joiners.contains(&id))
    }

    /// Node `id` is no joiner any more (in the run now, or gone); whether it was.
    pub(in crate::registry) fn end_joiner(&mut self, id: NodeId) -> bool {
        self.overlay.as_mut().is_some_and(|o| {
            o.changes.failed_setups.remove(&id);
            o.changes.retries.remove(&id);
            o.changes.identifiers.remove(&id);
            o.changes.joiners.remove(&id)
        })
    }

    /// The registered nodes a run counts on: all but the joiners.
    pub(in crate::registry) fn run_nodes(&self) -> usize {
        let joiners = self.overlay.as_ref().map_or(0, |o| o.changes.joiners.len());
        self.nodes.len() - joiners
    }

    /// Their IDs.
    pub(in crate::registry) fn run_node_ids(&self) -> Vec<NodeId> {
        self.nodes
            .keys()
            .copied()
            .filter(|&id| !self.is_joiner(id))
            .collect()
    }

    /// A join: the tables with the newcomer, its manifest; the others hear of it once it is
    /// connected.
    pub(super) fn start_join(&mut self, now: Nanos, id: NodeId) -> bool {
        let (ring, identifiers) = match self.with_members(&[id]) {
            Ok(membership) => membership,
            Err(why) if self.run.is_some() => {
                // It fitted when it registered (with the joins queued before it), but a
                // change that went first (a repair, a leave) gave routes that its traces no
                // longer hold: it is refused as its registration would be now, and the run
                // goes on. (Dropping the overlay here left the run waiting for it.)
                self.say(format!("Node {id} could not join during the run: {why}"));
                if let Some(conn) = self.nodes.get(&id).map(|n| n.conn) {
                    self.refuse_and_close(
                        now,
                        conn,
                        format!("node {id} could not join during the run: {why}"),
                    );
                }
                self.end_joiner(id);
                return false;
            }
            Err(why) => {
                // Between runs: the overlay is set up again, as before live membership.
                self.overlay_changed(now, format!("node {id} joined, and {why}"));
                return true;
            }
        };
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.changes.identifiers.remove(&id);
        }
        let Some(overlay) = self.overlay.as_mut() else {
            return false;
        };
        let Ok((tables, chord)) = overlay.tables_for(&ring, identifiers) else {
            return false;
        };
        overlay.version += 1;
        let version = overlay.version;
        let position = ring.position(id).expect("the newcomer is in the ring");
        let backups = backups_of::<C>(&ring, chord.as_ref(), &tables);
        // Repairs go first (`Changes::enqueue`), so every member is registered; were one not,
        // the newcomer is let go rather than given a table naming a node that is gone.
        if let Some(gone) = tables[position]
            .iter()
            .chain(&backups[position])
            .find(|entry| !self.nodes.contains_key(entry))
            .copied()
        {
            if let Some(conn) = self.nodes.get(&id).map(|n| n.conn) {
                self.refuse_and_close(
                    now,
                    conn,
                    format!("node {id} could not join: its table names node {gone}, which is gone"),
                );
            }
            self.end_joiner(id);
            return false;
        }
        let entry_of = |&entry: &NodeId| ManifestEntry {
            id: entry,
            addr: self.nodes[&entry].addr,
        };
        let manifest = Manifest {
            entries: tables[position].iter().map(entry_of).collect(),
            backups: backups[position].iter().map(entry_of).collect(),
            all_ids: ring.ids().into(),
            chord: chord.as_ref().map(|layout| {
                Arc::new(ChordIds {
                    bits: layout.space().bits(),
                    ids: (0..ring.len()).map(|p| layout.id(p)).collect(),
                })
            }),
            trace_slots: overlay.trace_slots as u8,
            trace_slot_bytes: crate::wire::slot_bytes_for(self.config.id_bits) as u8,
            window_bytes: overlay.window_bytes,
            epoch: overlay.epoch,
        };
        // The overlay's tables are the ones being switched to from now on.
        let previous_tables = std::mem::replace(&mut overlay.tables, tables);
        let previous_backups = std::mem::replace(&mut overlay.backups, backups);
        let previous_ring = std::mem::replace(&mut overlay.ring, ring);
        let previous_chord = std::mem::replace(&mut overlay.chord, chord);
        overlay.nr = overlay.tables.iter().map(Vec::len).max().unwrap_or(0);
        overlay.previous = Some((
            previous_ring,
            previous_tables,
            previous_backups,
            previous_chord,
        ));
        self.begin(
            now,
            id,
            false,
            Stage::JoinSetup,
            version,
            BTreeSet::from([id]),
        );
        // The newcomer's setup is a connection and a handshake per entry, all at once: past
        // the handshake timeout it is not coming, and the changes queued behind it go on.
        if let Some(current) = self
            .overlay
            .as_mut()
            .and_then(|o| o.changes.current.as_mut())
        {
            current.deadline = current.deadline.min(now + JOIN_SETUP_TIMEOUT_NS);
            current.manifest_epoch = Some(manifest.epoch);
        }
        self.send_to_node(id, &Control::Manifest(manifest));
        true
    }
}
