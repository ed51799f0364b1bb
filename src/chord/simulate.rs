//! `overlay simulate`: path lengths and load balance of a whole overlay in memory, with the
//! tables and next-hop code the nodes use (`table.rs`, `lookup.rs`), from a seed.
//!
//! Hops are transmissions from the source to the key's owner; the path length of the Chord
//! paper (Fig. 10) is the forwards among them, one fewer whenever the source is not the owner
//! (`lookup.rs`). Both are reported.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::churn::{Churn, Failure, churn, failures, log2_backups};
use super::id::{Id, IdSpace};
use super::lookup::lookup;
use super::membership::Membership;
use super::table::{FingerRule, FingerTable};
use crate::limits::BACKUP_ENTRIES;
use crate::limits::{SIMULATE_ALL_PAIRS_NODES_MAX, SIMULATE_NODES_MAX};
use crate::routing::transmissions;

/// How members get their identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    /// Uniformly at random.
    Random,
    /// SHA-256 of an address ("10.a.b.c:4000" for member a.b.c), first m bits.
    Hashed,
}

/// A membership taken from a run's result (`overlay simulate --membership`): the overlay's
/// identifiers exactly as the run had them, and what its packets were addressed to.
#[derive(Debug, Clone)]
pub struct Given {
    pub membership: Membership,
    /// The run sent each packet to a key another member owns (drawn uniformly from those);
    /// otherwise to another member.
    pub keys: bool,
    /// Where it comes from (the file and the run), for the report.
    pub source: String,
    /// The run's mean hops, from its packets by relays passed.
    pub run_mean_hops: Option<f64>,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Config {
    pub nodes: usize,
    pub rule: FingerRule,
    pub id_bits: u32,
    pub assignment: Assignment,
    /// Random lookups: from a random source to a random key (Chord) or to a random other
    /// node (positions, as the overlay's runs do).
    pub lookups: u64,
    /// Instead of random lookups, every source to every other member.
    pub all_pairs: bool,
    /// Also place this many random keys and count them per owner.
    pub keys: Option<u64>,
    /// Also this many random joins and as many leaves: the tables each changes (`churn.rs`).
    pub churn: Option<u64>,
    /// Also kill these fractions of the nodes at once and route `lookups` around them.
    pub fail: Vec<f64>,
    pub seed: u64,
    /// Instead of `nodes` members assigned identifiers here, a run's membership.
    pub given: Option<Given>,
}

/// Counts per integer value (hops) and their summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    pub mean: f64,
    pub p1: u32,
    pub p50: u32,
    pub p99: u32,
    pub max: u32,
    /// `counts[h]` = lookups that took h.
    pub counts: Vec<u64>,
}

impl Distribution {
    fn new(counts: Vec<u64>) -> Distribution {
        let total: u64 = counts.iter().sum();
        let weighted: u64 = counts.iter().enumerate().map(|(h, &c)| h as u64 * c).sum();
        let percentile = |p: u64| {
            // Nearest rank: the smallest h with at least p% of the lookups at or below it.
            let rank = (total * p).div_ceil(100).max(1);
            let mut seen = 0;
            counts
                .iter()
                .position(|&c| {
                    seen += c;
                    seen >= rank
                })
                .unwrap_or(0) as u32
        };
        Distribution {
            mean: weighted as f64 / total.max(1) as f64,
            p1: percentile(1),
            p50: percentile(50),
            p99: percentile(99),
            max: counts.iter().rposition(|&c| c > 0).unwrap_or(0) as u32,
            counts,
        }
    }
}

/// Keys per member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Load {
    pub keys: u64,
    pub mean: f64,
    pub min: u64,
    pub p1: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// Distinct table entries per member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fingers {
    pub mean: f64,
    pub max: usize,
}

