//! When the loop, out of work, polls the ring before it sleeps (`--busy-poll-us`).
//!
//! On a virtual machine a halted vCPU costs 40-50 us to wake, more than a hop's own work
//! (docs/PERFORMANCE.md, W4): a node that keeps its core busy for a while after work answers
//! the next packet without that wake-up. Polling only pays while packets come often and the
//! core would otherwise idle, so the adaptive mode (the default) polls only
//! - after a short idle gap: the last time the loop ran out of work, work came back within
//!   `AUTO_POLL_RECENT_NS` (traffic is recent; the first packet after a quiet spell is
//!   answered by a sleeping node, so an idle node never polls);
//! - after a small batch: the batch of completions that ended that gap held at most
//!   `AUTO_POLL_BATCH_MAX` (light load; a saturated node finds many completions each time
//!   and has no idle core to keep awake);
//! - for at most `AUTO_POLL_NS`, and only while yielding the core comes straight back: a
//!   yield that gave the core to another process for longer than `AUTO_POLL_YIELD_NS` shows
//!   that the core has other work, so it will not halt, and polling would only take turns
//!   from that work (64 nodes on 2 cores at full speed, or other programs). Worse, a node
//!   that yields to a busy program waits out that program's time slice, where a sleeping
//!   node woken by a packet would run at once; so after a slow yield the node does not poll
//!   for `AUTO_POLL_PAUSE_NS` (10 ms: a machine's housekeeping takes a core a moment about
//!   once a second, and the core is free again after it), a pause that doubles with each slow yield that comes within
//!   one pause of the last pause's end (the busy programs are still there), up to
//!   `AUTO_POLL_PAUSE_MAX_NS`; a slow yield after a longer spell without one starts again at
//!   `AUTO_POLL_PAUSE_NS`. Fast yields do not shorten the pause: within one poll, yields to
//!   other polling nodes come straight back before the one to a busy program does not, so
//!   a reset on a fast yield kept the pause at its shortest, and each node paid a slow yield
//!   a second, about 1% of its hops at light load (docs/PERFORMANCE.md, W4);
//! - by one process per core at a time: the poll begins only once the loop holds its core's
//!   token (`core_token`), which it gives back before it sleeps. The other nodes on the core
//!   sleep, and a packet for one of them wakes it on an awake core; a loop whose thread is
//!   not pinned to a core does not poll.

use std::time::Duration;

use crate::limits::{
    AUTO_POLL_BATCH_MAX, AUTO_POLL_NS, AUTO_POLL_PAUSE_MAX_NS, AUTO_POLL_PAUSE_NS,
    AUTO_POLL_RECENT_NS, AUTO_POLL_YIELD_NS,
};
use crate::machine::Nanos;

/// How long the loop polls once it runs out of work, before it sleeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusyPoll {
    /// Sleep at once.
    Off,
    /// Poll this long after every piece of work, whatever the load (yielding between looks).
    For(Duration),
    /// Poll while traffic is light and recent and the core has nothing else to run.
    Auto,
}

/// The adaptive policy's memory: how the last idle gap went.
#[derive(Debug)]
pub(crate) struct Governor {
    mode: BusyPoll,
    /// When the loop last ran out of work, while it has not found work since.
    idle_since: Option<Nanos>,
    /// Length of the last idle gap (from running out of work to finding some).
    last_gap: Nanos,
    /// Completions found when the last idle gap ended.
    last_batch: usize,
    /// No adaptive poll before this (a slow yield showed the core busy).
    paused_until: Nanos,
    /// The pause after the next slow yield, if it comes within this long of `paused_until`.
    pause: Nanos,
}

/// One poll: until when, and whether a slow yield ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Poll {
    pub until: Nanos,
    /// The adaptive poll: a slow yield ends it, and it needs the core's token.
    pub adaptive: bool,
}

impl Governor {
    pub(crate) fn new(mode: BusyPoll) -> Self {
        Governor {
            mode,
            idle_since: None,
            last_gap: Nanos::MAX,
            last_batch: usize::MAX,
            paused_until: 0,
            pause: AUTO_POLL_PAUSE_NS,
        }
    }

