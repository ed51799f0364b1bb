//! `overlay simulate`: path lengths and load balance computed in memory.

use anyhow::Result;
use clap::Args;
use overlay::routing::nr_for;

use super::{Ids, Rule, say};

#[derive(Args)]
pub(crate) struct SimulateArgs {
    /// Nodes in the overlay.
    #[arg(
        long,
        required_unless_present = "membership",
        conflicts_with = "membership"
    )]
    nodes: Option<usize>,
    /// Finger rule.
    #[arg(long, value_enum, default_value_t = Rule::Chord, conflicts_with = "membership")]
    rule: Rule,
    /// Positions rule: entries per table (default: ceil(log2 NODES), the most the ring
    /// allows, as scripted runs pick).
    #[arg(long, conflicts_with = "membership")]
    nr: Option<usize>,
    /// Identifier bits m (1..=160).
    #[arg(long, default_value_t = overlay::limits::CHORD_ID_BITS_MAX, conflicts_with = "membership")]
    id_bits: u32,
    /// How identifiers are assigned.
    #[arg(long, value_enum, default_value_t = Ids::Random, conflicts_with = "membership")]
    ids: Ids,
    /// Instead of --nodes: the membership of a run from its result file (`--json` of a
    /// scripted registry, or `save-results`): its node IDs and Chord identifiers, its finger
    /// rule and NR, and what its packets went to. Lookups are drawn as that run drew its
    /// packets; the report adds the exact mean hops of that draw (up to 4,096 nodes) next to
    /// the run's own.
    #[arg(long, value_name = "RESULT.json")]
    membership: Option<std::path::PathBuf>,
    /// With --membership: which run of the file (1 = the first; default: the last).
    #[arg(long, requires = "membership")]
    run: Option<usize>,
    /// Random lookups to walk.
    #[arg(long, default_value_t = 100_000)]
    lookups: u64,
    /// Instead of random lookups, every node to every other node.
    #[arg(long)]
    all_pairs: bool,
    /// Also place this many random keys and report keys per node (the paper's Fig. 8).
    #[arg(long)]
    keys: Option<u64>,
    /// Also this many random joins and as many random leaves: the nodes whose tables change
    /// and the entries that change, per join and per leave (docs/CHURN.md).
    #[arg(long, value_name = "SAMPLES")]
    churn: Option<u64>,
    /// Also kill these fractions of the nodes at once (`0.1,0.3,0.5`) and route the lookups
    /// around them with stale tables and backup entries: the share that gets stuck before any
    /// repair (docs/CHURN.md).
    #[arg(long, value_name = "P", value_delimiter = ',')]
    fail: Vec<f64>,
    /// Seed of every random choice (identifiers, lookups, keys).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run_simulate(args: SimulateArgs) -> Result<u8> {
    use overlay::chord::FingerRule;
    use overlay::chord::simulate::{Assignment, Config, simulate};
    let (rule, given) = match &args.membership {
        Some(path) => {
            let (rule, given) = given_membership(path, args.run)?;
            (rule, Some(given))
        }
        None => {
            let nodes = args.nodes.unwrap_or_default();
            let rule = match args.rule {
                Rule::Chord => FingerRule::Chord,
                Rule::Positions => FingerRule::Positions {
                    nr: args.nr.unwrap_or_else(|| nr_for(nodes)),
                },
            };
            (rule, None)
        }
    };
    let report = simulate(&Config {
        nodes: args.nodes.unwrap_or_default(),
        rule,
        id_bits: args.id_bits,
        assignment: match args.ids {
            Ids::Random => Assignment::Random,
            Ids::Hash => Assignment::Hashed,
        },
        lookups: args.lookups,
        all_pairs: args.all_pairs,
        keys: args.keys,
        churn: args.churn,
        fail: args.fail,
        seed: args.seed,
        given,
    })
    .map_err(|why| anyhow::anyhow!("simulate: {why}"))?;
    if args.json {
        say(format_args!("{}", serde_json::to_string_pretty(&report)?));
    } else {
        say(format_args!("{}", report.to_string().trim_end()));
    }
    Ok(0)
}