/// The outcome of a simulation (the JSON of `overlay simulate --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub nodes: usize,
    pub rule: &'static str,
    /// Entries per table (positions rule only).
    pub nr: Option<usize>,
    pub id_bits: u32,
    pub ids: &'static str,
    pub seed: u64,
    /// "keys" (random keys), "nodes" (random other nodes) or "all-pairs".
    pub targets: &'static str,
    pub lookups: u64,
    pub fingers: Fingers,
    /// Transmissions from the source to the key's owner.
    pub hops: Distribution,
    /// Nodes traversed before the query is resolved at the key's predecessor: the Chord
    /// paper's path length (Fig. 10).
    pub path_length: Distribution,
    /// (1/2) log2 N, the paper's mean path length.
    pub half_log2_nodes: f64,
    /// Positions rule with node targets: the exact mean hops, the mean of
    /// `routing::transmissions(d, NR)` over distances d = 1..N-1. With a given membership: the
    /// exact mean hops of its run's draw, computed over every pair (at most
    /// `SIMULATE_ALL_PAIRS_NODES_MAX` members).
    pub exact_mean_hops: Option<f64>,
    /// The given membership's source (`--membership`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub membership: Option<String>,
    /// The given membership's run: its mean hops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_mean_hops: Option<f64>,
    pub load: Option<Load>,
    /// Join and leave costs (`--churn`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<Churn>,
    /// Backup entries per node (successor-list length r) in `failures`: the nodes' r, and
    /// Chord's log2 N.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backups: Option<(usize, usize)>,
    /// Lookups after a fraction of the nodes failed at once, before repair (`--fail`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<Failure>,
}

impl std::fmt::Display for Report {
    /// The report as text: a summary line per count, the distribution, the load.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rule = match self.nr {
            Some(nr) => format!("{} fingers (NR {nr})", self.rule),
            None => format!("{} fingers", self.rule),
        };
        let targets = match self.targets {
            "keys" => "random keys",
            "nodes" => "random other nodes",
            _ => "every other node from every node",
        };
        writeln!(
            f,
            "{} nodes, {rule}, {}-bit {} IDs (seed {}): {} lookups of {targets}",
            self.nodes, self.id_bits, self.ids, self.seed, self.lookups
        )?;
        writeln!(
            f,
            "distinct table entries per node: mean {:.2}, max {}",
            self.fingers.mean, self.fingers.max
        )?;
        writeln!(
            f,
            "{:<36} {:>7} {:>4} {:>4} {:>4} {:>4}",
            "", "mean", "p1", "p50", "p99", "max"
        )?;
        for (name, d) in [
            ("hops (transmissions to the owner)", &self.hops),
            ("path length (Chord paper, Fig. 10)", &self.path_length),
        ] {
            writeln!(
                f,
                "{name:<36} {:>7.3} {:>4} {:>4} {:>4} {:>4}",
                d.mean, d.p1, d.p50, d.p99, d.max
            )?;
        }
        write!(f, "(1/2) log2 N = {:.3}", self.half_log2_nodes)?;
        match (self.exact_mean_hops, &self.membership) {
            (Some(exact), None) => {
                write!(f, "; exact mean hops of the positions rule = {exact:.3}")?
            }
            (Some(exact), Some(_)) => {
                write!(f, "; exact mean hops of the run's draw = {exact:.4}")?
            }
            (None, _) => {}
        }
        writeln!(f)?;
        if let (Some(source), Some(run)) = (&self.membership, self.run_mean_hops) {
            write!(f, "the run ({source}): mean hops {run:.4}")?;
            if let Some(exact) = self.exact_mean_hops {
                write!(
                    f,
                    ", {:+.2}% from the exact mean",
                    100.0 * (run - exact) / exact
                )?;
            }
            writeln!(f)?;
        }
        writeln!(f, "hops  lookups  share")?;
        let total: u64 = self.hops.counts.iter().sum();
        for (hops, &count) in self.hops.counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            writeln!(
                f,
                "{hops:>4} {count:>8} {:>6.2}%",
                100.0 * count as f64 / total.max(1) as f64
            )?;
        }
        if let Some(load) = &self.load {
            writeln!(
                f,
                "{} keys over {} nodes, keys per node: mean {:.1}, min {}, p1 {}, p50 {}, p99 {}, \
                 max {}",
                load.keys, self.nodes, load.mean, load.min, load.p1, load.p50, load.p99, load.max
            )?;
        }
        if let Some(churn) = &self.churn {
            writeln!(
                f,
                "membership changes ({} joins, {} leaves): {:<26} {:>8} {:>8} {:>9} {:>8}",
                churn.join.samples, churn.leave.samples, "", "nodes", "max", "entries", "max"
            )?;
            for (name, cost) in [("per join", &churn.join), ("per leave", &churn.leave)] {
                writeln!(
                    f,
                    "  {name:<10} tables changed at {:>8.1} nodes (max {:>6}), {:>9.1} entries \
                     (max {:>6})",
                    cost.nodes_changed_mean,
                    cost.nodes_changed_max,
                    cost.entries_changed_mean,
                    cost.entries_changed_max
                )?;
            }
            writeln!(
                f,
                "  backup entries (successor lists) change at {} nodes per join or leave; \
                 Chord's join protocol: O(log2^2 N) = {:.0} messages",
                churn.backups_changed, churn.chord_join_messages
            )?;
        }
        if let Some((backups, log2)) = self.backups {
            writeln!(
                f,
                "nodes failed at once, lookups from live nodes routed before any repair (stale \
                 tables plus r backup entries; stuck: of the lookups whose owner lives), and \
                 the repair of all of them in one change (live nodes that get a new table, \
                 entries that change):"
            )?;
            let (r, r_log2) = (format!("stuck r={backups}"), format!("stuck r={log2}"));
            writeln!(
                f,
                "{:>5} {:>7} {:>9} {:>13} {:>12} {:>12} {:>12} {:>10} {:>24}",
                "p",
                "killed",
                "lookups",
                "owner failed",
                r,
                r_log2,
                "stuck r=0",
                "mean hops",
                "repair: tables (entries)"
            )?;
            for row in &self.failures {
                writeln!(
                    f,
                    "{:>5.2} {:>7} {:>9} {:>12.3}% {:>11.4}% {:>11.4}% {:>11.4}% {:>10.3} {:>24}",
                    row.p,
                    row.killed,
                    row.lookups,
                    100.0 * row.owner_failed,
                    100.0 * row.stuck,
                    100.0 * row.stuck_log2_backups,
                    100.0 * row.stuck_without_backups,
                    row.mean_hops,
                    match (row.repair_nodes_changed, row.repair_entries_changed) {
                        (Some(nodes), Some(entries)) => format!("{nodes} ({entries})"),
                        _ => "too few left".to_string(),
                    }
                )?;
            }
        }
        Ok(())
    }
}

