//! Membership that changes, in memory: what a join or a leave costs each finger rule (the
//! tables that change), and routing around failed nodes with stale tables plus backup entries,
//! the rule a messaging node follows when a table link dies (`routing::Router`).
//!
//! **Backup entries.** Besides its table, every node knows the [`BACKUP_ENTRIES`] (r = 3)
//! members that follow it on the ring (by identifier under Chord), as Chord's successor lists
//! do. They are used only when a link is dead, never in normal routing, so paths (and the
//! positions rule's exact hop formula) do not change while every node lives.
//!
//! **Route-around** ([`detour`]). When the entry a packet would take is dead, it goes to the
//! live entry or backup that lies furthest clockwise without passing the packet's owner (its
//! sink): every hop still makes clockwise progress, so a packet never visits a node twice and
//! reaches its owner unless every candidate short of the owner is dead. Its owner dead, a
//! packet is lost with it. A node is stuck only when its r successors are all dead and the
//! owner lies beyond them: so any set of crashes without r consecutive members in ring order is
//! routed around, whatever their number, and any two crashes always are. With each node dead
//! independently with probability p, a hop is stuck with probability at most p^r; Chord's
//! r = log2 N makes that at most 1/N at p = 1/2 (the paper's Theorem IV.5). Our registry
//! repairs the tables within milliseconds of a crash (it knows the membership), so the lists
//! only need to bridge the crashes of that moment; `overlay simulate --fail` measures both r
//! at massive failure (docs/CHURN.md).

use rand::Rng;
use rand::rngs::SmallRng;
use serde::Serialize;

use super::id::Id;
use super::membership::Membership;
use super::table::{FingerRule, FingerTable, Step};
use crate::limits::{BACKUP_ENTRIES, SIMULATE_CHURN_SAMPLES_MAX};

/// Chord's successor-list length for `nodes` nodes: ceil(log2 N), at least 1, at most N - 1.
pub fn log2_backups(nodes: usize) -> usize {
    let log2 = nodes.max(2).next_power_of_two().ilog2() as usize;
    log2.min(nodes.saturating_sub(1)).max(1)
}

/// The route-around choice: among `candidates` (each an index and its clockwise distance from
/// this node), the live one (`alive`) furthest clockwise without passing the owner at
/// `owner_distance`; `None` when no live candidate makes progress toward it.
#[inline]
pub fn detour(
    owner_distance: usize,
    candidates: impl IntoIterator<Item = (usize, usize)>,
    alive: impl Fn(usize) -> bool,
) -> Option<usize> {
    candidates
        .into_iter()
        .filter(|&(index, distance)| distance > 0 && distance <= owner_distance && alive(index))
        .max_by_key(|&(_, distance)| distance)
        .map(|(index, _)| index)
}

/// What a membership change costs one finger rule, averaged over samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeCost {
    pub samples: u64,
    /// Nodes (other than one joining) whose tables change: the registry sends each of them
    /// one update.
    pub nodes_changed_mean: f64,
    pub nodes_changed_max: u64,
    /// Table entries that point at another member afterwards, summed over those nodes.
    pub entries_changed_mean: f64,
    pub entries_changed_max: u64,
}

/// Join and leave costs of one rule at one size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Churn {
    pub join: ChangeCost,
    pub leave: ChangeCost,
    /// Nodes whose backup entries (successor lists of r) change per join or leave: the r
    /// members before the one that joins or leaves.
    pub backups_changed: usize,
    /// log2(N)^2: the order of the messages Chord's own join protocol sends (the paper,
    /// Theorem IV.6), for comparison.
    pub chord_join_messages: f64,
}

/// The identifiers of a member's table entries, sorted.
fn entry_ids(membership: &Membership, table: &FingerTable, out: &mut Vec<Id>) {
    out.clear();
    out.extend(table.entries().iter().map(|&m| membership.id(m as usize)));
    out.sort_unstable();
}

