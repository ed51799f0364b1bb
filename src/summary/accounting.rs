//! Where every packet of a run went, link by link, from the nodes' per-link counts.

use std::collections::BTreeMap;

use serde::Serialize;

use super::RunResult;
use super::format::thousands;
use super::result::{CRASHES_NOT_ACCOUNTED, PASS_WITH_CRASHES};
use crate::wire::{LinkCount, NodeId};

/// The per-link account of a run: the nodes that reported can say where each packet they
/// handled went, including the packets they handed to nodes that were lost.
///
/// Each reporting node's conservation (everything it originated or took from a link was
/// delivered, found corrupted, dropped, or handed to a link) gives, summed over them:
/// `sent + received_from_lost_nodes + foreign = received + corrupted + dropped +
/// handed_to_lost_nodes + lost_on_links`, and `unaccounted` is whatever is left (0 unless a
/// node miscounted).
///
/// Only what a node knows of its own links is believed: what it handed to each table entry,
/// and what it took from each link, named by the link's first data packet (a node's own link
/// can only start with a packet it originated or relayed, whose previous hop is itself;
/// `node/data_plane.rs`). A link whose first packet names no node that has the receiver in
/// its table is counted apart (the receiver's row for its own ID): foreign. An outsider can
/// add packets to what arrives, never take any away, so a link that brought more than its
/// sender handed to it carries foreign traffic, and one that brought fewer lost packets,
/// unless its receiver also took packets on links it could not name: then no link is blamed.
///
/// Packets of an earlier run (stale: their sinks count them apart and drop them) also enter a
/// run's account without having been sent in it: one on its way across a link when the
/// earlier run was collected is taken in this run from a link whose sender handed it over in
/// the other, and one still queued at a node then is handed on in this run without being
/// taken. So a link's excess is put down to stale packets first, as far as their count goes,
/// and only the rest is foreign: a stale packet is never called foreign traffic nor blamed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Accounting {
    /// Nodes of the overlay that did not send a final report (killed, hung, or gone).
    pub lost_nodes: Vec<NodeId>,
    /// Data packets the reporting nodes handed to their links to lost nodes: delivered to those
    /// nodes, or lost with them (in them or in the kernel's buffers toward them).
    pub handed_to_lost_nodes: u64,
    /// Data packets the reporting nodes took from lost nodes' links (originated or relayed by
    /// them before they were lost).
    pub received_from_lost_nodes: u64,
    /// Data packets handed to a link between two reporting nodes that did not come out at
    /// the other end (a link that died with packets in the kernel's buffers).
    pub lost_on_links: u64,
    /// Data packets the reporting nodes took that no node handed to them: from links that
    /// are no node's, or more on a link than its sender handed to it (an outsider's packets).
    pub foreign: u64,
    /// Packets of earlier runs the sinks dropped as stale; the part of the links' excess they
    /// explain is not counted as foreign.
    pub stale: u64,
    /// What the counts above do not explain; 0 means every packet is accounted for.
    pub unaccounted: i64,
}

/// `foreign traffic: node 2 took 6 packets on links named node 1, which handed it 5`.
fn foreign_on_link(from: NodeId, to: NodeId, sent: u64, came: u64) -> String {
    format!(
        "foreign traffic: node {to} took {} packets on links named node {from}, which handed \
         it {}",
        thousands(came.into()),
        thousands(sent.into())
    )
}

/// What the per-link counts of the reporting nodes say: the account, and the lines that blame
/// links or name foreign traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkAccount {
    pub accounting: Accounting,
    pub foreign_failures: Vec<String>,
    pub link_failures: Vec<String>,
}

impl LinkAccount {
    /// Every packet is accounted for, and nothing is in flight between reporting nodes: no
    /// link between them short or long, nothing foreign, nothing unexplained.
    pub fn balanced(&self) -> bool {
        let account = &self.accounting;
        account.unaccounted == 0 && account.lost_on_links == 0 && account.foreign == 0
    }
}

