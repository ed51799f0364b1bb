//! The membership a change would give (a newcomer's identifier, the ring with or without
//! nodes), and whether the overlay can take a join or a leave during a run.

use super::*;

impl<C: Codec> Registry<C> {
    /// The identifier node `id` joins with (Chord mode): drawn at random (or hashed from
    /// its address) once, when it registers, and kept until it has joined, so that the
    /// check at registration and the join itself see the same membership.
    pub(super) fn identifier_for(&mut self, id: NodeId) -> Result<Option<Id>, String> {
        let overlay = self.overlay.as_ref().ok_or("no overlay")?;
        let (Fingers::Chord { hashed, .. }, Some(layout)) = (overlay.fingers, &overlay.chord)
        else {
            return Ok(None);
        };
        if let Some(&identifier) = overlay.changes.identifiers.get(&id) {
            return Ok(Some(identifier));
        }
        let space = layout.space();
        let mut taken: BTreeSet<Id> = (0..overlay.ring.len()).map(|p| layout.id(p)).collect();
        taken.extend(overlay.changes.identifiers.values().copied());
        let identifier = if hashed {
            let addr = self
                .nodes
                .get(&id)
                .ok_or("not registered")?
                .addr
                .to_string();
            let mut identifier = space.hash(addr.as_bytes());
            let mut counter = 0u64;
            while taken.contains(&identifier) {
                counter += 1;
                let mut salted = addr.as_bytes().to_vec();
                salted.extend_from_slice(&counter.to_be_bytes());
                identifier = space.hash(&salted);
            }
            identifier
        } else {
            if space.bits() < 64 && taken.len() as u64 >= 1u64 << space.bits() {
                return Err(format!(
                    "every identifier of the {}-bit space is taken",
                    space.bits()
                ));
            }
            loop {
                let identifier = space.random(&mut self.rng);
                if !taken.contains(&identifier) {
                    break identifier;
                }
            }
        };
        if let Some(overlay) = self.overlay.as_mut() {
            overlay.changes.identifiers.insert(id, identifier);
        }
        Ok(Some(identifier))
    }

    /// The membership of the overlay with `newcomers` added (with their identifiers), its
    /// tables checked; `Err` says why it cannot be.
    pub(super) fn with_members(
        &mut self,
        newcomers: &[NodeId],
    ) -> Result<(Ring, Option<Vec<Id>>), String> {
        let mut identifiers = Vec::with_capacity(newcomers.len());
        for &id in newcomers {
            identifiers.push((id, self.identifier_for(id)?));
        }
        let overlay = self.overlay.as_ref().ok_or("no overlay")?;
        let mut ids = overlay.ring.ids().to_vec();
        ids.extend_from_slice(newcomers);
        let ring = Ring::new(ids);
        let identifiers = overlay.chord.as_ref().map(|layout| {
            ring.ids()
                .iter()
                .map(|&member| match overlay.ring.position(member) {
                    Some(p) => layout.id(p),
                    None => identifiers
                        .iter()
                        .find(|(id, _)| *id == member)
                        .and_then(|(_, identifier)| *identifier)
                        .unwrap_or(Id::ZERO),
                })
                .collect()
        });
        overlay.tables_for(&ring, identifiers.clone())?;
        Ok((ring, identifiers))
    }

    /// The membership without the nodes `gone`.
    pub(super) fn without_members(
        &self,
        gone: &BTreeSet<NodeId>,
    ) -> Option<(Ring, Option<Vec<Id>>)> {
        let overlay = self.overlay.as_ref()?;
        let stays = |p: &usize| !gone.contains(&overlay.ring.ids()[*p]);
        let ring = Ring::new(
            (0..overlay.ring.len())
                .filter(stays)
                .map(|p| overlay.ring.ids()[p])
                .collect(),
        );
        let identifiers = overlay.chord.as_ref().map(|layout| {
            (0..overlay.ring.len())
                .filter(stays)
                .map(|p| layout.id(p))
                .collect()
        });
        Some((ring, identifiers))
    }

    /// Whether node `id` may leave gracefully during a run (`Err`: the members that would be
    /// left, and why not): the members left once it and every node leaving or lost before it
    /// are gone must still fill the tables and fit the traces. A leave that does not is
    /// refused, so the run goes on.
    pub(in crate::registry) fn leave_fits(&self, id: NodeId) -> Result<(), (usize, String)> {
        let Some(overlay) = self.overlay.as_ref() else {
            return Ok(());
        };
        let mut gone: BTreeSet<NodeId> = overlay
            .changes
            .queue
            .iter()
            .filter_map(|queued| match queued {
                Queued::Leave(node) | Queued::Lost(node) => Some(*node),
                Queued::Join(_) => None,
            })
            .collect();
        if let Some(current) = overlay.changes.current.as_ref().filter(|c| {
            !matches!(
                c.stage,
                Stage::JoinSetup | Stage::JoinPrepare | Stage::JoinCommit
            )
        }) {
            gone.extend(current.nodes.iter().copied());
        }
        gone.insert(id);
        let Some((ring, identifiers)) = self.without_members(&gone) else {
            return Ok(());
        };
        let left = ring.len();
        overlay
            .tables_for(&ring, identifiers)
            .map(|_| ())
            .map_err(|why| (left, why))
    }

    /// Whether a node that registers now could join the overlay while a run goes (`Err`:
    /// why not). Between runs a join that does not fit makes the overlay be set up again.
    pub(in crate::registry) fn join_fits(&mut self, id: NodeId) -> Result<(), String> {
        // With every join queued before it: they all join during the run.
        let mut newcomers: Vec<NodeId> = self
            .overlay
            .as_ref()
            .map(|o| {
                o.changes
                    .queue
                    .iter()
                    .filter_map(|q| match q {
                        Queued::Join(id) => Some(*id),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        newcomers.push(id);
        let fits = self.with_members(&newcomers).map(|_| ());
        if fits.is_err()
            && let Some(overlay) = self.overlay.as_mut()
        {
            overlay.changes.identifiers.remove(&id);
        }
        fits
    }
}
