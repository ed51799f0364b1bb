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
    /// An earlier attempt was given up on after it connected: its registration may still
    /// wait, unread, in a registry that did not run (stopped, starved), which then registers
    /// our address on that connection before it reads the connection's close.
    abandoned: bool,
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
            abandoned: false,
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
        let why = Refusal::Busy.describe(&format!("the registry at {}", self.config.registry));
        self.join_again(now, &why)
    }

    /// The registry refused to register our address because it holds it already: if an
    /// earlier attempt of ours was given up on after it connected, that attempt's registration
    /// is what it holds, and it drops it once it reads that connection's close; try again
    /// after the usual pause, within the wait. Returns false (the refusal stands) otherwise.
    pub(super) fn join_after_our_own_registration(&mut self, now: Nanos, info: &str) -> bool {
        if !info.contains(crate::wire::ALREADY_REGISTERED)
            || !self
                .joining
                .as_ref()
                .is_some_and(|joining| joining.abandoned)
        {
            return false;
        }
        let why = format!(
            "the registry at {} still holds an earlier attempt's registration ({info})",
            self.config.registry
        );
        self.join_again(now, &why)
    }

    /// Closes this attempt's connection and tries again after the usual pause, within the
    /// wait, as if the registry had not been reached. Returns false when the node is not
    /// joining.
    fn join_again(&mut self, now: Nanos, why: &str) -> bool {
        let Some(joining) = self.joining.as_mut() else {
            return false;
        };
        joining.heard = false;
        joining.connected = false;
        let conn = self.registry;
        self.connections.remove(&conn);
        self.effects.push(Effect::Close(conn));
        self.join_failed(now, why, false)
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
        let Some(joining) = self.joining.as_mut() else {
            return;
        };
        if now < joining.next {
            return;
        }
        if joining.open {
            let connected = joining.connected;
            joining.abandoned |= connected;
            let conn = self.registry;
            self.connections.remove(&conn);
            self.effects.push(Effect::Close(conn));
            let why = if connected {
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
    use crate::machine::{ConnId, Machine};
    use crate::node::NodeConfig;
    use crate::wire::native::Native;
    use crate::wire::{Control, Status};

    /// A node at 127.0.0.1:10 that keeps trying for a minute; its first attempt has
    /// connected. Returns it and that attempt's connection.
    fn connected_node() -> (Node<Native>, ConnId) {
        let mut node = Node::<Native>::new(NodeConfig {
            listen: "127.0.0.1:10".parse().unwrap(),
            registry: "127.0.0.1:9".parse().unwrap(),
            seed: 1,
            secret: None,
            link_buffer_bytes: 0,
            registry_wait: 60_000_000_000,
            group: None,
        });
        node.on_start(0);
        let conn = connects(&mut node);
        node.on_connected(0, conn);
        (node, conn)
    }

    /// The connection the node asks for among its effects (which it drops).
    fn connects(node: &mut Node<Native>) -> ConnId {
        let mut effects = Vec::new();
        node.take_effects(&mut effects);
        effects
            .iter()
            .find_map(|effect| match effect {
                Effect::Connect { conn, .. } => Some(*conn),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no connect among {effects:?}"))
    }

    /// The registry's answer to a registration on `conn`; returns the node's effects.
    fn answer(node: &mut Node<Native>, now: Nanos, conn: ConnId, status: Status) -> Vec<Effect> {
        let info = match status {
            Status::Ok(_) => "Registration request successful".to_string(),
            Status::Failed => format!(
                "registration refused: 127.0.0.1:10 {} 109",
                crate::wire::ALREADY_REGISTERED
            ),
        };
        let mut bytes = Vec::new();
        Native::encode_control(&Control::RegisterStatus { status, info }, &mut bytes);
        assert_eq!(node.on_received(now, conn, &bytes), bytes.len());
        let mut effects = Vec::new();
        node.take_effects(&mut effects);
        effects
    }

    fn exits(effects: &[Effect]) -> bool {
        effects
            .iter()
            .any(|effect| matches!(effect, Effect::Exit(_)))
    }

    /// A registry that did not run while a node gave up on an attempt reads that attempt's
    /// registration first and refuses the next one for the same address (the flake of
    /// `tests/faults.rs a_scripted_registry_paused_before_set_up_does_not_give_up_on_its_nodes`:
    /// the node exited). The node tries again and registers once the registry has dropped
    /// the earlier attempt.
    #[test]
    fn a_refusal_of_our_own_earlier_registration_is_tried_again() {
        let (mut node, first) = connected_node();
        let mut now = JOIN_ATTEMPT_TIMEOUT_NS;
        node.on_tick(now);
        let mut effects = Vec::new();
        node.take_effects(&mut effects);
        assert!(effects.contains(&Effect::Close(first)), "{effects:?}");
        now = node.next_tick().expect("a tick for the next attempt");
        node.on_tick(now);
        let second = connects(&mut node);
        node.on_connected(now, second);
        let effects = answer(&mut node, now, second, Status::Failed);
        assert!(!exits(&effects), "{effects:?}");
        assert!(effects.contains(&Effect::Close(second)), "{effects:?}");
        now = node.next_tick().expect("a tick for the third attempt");
        node.on_tick(now);
        let third = connects(&mut node);
        node.on_connected(now, third);
        let effects = answer(&mut node, now, third, Status::Ok(7));
        assert!(!exits(&effects), "{effects:?}");
        assert!(node.joining.is_none());
    }

    /// Without an attempt given up on, the address is another node's: the refusal stands.
    #[test]
    fn a_refusal_of_an_address_another_node_registered_stands() {
        let (mut node, first) = connected_node();
        let effects = answer(&mut node, 0, first, Status::Failed);
        assert!(exits(&effects), "{effects:?}");
    }

    #[test]
    fn pauses_double_up_to_the_most() {
        assert_eq!(Joining::pause(1), JOIN_BACKOFF_MIN_NS);
        assert_eq!(Joining::pause(2), 2 * JOIN_BACKOFF_MIN_NS);
        assert_eq!(Joining::pause(3), 4 * JOIN_BACKOFF_MIN_NS);
        assert_eq!(Joining::pause(1000), JOIN_BACKOFF_MAX_NS);
    }
}
