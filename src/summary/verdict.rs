//! A run's verdict in one line: PASS, PASS with crashes, STOPPED or FAIL, with why and how
//! fast.

use super::RunResult;
use super::format::thousands;
use super::result::PASS_WITH_CRASHES;

impl RunResult {
    /// `PASS: ...`, `STOPPED ...` or `FAIL: ...` in one line.
    pub fn verdict_line(&self) -> String {
        let over = match (&self.excluded, self.settle_s, self.all_sent_s) {
            (Some(what), ..) => format!(" over {:.3} s, {what} excluded", self.measured_s),
            (None, Some(settle), Some(sent)) => format!(
                " including the {settle:.1} s settle wait: classic nodes cannot be polled; every \
                 packet was sent by {sent:.3} s"
            ),
            _ => String::new(),
        };
        let rate = format!(
            "{} packets in {:.3} s ({} packets/s, {} relays/s{over}), {} corrupted, {} dropped",
            thousands(self.packets_received.into()),
            self.duration_s,
            thousands(self.packets_per_s.round() as i128),
            thousands(self.relays_per_s.round() as i128),
            self.corrupted,
            self.dropped
        );
        let rate = self
            .notes
            .iter()
            .fold(rate, |line, note| format!("{line}; {note}"));
        let goal = match self.duration_goal_s {
            Some(goal) => format!(" of {goal} s"),
            None => String::new(),
        };
        match (self.verdict, self.stopped_after_s) {
            ("PASS", _) => format!("PASS: sent == received and sums match; {rate}"),
            (PASS_WITH_CRASHES, stopped) => {
                let names: Vec<String> =
                    self.crashed.iter().map(|id| format!("node {id}")).collect();
                let them = if names.len() == 1 { "it" } else { "them" };
                let account = match &self.accounting {
                    Some(account) => format!(
                        "the others handed {them} {} packets (delivered there, or lost with \
                         {them}) and took {} from {them}; every other packet arrived intact, \
                         {} unaccounted",
                        thousands(account.handed_to_lost_nodes.into()),
                        thousands(account.received_from_lost_nodes.into()),
                        account.unaccounted
                    ),
                    None => "every run accounted for every packet".to_string(),
                };
                let stopped = match stopped {
                    Some(after) => format!(" (stopped after {after:.1} s{goal})"),
                    None => String::new(),
                };
                format!(
                    "PASS with crashes{stopped}: {} crashed during the run; {account}; {rate}",
                    names.join(", ")
                )
            }
            ("STOPPED", Some(after)) => {
                let of = match self.duration_goal_s {
                    Some(_) => String::new(),
                    None => format!(
                        " of {}",
                        thousands((u128::from(self.packets_per_node) * self.nodes as u128) as i128)
                    ),
                };
                format!(
                    "STOPPED after {after:.1} s{goal}: {} packets sent{of}, every one received \
                     and sums match; {rate}",
                    thousands(self.packets_sent.into())
                )
            }
            (_, Some(after)) => format!(
                "FAIL (stopped after {after:.1} s{goal}): {}; {rate}",
                self.failures.join("; ")
            ),
            // No run took place (the overlay was never ready): no figures to give.
            (_, None) if self.node.is_empty() => format!("FAIL: {}", self.failures.join("; ")),
            (_, None) => format!("FAIL: {}; {rate}", self.failures.join("; ")),
        }
    }
}
