//! Reaching the registry, in any start order: a node that cannot connect, or whose attempt
//! is not answered, tries again on a fresh connection with a growing pause, until
//! `NodeConfig::registry_wait` has passed; then it says once why it gives up.

use super::links::{Connection, Role};
use super::{Node, Phase};
use crate::auth::Handshake;
use crate::limits::{
    JOIN_ATTEMPT_TIMEOUT_NS, JOIN_BACKOFF_MAX_NS, JOIN_BACKOFF_MIN_NS, JOIN_CONNECT_TIMEOUT_NS,
};
use crate::machine::{Effect, Nanos};
use crate::wire::{Codec, Refusal};

/// Attempts to register, from the first until the registry answers.
#[derive(Debug, Clone)]
pub(super) struct Joining {
    /// When the first attempt started.
    started: Nanos,
    /// Attempts made so far (connections opened).
    attempts: u32,
    /// An attempt's connection is open (and `next` is when it is given up on), or the node is
    /// pausing before the next one (and `next` is when that starts).
    open: bool,
    next: Nanos,
    /// The registry sent something on this attempt's connection: it is there, so a close
    /// now is its refusal (for example of our answer to its challenge), not unreachability.
    heard: bool,
    /// This attempt's connection was established: a close before any answer is a refusal
    /// too (another wire format, a secret we lack, a full registry), not unreachability.
    connected: bool,
}

impl Joining {
    /// The pause after `attempts` failed attempts: doubling from the least, up to the most.
    fn pause(attempts: u32) -> Nanos {
        JOIN_BACKOFF_MIN_NS
            .saturating_mul(1 << attempts.saturating_sub(1).min(16))
            .min(JOIN_BACKOFF_MAX_NS)
    }
}

impl<C: Codec> Node<C> {
    /// The first attempt.
    pub(super) fn start_joining(&mut self, now: Nanos) {
        self.joining = Some(Joining {
            started: now,
            attempts: 0,
            open: false,
            next: now,
            heard: false,
            connected: false,
        });
        self.attempt_join(now);
    }

    /// Opens a fresh connection to the registry.
    fn attempt_join(&mut self, now: Nanos) {
        let Some(joining) = self.joining.as_mut() else {
            return;
        };
        joining.attempts += 1;
        joining.open = true;
        joining.heard = false;
        joining.connected = false;
        joining.next = now + JOIN_CONNECT_TIMEOUT_NS;
        if joining.attempts > 1 {
            self.registry = self.conn_ids.next_outbound();
        }
        self.phase = Phase::Connecting;
        // The handshake starts once connected (`greet_registry`).
        self.connections.insert(
            self.registry,
            Connection::new(Role::Registry, Handshake::Done),
        );
        // The one connection of a node probed while idle: between runs nothing else would
        // tell a node that its registry's machine is gone.
        self.effects.push(Effect::Connect {
            conn: self.registry,
            addr: self.config.registry,
            keepalive: true,
        });
    }

