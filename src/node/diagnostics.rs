//! The `print-counters-and-diagnostics` text.

use std::fmt::Write as _;

use super::links::Role;
use super::{Node, Phase};
use crate::summary::thousands;
use crate::wire::Codec;

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "Connecting",
            Phase::Registering => "Registering",
            Phase::Registered { .. } => "Registered",
            Phase::Exiting { .. } => "Exiting",
        }
    }
}

impl<C: Codec> Node<C> {
    /// The `print-counters-and-diagnostics` text: counters, table, links, run state.
    pub(super) fn diagnostics(&self) -> String {
        let mut out = String::new();
        let counters = self.counters();
        let c = &counters;
        let _ = writeln!(
            out,
            "{:>10} {:>16} {:>16} {:>16} {:>22} {:>22} {:>10} {:>10}",
            "Node",
            "Packets Sent",
            "Packets Received",
            "Packets Relayed",
            "Sum Values Sent",
            "Sum Values Received",
            "Corrupted",
            "Dropped"
        );
        let _ = writeln!(
            out,
            "{:>10} {:>16} {:>16} {:>16} {:>22} {:>22} {:>10} {:>10}",
            self.id().map_or("-".to_string(), |id| id.to_string()),
            thousands(c.sent.into()),
            thousands(c.received.into()),
            thousands(c.relayed.into()),
            thousands(c.sum_sent.into()),
            thousands(c.sum_received.into()),
            thousands(c.corrupted.into()),
            thousands(c.dropped.into()),
        );
        let _ = writeln!(
            out,
            "node {} listening on {}, registry {} ({})",
            self.id()
                .map_or("(unregistered)".to_string(), |id| id.to_string()),
            self.config.listen,
            self.config.registry,
            self.phase.name()
        );
        match &self.overlay {
            None => {
                let _ = writeln!(out, "overlay: not set up");
            }
            Some(overlay) => {
                let _ = writeln!(
                    out,
                    "overlay: {} nodes, trace slots {} of {} bytes, window {} bytes, epoch {}",
                    overlay.router.ring().len(),
                    overlay.shape.trace_slots,
                    overlay.shape.slot_bytes,
                    overlay.flow.window_bytes,
                    overlay.flow.epoch
                );
                let shares = &overlay.shares;
                let _ = writeln!(
                    out,
                    "queued on behalf of inbound links: {} bytes (at most {}); {} links cut and \
                     {} frames dropped for queuing more",
                    thousands(shares.total as i128),
                    thousands(shares.bound as i128),
                    thousands(shares.links_cut.into()),
                    thousands(shares.frames_dropped.into())
                );
                for (index, entry) in overlay.entries.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "  entry {index}: node {:>10} at {:<21} {:?}, {} bytes queued",
                        entry.id,
                        entry.addr.to_string(),
                        entry.link,
                        entry.queued_len() + entry.with_driver
                    );
                }
            }
        }
        let inbound = self
            .connections
            .values()
            .filter(|c| matches!(c.role, Role::Inbound(_)))
            .count();
        let _ = writeln!(out, "inbound links: {inbound}");
        let _ = write!(
            out,
            "run: {}, {} bytes in flight",
            match self.overlay.as_ref().and_then(|o| o.run.as_ref()) {
                Some(run)
                    if run.remaining.saturating_add(run.originated)
                        == crate::limits::TASK_UNTIL_STOPPED =>
                {
                    format!(
                        "run {} by time, {} packets sent, sending until the registry says stop",
                        run.number, run.originated
                    )
                }
                Some(run) => format!("{} packets left to send", run.remaining),
                None => "idle".to_string(),
            },
            self.overlay.as_ref().map_or(0, |o| o.flow.in_flight_bytes)
        );
        out
    }
}
