//! `overlay simulate`: path lengths and load balance computed in memory.

use anyhow::Result;
use clap::Args;
use overlay::routing::nr_for;

use super::{Ids, Rule, say};

#[derive(Args)]
pub(crate) struct SimulateArgs {
    /// Nodes in the overlay.
    #[arg(long)]
    nodes: usize,
    /// Finger rule.
    #[arg(long, value_enum, default_value_t = Rule::Chord)]
    rule: Rule,
    /// Positions rule: entries per table (default: ceil(log2 NODES), the most the ring
    /// allows, as scripted runs pick).
    #[arg(long)]
    nr: Option<usize>,
    /// Identifier bits m (1..=160).
    #[arg(long, default_value_t = overlay::limits::CHORD_ID_BITS_MAX)]
    id_bits: u32,
    /// How identifiers are assigned.
    #[arg(long, value_enum, default_value_t = Ids::Random)]
    ids: Ids,
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
    let rule = match args.rule {
        Rule::Chord => FingerRule::Chord,
        Rule::Positions => FingerRule::Positions {
            nr: args.nr.unwrap_or_else(|| nr_for(args.nodes)),
        },
    };
    let report = simulate(&Config {
        nodes: args.nodes,
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
    })
    .map_err(|why| anyhow::anyhow!("simulate: {why}"))?;
    if args.json {
        say(format_args!("{}", serde_json::to_string_pretty(&report)?));
    } else {
        say(format_args!("{}", report.to_string().trim_end()));
    }
    Ok(0)
}