/// Runs the simulation `config` describes.
pub fn simulate(config: &Config) -> Result<Report, String> {
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let membership = match &config.given {
        Some(given) => given.membership.clone(),
        None => generated(config, &mut rng)?,
    };
    let nodes = membership.len();
    if config.all_pairs && nodes > SIMULATE_ALL_PAIRS_NODES_MAX {
        return Err(format!(
            "--all-pairs walks N x (N - 1) lookups: at most {SIMULATE_ALL_PAIRS_NODES_MAX} nodes"
        ));
    }
    let space = membership.space();
    let tables = FingerTable::all(config.rule, &membership)?;

    let mut hops = Vec::new();
    let mut forwards = Vec::new();
    let mut count = |found: super::lookup::Lookup| {
        for (counts, value) in [(&mut hops, found.hops), (&mut forwards, found.forwards)] {
            let value = value as usize;
            if value >= counts.len() {
                counts.resize(value + 1, 0);
            }
            counts[value] += 1;
        }
    };
    // What a lookup targets: a run's draw for a given membership, otherwise random keys under
    // Chord and random other nodes under positions (as the overlay's runs do by default).
    let by_node = match &config.given {
        Some(given) => !given.keys,
        None => matches!(config.rule, FingerRule::Positions { .. }),
    };
    let (targets, lookups) = if config.all_pairs {
        for from in 0..nodes {
            for to in (0..nodes).filter(|&to| to != from) {
                count(lookup(&membership, &tables, from, membership.id(to)));
            }
        }
        ("all-pairs", (nodes * (nodes - 1)) as u64)
    } else {
        for _ in 0..config.lookups {
            let from = rng.random_range(0..nodes);
            let key = if by_node {
                membership.id((from + rng.random_range(1..nodes)) % nodes)
            } else if config.given.is_some() {
                // As a run's source draws: a key another member owns, (from, predecessor].
                let own = membership.id(from);
                let others = space.distance(own, membership.id(membership.predecessor_of(from)));
                space.add(
                    own,
                    space.add(Id::from(1), space.random_below(others, &mut rng)),
                )
            } else {
                space.random(&mut rng)
            };
            count(lookup(&membership, &tables, from, key));
        }
        (if by_node { "nodes" } else { "keys" }, config.lookups)
    };

    let exact_mean_hops = match (&config.given, config.rule) {
        (Some(given), _) => (nodes <= SIMULATE_ALL_PAIRS_NODES_MAX)
            .then(|| exact_mean_hops(&membership, &tables, given.keys)),
        (None, FingerRule::Positions { nr }) if targets != "keys" => Some(
            (1..nodes as u64)
                .map(|d| transmissions(d, nr) as f64)
                .sum::<f64>()
                / (nodes - 1) as f64,
        ),
        _ => None,
    };
    let entries: Vec<usize> = tables.iter().map(|t| t.entries().len()).collect();
    Ok(Report {
        nodes,
        rule: config.rule.name(),
        nr: match config.rule {
            FingerRule::Positions { nr } => Some(nr),
            FingerRule::Chord => None,
        },
        id_bits: space.bits(),
        ids: match (&config.given, config.assignment) {
            (Some(_), _) => "given",
            (None, Assignment::Random) => "random",
            (None, Assignment::Hashed) => "hash",
        },
        seed: config.seed,
        targets,
        lookups,
        fingers: Fingers {
            mean: entries.iter().sum::<usize>() as f64 / nodes as f64,
            max: entries.iter().copied().max().unwrap_or(0),
        },
        hops: Distribution::new(hops),
        path_length: Distribution::new(forwards),
        half_log2_nodes: (nodes as f64).log2() / 2.0,
        exact_mean_hops,
        membership: config.given.as_ref().map(|given| given.source.clone()),
        run_mean_hops: config.given.as_ref().and_then(|given| given.run_mean_hops),
        load: config.keys.map(|keys| load(&membership, keys, &mut rng)),
        churn: match config.churn {
            Some(samples) => Some(churn(config.rule, &membership, samples, &mut rng)?),
            None => None,
        },
        backups: (!config.fail.is_empty()).then(|| (BACKUP_ENTRIES, log2_backups(nodes))),
        failures: failures(
            config.rule,
            &membership,
            &config.fail,
            config.lookups,
            &mut rng,
        )?,
    })
}