/// Entries of `after` not in `before` or of `before` not in `after`, whichever is more (both
/// sorted): how many entries point elsewhere.
fn entries_changed(before: &[Id], after: &[Id]) -> u64 {
    let (mut i, mut j, mut common) = (0, 0, 0u64);
    while i < before.len() && j < after.len() {
        match before[i].cmp(&after[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    before.len().max(after.len()) as u64 - common
}

/// The cost of going from `before` to `after` (one member more or fewer): nodes present in
/// both whose tables differ, and the entries that differ.
fn change_cost(
    rule: FingerRule,
    before: &Membership,
    tables_before: &[FingerTable],
    after: &Membership,
) -> Result<(u64, u64), String> {
    let tables_after = FingerTable::all(rule, after)?;
    let (mut nodes, mut entries) = (0, 0);
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for (member, table) in tables_before.iter().enumerate() {
        let Some(now) = after.position(before.id(member)) else {
            continue;
        };
        entry_ids(before, table, &mut old);
        entry_ids(after, &tables_after[now], &mut new);
        let changed = entries_changed(&old, &new);
        if changed > 0 {
            nodes += 1;
            entries += changed;
        }
    }
    Ok((nodes, entries))
}

fn summarise(samples: &[(u64, u64)]) -> ChangeCost {
    let count = samples.len().max(1) as f64;
    ChangeCost {
        samples: samples.len() as u64,
        nodes_changed_mean: samples.iter().map(|s| s.0).sum::<u64>() as f64 / count,
        nodes_changed_max: samples.iter().map(|s| s.0).max().unwrap_or(0),
        entries_changed_mean: samples.iter().map(|s| s.1).sum::<u64>() as f64 / count,
        entries_changed_max: samples.iter().map(|s| s.1).max().unwrap_or(0),
    }
}

/// `samples` random joins and as many random leaves, each from `membership` as it is.
pub fn churn(
    rule: FingerRule,
    membership: &Membership,
    samples: u64,
    rng: &mut SmallRng,
) -> Result<Churn, String> {
    if samples > SIMULATE_CHURN_SAMPLES_MAX {
        return Err(format!(
            "--churn rebuilds every table twice per sample: at most {SIMULATE_CHURN_SAMPLES_MAX} \
             samples, not {samples}"
        ));
    }
    let space = membership.space();
    let tables = FingerTable::all(rule, membership)?;
    let ids: Vec<Id> = (0..membership.len()).map(|m| membership.id(m)).collect();
    let mut joins = Vec::new();
    let mut leaves = Vec::new();
    for _ in 0..samples {
        let newcomer = loop {
            let id = space.random(rng);
            if membership.position(id).is_none() {
                break id;
            }
        };
        let mut grown = ids.clone();
        grown.push(newcomer);
        joins.push(change_cost(
            rule,
            membership,
            &tables,
            &Membership::new(space, grown)?,
        )?);
        let mut shrunk = ids.clone();
        shrunk.swap_remove(rng.random_range(0..ids.len()));
        leaves.push(change_cost(
            rule,
            membership,
            &tables,
            &Membership::new(space, shrunk)?,
        )?);
    }
    let log2 = (membership.len() as f64).log2();
    Ok(Churn {
        join: summarise(&joins),
        leave: summarise(&leaves),
        backups_changed: BACKUP_ENTRIES.min(membership.len() - 1),
        chord_join_messages: log2 * log2,
    })
}

/// Lookups after a fraction of the nodes failed at once, before any table is repaired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The fraction of nodes killed.
    pub p: f64,
    pub killed: usize,
    /// Lookups from live sources.
    pub lookups: u64,
    /// Their share whose owner was killed (lost with it).
    pub owner_failed: f64,
    /// The share of lookups to live owners that got stuck (no live entry or backup short of
    /// the owner), with the nodes' [`BACKUP_ENTRIES`] backups each.
    pub stuck: f64,
    /// The same with Chord's log2 N backups ([`log2_backups`]).
    pub stuck_log2_backups: f64,
    /// The same with the stale tables alone (no backups).
    pub stuck_without_backups: f64,
    /// Mean transmissions of the lookups that arrived (with backups).
    pub mean_hops: f64,
    /// The registry's repair, all killed nodes in one change: the live nodes whose tables
    /// change (each gets one new table), and the entries that change in them; `None` when
    /// the nodes left cannot keep the rule's tables (the overlay must be set up again).
    pub repair_nodes_changed: Option<u64>,
    pub repair_entries_changed: Option<u64>,
}

/// A lookup of `key` from `from` among the live members: `Some(hops)` when it reaches the
/// owner, `None` when it gets stuck. Each node takes its entry when that node lives, and
/// otherwise routes around ([`detour`]) over its entries and its first `backups` successors.
fn walk_around(
    membership: &Membership,
    tables: &[FingerTable],
    dead: &[bool],
    backups: usize,
    from: usize,
    key: Id,
) -> Option<u32> {
    let nodes = membership.len();
    let owner = membership.successor(key);
    let mut at = from;
    let mut hops = 0u32;
    loop {
        let next = match tables[at].next_hop(membership, key) {
            Step::Owner => return Some(hops),
            Step::Deliver(entry) | Step::Forward(entry) => tables[at].entries()[entry] as usize,
        };
        at = if !dead[next] {
            next
        } else {
            let entries = tables[at].entries().iter().map(|&m| m as usize);
            let successors = (1..=backups).map(|step| (at + step) % nodes);
            let here = at;
            let candidates = entries
                .chain(successors)
                .map(|m| (m, membership.positions_between(here, m)));
            detour(membership.positions_between(at, owner), candidates, |m| {
                !dead[m]
            })?
        };
        hops += 1;
        assert!(hops as usize <= nodes, "a detour went round the ring");
    }
}

/// Kills `p` of the members at once for each `p` and walks `lookups` lookups from live nodes
/// (random keys under Chord, random other nodes under positions).
pub fn failures(
    rule: FingerRule,
    membership: &Membership,
    fractions: &[f64],
    lookups: u64,
    rng: &mut SmallRng,
) -> Result<Vec<Failure>, String> {
    let tables = FingerTable::all(rule, membership)?;
    let nodes = membership.len();
    let by_node = matches!(rule, FingerRule::Positions { .. });
    let mut out = Vec::new();
    for &p in fractions {
        if !(0.0..1.0).contains(&p) {
            return Err(format!("a failed fraction must lie in [0, 1), not {p}"));
        }
        let killed = ((nodes as f64 * p).round() as usize).min(nodes - 1);
        let mut order: Vec<usize> = (0..nodes).collect();
        for i in 0..killed {
            let j = rng.random_range(i..nodes);
            order.swap(i, j);
        }
        let mut dead = vec![false; nodes];
        order[..killed].iter().for_each(|&m| dead[m] = true);
        let live = &order[killed..];
        let (mut owner_failed, mut hops, mut arrived) = (0u64, 0u64, 0u64);
        // Stuck with r = BACKUP_ENTRIES, log2 N, none.
        let mut stuck = [0u64; 3];
        for _ in 0..lookups {
            let from = live[rng.random_range(0..live.len())];
            let key = if by_node {
                membership.id((from + rng.random_range(1..nodes)) % nodes)
            } else {
                membership.space().random(rng)
            };
            if dead[membership.successor(key)] {
                owner_failed += 1;
                continue;
            }
            match walk_around(membership, &tables, &dead, BACKUP_ENTRIES, from, key) {
                Some(h) => {
                    arrived += 1;
                    hops += u64::from(h);
                }
                None => stuck[0] += 1,
            }
            for (count, backups) in stuck[1..].iter_mut().zip([log2_backups(nodes), 0]) {
                if walk_around(membership, &tables, &dead, backups, from, key).is_none() {
                    *count += 1;
                }
            }
        }
        let alive: Vec<Id> = (0..nodes)
            .filter(|&m| !dead[m])
            .map(|m| membership.id(m))
            .collect();
        let repair = Membership::new(membership.space(), alive)
            .and_then(|after| change_cost(rule, membership, &tables, &after))
            .ok();
        let to_live = (lookups - owner_failed).max(1) as f64;
        out.push(Failure {
            p,
            killed,
            lookups,
            owner_failed: owner_failed as f64 / lookups.max(1) as f64,
            stuck: stuck[0] as f64 / to_live,
            stuck_log2_backups: stuck[1] as f64 / to_live,
            stuck_without_backups: stuck[2] as f64 / to_live,
            mean_hops: hops as f64 / arrived.max(1) as f64,
            repair_nodes_changed: repair.map(|r| r.0),
            repair_entries_changed: repair.map(|r| r.1),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chord::IdSpace;
    use crate::chord::lookup::lookup;
    use rand::SeedableRng;

    #[test]
    fn log2_backups_are_log2_n() {
        assert_eq!(log2_backups(2), 1);
        assert_eq!(log2_backups(3), 2);
        assert_eq!(log2_backups(8), 3);
        assert_eq!(log2_backups(64), 6);
        assert_eq!(log2_backups(10_000), 14);
    }

    #[test]
    fn detour_takes_the_furthest_live_candidate_short_of_the_owner() {
        let candidates = [(0, 1), (1, 2), (2, 4), (3, 8), (4, 3)];
        assert_eq!(detour(5, candidates, |_| true), Some(2));
        assert_eq!(detour(5, candidates, |i| i != 2), Some(4));
        assert_eq!(detour(8, candidates, |i| i != 3), Some(2));
        // The owner itself is a candidate.
        assert_eq!(detour(3, candidates, |_| true), Some(4));
        // Nothing short of the owner lives: stuck.
        assert_eq!(detour(2, candidates, |i| i > 1), None);
    }

    /// With nobody dead the walk around is the plain lookup; with nodes dead every lookup to a
    /// live owner arrives when r covers the gaps, and a detour never passes the owner.
    #[test]
    fn walks_around_dead_nodes() {
        let mut rng = SmallRng::seed_from_u64(9);
        let space = IdSpace::new(32).unwrap();
        let membership = Membership::random(space, 200, &mut rng).unwrap();
        for rule in [FingerRule::Chord, FingerRule::Positions { nr: 7 }] {
            let tables = FingerTable::all(rule, &membership).unwrap();
            let none_dead = vec![false; 200];
            for _ in 0..500 {
                let from = rng.random_range(0..200);
                let key = space.random(&mut rng);
                assert_eq!(
                    walk_around(&membership, &tables, &none_dead, 8, from, key),
                    Some(lookup(&membership, &tables, from, key).hops)
                );
            }
            // Two of every five nodes dead, never three in a row: three backups always suffice
            // (a live one is among them), two do not.
            let dead: Vec<bool> = (0..200).map(|m| m % 5 == 1 || m % 5 == 2).collect();
            let mut stuck_with_one = 0;
            for from in (0..200).filter(|m| !dead[*m]) {
                for owner in (0..200).filter(|m| !dead[*m] && *m != from) {
                    let id = membership.id(owner);
                    let hops = walk_around(&membership, &tables, &dead, 3, from, id);
                    assert!(hops.is_some(), "{rule:?} {from} -> {owner}");
                    if walk_around(&membership, &tables, &dead, 1, from, id).is_none() {
                        stuck_with_one += 1;
                    }
                }
            }
            if rule == FingerRule::Chord {
                assert!(stuck_with_one > 0);
            }
        }
    }

    #[test]
    fn chord_changes_few_nodes_and_positions_many() {
        let mut rng = SmallRng::seed_from_u64(4);
        let space = IdSpace::new(160).unwrap();
        let membership = Membership::random(space, 256, &mut rng).unwrap();
        let chord = churn(FingerRule::Chord, &membership, 5, &mut rng).unwrap();
        let positions = churn(FingerRule::Positions { nr: 8 }, &membership, 5, &mut rng).unwrap();
        // Chord: the fingers that span the newcomer, O(log N) nodes.
        assert!(chord.join.nodes_changed_mean >= 1.0 && chord.join.nodes_changed_mean < 40.0);
        // Positions: every node with the newcomer within 2^(NR-1) positions ahead, N/2 or more.
        assert!(positions.join.nodes_changed_mean >= 128.0, "{positions:?}");
        assert!(positions.leave.entries_changed_mean > positions.leave.nodes_changed_mean);
        assert_eq!(chord.backups_changed, BACKUP_ENTRIES);
    }

    #[test]
    fn massive_failure_is_counted() {
        let mut rng = SmallRng::seed_from_u64(5);
        let space = IdSpace::new(160).unwrap();
        let membership = Membership::random(space, 1000, &mut rng).unwrap();
        let rows = failures(FingerRule::Chord, &membership, &[0.0, 0.5], 2000, &mut rng).unwrap();
        assert_eq!(rows[0].killed, 0);
        assert_eq!((rows[0].owner_failed, rows[0].stuck), (0.0, 0.0));
        assert_eq!(rows[1].killed, 500);
        assert!((rows[1].owner_failed - 0.5).abs() < 0.1, "{:?}", rows[1]);
        assert!(rows[1].stuck_log2_backups <= rows[1].stuck);
        assert!(rows[1].stuck <= rows[1].stuck_without_backups);
        assert!(rows[1].stuck_log2_backups < 0.01, "{:?}", rows[1]);
        // Nothing to repair without a loss; with half the nodes gone, most live tables change
        // (one new table each), and at least one entry in each of them.
        assert_eq!(rows[0].repair_nodes_changed, Some(0));
        let changed = rows[1]
            .repair_nodes_changed
            .expect("500 nodes keep Chord tables");
        assert!((250..=500).contains(&changed), "{:?}", rows[1]);
        assert!(
            rows[1].repair_entries_changed >= Some(changed),
            "{:?}",
            rows[1]
        );
        assert!(failures(FingerRule::Chord, &membership, &[1.0], 10, &mut rng).is_err());
    }
}
