//! The operator's commands at the registry and at a node, parsed from one console line.

use std::net::SocketAddr;

use crate::chord::Id;
use crate::limits::CHORD_ID_BITS_MAX;
use crate::limits::RUN_SECS_MAX;
use crate::machine::Nanos;
use crate::registry::Goal;
use crate::routing::Fingers;
use crate::wire::LookupAnswer;

/// A command typed at the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryCommand {
    ListMessagingNodes,
    SetupOverlay {
        fingers: Fingers,
    },
    ListRoutingTables,
    /// Write the overlay (ring and tables) as Graphviz DOT to this file.
    ExportOverlay {
        path: String,
    },
    /// `start N [BYTES] [keys]` or `start SECONDSs [BYTES] [keys]`.
    Start {
        goal: Goal,
        extra_payload_bytes: u32,
        /// Each packet to a random key (its owner delivers it) instead of a random node.
        keys: bool,
    },
    /// End the current run early, with its report.
    Stop,
    /// `lookup KEY [NODE]`: node NODE (or one at random) looks KEY up through the overlay.
    Lookup {
        key: String,
        node: Option<u32>,
    },
    Help,
}

/// A command typed at a messaging node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeCommand {
    PrintCountersAndDiagnostics,
    /// `lookup KEY`: route a lookup of KEY through the overlay to its owner.
    Lookup {
        key: String,
    },
    ExitOverlay,
    Help,
}

impl LookupAnswer {
    /// The line both consoles print: `asked` as the operator gave it, with the owner's
    /// address and Chord identifier when known.
    pub fn line(&self, asked: &str, addr: Option<SocketAddr>, identifier: Option<Id>) -> String {
        let hops = self.path.len().saturating_sub(1);
        let path: Vec<String> = self.path.iter().map(u32::to_string).collect();
        let key = if asked.trim_start_matches("0x") == self.key {
            String::new()
        } else {
            format!(" (key {})", self.key)
        };
        format!(
            "Lookup {asked}{key}: owner node {}{}{}; path {}, {hops} hop{}; {}",
            self.owner,
            identifier.map_or(String::new(), |id| format!(", identifier {id:x}")),
            addr.map_or(String::new(), |addr| format!(", at {addr}")),
            path.join(" -> "),
            if hops == 1 { "" } else { "s" },
            if hops == 0 {
                "this node owns it".to_string()
            } else {
                format!(
                    "{} there and back",
                    crate::summary::duration(self.round_trip_ns)
                )
            }
        )
    }
}

/// The routing-table size `setup-overlay` uses without an argument (the reference's).
pub const DEFAULT_NR: usize = 3;