/// The exact mean hops of a run over `membership` whose sources each send as many packets:
/// to every other member alike (`keys` false), or to keys drawn uniformly from those another
/// member owns. Member o owns (predecessor, o], and a key's route is its owner's (each choice
/// compares the key with member identifiers only), so from source s the owner is o with
/// probability arc(o) / (2^m - arc(s)). N x (N - 1) walks.
pub fn exact_mean_hops(membership: &Membership, tables: &[FingerTable], keys: bool) -> f64 {
    let space = membership.space();
    let nodes = membership.len();
    let as_f64 = |id: Id| {
        id.to_be_bytes()
            .iter()
            .fold(0.0, |value, &byte| value * 256.0 + f64::from(byte))
    };
    let arcs: Vec<f64> = (0..nodes)
        .map(|o| {
            if keys {
                as_f64(space.distance(
                    membership.id(membership.predecessor_of(o)),
                    membership.id(o),
                ))
            } else {
                1.0
            }
        })
        .collect();
    let whole: f64 = arcs.iter().sum();
    let mut mean = 0.0;
    for source in 0..nodes {
        let weighted: f64 = (0..nodes)
            .filter(|&owner| owner != source)
            .map(|owner| {
                arcs[owner]
                    * f64::from(lookup(membership, tables, source, membership.id(owner)).hops)
            })
            .sum();
        mean += weighted / (whole - arcs[source]) / nodes as f64;
    }
    mean
}