/// The membership of run `run` (1-based; default the last) of the result file at `path`, and
/// its finger rule: every node row's ID, and in Chord mode its identifier (`chord_id`).
fn given_membership(
    path: &std::path::Path,
    run: Option<usize>,
) -> Result<(overlay::chord::FingerRule, overlay::chord::simulate::Given)> {
    use anyhow::{Context, anyhow, bail};
    use overlay::chord::{FingerRule, Id, IdSpace, Membership};
    use serde_json::Value;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--membership {}", path.display()))?;
    let result: Value = serde_json::from_str(&text)
        .with_context(|| format!("--membership {}: not a result file", path.display()))?;
    let runs = result["runs"]
        .as_array()
        .filter(|runs| !runs.is_empty())
        .ok_or_else(|| anyhow!("--membership {}: no runs in it", path.display()))?;
    let index = run.unwrap_or(runs.len());
    let Some(chosen) = index.checked_sub(1).and_then(|i| runs.get(i)) else {
        bail!("--run {index}: the file has runs 1 to {}", runs.len());
    };
    let source = format!("{}, run {index} of {}", path.display(), runs.len());
    let field = |name: &str| {
        chosen
            .get(name)
            .ok_or_else(|| anyhow!("{source}: no {name:?} (a result of a run of this version?)"))
    };
    let rows = field("node")?
        .as_array()
        .ok_or_else(|| anyhow!("{source}: \"node\" is not a list of node rows"))?;
    let number = |value: &Value, what: &str| {
        value
            .as_u64()
            .ok_or_else(|| anyhow!("{source}: {what} is not a whole number: {value}"))
    };
    let (rule, space, identifiers) = match field("finger_rule")?.as_str() {
        Some("chord") => {
            let bits = number(field("chord_bits")?, "chord_bits")?;
            let space = u32::try_from(bits)
                .ok()
                .and_then(IdSpace::new)
                .ok_or_else(|| anyhow!("{source}: chord_bits {bits} is not 1..=160"))?;
            let identifiers = rows
                .iter()
                .map(|row| {
                    let hex = row["chord_id"]
                        .as_str()
                        .ok_or_else(|| anyhow!("{source}: a node row without chord_id: {row}"))?;
                    space
                        .parse_key(&format!("0x{hex}"), false)
                        .map_err(|why| anyhow!("{source}: chord_id {hex}: {why}"))
                })
                .collect::<Result<Vec<Id>>>()?;
            (FingerRule::Chord, space, identifiers)
        }
        Some("positions") => {
            let nr = number(field("nr")?, "nr")? as usize;
            // Keys of a run to keys lie in the registry's ID space.
            let bits = result["settings"]["id_bits"].as_u64().unwrap_or(32);
            let space = u32::try_from(bits)
                .ok()
                .and_then(IdSpace::new)
                .ok_or_else(|| anyhow!("{source}: id_bits {bits} is not 1..=32"))?;
            let identifiers = rows
                .iter()
                .map(|row| Ok(Id::from(u128::from(number(&row["id"], "a node's id")?))))
                .collect::<Result<Vec<Id>>>()?;
            (FingerRule::Positions { nr }, space, identifiers)
        }
        other => bail!("{source}: finger_rule {other:?} (chord or positions)"),
    };
    let membership =
        Membership::new(space, identifiers).map_err(|why| anyhow!("{source}: {why}"))?;
    let keys = match field("targets")?.as_str() {
        Some("keys") => true,
        Some("nodes") => false,
        other => bail!("{source}: targets {other:?} (nodes or keys)"),
    };
    // Hops are the relays passed plus one: the sinks' counts by relays.
    let by_relays: Vec<u64> = chosen["stats"]["packets_by_relays"]
        .as_array()
        .map(|counts| counts.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let packets: u64 = by_relays.iter().sum();
    let run_mean_hops = (packets > 0).then(|| {
        by_relays
            .iter()
            .enumerate()
            .map(|(relays, &count)| (relays as f64 + 1.0) * count as f64)
            .sum::<f64>()
            / packets as f64
    });
    Ok((
        rule,
        overlay::chord::simulate::Given {
            membership,
            keys,
            source,
            run_mean_hops,
        },
    ))
}