pub const REGISTRY_HELP: &str = "\
registry commands:
  list-messaging-nodes      host, port and ID of every registered node
  setup-overlay [NR]        build every node's routing table with NR entries (default 3)
  setup-overlay chord [BITS] [hash]   Chord fingers over BITS-bit identifiers (default 160), random or hashed from addresses
  list-routing-tables       every node's address, ID and table
  export-overlay FILE       draw the overlay (ring, tables, last run's traffic) to FILE.svg, or FILE.dot for Graphviz DOT
  start N [BYTES] [keys]    every node sends N packets (BYTES extra payload each, default 0); keys: each to a random key, delivered at its owner, not to a random node
  start Ts [BYTES] [keys]   every node sends for T seconds (e.g. start 10s, start 2.5s)
  stop                      end the current run early; prints what was sent and verified
  lookup KEY [NODE]         node NODE (default: one at random) looks KEY up through the overlay: its owner, the path, hops, time (KEY as at a node)
  help                      this list";

pub const NODE_HELP: &str = "\
node commands:
  print-counters-and-diagnostics   this node's counters, table, connections and run state
  lookup KEY                       route a lookup of KEY to its owner: prints the owner (ID, identifier, address), the path, hops and the time there and back. KEY: 0x and hex digits or decimal digits (a key of the overlay's space: Chord identifiers, or node IDs under position fingers); any other text is hashed into the space with SHA-256 (Chord fingers only)
  exit-overlay                     deregister from the registry and exit
  help                             this list";

fn number<T: std::str::FromStr>(word: &str, what: &str) -> Result<T, String> {
    word.parse()
        .map_err(|_| format!("{what} must be a non-negative whole number, not '{word}'"))
}

/// `N` packets or `Ts` seconds (`10s`, `2.5s`), as `start` takes them.
fn goal(word: &str) -> Result<Goal, String> {
    let Some(seconds) = word.strip_suffix('s') else {
        return number(word, "N").map(Goal::Packets);
    };
    match seconds.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= RUN_SECS_MAX => Ok(Goal::Duration((s * 1e9) as Nanos)),
        _ => Err(format!(
            "a duration is seconds above 0 and at most {RUN_SECS_MAX} followed by s (like 10s \
             or 2.5s), not '{word}'"
        )),
    }
}

/// The words after `setup-overlay chord`: `[BITS] [hash|random]`.
fn parse_chord(words: &[&str]) -> Result<Fingers, String> {
    let mut bits = CHORD_ID_BITS_MAX;
    let mut hashed = false;
    let mut seen_bits = false;
    for (index, &word) in words.iter().enumerate() {
        match word {
            "hash" | "random" if index + 1 == words.len() => hashed = word == "hash",
            _ if !seen_bits && index == 0 => {
                bits = number(word, "BITS")?;
                seen_bits = true;
            }
            _ => {
                return Err(format!(
                    "setup-overlay chord takes [BITS] [hash|random], not '{}'\n{REGISTRY_HELP}",
                    words.join(" ")
                ));
            }
        }
    }
    if !(1..=CHORD_ID_BITS_MAX).contains(&bits) {
        return Err(format!(
            "BITS must be between 1 and {CHORD_ID_BITS_MAX}, not {bits}"
        ));
    }
    Ok(Fingers::Chord { bits, hashed })
}

/// Parses a registry command. `Ok(None)` for a blank line; `Err` says what is wrong.
pub fn parse_registry(line: &str) -> Result<Option<RegistryCommand>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&name, args)) = words.split_first() else {
        return Ok(None);
    };
    let command = match (name, args) {
        ("list-messaging-nodes", []) => RegistryCommand::ListMessagingNodes,
        ("list-routing-tables", []) => RegistryCommand::ListRoutingTables,
        ("setup-overlay", []) => RegistryCommand::SetupOverlay {
            fingers: Fingers::Positions { nr: DEFAULT_NR },
        },
        ("setup-overlay", ["chord", rest @ ..]) => RegistryCommand::SetupOverlay {
            fingers: parse_chord(rest)?,
        },
        ("setup-overlay", [nr]) => RegistryCommand::SetupOverlay {
            fingers: Fingers::Positions {
                nr: number(nr, "NR")?,
            },
        },
        ("start", [packets, rest @ ..]) if rest.len() <= 2 => {
            let (keys, rest) = match rest.split_last() {
                Some((&"keys", rest)) => (true, rest),
                _ => (false, rest),
            };
            RegistryCommand::Start {
                goal: goal(packets)?,
                extra_payload_bytes: match rest {
                    [] => 0,
                    [bytes] => number(bytes, "BYTES")?,
                    _ => return Err(format!("wrong arguments for 'start'\n{REGISTRY_HELP}")),
                },
                keys,
            }
        }
        ("stop", []) => RegistryCommand::Stop,
        ("lookup", [key]) => RegistryCommand::Lookup {
            key: key.to_string(),
            node: None,
        },
        ("lookup", [key, node]) => RegistryCommand::Lookup {
            key: key.to_string(),
            node: Some(number(node, "NODE")?),
        },
        ("export-overlay", [path]) => RegistryCommand::ExportOverlay {
            path: path.to_string(),
        },
        ("help", []) => RegistryCommand::Help,
        (
            "list-messaging-nodes"
            | "list-routing-tables"
            | "setup-overlay"
            | "export-overlay"
            | "start"
            | "stop"
            | "lookup"
            | "help",
            _,
        ) => {
            return Err(format!("wrong arguments for '{name}'\n{REGISTRY_HELP}"));
        }
        _ => return Err(format!("unknown command '{name}'\n{REGISTRY_HELP}")),
    };
    Ok(Some(command))
}