    /// The attempt failed (`why`; `closed_by_them`: the connection failed or the registry
    /// closed it, rather than this node giving up on it): pause and try again, or give up once
    /// the wait is over or the registry refused. Returns false when the node is not joining
    /// (the registry connection of a registered node failed).
    pub(super) fn join_failed(&mut self, now: Nanos, why: &str, closed_by_them: bool) -> bool {
        let wait = self.config.registry_wait;
        let Some(joining) = self.joining.as_mut() else {
            return false;
        };
        let retry_at = now + Joining::pause(joining.attempts);
        if closed_by_them && joining.connected && !joining.heard {
            self.joining = None;
            self.say(format!(
                "the registry at {} accepted the connection and closed it without an answer \
                 ({why}): does it speak another wire format (--wire), require a --secret-file, \
                 or have no room for more nodes? Its log says which",
                self.config.registry
            ));
            self.effects.push(Effect::Exit(1));
        } else if joining.heard {
            self.joining = None;
            self.say(format!(
                "the registry at {} closed the connection before registering us ({why}){}",
                self.config.registry,
                match self.config.secret {
                    Some(_) => "; does it use the same --secret-file?",
                    None => "",
                }
            ));
            self.effects.push(Effect::Exit(1));
        } else if retry_at.saturating_sub(joining.started) > wait {
            let (attempts, started) = (joining.attempts, joining.started);
            self.joining = None;
            let seconds = now.saturating_sub(started) as f64 / 1e9;
            self.say(format!(
                "cannot reach the registry at {}: {why}; gave up after {attempts} {} in \
                 {seconds:.1} s (--registry-wait {} s)",
                self.config.registry,
                if attempts == 1 { "attempt" } else { "attempts" },
                wait as f64 / 1e9
            ));
            self.effects.push(Effect::Exit(1));
        } else {
            tracing::info!(
                "registry at {} not reached ({why}); attempt {} in {} ms",
                self.config.registry,
                joining.attempts + 1,
                (retry_at - now) / 1_000_000
            );
            joining.open = false;
            joining.next = retry_at;
        }
        true
    }

    /// The registry pushed this attempt's connection out, busy with others that wait to
    /// register: close it and try again after the usual pause, within the wait. Returns
    /// false when the node is not joining.
    pub(super) fn join_busy(&mut self, now: Nanos) -> bool {
        let Some(joining) = self.joining.as_mut() else {
            return false;
        };
        // Not a refusal of this node: as if the registry had not been reached.
        joining.heard = false;
        joining.connected = false;
        let conn = self.registry;
        self.connections.remove(&conn);
        self.effects.push(Effect::Close(conn));
        let why = Refusal::Busy.describe(&format!("the registry at {}", self.config.registry));
        self.join_failed(now, &why, false)
    }

    /// The current attempt's connection is established: the registry has
    /// `JOIN_ATTEMPT_TIMEOUT_NS` from now to answer.
    pub(super) fn connected_to_registry(&mut self, now: Nanos) {
        if let Some(joining) = self.joining.as_mut() {
            joining.connected = true;
            joining.next = now + JOIN_ATTEMPT_TIMEOUT_NS;
        }
    }

    /// Bytes arrived from the registry on the current attempt's connection.
    pub(super) fn heard_from_registry(&mut self) {
        if let Some(joining) = self.joining.as_mut() {
            joining.heard = true;
        }
    }

    /// Registered: no more attempts.
    pub(super) fn joined(&mut self) {
        self.joining = None;
    }

    /// When the joining needs the next tick.
    pub(super) fn join_tick(&self) -> Option<Nanos> {
        self.joining.as_ref().map(|joining| joining.next)
    }

    /// An attempt not answered in time is given up on (its connection closed); a pause that
    /// is over starts the next attempt.
    pub(super) fn on_join_tick(&mut self, now: Nanos) {
        let Some(joining) = self.joining.as_ref() else {
            return;
        };
        if now < joining.next {
            return;
        }
        if joining.open {
            let conn = self.registry;
            self.connections.remove(&conn);
            self.effects.push(Effect::Close(conn));
            let why = if joining.connected {
                format!(
                    "no answer within {} s of connecting",
                    JOIN_ATTEMPT_TIMEOUT_NS / 1_000_000_000
                )
            } else {
                format!(
                    "not connected within {} s",
                    JOIN_CONNECT_TIMEOUT_NS / 1_000_000_000
                )
            };
            self.join_failed(now, &why, false);
        } else {
            self.attempt_join(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_most() {
        assert_eq!(Joining::pause(1), JOIN_BACKOFF_MIN_NS);
        assert_eq!(Joining::pause(2), 2 * JOIN_BACKOFF_MIN_NS);
        assert_eq!(Joining::pause(3), 4 * JOIN_BACKOFF_MIN_NS);
        assert_eq!(Joining::pause(1000), JOIN_BACKOFF_MAX_NS);
    }
}