/// Accounts for every packet from the per-link counts of the nodes that reported (`links`,
/// by node) and their totals (`sent`, `counted`: received + corrupted + dropped, and `stale`:
/// packets of an earlier run their sinks dropped), given the overlay's `members` when the run
/// started.
pub fn account(
    members: &[NodeId],
    links: &BTreeMap<NodeId, Vec<LinkCount>>,
    sent: u64,
    counted: u64,
    stale: u64,
) -> LinkAccount {
    let reported = |id: &NodeId| links.contains_key(id);
    let mut account = Accounting {
        lost_nodes: members.iter().copied().filter(|id| !reported(id)).collect(),
        stale,
        ..Accounting::default()
    };
    // Stale packets not yet set against a link's excess.
    let mut stale_left = stale;
    // What each reporting node took from each reporting peer: (from, to) -> received.
    let mut arrived: std::collections::HashMap<(NodeId, NodeId), u64> =
        std::collections::HashMap::new();
    // What each reporting node took on links it could not name (its row for itself).
    let mut unnamed: BTreeMap<NodeId, u64> = BTreeMap::new();
    for (&node, rows) in links {
        for row in rows {
            if row.peer == node {
                *unnamed.entry(node).or_default() += row.received;
            } else if reported(&row.peer) {
                let count = arrived.entry((row.peer, node)).or_default();
                *count = count.saturating_add(row.received);
            }
        }
    }
    let mut link_failures = Vec::new();
    let mut foreign_failures = Vec::new();
    for (&node, &count) in unnamed.iter().filter(|(_, count)| **count > 0) {
        account.foreign = account.foreign.saturating_add(count);
        foreign_failures.push(format!(
            "foreign traffic: node {node} took {} packets on links that are no node's",
            thousands(count.into())
        ));
    }
    for (&node, rows) in links {
        for row in rows.iter().filter(|row| row.peer != node) {
            if !reported(&row.peer) {
                account.handed_to_lost_nodes =
                    account.handed_to_lost_nodes.saturating_add(row.sent);
                account.received_from_lost_nodes = account
                    .received_from_lost_nodes
                    .saturating_add(row.received);
                continue;
            }
            // Each link between reporting nodes, once, from its sending end.
            let came = arrived.remove(&(node, row.peer)).unwrap_or(0);
            if came > row.sent {
                let stale = (came - row.sent).min(stale_left);
                stale_left -= stale;
                if came - row.sent > stale {
                    account.foreign = account.foreign.saturating_add(came - row.sent - stale);
                    foreign_failures.push(foreign_on_link(node, row.peer, row.sent, came));
                }
            } else if came < row.sent {
                account.lost_on_links = account.lost_on_links.saturating_add(row.sent - came);
                let line = format!(
                    "link node {node} -> node {}: {} packets handed over, {} arrived",
                    row.peer,
                    thousands(row.sent.into()),
                    thousands(came.into())
                );
                link_failures.push(match unnamed.get(&row.peer) {
                    Some(&other) if other > 0 => format!(
                        "{line}, but node {} also took {} packets on links it could not \
                         name, so the loss cannot be blamed on this link",
                        row.peer,
                        thousands(other.into())
                    ),
                    _ => line,
                });
            }
        }
    }
    // Links a node received on that its peer never reported sending on.
    let mut unsent: Vec<_> = arrived.into_iter().filter(|(_, came)| *came > 0).collect();
    unsent.sort_unstable();
    for ((from, to), came) in unsent {
        let stale = came.min(stale_left);
        stale_left -= stale;
        if came > stale {
            account.foreign = account.foreign.saturating_add(came - stale);
            foreign_failures.push(foreign_on_link(from, to, 0, came));
        }
    }
    let explained = i128::from(counted)
        + i128::from(stale)
        + i128::from(account.handed_to_lost_nodes)
        + i128::from(account.lost_on_links);
    let entered = i128::from(sent)
        + i128::from(account.received_from_lost_nodes)
        + i128::from(account.foreign)
        + i128::from(stale);
    account.unaccounted =
        (entered - explained).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    LinkAccount {
        accounting: account,
        foreign_failures,
        link_failures,
    }
}

impl RunResult {
    /// Accounts for every packet from the per-link counts of the nodes that reported (`links`,
    /// by node), given the overlay's `members` when the run started ([`account`]). Nothing
    /// changes when no node reported link counts (the classic format). A run with crashes
    /// (`crashed`) whose account balances, with nothing else wrong, is
    /// [`PASS_WITH_CRASHES`]; one whose account does not, or with anything else wrong, fails
    /// with the account's lines.
    pub fn with_links(
        mut self,
        members: &[NodeId],
        links: &std::collections::BTreeMap<NodeId, Vec<LinkCount>>,
    ) -> RunResult {
        if links.values().all(Vec::is_empty) {
            return self;
        }
        let counted = self
            .packets_received
            .saturating_add(self.corrupted)
            .saturating_add(self.dropped);
        let LinkAccount {
            accounting: account,
            foreign_failures,
            link_failures,
        } = account(members, links, self.packets_sent, counted, self.stale);
        // The per-link account replaces the totals' check of a run with crashes.
        self.failures
            .retain(|failure| failure != CRASHES_NOT_ACCOUNTED);
        let crashes_only = !self.crashed.is_empty()
            && self.failures.is_empty()
            && foreign_failures.is_empty()
            && link_failures.is_empty()
            && account.unaccounted == 0
            && account
                .lost_nodes
                .iter()
                .all(|id| self.crashed.contains(id));
        if !account.lost_nodes.is_empty() && !crashes_only {
            let names: Vec<String> = account
                .lost_nodes
                .iter()
                .map(|id| format!("node {id}"))
                .collect();
            self.failures.push(format!(
                "{} lost: the others handed {} packets to {it} (delivered there, or lost with \
                 {it}) and took {} from {it}{}",
                names.join(", "),
                thousands(account.handed_to_lost_nodes.into()),
                thousands(account.received_from_lost_nodes.into()),
                if account.unaccounted == 0 {
                    "; so every packet is accounted for"
                } else {
                    ""
                },
                it = if names.len() == 1 { "it" } else { "them" },
            ));
        }
        self.failures.extend(foreign_failures);
        self.failures.extend(link_failures);
        if account.unaccounted != 0 {
            self.failures.push(format!(
                "{} packets unaccounted for (sent plus received from lost nodes minus everything \
                 counted)",
                thousands(account.unaccounted.into())
            ));
        }
        if !self.failures.is_empty() {
            self.verdict = "FAIL";
        } else if crashes_only {
            self.verdict = PASS_WITH_CRASHES;
        }
        self.accounting = Some(account);
        self
    }
}