/// Parses a node command. `Ok(None)` for a blank line; `Err` says what is wrong.
pub fn parse_node(line: &str) -> Result<Option<NodeCommand>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&name, args)) = words.split_first() else {
        return Ok(None);
    };
    let command = match (name, args) {
        ("print-counters-and-diagnostics", []) => NodeCommand::PrintCountersAndDiagnostics,
        ("exit-overlay", []) => NodeCommand::ExitOverlay,
        ("lookup", [key]) => NodeCommand::Lookup {
            key: key.to_string(),
        },
        ("lookup", _) => return Err(format!("lookup takes one KEY\n{NODE_HELP}")),
        ("help", []) => NodeCommand::Help,
        ("print-counters-and-diagnostics" | "exit-overlay" | "help", _) => {
            return Err(format!("'{name}' takes no arguments\n{NODE_HELP}"));
        }
        _ => return Err(format!("unknown command '{name}'\n{NODE_HELP}")),
    };
    Ok(Some(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_commands() {
        assert_eq!(parse_registry("  "), Ok(None));
        assert_eq!(
            parse_registry("setup-overlay"),
            Ok(Some(RegistryCommand::SetupOverlay {
                fingers: Fingers::Positions { nr: 3 }
            }))
        );
        assert_eq!(
            parse_registry("setup-overlay 5"),
            Ok(Some(RegistryCommand::SetupOverlay {
                fingers: Fingers::Positions { nr: 5 }
            }))
        );
        let chord = |bits, hashed| {
            Ok(Some(RegistryCommand::SetupOverlay {
                fingers: Fingers::Chord { bits, hashed },
            }))
        };
        assert_eq!(parse_registry("setup-overlay chord"), chord(160, false));
        assert_eq!(parse_registry("setup-overlay chord 32"), chord(32, false));
        assert_eq!(parse_registry("setup-overlay chord hash"), chord(160, true));
        assert_eq!(
            parse_registry("setup-overlay chord 64 hash"),
            chord(64, true)
        );
        assert_eq!(
            parse_registry("setup-overlay chord 64 random"),
            chord(64, false)
        );
        assert!(parse_registry("setup-overlay chord 161").is_err());
        assert!(parse_registry("setup-overlay chord 0").is_err());
        assert!(parse_registry("setup-overlay chord hash 64").is_err());
        assert!(parse_registry("setup-overlay chord 64 sha1").is_err());
        assert_eq!(
            parse_registry(" start  100 4096 "),
            Ok(Some(RegistryCommand::Start {
                goal: Goal::Packets(100),
                extra_payload_bytes: 4096,
                keys: false
            }))
        );
        assert_eq!(
            parse_registry("start 100 keys"),
            Ok(Some(RegistryCommand::Start {
                goal: Goal::Packets(100),
                extra_payload_bytes: 0,
                keys: true
            }))
        );
        assert_eq!(
            parse_registry("start 1s 64 keys"),
            Ok(Some(RegistryCommand::Start {
                goal: Goal::Duration(1_000_000_000),
                extra_payload_bytes: 64,
                keys: true
            }))
        );
        assert!(parse_registry("start 100 keys 64").is_err());
        assert!(parse_registry("start 100 64 keys x").is_err());
        assert_eq!(
            parse_registry("start 2.5s"),
            Ok(Some(RegistryCommand::Start {
                goal: Goal::Duration(2_500_000_000),
                extra_payload_bytes: 0,
                keys: false
            }))
        );
        assert_eq!(
            parse_registry("start 18446744073709551615"),
            Ok(Some(RegistryCommand::Start {
                goal: Goal::Packets(u64::MAX),
                extra_payload_bytes: 0,
                keys: false
            })),
            "refused by the registry, which names the bound"
        );
        for bad in ["0s", "-1s", "xs", "s", "1e9s", "infs", "NaNs"] {
            assert!(
                parse_registry(&format!("start {bad}"))
                    .unwrap_err()
                    .contains("followed by s"),
                "{bad}"
            );
        }
        assert_eq!(parse_registry("stop"), Ok(Some(RegistryCommand::Stop)));
        assert!(parse_registry("stop now").is_err());
        assert!(
            parse_registry("start")
                .unwrap_err()
                .contains("wrong arguments")
        );
        assert!(parse_registry("start -5").unwrap_err().contains("not '-5'"));
        assert!(parse_registry("setup-overlay x").is_err());
        assert_eq!(
            parse_registry("export-overlay /tmp/o.dot"),
            Ok(Some(RegistryCommand::ExportOverlay {
                path: "/tmp/o.dot".to_string()
            }))
        );
        assert!(
            parse_registry("export-overlay")
                .unwrap_err()
                .contains("export-overlay FILE")
        );
        assert!(
            parse_registry("frobnicate")
                .unwrap_err()
                .contains("setup-overlay [NR]")
        );
    }

    #[test]
    fn node_commands() {
        assert_eq!(parse_node(""), Ok(None));
        assert_eq!(
            parse_node("exit-overlay"),
            Ok(Some(NodeCommand::ExitOverlay))
        );
        assert_eq!(
            parse_node("print-counters-and-diagnostics"),
            Ok(Some(NodeCommand::PrintCountersAndDiagnostics))
        );
        assert!(parse_node("exit-overlay now").is_err());
        assert!(parse_node("start 5").unwrap_err().contains("exit-overlay"));
    }

    /// `help` lists every command the parser accepts, each with a description.
    #[test]
    fn help_lists_every_command() {
        for (help, commands) in [
            (
                REGISTRY_HELP,
                &[
                    "list-messaging-nodes",
                    "setup-overlay",
                    "setup-overlay",
                    "list-routing-tables",
                    "export-overlay",
                    "start",
                    "start",
                    "stop",
                    "lookup",
                    "help",
                ][..],
            ),
            (
                NODE_HELP,
                &[
                    "print-counters-and-diagnostics",
                    "lookup",
                    "exit-overlay",
                    "help",
                ][..],
            ),
        ] {
            let listed: Vec<&str> = help
                .lines()
                .skip(1)
                .map(|line| line.split_whitespace().next().unwrap())
                .collect();
            assert_eq!(listed, commands, "{help}");
            for line in help.lines().skip(1) {
                let words = line.split("  ").filter(|w| !w.trim().is_empty()).count();
                assert!(words >= 2, "no description: {line:?}");
            }
        }
    }
}