    /// The loop ran out of work at `now`: the poll to make before sleeping, if any.
    pub(crate) fn on_idle(&mut self, now: Nanos) -> Option<Poll> {
        self.idle_since.get_or_insert(now);
        match self.mode {
            BusyPoll::Off => None,
            BusyPoll::For(time) => Some(Poll {
                until: now.saturating_add(Nanos::try_from(time.as_nanos()).unwrap_or(Nanos::MAX)),
                adaptive: false,
            }),
            BusyPoll::Auto => (self.last_gap <= AUTO_POLL_RECENT_NS
                && self.last_batch <= AUTO_POLL_BATCH_MAX
                && now >= self.paused_until)
                .then_some(Poll {
                    until: now.saturating_add(AUTO_POLL_NS),
                    adaptive: true,
                }),
        }
    }

    /// The loop found `completions` (and perhaps a due tick) at `now`; ends an idle gap.
    pub(crate) fn on_work(&mut self, now: Nanos, completions: usize) {
        if let Some(since) = self.idle_since.take() {
            self.last_gap = now.saturating_sub(since);
            self.last_batch = completions;
        }
    }

    /// A yield between looks of `poll` returned at `now` after `took`: whether the poll
    /// should end (the adaptive poll then pauses, longer after each slow yield in a row).
    pub(crate) fn yield_was_slow(&mut self, poll: Poll, now: Nanos, took: Nanos) -> bool {
        if !poll.adaptive || took <= AUTO_POLL_YIELD_NS {
            return false;
        }
        // The first poll after a pause found the core still busy: pause twice as long.
        // Otherwise the busy spell is a new one.
        let pause = if now <= self.paused_until.saturating_add(self.pause) {
            self.pause
        } else {
            AUTO_POLL_PAUSE_NS
        };
        self.paused_until = now.saturating_add(pause);
        self.pause = pause.saturating_mul(2).min(AUTO_POLL_PAUSE_MAX_NS);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Nanos = 1_000;

    #[test]
    fn off_never_polls() {
        let mut g = Governor::new(BusyPoll::Off);
        g.on_work(0, 1);
        assert_eq!(g.on_idle(10 * US), None);
    }

    #[test]
    fn fixed_polls_after_any_work_without_yield_check() {
        let mut g = Governor::new(BusyPoll::For(Duration::from_micros(500)));
        let poll = g.on_idle(0).unwrap();
        assert_eq!(poll.until, 500 * US);
        assert!(!g.yield_was_slow(poll, 0, 10_000 * US));
        assert!(g.on_idle(US).is_some());
    }

    #[test]
    fn auto_polls_only_after_a_short_gap_and_a_small_batch() {
        let mut g = Governor::new(BusyPoll::Auto);
        // Fresh: nothing known about traffic, so no poll (an idle node sleeps).
        assert_eq!(g.on_idle(0), None);
        // Work after a long quiet spell: still no poll.
        g.on_work(AUTO_POLL_RECENT_NS + 1, 1);
        assert_eq!(g.on_idle(AUTO_POLL_RECENT_NS + 2), None);
        // Work soon after: poll, stopping on a slow yield.
        let t = AUTO_POLL_RECENT_NS + 2 + 100 * US;
        g.on_work(t, 2);
        let poll = g.on_idle(t + US).expect("light, recent traffic polls");
        assert_eq!(poll.until, t + US + AUTO_POLL_NS);
        assert!(!g.yield_was_slow(poll, t + 2 * US, AUTO_POLL_YIELD_NS));
        // A large batch (saturation) stops it.
        g.on_work(t + 2 * US, AUTO_POLL_BATCH_MAX + 1);
        assert_eq!(g.on_idle(t + 3 * US), None);
    }

    #[test]
    fn auto_pauses_after_a_slow_yield() {
        let mut g = Governor::new(BusyPoll::Auto);
        g.on_work(0, 1);
        g.on_idle(US);
        g.on_work(2 * US, 1);
        let poll = g.on_idle(3 * US).expect("light, recent traffic polls");
        assert!(g.yield_was_slow(poll, 500 * US, AUTO_POLL_YIELD_NS + 1));
        g.on_work(501 * US, 1);
        assert_eq!(g.on_idle(502 * US), None, "paused after a slow yield");
        // Light traffic goes on; once the pause is over, the node polls again.
        let end = 500 * US + AUTO_POLL_PAUSE_NS;
        assert_eq!(polls_at(&mut g, end - US), None, "still paused");
        assert!(polls_at(&mut g, end).is_some());
    }

    /// Light traffic goes on at `now`; whether the node polls.
    fn polls_at(g: &mut Governor, now: Nanos) -> Option<Poll> {
        g.on_work(now - 3 * US, 1);
        g.on_idle(now - 2 * US);
        g.on_work(now - US, 1);
        g.on_idle(now)
    }

    #[test]
    fn slow_yields_in_a_row_double_the_pause_and_a_quiet_spell_resets_it() {
        let mut g = Governor::new(BusyPoll::Auto);
        let mut now = 10 * US;
        let mut pause = AUTO_POLL_PAUSE_NS;
        for _ in 0..3 {
            let poll = polls_at(&mut g, now).expect("polls once the pause is over");
            // Yields to other polling nodes come straight back first: no reset.
            assert!(!g.yield_was_slow(poll, now, US));
            assert!(g.yield_was_slow(poll, now, AUTO_POLL_YIELD_NS + 1));
            assert_eq!(
                polls_at(&mut g, now + pause - US),
                None,
                "paused for {pause}"
            );
            now += pause;
            pause *= 2;
        }
        // The busy programs are gone for longer than a pause: the next busy spell starts
        // with the shortest pause again.
        now += pause + US;
        let poll = polls_at(&mut g, now).expect("polls after a quiet spell");
        assert!(g.yield_was_slow(poll, now, AUTO_POLL_YIELD_NS + 1));
        assert_eq!(polls_at(&mut g, now + AUTO_POLL_PAUSE_NS - US), None);
        assert!(
            polls_at(&mut g, now + AUTO_POLL_PAUSE_NS).is_some(),
            "the pause was reset"
        );
        let mut g = Governor::new(BusyPoll::Auto);
        let mut now = 10 * US;
        for _ in 0..20 {
            let poll = polls_at(&mut g, now).unwrap();
            g.yield_was_slow(poll, now, AUTO_POLL_YIELD_NS + 1);
            now = g.paused_until;
        }
        assert_eq!(g.pause, AUTO_POLL_PAUSE_MAX_NS);
    }

    /// A machine's housekeeping takes the core a moment about once a second: each such slow
    /// yield costs the shortest pause only, and the node polls the rest of the time.
    #[test]
    fn a_slow_yield_now_and_then_pauses_briefly() {
        let mut g = Governor::new(BusyPoll::Auto);
        let mut now = 10 * US;
        for _ in 0..10 {
            let poll = polls_at(&mut g, now).expect("polls between the moments");
            assert!(g.yield_was_slow(poll, now, 3 * AUTO_POLL_YIELD_NS));
            assert_eq!(polls_at(&mut g, now + AUTO_POLL_PAUSE_NS - US), None);
            assert!(polls_at(&mut g, now + AUTO_POLL_PAUSE_NS).is_some());
            now += 1_000_000_000;
        }
    }

    #[test]
    fn auto_measures_the_gap_from_the_first_idle_moment() {
        let mut g = Governor::new(BusyPoll::Auto);
        g.on_work(0, 1);
        g.on_idle(US);
        // Several idle turns (a poll that ended, then a wait) form one gap.
        g.on_idle(AUTO_POLL_RECENT_NS);
        g.on_work(AUTO_POLL_RECENT_NS + 2 * US, 1);
        assert_eq!(
            g.on_idle(AUTO_POLL_RECENT_NS + 3 * US),
            None,
            "the gap was long"
        );
    }
}