/// `config.nodes` members with identifiers assigned as `config.assignment` says.
fn generated(config: &Config, rng: &mut SmallRng) -> Result<Membership, String> {
    if !(2..=SIMULATE_NODES_MAX).contains(&config.nodes) {
        return Err(format!(
            "--nodes must be between 2 and {SIMULATE_NODES_MAX}, not {}",
            config.nodes
        ));
    }
    let space = IdSpace::new(config.id_bits).ok_or_else(|| {
        format!(
            "--id-bits must be between 1 and 160, not {}",
            config.id_bits
        )
    })?;
    match config.assignment {
        Assignment::Random => Membership::random(space, config.nodes, rng),
        Assignment::Hashed => {
            let addresses: Vec<String> = (0..config.nodes)
                .map(|i| format!("10.{}.{}.{}:4000", (i >> 16) & 255, (i >> 8) & 255, i & 255))
                .collect();
            Ok(Membership::hashed(space, &addresses)?.0)
        }
    }
}

/// Places `keys` random keys at their owners and summarises the keys per member.
fn load(membership: &Membership, keys: u64, rng: &mut SmallRng) -> Load {
    let mut per_node = vec![0u64; membership.len()];
    for _ in 0..keys {
        per_node[membership.successor(membership.space().random(rng))] += 1;
    }
    per_node.sort_unstable();
    let at = |p: usize| per_node[(per_node.len() * p).div_ceil(100).max(1) - 1];
    Load {
        keys,
        mean: keys as f64 / per_node.len() as f64,
        min: per_node[0],
        p1: at(1),
        p50: at(50),
        p99: at(99),
        max: per_node[per_node.len() - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rule: FingerRule) -> Config {
        Config {
            nodes: 64,
            rule,
            id_bits: 160,
            assignment: Assignment::Random,
            lookups: 10_000,
            all_pairs: false,
            keys: None,
            churn: None,
            fail: Vec::new(),
            seed: 3,
            given: None,
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let d = Distribution::new(vec![1, 0, 97, 1, 1]);
        assert_eq!((d.p1, d.p50, d.p99, d.max), (0, 2, 3, 4));
        assert!((d.mean - 2.01).abs() < 1e-9);
    }

    #[test]
    fn positions_all_pairs_match_the_formula_exactly() {
        let report = simulate(&Config {
            all_pairs: true,
            ..config(FingerRule::Positions { nr: 3 })
        })
        .unwrap();
        let mut expected = vec![0u64; 64];
        for d in 1..64 {
            expected[transmissions(d, 3) as usize] += 64;
        }
        expected.truncate(expected.iter().rposition(|&c| c > 0).unwrap() + 1);
        assert_eq!(report.hops.counts, expected);
        assert_eq!(report.lookups, 64 * 63);
        assert!((report.hops.mean - report.exact_mean_hops.unwrap()).abs() < 1e-9);
        assert_eq!(report.fingers, Fingers { mean: 3.0, max: 3 });
    }

    #[test]
    fn chord_is_seeded_and_counts_both_lengths() {
        let a = simulate(&config(FingerRule::Chord)).unwrap();
        assert_eq!(a, simulate(&config(FingerRule::Chord)).unwrap());
        assert_eq!(a.targets, "keys");
        assert_eq!(a.hops.counts.iter().sum::<u64>(), 10_000);
        // hops = path length + 1 except for the lookups whose source owns the key.
        let owned = a.hops.counts[0];
        assert_eq!(a.path_length.counts[0] - owned, a.hops.counts[1]);
        let sourced_elsewhere = 1.0 - owned as f64 / 10_000.0;
        assert!((a.hops.mean - a.path_length.mean - sourced_elsewhere).abs() < 1e-9);
        let hashed = simulate(&Config {
            assignment: Assignment::Hashed,
            keys: Some(6400),
            ..config(FingerRule::Chord)
        })
        .unwrap();
        let load = hashed.load.unwrap();
        assert_eq!(load.mean, 100.0);
        assert!(load.min <= load.p1 && load.p1 <= load.p50 && load.p99 <= load.max);
    }

    #[test]
    fn refuses_what_cannot_run() {
        assert!(
            simulate(&Config {
                nodes: 1,
                ..config(FingerRule::Chord)
            })
            .is_err()
        );
        assert!(simulate(&config(FingerRule::Positions { nr: 7 })).is_err());
        let tiny = Config {
            id_bits: 5,
            ..config(FingerRule::Chord)
        };
        assert!(simulate(&tiny).is_err());
    }
}
