//! The scheduler: which event happens next (drawn from the seeded generator among those that
//! can), virtual time, and running until a condition holds.

use rand::Rng;

use super::link::{EndState, Owner};
use super::{Sim, Who};
use crate::machine::Nanos;
use crate::summary::RunResult;
use crate::wire::Codec;

/// Why [`Sim::run_until`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The step bound was reached before the condition held.
    #[error("step limit reached after {steps} steps")]
    StepLimit { steps: u64 },
    /// Nothing could happen any more (no event, no timer) and the condition does not hold.
    #[error("nothing can happen any more (after {steps} steps)")]
    Stuck { steps: u64 },
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    Connect(usize),
    Deliver(usize),
    Pump(usize),
    Tick(usize),
}

impl<C: Codec> Sim<C> {
    /// Takes one step: one event chosen at random among those that can happen, or a jump of
    /// virtual time to the next timer. False when nothing can happen at all.
    pub fn step(&mut self) -> bool {
        self.step_within(Nanos::MAX)
    }

    /// Like [`Sim::step`], but virtual time never jumps to a timer later than `until`: false
    /// when no event can happen before then (models a pause shorter than those timers).
    pub fn step_within(&mut self, until: Nanos) -> bool {
        self.collect_actions();
        if self.actions.is_empty() {
            let next = (0..self.slots.len())
                .filter(|&m| self.active(m))
                .filter_map(|m| self.next_tick(m))
                .min();
            return match next {
                Some(at) if at > self.now && at <= until => {
                    self.now = at;
                    self.steps += 1;
                    true
                }
                _ => false,
            };
        }
        let action = self.actions[self.rng.random_range(0..self.actions.len())];
        match action {
            Action::Connect(index) => self.do_connect(index),
            Action::Deliver(e) => self.do_deliver(e),
            Action::Pump(e) => self.do_pump(e),
            Action::Tick(m) => {
                let now = self.now;
                self.machine(m).on_tick(now);
                self.apply_effects(m);
            }
        }
        self.now += self.step_nanos;
        self.steps += 1;
        true
    }

    /// Steps until `condition` holds (checked before every step). Fails after `max_steps`
    /// steps, or when nothing can happen any more.
    pub fn run_until(
        &mut self,
        mut condition: impl FnMut(&Sim<C>) -> bool,
        max_steps: u64,
    ) -> Result<u64, SimError> {
        let mut taken = 0;
        loop {
            if condition(self) {
                return Ok(taken);
            }
            if taken >= max_steps {
                return Err(SimError::StepLimit { steps: taken });
            }
            if !self.step() {
                return Err(SimError::Stuck { steps: taken });
            }
            taken += 1;
        }
    }

    /// Steps until nothing can happen any more; fails after `max_steps` steps.
    pub fn run_until_quiet(&mut self, max_steps: u64) -> Result<u64, SimError> {
        let mut taken = 0;
        while self.step() {
            taken += 1;
            if taken >= max_steps {
                return Err(SimError::StepLimit { steps: taken });
            }
        }
        Ok(taken)
    }

    /// Runs until every node that has not exited is registered.
    pub fn register_all(&mut self, max_steps: u64) -> Result<u64, SimError> {
        self.run_until(
            |sim| {
                (0..sim.nodes.len())
                    .all(|i| sim.nodes[i].id().is_some() || sim.slots[i + 1].exit.is_some())
                    && sim.connects.is_empty()
            },
            max_steps,
        )
    }

    /// Types `setup-overlay nr` at the registry and runs until it is ready.
    pub fn setup_overlay(&mut self, nr: usize, max_steps: u64) -> Result<u64, SimError> {
        self.command(Who::Registry, &format!("setup-overlay {nr}"));
        self.run_until(|sim| sim.is_ready(), max_steps)
    }

    /// Types `start packets` at the registry and runs until the run has a result.
    pub fn run_packets(&mut self, packets: u64, max_steps: u64) -> Result<RunResult, SimError> {
        let before = self.registry.results().completed();
        self.command(Who::Registry, &format!("start {packets}"));
        self.run_until(|sim| sim.registry.results().completed() > before, max_steps)?;
        Ok(self
            .registry
            .results()
            .recent()
            .back()
            .cloned()
            .expect("a run completed"))
    }

    pub(super) fn collect_actions(&mut self) {
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        for (index, connect) in self.connects.iter().enumerate() {
            if !self.active(connect.machine) {
                continue;
            }
            // A listener that is stalled accepts nothing yet; a missing one refuses.
            let blocked = self
                .listeners
                .get(&connect.addr)
                .is_some_and(|&t| self.slots[t].exit.is_none() && self.slots[t].stalled);
            if !blocked {
                actions.push(Action::Connect(index));
            }
        }
        let mut busy = std::mem::take(&mut self.busy);
        busy.retain(|&e| {
            let keep = self.has_work(e);
            self.marked[e] = keep;
            keep
        });
        for &e in &busy {
            let end = &self.ends[e];
            match end.owner {
                Owner::Machine(m) => {
                    if !self.active(m) {
                        continue;
                    }
                    if end.state == EndState::Open
                        && !end.held
                        && (!end.inbound.is_empty() || end.eof)
                    {
                        actions.push(Action::Deliver(e));
                    }
                    if self.pump_ready(e) {
                        actions.push(Action::Pump(e));
                    }
                }
                Owner::Raw(_) => {
                    if end.state == EndState::Open && (!end.inbound.is_empty() || end.eof) {
                        actions.push(Action::Deliver(e));
                    }
                }
            }
        }
        self.busy = busy;
        for m in 0..self.slots.len() {
            if self.active(m) && self.next_tick(m).is_some_and(|at| at <= self.now) {
                actions.push(Action::Tick(m));
            }
        }
        self.actions = actions;
    }
}
